"""Configuration: environment over .env, clear errors, secrets never shown."""
from pathlib import Path

import pytest

from helpers.core.errors import ConfigError
from helpers.core.settings import mask_url
from helpers.infra.environment import load_settings, read_dotenv

BASE = {"WORKBOOK_STACK": "local", "MYSQL_PASSWORD": "s3cret!pw"}


def settings(tmp_path: Path, env=None, dotenv=""):
    path = tmp_path / ".env"
    path.write_text(dotenv)
    return load_settings({**BASE, **(env or {})}, dotenv=path)


def test_defaults_are_localhost(tmp_path):
    s = settings(tmp_path)
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.ksqldb_url == "http://127.0.0.1:8088"
    assert s.database_url == "mysql+pymysql://workbook:s3cret%21pw@127.0.0.1:3306/workbook"


def test_environment_wins_over_dotenv(tmp_path):
    s = settings(tmp_path, {"KAFKA_PORT": "19092"}, "KAFKA_PORT=29092\nMYSQL_PORT=13306\n")
    assert s.kafka_port == 19092
    assert s.mysql_port == 13306
    assert s.bootstrap_servers == "127.0.0.1:19092"


def test_dotenv_parsing_quotes_comments_export(tmp_path):
    path = tmp_path / ".env"
    path.write_text("# comment\n\nexport A=1\nB='two words'\nC=\"x=y\"\n")
    assert read_dotenv(path) == {"A": "1", "B": "two words", "C": "x=y"}


def test_a_comment_after_a_value_is_not_part_of_it(tmp_path):
    """.env.example's own lines, uncommented as a student would: the value ends before the comment."""
    path = tmp_path / ".env"
    path.write_text("KAFKA_SECURITY_PROTOCOL=SASL_SSL          # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL\n"
                    "KAFKA_SASL_MECHANISM=SCRAM-SHA-512        # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512\n"
                    "KAFKA_SASL_PASSWORD='p#ss word'   # quoted: the # is part of it\n"
                    "MYSQL_PASSWORD=a#b\n")
    values = read_dotenv(path)
    assert values["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert values["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert values["KAFKA_SASL_PASSWORD"] == "p#ss word" and values["MYSQL_PASSWORD"] == "a#b"
    s = load_settings({"WORKBOOK_STACK": "local", "KAFKA_SASL_USERNAME": "alice"}, dotenv=path)
    assert (s.kafka_security.protocol, s.kafka_security.mechanism) == ("SASL_SSL", "SCRAM-SHA-512")


def test_the_example_dotenv_parses_with_every_line_uncommented(tmp_path):
    """Every `# KEY=value   # why` line of .env.example, uncommented, is a valid setting."""
    example = Path(__file__).resolve().parents[2] / ".env.example"
    lines = [line[2:] if line.startswith("# ") and "=" in line.split()[1] else line
             for line in example.read_text().splitlines() if line.strip()]
    path = tmp_path / ".env"
    path.write_text("\n".join(lines) + "\n")
    values = read_dotenv(path)
    assert values["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and "#" not in values["KAFKA_SASL_MECHANISM"]


def test_loading_settings_changes_no_global_and_asks_docker_only_when_the_stack_is_unset(tmp_path,
                                                                                          monkeypatch):
    from helpers.core import settings as core_settings
    from helpers.core.errors import WorkbookError

    asked = []
    monkeypatch.setattr("helpers.infra.environment.docker_engine_answers", lambda: asked.append(1) or False)
    before = dict(vars(WorkbookError))
    load_settings({"WORKBOOK_STACK": "local", "WORKBOOK_DEBUG": "1"}, dotenv=tmp_path / "none")
    assert asked == [] and dict(vars(WorkbookError)) == before
    assert load_settings({}, dotenv=tmp_path / "none").stack == "local" and asked == [1]
    assert core_settings.settings_from({"WORKBOOK_STACK": ""}, lambda: True).stack == "docker"


def test_malformed_dotenv_line_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match="line 2"):
        settings(tmp_path, dotenv="A=1\nthis is not a setting\n")


@pytest.mark.parametrize("raw", ["abc", "0", "70000", "-1", ""])
def test_bad_port_names_the_variable(tmp_path, raw):
    with pytest.raises(ConfigError, match="KAFKA_PORT must be a port number"):
        settings(tmp_path, {"KAFKA_PORT": raw})


def test_unknown_stack_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="WORKBOOK_STACK must be one of"):
        settings(tmp_path, {"WORKBOOK_STACK": "kubernetes"})


