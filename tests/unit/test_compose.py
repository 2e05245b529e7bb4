"""Static checks of the Docker stack: no Docker engine needed.

docker-compose.yml and the GitHub workflow are validated against the JSON
schemas vendored in check-jsonschema (offline), then against this project's
own rules: exact image versions, healthchecks, the same Kafka as the local
stack, the ports and variables of `.env.example`, and no secret in the file.
"""
from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from helpers.infra.environment import load_settings
from helpers.infra.status import kafka_version

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
WORKFLOW = ROOT / ".github" / "workflows" / "docker-stack.yml"
ENV_EXAMPLE = ROOT / ".env.example"
POM = ROOT / "stack" / "pom.xml"

EXACT_TAG = re.compile(r"^[a-z0-9][a-z0-9._/-]*:(\d+\.\d+\.\d+)([-.][A-Za-z0-9._-]+)?$")  # 3.6.1.Final too
INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.IGNORECASE)
SECRET_FLAGS = {"MYSQL_RANDOM_ROOT_PASSWORD": "yes"}  # switches, not secrets
PORT_VARIABLES = {"kafka": "KAFKA_PORT", "mysql": "MYSQL_PORT", "ksqldb-server": "KSQLDB_PORT"}


def load_yaml(path: Path) -> dict:
    """Parse YAML 1.2 the way Compose and GitHub do (`on` stays a string)."""
    return YAML(typ="safe").load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    """docker-compose.yml as data."""
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    """The services of docker-compose.yml by name."""
    return compose["services"]


@pytest.fixture(scope="module")
def workflow() -> dict:
    """The GitHub workflow as data."""
    return load_yaml(WORKFLOW)


def env_example() -> dict[str, str]:
    """Variables of .env.example, set or commented out (`# NAME=value`)."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


def env_example_set() -> set[str]:
    """Variables that .env.example really assigns (not commented out)."""
    return {line.split("=", 1)[0].strip() for line in ENV_EXAMPLE.read_text().splitlines()
            if re.match(r"^[A-Z][A-Z0-9_]*=", line.strip())}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Resolve ${VAR}, ${VAR:-default} and ${VAR:?message} like Compose does."""
    def resolve(match: re.Match) -> str:
        name, op, arg = match.group("name", "op", "arg")
        if env.get(name):
            return env[name]
        if op in (":?", "?"):
            raise AssertionError(f"{name} is required: {arg}")
        return arg or ""
    return INTERPOLATION.sub(resolve, str(value))


def run_check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess:
    """Validate one file with a schema vendored in check-jsonschema (no network)."""
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                           str(path)], capture_output=True, text=True, timeout=120)


def heap_max_mib(opts: str) -> int:
    """The -Xmx of JVM options, in MiB."""
    match = re.search(r"-Xmx(\d+)([mg])", opts, re.IGNORECASE)
    assert match, f"no -Xmx in {opts!r}"
    return int(match.group(1)) * (1024 if match.group(2).lower() == "g" else 1)


def mem_mib(limit: str) -> int:
    """A Compose memory limit such as 1g or 1536m, in MiB."""
    match = re.fullmatch(r"(\d+)([mg])", str(limit).lower())
    assert match, f"unreadable mem_limit {limit!r}"
    return int(match.group(1)) * (1024 if match.group(2) == "g" else 1)


# --- schemas ------------------------------------------------------------------

@pytest.mark.parametrize("schema, path", [("vendor.compose-spec", COMPOSE),
                                          ("vendor.github-workflows", WORKFLOW)])
def test_file_matches_its_public_schema(schema, path):
    result = run_check_jsonschema(schema, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_no_obsolete_version_key(compose):
    assert "version" not in compose


# --- images -------------------------------------------------------------------

def test_every_image_is_pinned_to_an_exact_version(services):
    for name, service in services.items():
        if "build" in service and "image" not in service:
            continue
        image = service.get("image", "")
        assert EXACT_TAG.match(image), f"{name}: image {image!r} is not pinned to major.minor.patch"
        assert "latest" not in image, f"{name}: never use latest"


def test_dockerfiles_pin_their_base_image_to_python_311():
    dockerfiles = sorted((ROOT / "docker").rglob("Dockerfile"))
    assert dockerfiles, "no Dockerfile under docker/"
    for dockerfile in dockerfiles:
        bases = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE)
        assert bases, f"{dockerfile} has no FROM"
        for base in bases:
            assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), f"{dockerfile}: {base}"


