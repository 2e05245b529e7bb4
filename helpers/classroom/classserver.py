"""A whole class on one server: Kafka with logins and ACLs, MariaDB with a database per student.

`workbook class up --students alice,bob` starts, under `<state>/class/`, on the
ports of KAFKA_PORT, KAFKA_CONTROLLER_PORT and MYSQL_PORT:
- Kafka with one SASL_SSL listener for clients and for its own inter-broker
  traffic: TLS with a certificate signed by a CA made with openssl on first
  start, logins with SCRAM-SHA-256 or SCRAM-SHA-512 (the admin and the first
  students are written into the storage when it is formatted, later students
  are added through the AdminClient);
- the controller listener on 127.0.0.1 only, with SASL/PLAIN: SCRAM
  credentials live in the metadata the controller itself serves, so it cannot
  check them. No port takes a connection without a password, so another
  account on a department machine gains nothing by connecting locally;
- KRaft's StandardAuthorizer, `admin` the only super user; each student may
  do anything with the topics, consumer groups and transactional ids whose
  name starts with `<student>.` (prefixed ACLs), and nothing else;
- MariaDB with a database `workbook_<student>` and a user `<student>` allowed
  on that database alone, over TLS only (the same CA and certificate);
- limits no runaway loop can pass (helpers/infra/limits.py): byte-rate quotas,
  a cap on partitions and on what each partition keeps, and a MariaDB
  connection limit per student.
Each student's settings go to `<state>/class/students/<student>.env`, beside
`ca.pem`: the two files an instructor hands out. Passwords are generated once
and kept in `<state>/class/secrets.json` (readable by its owner only).
"""
from __future__ import annotations

import json
import re
import secrets
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from helpers.core.errors import ConfigError, KafkaOperationError, StackError
from helpers.core.settings import KafkaSecurity, Settings, check_namespace
from helpers.core.waiting import wait_until
from helpers.infra.files import write_private
from helpers.infra.kafka import KafkaNode, LocalKafka, resolve_jars
from helpers.infra.kafka_tools import java_login
from helpers.infra.limits import ClassLimits, build_policy, set_quotas
from helpers.infra.mariadb import LocalMariaDB
from helpers.infra.prereqs import ensure_programs, say
from helpers.infra.processes import log_tail, port_answers, running_process
from helpers.infra.security import (
    ADMIN,
    CLIENT_MECHANISM,
    SCRAM_MECHANISMS,
    BrokerSecurity,
    ensure_certificates,
)
from helpers.infra.status import wait_kafka_ready


def new_password() -> str:
    """A random password of 24 URL-safe characters."""
    return secrets.token_urlsafe(18)


def mysql_name(student: str) -> str:
    """A student's MySQL user name: their namespace with - turned into _."""
    return student.replace("-", "_")


@dataclass(frozen=True)
class Student:
    """One student's logins on the class server and the file that hands them out."""

    name: str
    kafka_password: str = field(repr=False)
    mysql_password: str = field(repr=False)
    env_file: Path

    @property
    def database(self) -> str:
        """Their own database."""
        return f"workbook_{mysql_name(self.name)}"


