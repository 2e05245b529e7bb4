"""Kafka's own command-line tools in one command shape on every stack: `workbook kafka-topics ...`.

    workbook kafka-topics --describe --topic pricelist
    workbook kafka-consumer-groups --describe --group workbook-router
    !workbook kafka-console-consumer --topic {topics.pricelist} --from-beginning --max-messages 3

Every argument after the tool's name goes to the tool unchanged; the workbook
adds only `--bootstrap-server` (unless given) and, on a cluster that takes
logins, `--command-config` with a private properties file that is deleted
when the tool ends (the password is never on a command line). On the local
stack (and an external one) the tools' Java classes run from the jars
`workbook up` downloaded, logging nothing but warnings and errors, one line
each, on stderr; on the Docker stack they run in the broker's container.
The rules (which class, which arguments, which files) are pure functions;
`run_kafka_tool` does the I/O.
"""
from __future__ import annotations

import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from helpers.core.errors import InputError, StackError
from helpers.core.settings import PROJECT_ROOT, KafkaSecurity, Settings
from helpers.infra.compose import CLUSTER_BOOTSTRAP, compose_cluster_env
from helpers.infra.environment import child_env
from helpers.infra.files import write_private
from helpers.infra.processes import run_command
from helpers.infra.security import PLAIN_MODULE, SCRAM_MODULE

__all__ = ["KAFKA_TOOLS", "client_properties", "kafka_tool_command", "kafka_tool_output", "run_kafka_tool",
           "tool_files", "uses_workbook_kafka"]

#: each tool's Java class in kafka-tools (Kafka 4.4), in the order a course meets them
TOOL_CLASSES = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-share-groups": "org.apache.kafka.tools.consumer.group.ShareGroupCommand",
    "kafka-features": "org.apache.kafka.tools.FeatureCommand",
}
KAFKA_TOOLS = tuple(TOOL_CLASSES)
TOOL_HEAP = "-Xmx256m"
DOCKER_SERVICE, DOCKER_BOOTSTRAP = "kafka", "kafka:29092"   # the single node, seen from inside Docker
DOCKER_CLUSTER_SERVICE = "kafka-1"                          # `workbook up --brokers 3`
DOCKER_BIN = "/opt/kafka/bin"
LOG4J_FILE, CLIENT_FILE = "log4j2.properties", "client.properties"
BOOTSTRAP_OPTIONS = ("--bootstrap-server", "--bootstrap-controller")
CONFIG_OPTIONS = ("--command-config", "--consumer.config")   # the second: the console consumer's old name
HELP_OPTIONS = ("--help", "-h", "--version")
INTERRUPT_GRACE_S = 10.0      # after Ctrl-C, how long a tool may take to finish (and print its count)

# Warnings and errors on stderr, one line each (an exception as its first line, no stack trace);
# log4j's own status lines only when this file is broken. Two loggers need a word:
# TopicCommand logs a stack trace after printing its one-line error; and the console consumer
# advertises the new group protocol on stderr whenever ClassicKafkaConsumer's INFO is off, so
# that logger is at INFO with its lines filtered to WARN.
TOOLS_LOG4J = "\n".join([
    "status=error",
    "rootLogger.level=WARN",
    "rootLogger.appenderRef.stderr.ref=stderr",
    "appender.stderr.type=Console",
    "appender.stderr.name=stderr",
    "appender.stderr.target=SYSTEM_ERR",
    "appender.stderr.layout.type=PatternLayout",
    "appender.stderr.layout.alwaysWriteExceptions=false",
    "appender.stderr.layout.pattern=%p %m%n%ex{1}",
    "logger.topics.name=org.apache.kafka.tools.TopicCommand",
    "logger.topics.level=OFF",
    "logger.classic.name=org.apache.kafka.clients.consumer.internals.ClassicKafkaConsumer",
    "logger.classic.level=INFO",
    "logger.classic.additivity=false",
    "logger.classic.appenderRef.stderr.ref=stderr",
    "logger.classic.appenderRef.stderr.level=WARN",
    "",
])


def check_tool(tool: str) -> str:
    """`tool` when it is one the workbook runs, else an InputError naming them."""
    if tool not in TOOL_CLASSES:
        raise InputError(f"The workbook runs these Kafka tools: {', '.join(KAFKA_TOOLS)}; "
                         f"{tool!r} is not one of them.")
    return tool


def gives_option(args: Sequence[str], names: Sequence[str]) -> bool:
    """True when `args` hold one of the options `names` (also as --name=value)."""
    return any(arg.split("=", 1)[0] in names for arg in args)


def gives_bootstrap(args: Sequence[str]) -> bool:
    """True when the user chose the cluster (--bootstrap-server, --bootstrap-controller, or a prefix the
    tools accept, such as --bootstrap)."""
    return any(arg.split("=", 1)[0].startswith("--bootstrap") for arg in args)


def uses_workbook_kafka(args: Sequence[str]) -> bool:
    """True when the tool will talk to the workbook's Kafka (not when asked for help or another cluster)."""
    return not (gives_option(args, HELP_OPTIONS) or gives_bootstrap(args))