def test_external_stack_needs_endpoints(tmp_path):
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS"):
        settings(tmp_path, {"WORKBOOK_STACK": "external"})
    s = settings(tmp_path, {"WORKBOOK_STACK": "external", "KAFKA_BOOTSTRAP_SERVERS": "k:1",
                            "DATABASE_URL": "mysql+pymysql://u:p@db:3306/x"})
    assert (s.bootstrap_servers, s.database_url) == ("k:1", "mysql+pymysql://u:p@db:3306/x")


def test_missing_password_says_how_to_fix(tmp_path):
    s = load_settings({"WORKBOOK_STACK": "local"}, dotenv=tmp_path / "absent")
    with pytest.raises(ConfigError, match="cp .env.example .env"):
        _ = s.database_url


def test_secrets_never_in_repr_or_masked_url(tmp_path):
    s = settings(tmp_path, {"MASSIVE_API_KEY": "KEY123456"})
    assert "s3cret" not in repr(s) and "KEY123456" not in repr(s)
    assert s.masked_database_url == "mysql+pymysql://workbook:***@127.0.0.1:3306/workbook"
    assert s.massive_api_key == "KEY123456"


def test_polygon_key_is_accepted(tmp_path):
    assert settings(tmp_path, {"POLYGON_API_KEY": "PK"}).massive_api_key == "PK"


def test_mask_url_keeps_urls_without_password():
    assert mask_url("http://host:8088") == "http://host:8088"
    assert mask_url("mysql+pymysql://u:p@h/db") == "mysql+pymysql://u:***@h/db"


@pytest.mark.parametrize("stack, env, dotenv, engine", [
    ("local", {}, "", "flink"),
    ("docker", {}, "", "ksqldb"),
    ("external", {}, "", "flink"),
    ("external", {"KSQLDB_URL": "http://k:8088"}, "", "ksqldb"),
    ("local", {}, "WORKBOOK_STREAM_ENGINE=ksqldb\n", "ksqldb"),          # from .env too
    ("docker", {"WORKBOOK_STREAM_ENGINE": "FLINK"}, "WORKBOOK_STREAM_ENGINE=ksqldb\n", "flink"),
])
def test_stream_engine_is_a_setting(tmp_path, stack, env, dotenv, engine):
    external = {"KAFKA_BOOTSTRAP_SERVERS": "k:1", "DATABASE_URL": "mysql+pymysql://u:p@d/x"}
    s = settings(tmp_path, {"WORKBOOK_STACK": stack, **external, **env}, dotenv)
    assert s.stream_engine == engine


def test_unknown_engine_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="WORKBOOK_STREAM_ENGINE must be one of ksqldb, flink"):
        settings(tmp_path, {"WORKBOOK_STREAM_ENGINE": "spark"})


def test_namespace_prefixes_topics_groups_and_the_database(tmp_path):
    s = settings(tmp_path, {"WORKBOOK_STUDENT": "alice"})
    assert s.topics.pricelist == "alice.pricelist" and s.topics.dead_letter == "alice.pricelist.dlq"
    assert s.group("router") == "alice.workbook-router"
    assert s.mysql_database == "workbook_alice"
    laptop = settings(tmp_path)
    assert laptop.topics.all == ("pricelist", "alerts", "variations", "buy", "pricelist.dlq")
    assert laptop.group("router") == "workbook-router" and laptop.mysql_database == "workbook"
    with pytest.raises(ConfigError, match="WORKBOOK_STUDENT must be"):
        settings(tmp_path, {"WORKBOOK_STUDENT": "Alice Smith"})


def test_only_the_environment_module_reads_the_environment():
    """infra/environment.py reads the variables; besides it only WORKBOOK_HOME (where the project
    lives, core/settings.py) and WORKBOOK_DEBUG (read when an error is shown, core/errors.py)."""
    import ast
    from pathlib import Path

    import helpers

    allowed = {("settings.py", "WORKBOOK_HOME"), ("errors.py", "WORKBOOK_DEBUG")}
    offenders, excused = [], []
    for path in Path(helpers.__file__).parent.rglob("*.py"):
        if path.name == "environment.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") \
                    and getattr(node.value, "id", "") == "os":
                offenders.append((path.name, node.lineno))
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
                name = getattr(node.args[0], "value", None) if node.args else None
                if (path.name, name) in allowed:
                    excused.append((path.name, node.lineno))
    assert sorted(set(offenders) - set(excused)) == []
    assert len(excused) == len(allowed)