@dataclass(frozen=True)
class ClassServer:
    """The class server of one state folder: `ClassServer.for_settings(settings).up(['alice', 'bob'])`."""

    settings: Settings
    host: str = "127.0.0.1"
    limits: ClassLimits = ClassLimits()

    @classmethod
    def for_settings(cls, settings: Settings, host: str = "127.0.0.1",
                     limits: ClassLimits | None = None) -> ClassServer:
        """The class server on the settings' ports, under <state>/class/, reached by clients as `host`."""
        if not re.fullmatch(r"[A-Za-z0-9.\-]{1,253}", host):
            raise ConfigError(f"--host must be a host name or an IP address, got {host!r}.")
        return cls(settings, host, limits or ClassLimits())

    @property
    def root(self) -> Path:
        """Where the class server keeps everything."""
        return self.settings.state_dir / "class"

    @property
    def students_dir(self) -> Path:
        """The files to hand out: one .env per student, and ca.pem."""
        return self.root / "students"

    @property
    def bind(self) -> str:
        """127.0.0.1 when the clients run on this machine, else every interface."""
        return "127.0.0.1" if self.host in ("127.0.0.1", "localhost") else "0.0.0.0"

    def passwords(self, students: list[str] | None = None) -> dict:
        """The passwords (made on first use, kept in secrets.json readable by its owner only)."""
        path = self.root / "secrets.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        data.setdefault("admin", new_password())
        data.setdefault("controller", new_password())
        known = data.setdefault("students", {})
        for name in students or []:
            known.setdefault(name, {"kafka": new_password(), "mysql": new_password()})
        if not path.is_file() or json.loads(path.read_text()) != data:   # written only when it changes
            write_private(path, json.dumps(data, indent=1))
        return data

    def kafka(self, secret: dict | None = None) -> LocalKafka:
        """The class server's Kafka node, with logins, TLS and ACLs."""
        secret = secret or self.passwords()
        users = tuple((name, p["kafka"]) for name, p in sorted(secret["students"].items()))
        security = BrokerSecurity(self.root / "tls", secret["admin"], secret["controller"], self.host,
                                  self.bind, users)
        node = KafkaNode(1, self.settings.kafka_port, self.settings.kafka_controller_port,
                         self.root / "kafka" / "node-1")
        policy_admin = {   # the policy's own Admin client counts partitions as the instructor
            "bootstrap.servers": f"127.0.0.1:{self.settings.kafka_port}",
            **java_login(self.admin_settings(secret).kafka_security)}
        return LocalKafka(self.settings.state_dir / "libs" / "kafka", (node,),
                          extra=tuple(self.limits.broker_properties(policy_admin).items()), security=security,
                          classpath=(self.settings.state_dir / "libs" / "class-server",))

    def mariadb(self) -> LocalMariaDB:
        """The class server's MariaDB."""
        return LocalMariaDB(self.root / "mariadb", self.settings.mysql_port, bind=self.bind,
                            tls=self.root / "tls")

    def admin_settings(self, secret: dict | None = None) -> Settings:
        """Settings that log in to the class server's Kafka as its super user."""
        secret = secret or self.passwords()
        login = KafkaSecurity("SASL_SSL", CLIENT_MECHANISM, ADMIN, secret["admin"],
                              str(self.root / "tls" / "ca.pem"))
        return replace(self.settings, stack="local", namespace="", kafka_security=login,
                       bootstrap_servers=f"127.0.0.1:{self.settings.kafka_port}")

    def student_settings(self, student: Student) -> Settings:
        """The settings a student gets from their .env file (what `load_settings` reads)."""
        from helpers.infra.environment import load_settings

        return load_settings(env=self.student_env(student), dotenv=self.root / "no.env")

    def student_env(self, student: Student) -> dict[str, str]:
        """The variables of a student's .env file."""
        mysql = f"{mysql_name(student.name)}:{student.mysql_password}"
        return {
            "WORKBOOK_STACK": "external",
            "WORKBOOK_STUDENT": student.name,
            "WORKBOOK_STATE_DIR": str(self.settings.state_dir),
            "KAFKA_BOOTSTRAP_SERVERS": f"{self.host}:{self.settings.kafka_port}",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": CLIENT_MECHANISM,
            "KAFKA_SASL_USERNAME": student.name,
            "KAFKA_SASL_PASSWORD": student.kafka_password,
            "KAFKA_SSL_CA_LOCATION": str(self.students_dir / "ca.pem"),
            "DATABASE_URL": f"mysql+pymysql://{mysql}@{self.host}:{self.settings.mysql_port}/{student.database}"
                            f"?ssl_ca={self.students_dir / 'ca.pem'}",
        }

    def students(self, names: list[str] | None = None) -> list[Student]:
        """The students known to this server (or only `names`), with their passwords."""
        known = self.passwords()["students"]
        return [Student(n, known[n]["kafka"], known[n]["mysql"], self.students_dir / f"{n}.env")
                for n in sorted(known) if names is None or n in names]

    def up(self, names: list[str]) -> list[Student]:
        """Start the class server (idempotent) and give each of `names` their logins, rights and .env file."""
        for name in names:
            if not name or check_namespace(name) != name or name == ADMIN:
                raise ConfigError(f"A student's name must be a lower-case name of letters, digits, _ or - "
                                  f"(not {ADMIN!r}), got {name!r}.")
        ensure_programs(("java", "mvn", "mariadbd", "openssl"))
        resolve_jars(self.settings)
        build_policy(self.settings)
        secret = self.passwords(names)
        ensure_certificates(self.root / "tls", [self.host])
        kafka = self.kafka(secret)
        if kafka.start():
            say(f"Started the class server's Kafka (SASL_SSL) on {self.host}:{self.settings.kafka_port}...")
        admin_settings = self.admin_settings(secret)
        wait_started(kafka)
        wait_kafka_ready(admin_settings)
        students = self.students(names)
        grant_students(admin_settings, students)
        set_quotas(admin_settings, self.limits, ADMIN)
        mariadb = self.mariadb()
        mariadb.start()
        hosts = ("localhost", "127.0.0.1") + (("%",) if self.bind != "127.0.0.1" else ())
        for student in students:
            mine = replace(self.settings, mysql_user=mysql_name(student.name), explicit_database_url="",
                           mysql_password=student.mysql_password, mysql_database=student.database)
            mariadb.ensure_database_user(mine, hosts, max_connections=self.limits.mysql_connections)
        self.write_env_files(students)
        return students

    def write_env_files(self, students: list[Student]) -> None:
        """Each student's .env (readable by its owner only) and the CA certificate, in students/."""
        self.students_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / "tls" / "ca.pem", self.students_dir / "ca.pem")
        for student in students:
            lines = [f"# {student.name}'s settings for the Kafka workbook on the class server.",
                     "# Private: it holds your passwords. Save it as .env in your copy of the workbook;",
                     "# save ca.pem beside it and, if the path below is not on your machine, write",
                     "# KAFKA_SSL_CA_LOCATION=ca.pem and end DATABASE_URL with ?ssl_ca=ca.pem.",
                     *(f"{k}={v}" for k, v in self.student_env(student).items() if k != "WORKBOOK_STATE_DIR")]
            write_private(student.env_file, "\n".join(lines) + "\n")

    def down(self) -> list[str]:
        """Stop the class server's Kafka and MariaDB; return what was stopped."""
        stopped = []
        if self.kafka().stop():
            stopped.append("kafka (class server)")
        if self.mariadb().stop():
            stopped.append("mariadb (class server)")
        return stopped