def properties_value(text: str) -> str:
    """`text` as java.util.Properties reads it back from an ISO-8859-1 file (backslash escapes)."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif " " <= char <= "~":
            out.append(char)
        else:       # control and non-ASCII characters as UTF-16 code units
            units = char.encode("utf-16-be")
            out += [f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)]
    value = "".join(out)
    return "\\" + value if value.startswith(" ") else value


def jaas_quote(text: str) -> str:
    """A JAAS option value in double quotes (backslash and quote escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def client_properties(security: KafkaSecurity) -> str:
    """The Java client's properties for logging in and trusting the broker ('' for PLAINTEXT), as a
    properties file."""
    return "".join(f"{key}={properties_value(value)}\n" for key, value in java_login(security).items())


def java_login(security: KafkaSecurity) -> dict[str, str]:
    """The Java client's settings for logging in and trusting the broker ({} for PLAINTEXT)."""
    conf: dict[str, str] = {}
    if security.protocol != "PLAINTEXT":
        conf["security.protocol"] = security.protocol
    if security.sasl:
        module = PLAIN_MODULE if security.mechanism == "PLAIN" else SCRAM_MODULE
        conf["sasl.mechanism"] = security.mechanism
        conf["sasl.jaas.config"] = (f"{module} required username={jaas_quote(security.username)} "
                                    f"password={jaas_quote(security.password)};")
    if security.tls and security.ca_location:
        conf.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": security.ca_location})
    return conf


def tool_files(settings: Settings, tool: str, args: Sequence[str]) -> dict[str, str]:
    """The files a tool's command line names, by file name: its logging, and its login when it needs one."""
    check_tool(tool)
    if settings.stack == "docker":      # the image brings its logging; the broker takes no logins
        return {}
    files = {LOG4J_FILE: TOOLS_LOG4J}
    login = client_properties(settings.kafka_security)
    if login and not gives_option(args, CONFIG_OPTIONS):
        files[CLIENT_FILE] = login
    return files


def kafka_tool_command(settings: Settings, tool: str, args: Sequence[str], folder: Path) -> list[str]:
    """The command line that runs `tool` with `args` on the workbook's Kafka (files from `tool_files`
    in `folder`)."""
    check_tool(tool)
    docker = settings.stack == "docker"
    if gives_bootstrap(args):
        bootstrap = []
    elif docker:
        bootstrap = ["--bootstrap-server", DOCKER_BOOTSTRAP if settings.brokers == 1 else CLUSTER_BOOTSTRAP]
    else:
        bootstrap = ["--bootstrap-server", settings.bootstrap_servers]
    if docker:
        service = DOCKER_SERVICE if settings.brokers == 1 else DOCKER_CLUSTER_SERVICE
        return ["docker", "compose", "exec", "-T", service, f"{DOCKER_BIN}/{tool}.sh", *bootstrap, *args]
    login = ["--command-config", str(folder / CLIENT_FILE)] \
        if CLIENT_FILE in tool_files(settings, tool, args) else []
    libs = settings.state_dir / "libs" / "kafka"
    return ["java", TOOL_HEAP, "-cp", str(libs / "*"), f"-Dlog4j2.configurationFile={folder / LOG4J_FILE}",
            TOOL_CLASSES[tool], *bootstrap, *login, *args]


def check_jars(settings: Settings) -> None:
    """Raise a StackError saying to run `workbook up` when the tools' jars are not downloaded yet."""
    libs = settings.state_dir / "libs" / "kafka"
    if settings.stack != "docker" and not any(libs.glob("kafka-tools-*.jar")):
        raise StackError(f"Kafka's command-line tools are not in {libs} yet: run `workbook up` first.")


@contextmanager
def tool_command(settings: Settings, tool: str, args: Sequence[str]) -> Iterator[list[str]]:
    """`with tool_command(...) as argv:` the command line of `tool`, its files in a private folder
    that is deleted when the block ends."""
    check_tool(tool)
    check_jars(settings)
    with tempfile.TemporaryDirectory(prefix="workbook-kafka-tool-") as tmp:   # 0700, removed at the end
        folder = Path(tmp)
        for name, text in tool_files(settings, tool, args).items():
            write_private(folder / name, text)
        yield kafka_tool_command(settings, tool, args, folder)


def run_kafka_tool(settings: Settings, tool: str, args: Sequence[str]) -> int:
    """Run a Kafka tool on the workbook's Kafka, its output on this terminal; return its exit status."""
    with tool_command(settings, tool, args) as argv:
        if settings.stack == "docker":
            return wait_for(argv, cwd=PROJECT_ROOT, env=child_env(**compose_cluster_env(settings)))
        return wait_for(argv)


def kafka_tool_output(settings: Settings, tool: str, args: Sequence[str], timeout: float = 120) -> str:
    """Run a Kafka tool on the workbook's Kafka (local or external stack) and return its output;
    raise a StackError, its secrets hidden, when it fails."""
    password = settings.kafka_security.password
    with tool_command(settings, tool, args) as argv:
        result = run_command(argv, timeout=timeout, what=tool,
                             scrub=lambda text: text.replace(password, "***") if password else text)
    return result.stdout + result.stderr


def wait_for(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> int:
    """Run `argv` to its end on this terminal; on Ctrl-C give it time to finish, then re-raise."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env)
    except OSError as exc:
        raise StackError(f"`{argv[0]}` could not start ({exc.strerror or exc}): "
                         "run `workbook up`, which installs what the stack needs.") from None
    try:
        return proc.wait()
    except KeyboardInterrupt:        # tell the tool too (a terminal already has): it prints its count
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=INTERRUPT_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