def test_smtp_settings_come_from_the_environment_and_the_password_is_never_shown(tmp_path):
    from helpers.infra.smtp import SmtpServer

    s = settings(tmp_path, {"SMTP_HOST": "smtp.example.org", "SMTP_PORT": "465", "SMTP_USER": "me",
                            "SMTP_PASSWORD": "smtp-s3cret", "SMTP_TO": "you@example.org"})
    assert (s.smtp_host, s.smtp_port, s.smtp_user, s.smtp_to) == ("smtp.example.org", 465, "me",
                                                                  "you@example.org")
    assert s.smtp_from == "workbook@localhost" and s.smtp_password == "smtp-s3cret"
    server = SmtpServer(s.smtp_host, s.smtp_port, s.smtp_user, s.smtp_password)
    for shown in (repr(s), repr(server), str(server)):
        assert "smtp-s3cret" not in shown
    assert "password ***" in str(server)
    with pytest.raises(ConfigError, match="SMTP_PORT"):
        settings(tmp_path, {"SMTP_PORT": "smtp"})
    assert settings(tmp_path, {}).smtp_host == ""               # no server: notebook 09 uses a sink


# --- the number of Kafka brokers (WORKBOOK_BROKERS, `workbook up --brokers`) -------------

def test_one_broker_by_default(tmp_path):
    s = settings(tmp_path)
    assert s.brokers == 1 and s.kafka_node_ports == [(9092, 9093)]


def test_three_brokers_list_every_node(tmp_path):
    s = settings(tmp_path, dotenv="WORKBOOK_BROKERS=3\nKAFKA_PORT=19092\nKAFKA_CONTROLLER_PORT=19093\n")
    assert s.brokers == 3
    assert s.kafka_node_ports == [(19092, 19093), (19094, 19095), (19096, 19097)]
    assert s.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"


@pytest.mark.parametrize("raw", ["2", "0", "5", "three", "", " "])
def test_other_broker_counts_are_refused(tmp_path, raw):
    with pytest.raises(ConfigError, match=r"WORKBOOK_BROKERS must be 1 or 3"):
        settings(tmp_path, {"WORKBOOK_BROKERS": raw})


def test_colliding_node_ports_are_refused_with_the_rule(tmp_path):
    with pytest.raises(ConfigError, match="differ by an odd number"):
        settings(tmp_path, {"WORKBOOK_BROKERS": "3", "KAFKA_PORT": "9092", "KAFKA_CONTROLLER_PORT": "9094"})
    with pytest.raises(ConfigError, match="below 65536"):
        settings(tmp_path, {"WORKBOOK_BROKERS": "3", "KAFKA_PORT": "65532", "KAFKA_CONTROLLER_PORT": "65533"})
    assert settings(tmp_path, {"KAFKA_PORT": "9092", "KAFKA_CONTROLLER_PORT": "9094"}).brokers == 1


def test_external_bootstrap_wins_over_the_broker_count(tmp_path):
    s = settings(tmp_path, {"WORKBOOK_BROKERS": "3", "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092"})
    assert s.bootstrap_servers == "k1:9092,k2:9092"


def test_save_setting_replaces_in_place_or_appends(tmp_path):
    from helpers.infra.environment import save_setting

    path = tmp_path / ".env"
    path.write_text("# ports\nKAFKA_PORT=19092\nWORKBOOK_BROKERS=1\nMYSQL_PORT=13306\n")
    save_setting("WORKBOOK_BROKERS", "3", path)
    assert path.read_text() == "# ports\nKAFKA_PORT=19092\nWORKBOOK_BROKERS=3\nMYSQL_PORT=13306\n"
    save_setting("WORKBOOK_STUDENT", "alice", path)
    assert path.read_text().endswith("MYSQL_PORT=13306\nWORKBOOK_STUDENT=alice\n")
    assert read_dotenv(path)["WORKBOOK_BROKERS"] == "3"


def test_set_brokers_records_the_choice_for_every_later_command(tmp_path, monkeypatch):
    from helpers.infra.environment import set_brokers

    path = tmp_path / ".env"
    path.write_text("WORKBOOK_STACK=local\nMYSQL_PASSWORD=x\n")
    monkeypatch.delenv("WORKBOOK_BROKERS", raising=False)
    assert set_brokers(3, path).brokers == 3
    assert load_settings({}, dotenv=path).brokers == 3        # status, down, the notebooks
    monkeypatch.setenv("WORKBOOK_BROKERS", "1")
    with pytest.raises(ConfigError, match="set in the environment, which wins"):
        set_brokers(3, path)
    with pytest.raises(ConfigError, match="1 or 3"):
        set_brokers(2, path)


def test_cli_accepts_only_one_or_three_brokers(capsys):
    from helpers.cli import build_parser

    assert build_parser().parse_args(["up", "--brokers", "3"]).brokers == 3
    assert build_parser().parse_args(["up"]).brokers is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--brokers", "2"])
    assert "invalid choice: 2" in capsys.readouterr().err