def wait_started(kafka: LocalKafka, timeout: float = 90) -> None:
    """Wait until every node listens; a node that dies meanwhile is reported at once with its error."""
    def listening() -> bool:
        for node in kafka.nodes:
            if not running_process(node.pid_file):
                errors = [line for line in log_tail(node.log, 200).splitlines() if "ERROR" in line]
                raise StackError(f"The class server's Kafka stopped while starting: "
                                 f"{(errors or ['see ' + str(node.log)])[-1]}")
        return all(port_answers(node.port) for node in kafka.nodes)

    wait_until(listening, timeout, "the class server's Kafka to listen", interval=0.5)


def student_acls(student: str) -> list:
    """ALLOW ALL on the topics, groups and transactional ids starting with '<student>.', but DENY ALTER
    on the topics: adding partitions to a topic would pass the partition cap (Kafka calls no policy
    for it), and the course never does."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    allowed = [AclBinding(kind, f"{student}.", ResourcePatternType.PREFIXED, f"User:{student}", "*",
                          AclOperation.ALL, AclPermissionType.ALLOW)
               for kind in (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID)]
    return [*allowed, AclBinding(ResourceType.TOPIC, f"{student}.", ResourcePatternType.PREFIXED,
                                 f"User:{student}", "*", AclOperation.ALTER, AclPermissionType.DENY)]


def grant_students(admin_settings: Settings, students: list[Student]) -> None:
    """Create (or refresh) each student's SCRAM logins and prefixed ACLs, as the super user."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    from helpers.infra.clients import make_admin

    if not students:
        return
    admin = make_admin(admin_settings)
    try:
        for mechanism in SCRAM_MECHANISMS:        # a request may alter each user once
            info = ScramCredentialInfo(getattr(ScramMechanism, mechanism.replace("-", "_")), 8192)
            upserts = [UserScramCredentialUpsertion(s.name, info, s.kafka_password.encode())
                       for s in students]
            for future in admin.alter_user_scram_credentials(upserts, request_timeout=30).values():
                future.result()
        for future in admin.create_acls([b for s in students for b in student_acls(s.name)],
                                        request_timeout=30).values():
            future.result()
    except KafkaException as exc:
        raise KafkaOperationError(f"The class server refused to set up the students: {exc.args[0].str()}.") \
            from None