def test_build_contexts_hold_what_the_dockerfile_copies(services):
    for name, service in services.items():
        if "build" not in service:
            continue
        context = ROOT / service["build"]["context"]
        dockerfile = context / service["build"]["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        for line in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile.read_text(), re.MULTILINE):
            for source in line.split()[:-1]:
                assert (context / source).exists(), f"{name}: COPY source {source} is missing"


def test_kafka_is_the_release_of_the_local_stack(services):
    pom_version = ET.parse(POM).getroot().find("{*}properties/{*}kafka.version").text
    tag = services["kafka"]["image"].split(":", 1)[1]
    assert tag == pom_version
    settings = load_settings(env={"WORKBOOK_STACK": "docker"}, dotenv=ROOT / "no-such-file")
    assert kafka_version(settings) == pom_version  # what `workbook status` reports


def test_ksqldb_cli_uses_the_server_image(services):
    assert services["ksqldb-cli"]["image"] == services["ksqldb-server"]["image"]
    assert services["ksqldb-cli"]["profiles"] == ["cli"]


# --- readiness ------------------------------------------------------------------

def test_services_outside_profiles_have_healthchecks(services):
    default = [name for name, service in services.items() if not service.get("profiles")]
    assert set(default) == {"kafka", "ksqldb-server", "mysql"}
    for name in default + ["jupyter"]:
        test = services[name].get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


def test_dependencies_wait_for_health(services):
    assert "kafka" in services["ksqldb-server"]["depends_on"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition.get("condition") == "service_healthy", f"{name} -> {dependency}"


def test_ksqldb_healthcheck_probes_its_healthcheck_endpoint(services):
    probe = " ".join(services["ksqldb-server"]["healthcheck"]["test"])
    assert "/dev/tcp/127.0.0.1/8088" in probe and "GET /healthcheck" in probe


@pytest.mark.parametrize("service, variable", [("kafka", "KAFKA_HEAP_OPTS"),
                                               ("ksqldb-server", "KSQL_HEAP_OPTS")])
def test_jvm_heap_fits_in_the_memory_limit(services, service, variable):
    heap = heap_max_mib(services[service]["environment"][variable])
    limit = mem_mib(services[service]["mem_limit"])
    assert heap <= limit * 0.75, f"{service}: -Xmx{heap}m leaves too little of {limit}m"


def test_data_lives_in_named_volumes(compose, services):
    for name, target in (("kafka", "/var/lib/kafka/data"), ("mysql", "/var/lib/mysql")):
        mounts = dict(volume.split(":", 1) for volume in services[name]["volumes"])
        volume = {path: source for source, path in mounts.items()}[target]
        assert volume in compose["volumes"], f"{name}: {volume} is not a named volume"
    assert services["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"


# --- addresses, ports and variables -------------------------------------------------

def test_published_ports_use_the_env_example_variables(services):
    example = env_example()
    for name, variable in PORT_VARIABLES.items():
        [port] = services[name]["ports"]
        match = re.fullmatch(r"127\.0\.0\.1:\$\{(\w+):-(\d+)\}:(\d+)", port)
        assert match, f"{name}: publish as 127.0.0.1:${{{variable}:-N}}:N, got {port!r}"
        assert match.group(1) == variable
        assert variable in example, f"{variable} is not documented in .env.example"
        assert match.group(2) == example[variable], f"{variable} default differs from .env.example"


def test_kafka_advertises_the_published_port_and_the_container_listener(services):
    env = services["kafka"]["environment"]
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised["HOST"] == "127.0.0.1:${KAFKA_PORT:-9092}"
    ksqldb = services["ksqldb-server"]["environment"]
    assert advertised["INTERNAL"] == interpolate(ksqldb["KSQL_BOOTSTRAP_SERVERS"], {})
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"


def test_required_variables_are_set_by_env_example():
    required = {m.group("name") for m in INTERPOLATION.finditer(COMPOSE.read_text())
                if m.group("op") in (":?", "?")}
    assert required, "expected MYSQL_PASSWORD to be required"
    missing = required - env_example_set()
    assert not missing, f"`cp .env.example .env && docker compose up` would fail: set {missing}"


def test_every_variable_has_a_default_or_is_documented():
    example = env_example()
    for match in INTERPOLATION.finditer(COMPOSE.read_text()):
        if match.group("op") is None:
            assert match.group("name") in example, f"${{{match.group('name')}}} has no default"


def test_jupyter_reaches_services_by_container_name(services):
    env = services["jupyter"]["environment"]
    assert env["WORKBOOK_STACK"] == "external"
    assert env["WORKBOOK_STREAM_ENGINE"] == "ksqldb"
    ksqldb = services["ksqldb-server"]["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == ksqldb["KSQL_BOOTSTRAP_SERVERS"]
    assert env["KSQLDB_URL"] == "http://ksqldb-server:8088"
    assert "/workbook" in [volume.split(":")[1] for volume in services["jupyter"]["volumes"]]


def test_jupyter_environment_is_accepted_by_the_settings(services):
    example = {"MYSQL_PASSWORD": "s3cret-Pass", "MYSQL_USER": "workbook",
               "MYSQL_DATABASE": "workbook"}
    env = {key: interpolate(value, example)
           for key, value in services["jupyter"]["environment"].items()}
    settings = load_settings(env=env, dotenv=ROOT / "no-such-file")
    assert settings.stack == "external"
    assert settings.bootstrap_servers == "kafka:29092"
    assert settings.ksqldb_url == "http://ksqldb-server:8088"
    assert settings.database_url == "mysql+pymysql://workbook:s3cret-Pass@mysql:3306/workbook"


# --- secrets ------------------------------------------------------------------------

def test_no_secret_literal_in_compose(services):
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if key in SECRET_FLAGS:
                assert value == SECRET_FLAGS[key], f"{name}: {key} must be {SECRET_FLAGS[key]!r}"
            elif SECRET_KEY.search(key):
                match = INTERPOLATION.fullmatch(str(value))
                literal_default = match and match.group("op") in (":-", "-") and match.group("arg")
                assert match and not literal_default, f"{name}: {key} holds a literal"
        url = (service.get("environment") or {}).get("DATABASE_URL")
        if url:
            userinfo = INTERPOLATION.sub("VAR", url).split("://", 1)[1].split("@", 1)[0]
            assert userinfo == "VAR:VAR", f"{name}: DATABASE_URL holds a literal user or password"
    text = COMPOSE.read_text()
    for variable in ("MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD", "MASSIVE_API_KEY"):
        literal = env_example().get(variable)
        assert not literal or literal not in text, f"the example {variable} is pasted into the file"


# --- the GitHub workflow ------------------------------------------------------------

def steps(workflow: dict) -> list[dict]:
    """Every step of every job."""
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def step_index(workflow: dict, fragment: str) -> int:
    """Position of the first step whose `run` contains fragment."""
    for index, step in enumerate(steps(workflow)):
        if fragment in step.get("run", ""):
            return index
    raise AssertionError(f"no step runs {fragment!r}")


def test_workflow_pins_actions_by_major_version(workflow):
    uses = [step["uses"] for step in steps(workflow) if "uses" in step]
    assert {use.split("@")[0] for use in uses} >= {"actions/checkout", "actions/setup-python",
                                                   "actions/upload-artifact"}
    for use in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", use), f"{use} is not pinned by major tag"


def test_workflow_runs_the_notebooks_on_the_docker_stack(workflow):
    order = [step_index(workflow, fragment) for fragment in (
        "cp .env.example .env", "docker compose up -d --wait",
        "make test-notebooks WORKBOOK_STACK=docker")]
    assert order == sorted(order)
    python = [s for s in steps(workflow) if s.get("uses", "").startswith("actions/setup-python")]
    assert python[0]["with"]["python-version"] == "3.11"


def test_workflow_cleans_up_and_reports(workflow):
    all_steps = steps(workflow)
    assert all_steps[step_index(workflow, "docker compose down -v")].get("if") == "always()"
    assert all_steps[step_index(workflow, "docker compose logs")].get("if") == "failure()"
    upload = [s for s in all_steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload[0]["with"]["path"].rstrip("/") == "build"


# --- three brokers: the `cluster` profile (workbook up --brokers 3) -----------------------

CLUSTER = ["kafka-1", "kafka-2", "kafka-3"]
LAB_BROKERS = ["lab-kafka-1", "lab-kafka-2", "lab-kafka-3"]


def test_cluster_nodes_are_the_same_kafka_with_health_and_volume(compose, services):
    for name in CLUSTER:
        node = services[name]
        assert node["profiles"] == ["cluster"]
        assert node["image"] == services["kafka"]["image"]
        assert "kafka-broker-api-versions.sh" in " ".join(node["healthcheck"]["test"])
        assert f"--bootstrap-server {name}:29092" in " ".join(node["healthcheck"]["test"])
        [volume] = node["volumes"]
        source, target = volume.split(":")
        assert target == node["environment"]["KAFKA_LOG_DIRS"] and source in compose["volumes"]
    assert len({services[n]["volumes"][0] for n in CLUSTER}) == 3, "each node needs its own data"


def test_cluster_is_a_quorum_of_three_combined_nodes(services):
    envs = [services[name]["environment"] for name in CLUSTER]
    assert [env["KAFKA_NODE_ID"] for env in envs] == [1, 2, 3]
    assert {env["KAFKA_PROCESS_ROLES"] for env in envs} == {"broker,controller"}
    assert {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs} == \
        {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert len({env["CLUSTER_ID"] for env in envs}) == 1
    assert envs[0]["CLUSTER_ID"] != services["kafka"]["environment"]["CLUSTER_ID"]
    for env in envs:
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 2


def test_cluster_ports_follow_the_settings(services):
    """Node i is published on KAFKA_PORT + 2(i-1), as Settings.kafka_node_ports says."""
    settings = load_settings(env={"WORKBOOK_STACK": "docker", "WORKBOOK_BROKERS": "3", "KAFKA_PORT": "19092",
                                  "KAFKA_CONTROLLER_PORT": "19093"}, dotenv=ROOT / "no-such-file")
    from helpers.infra.compose import compose_cluster_env

    env = {**compose_cluster_env(settings)}
    for name, (port, _) in zip(CLUSTER, settings.kafka_node_ports):
        [published] = services[name]["ports"]
        assert interpolate(published, env) == f"127.0.0.1:{port}:9092"
        advertised = dict(item.split("://") for item in
                          services[name]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(","))
        assert interpolate(advertised["HOST"], env) == f"127.0.0.1:{port}"
        assert advertised["INTERNAL"] in env["KSQLDB_KAFKA"].split(",")
    defaults = load_settings(env={"WORKBOOK_STACK": "docker", "WORKBOOK_BROKERS": "3"},
                             dotenv=ROOT / "no-such-file").kafka_node_ports
    for name, (port, _) in zip(CLUSTER, defaults):     # without the workbook: the same defaults
        assert interpolate(services[name]["ports"][0], {}) == f"127.0.0.1:{port}:9092"


def test_ksqldb_follows_the_broker_count(services):
    ksqldb = services["ksqldb-server"]["environment"]["KSQL_BOOTSTRAP_SERVERS"]
    assert interpolate(ksqldb, {}) == "kafka:29092"
    settings = load_settings(env={"WORKBOOK_STACK": "docker", "WORKBOOK_BROKERS": "3"},
                             dotenv=ROOT / "no-such-file")
    from helpers.infra.compose import compose_cluster_env

    assert interpolate(ksqldb, compose_cluster_env(settings)) == "kafka-1:29092,kafka-2:29092,kafka-3:29092"


@pytest.mark.parametrize("service", CLUSTER + ["lab-controller"] + LAB_BROKERS)
def test_three_node_heaps_fit_their_memory_limit(services, service):
    heap = heap_max_mib(services[service]["environment"]["KAFKA_HEAP_OPTS"])
    assert heap <= mem_mib(services[service]["mem_limit"]) * 0.75


def test_docker_up_switches_between_one_and_three_brokers(monkeypatch):
    """The commands `workbook up` runs with Docker (no engine here: they are recorded, not run)."""
    import helpers.infra.stack as stack

    calls = []
    monkeypatch.setattr(stack, "compose", lambda *args, env=None: calls.append((args, env)))
    one = load_settings(env={"WORKBOOK_STACK": "docker"}, dotenv=ROOT / "no-such-file")
    stack.docker_up(one)
    assert [args for args, _ in calls] == [("--profile", "cluster", "stop", *CLUSTER), ("up", "-d", "--wait")]
    calls.clear()
    three = load_settings(env={"WORKBOOK_STACK": "docker", "WORKBOOK_BROKERS": "3"},
                          dotenv=ROOT / "no-such-file")
    stack.docker_up(three)
    assert [args for args, _ in calls] == [
        ("stop", "kafka"),
        ("--profile", "cluster", "up", "-d", "--wait", *CLUSTER, "mysql"),
        ("up", "-d", "--wait", "--no-deps", "ksqldb-server")]
    assert {env["KSQLDB_KAFKA"] for _, env in calls} == {"kafka-1:29092,kafka-2:29092,kafka-3:29092"}


# --- notebook 10's cluster: the `faults` profile -----------------------------------------

def test_lab_cluster_has_three_brokers_and_a_controller_of_their_own(services):
    from helpers.infra.lab import BROKER_IDS, CONTROLLER_ID, ComposeLab

    assert set(ComposeLab.SERVICES) == {"lab-controller", *LAB_BROKERS}
    controller = services["lab-controller"]["environment"]
    assert controller["KAFKA_PROCESS_ROLES"] == "controller"
    assert controller["KAFKA_NODE_ID"] == CONTROLLER_ID
    assert "kafka-metadata-quorum.sh" in " ".join(services["lab-controller"]["healthcheck"]["test"])
    for broker_id, name in zip(BROKER_IDS, LAB_BROKERS):
        node = services[name]
        env = node["environment"]
        assert node["profiles"] == ["faults"] and node["image"] == services["kafka"]["image"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker" and env["KAFKA_NODE_ID"] == broker_id
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{CONTROLLER_ID}@lab-controller:9093"
        assert node["depends_on"]["lab-controller"]["condition"] == "service_healthy"
        assert f"--bootstrap-server {name}:29092" in " ".join(node["healthcheck"]["test"])
        assert node["volumes"] == ["/var/lib/kafka/data"], "anonymous: `rm -v` deletes it"
        [published] = node["ports"]
        port = interpolate(published, {f"LAB_KAFKA_PORT_{broker_id}": "40000"})
        assert port == "127.0.0.1:40000:9092"
        assert f"HOST://127.0.0.1:${{LAB_KAFKA_PORT_{broker_id}:-" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_lab_cluster_declares_brokers_dead_as_fast_as_the_local_lab(services):
    from helpers.infra.lab import LAB_PROPERTIES

    for name in ["lab-controller", *LAB_BROKERS]:
        env = services[name]["environment"]
        for key, value in LAB_PROPERTIES.items():
            assert str(env["KAFKA_" + key.upper().replace(".", "_")]) == value, (name, key)


def test_the_docker_connect_worker_keeps_its_state_where_the_local_one_does(services, tmp_path):
    from helpers.core.settings import settings_from
    from helpers.infra.connect import worker_properties

    local = dict(line.split("=", 1) for line in worker_properties(
        settings_from({"WORKBOOK_STACK": "local"}, lambda: False), tmp_path).splitlines() if line)
    env = services["connect"]["environment"]
    assert env["GROUP_ID"] == local["group.id"]
    for kind in ("config", "offset", "status"):
        assert env[f"{kind.upper()}_STORAGE_TOPIC"] == local[f"{kind}.storage.topic"]
    assert env["CONNECT_CONFIG_PROVIDERS_ENV_CLASS"] == local["config.providers.env.class"]
    assert env["CONNECT_VALUE_CONVERTER_SCHEMAS_ENABLE"] == local["value.converter.schemas.enable"]
    assert "mysql-data:/var/lib/mysql" in services["mysql"]["volumes"]
    assert any(v.startswith("./docker/mysql/initdb:") for v in services["mysql"]["volumes"])
    grants = (ROOT / "docker" / "mysql" / "initdb" / "10-cdc-grants.sh").read_text()
    assert "REPLICATION SLAVE" in grants and "${MYSQL_USER}" in grants
