"""The class hub's and the shared Flink cluster's rules, without starting them: the settings, the job
names an orphan is recognised by, Flink's and JupyterHub's configuration, who may enter a folder."""
import json
import os
from pathlib import Path

import pytest
from traitlets.config import Config

from helpers.classroom.hub import unix_name
from helpers.classroom.hubconfig import RosterAuthenticator, StudentSpawner, configure
from helpers.core.errors import ConfigError
from helpers.core.settings import check_flink_cluster
from helpers.infra.environment import dotenv_path, load_settings
from helpers.infra.files import readable_by_all
from helpers.infra.flinkcluster import MB_PER_SLOT, TASKMANAGER_BASE_MB, FlinkCluster
from helpers.pipeline.flinksql import FlinkTarget


@pytest.mark.parametrize("raw", ["", "127.0.0.1:8081", "flink.dept.example.edu:443"])
def test_flink_cluster_is_empty_or_host_and_port(raw):
    assert check_flink_cluster(raw) == raw


@pytest.mark.parametrize("raw", ["8081", "http://127.0.0.1:8081", "host:port", "a b:1"])
def test_a_flink_cluster_that_is_not_host_and_port_is_refused_in_one_sentence(raw):
    with pytest.raises(ConfigError, match=r"^FLINK_CLUSTER must be host:port .*\.$"):
        check_flink_cluster(raw)


def test_settings_read_the_cluster_and_its_gateway_and_default_to_local_flink(tmp_path):
    local = load_settings({}, tmp_path / "none.env")
    assert (local.flink_cluster, local.flink_gateway) == ("", "")
    shared = load_settings({"FLINK_CLUSTER": "127.0.0.1:8003", "FLINK_GATEWAY": "127.0.0.1:8004"},
                           tmp_path / "none.env")
    assert (shared.flink_cluster, shared.flink_gateway) == ("127.0.0.1:8003", "127.0.0.1:8004")


@pytest.mark.parametrize("given", [{"FLINK_CLUSTER": "127.0.0.1:8003"}, {"FLINK_GATEWAY": "127.0.0.1:8004"}])
def test_a_cluster_without_its_gateway_or_a_gateway_alone_is_refused_in_one_sentence(tmp_path, given):
    with pytest.raises(ConfigError, match=r"^FLINK_CLUSTER and FLINK_GATEWAY go together: [^\n]*\.$"):
        load_settings(given, tmp_path / "none.env")


def test_a_gateway_that_is_not_host_and_port_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"^FLINK_GATEWAY must be host:port of a Flink SQL Gateway"):
        load_settings({"FLINK_CLUSTER": "127.0.0.1:8003", "FLINK_GATEWAY": "8004"}, tmp_path / "none.env")


def test_workbook_dotenv_names_the_env_file_a_hub_server_reads(tmp_path, monkeypatch):
    own = tmp_path / ".env"
    own.write_text("WORKBOOK_STUDENT=ann\n")
    monkeypatch.setenv("WORKBOOK_DOTENV", str(own))
    monkeypatch.delenv("WORKBOOK_STUDENT", raising=False)
    assert dotenv_path() == own
    assert load_settings().namespace == "ann"


def test_a_job_is_named_after_its_owner_and_its_session():
    name = FlinkTarget("127.0.0.1:8003", "ann").job_name("buy join")
    assert name == f"ann: buy join (pid {os.getpid()})"
    assert FlinkTarget().job_name("sql").startswith("workbook: sql (pid ")


def test_local_flink_has_no_orphans_to_look_for():
    assert FlinkTarget("", "ann").cancel_orphans() == []


def test_the_taskmanager_grows_with_the_slots_and_everything_stays_on_127_0_0_1(tmp_path):
    cluster = FlinkCluster(tmp_path, 18081, slots=32)
    assert cluster.taskmanager_mb == TASKMANAGER_BASE_MB + 32 * MB_PER_SLOT
    config = json.loads(cluster.config(rpc_port=16123))           # JSON is YAML: Flink reads it
    assert config["taskmanager"]["numberOfTaskSlots"] == 32
    assert config["taskmanager"]["memory"]["process"]["size"] == f"{cluster.taskmanager_mb}m"
    assert config["rest"]["port"] == 18081 and config["jobmanager"]["rpc"]["port"] == 16123
    hosts = [config["rest"]["bind-address"], config["jobmanager"]["bind-host"],
             config["taskmanager"]["bind-host"]]
    assert set(hosts) == {"127.0.0.1"}
    assert cluster.address == "127.0.0.1:18081"
    assert config["restart-strategy"]["type"] == "fixed-delay"      # a job failing as it starts, retried
    assert cluster.roles == ("jobmanager", "taskmanager") and cluster.gateway_address == ""


def test_a_cluster_with_a_gateway_runs_it_on_127_0_0_1_and_tells_the_students_both_addresses(tmp_path):
    cluster = FlinkCluster(tmp_path, 18081, slots=4, gateway_port=18082, gateway_jar=tmp_path / "g.jar")
    config = json.loads(cluster.config(rpc_port=16123))
    endpoint = config["sql-gateway"]["endpoint"]["rest"]
    assert (endpoint["bind-address"], endpoint["port"]) == ("127.0.0.1", 18082)
    assert config["execution"]["target"] == "remote"     # the gateway submits to this cluster
    assert cluster.roles[-1] == "sql-gateway"
    assert cluster.session_env == {"FLINK_CLUSTER": "127.0.0.1:18081", "FLINK_GATEWAY": "127.0.0.1:18082"}


def test_a_folder_is_readable_by_all_only_when_every_folder_above_may_be_entered(tmp_path):
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    for folder in [inner, *inner.parents]:
        if folder.is_relative_to(tmp_path):
            os.chmod(folder, 0o755)
    open_above = all(os.stat(f).st_mode & 0o001 for f in tmp_path.parents)
    assert readable_by_all(inner) == open_above
    os.chmod(tmp_path / "a", 0o700)
    assert not readable_by_all(inner)
    assert not readable_by_all(tmp_path / "missing")


def test_each_student_runs_as_a_unix_account_of_their_own():
    assert unix_name("jose-munoz") == "wb-jose-munoz"


def test_the_hub_takes_only_the_roster_makes_admin_the_instructor_and_runs_servers_as_students(tmp_path):
    (tmp_path / "hub.json").write_text(json.dumps({
        "students": ["ann", "ben"], "bind": "127.0.0.1", "port": 8000, "proxy": "/x/chp",
        "python": "/srv/py/bin/python", "jupyter_prefix": "/srv/venv", "root": str(tmp_path)}))
    c = Config()
    configure(c, tmp_path)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert (c.JupyterHub.hub_port, c.ConfigurableHTTPProxy.api_url) == (8001, "http://127.0.0.1:8002")
    assert c.Authenticator.allowed_users == {"ann", "ben"} and c.Authenticator.admin_users == {"admin"}
    assert c.JupyterHub.authenticator_class is RosterAuthenticator
    assert c.NativeAuthenticator.enable_signup is False
    assert c.JupyterHub.spawner_class is StudentSpawner
    assert c.Spawner.cmd == ["/srv/py/bin/python", "-m", "jupyterhub.singleuser"]
    assert c.Spawner.environment["PATH"].startswith("/srv/py/bin:")
    assert c.Spawner.environment["JUPYTER_DATA_PATH"] == str(Path("/srv/venv/share/jupyter"))
    assert c.RosterAuthenticator.accounts_file == str(tmp_path / "accounts.json")
