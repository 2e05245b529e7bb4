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
  on that database alone.
Each student's settings go to `<state>/class/students/<student>.env`, beside
`ca.pem`: the two files an instructor hands out. Passwords are generated once
and kept in `<state>/class/secrets.json` (readable by its owner only).
"""
from __future__ import annotations

import ipaddress
import json
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import KafkaSecurity, Settings, check_namespace
from ..errors import ConfigError, KafkaOperationError, StackError
from ..waiting import wait_until
from .kafka import KafkaNode, LocalKafka, resolve_jars
from .mariadb import LocalMariaDB
from .prereqs import ensure_programs, say
from .processes import log_tail, port_answers, running_process
from .status import wait_kafka_ready

ADMIN = "admin"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
CLIENT_MECHANISM = "SCRAM-SHA-512"             # what the students' .env files name
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
CA_DAYS, CERT_DAYS = 3650, 825


def new_password() -> str:
    """A random password of 24 URL-safe characters."""
    return secrets.token_urlsafe(18)


def mysql_name(student: str) -> str:
    """A student's MySQL user name: their namespace with - turned into _."""
    return student.replace("-", "_")


@dataclass(frozen=True)
class BrokerSecurity:
    """What makes a LocalKafka node a class server: TLS files, SASL logins, the authorizer."""

    tls_dir: Path
    admin_password: str = field(repr=False)
    controller_password: str = field(repr=False)
    host: str = "127.0.0.1"                    # the name clients use (advertised, in the certificate)
    bind: str = "127.0.0.1"                    # 0.0.0.0 to serve other machines
    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)   # SCRAM users made at format time

    @property
    def ca(self) -> Path:
        """The CA certificate (PEM) that clients trust."""
        return self.tls_dir / "ca.pem"

    @property
    def keystore(self) -> Path:
        """The broker's private key and certificate chain in one PEM file."""
        return self.tls_dir / "broker.pem"

    def listener_lines(self, port: int, controller_port: int) -> list[str]:
        """SASL_SSL for clients and brokers, SASL_PLAINTEXT for the controller on 127.0.0.1."""
        return [
            f"listeners=SASL_SSL://{self.bind}:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=SASL_SSL://{self.host}:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        ]

    def properties(self) -> list[str]:
        """Logins, TLS files and the authorizer (server.properties is written readable by its owner only)."""
        admin, controller = self.admin_password, self.controller_password
        return [
            f"sasl.enabled.mechanisms={','.join(SCRAM_MECHANISMS)}",
            f"sasl.mechanism.inter.broker.protocol={CLIENT_MECHANISM}",
            *(f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config={SCRAM_MODULE} required "
              f'username="{ADMIN}" password="{admin}";' for mechanism in SCRAM_MECHANISMS),
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={PLAIN_MODULE} required "
            f'username="{ADMIN}" password="{controller}" user_{ADMIN}="{controller}";',
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca}",
            f"authorizer.class.name={AUTHORIZER}",
            f"super.users=User:{ADMIN}",
            "allow.everyone.if.no.acl.found=false",
        ]

    def format_args(self) -> list[str]:
        """`kafka-storage format` options that create the admin's and the students' SCRAM logins."""
        args = []
        for name, password in ((ADMIN, self.admin_password), *self.users):
            for mechanism in SCRAM_MECHANISMS:
                args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        return args

    def scrub(self, text: str) -> str:
        """`text` with every password of this server replaced by ***."""
        for secret in (self.admin_password, self.controller_password, *(p for _, p in self.users)):
            text = text.replace(secret, "***")
        return text


def openssl(*args: str, cwd: Path) -> None:
    """Run openssl quietly; raise a StackError with its last words when it fails."""
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {result.stderr.strip()[-300:]}")


def subject_names(hosts: list[str]) -> str:
    """The certificate's subjectAltName: IP: for addresses, DNS: for names."""
    names = []
    for host in dict.fromkeys(hosts):
        try:
            ipaddress.ip_address(host)
            names.append(f"IP:{host}")
        except ValueError:
            names.append(f"DNS:{host}")
    return ",".join(names)


def ensure_certificates(tls_dir: Path, hosts: list[str]) -> None:
    """A CA (first start only) and a broker certificate for `hosts` signed by it (again if hosts change)."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    tls_dir.chmod(0o700)
    if not (tls_dir / "ca.pem").is_file():
        say("Creating the class server's certificate authority (first time only)...")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                "-days", str(CA_DAYS), "-subj", "/CN=Kafka workbook class CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=tls_dir)
    names = subject_names(["127.0.0.1", "localhost", *hosts])
    stamp = tls_dir / "broker.names"
    if (tls_dir / "broker.pem").is_file() and stamp.is_file() and stamp.read_text() == names:
        return
    (tls_dir / "broker.ext").write_text(f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n"
                                        "keyUsage=critical,digitalSignature,keyEncipherment\n")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
            "-subj", f"/CN={hosts[0] if hosts else '127.0.0.1'}", cwd=tls_dir)
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "broker.crt", "-days", str(CERT_DAYS), "-extfile", "broker.ext", cwd=tls_dir)
    pem = (tls_dir / "broker.key").read_text() + (tls_dir / "broker.crt").read_text()
    (tls_dir / "broker.pem").write_text(pem)
    for private in ("ca.key", "broker.key", "broker.pem"):
        (tls_dir / private).chmod(0o600)
    stamp.write_text(names)


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

    @classmethod
    def for_settings(cls, settings: Settings, host: str = "127.0.0.1") -> ClassServer:
        """The class server on the settings' ports, under <state>/class/, reached by clients as `host`."""
        if not re.fullmatch(r"[A-Za-z0-9.\-]{1,253}", host):
            raise ConfigError(f"--host must be a host name or an IP address, got {host!r}.")
        return cls(settings, host)

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
        self.root.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(data, indent=1))
        return data

    def kafka(self, secret: dict | None = None) -> LocalKafka:
        """The class server's Kafka node, with logins, TLS and ACLs."""
        secret = secret or self.passwords()
        users = tuple((name, p["kafka"]) for name, p in sorted(secret["students"].items()))
        security = BrokerSecurity(self.root / "tls", secret["admin"], secret["controller"], self.host,
                                  self.bind, users)
        node = KafkaNode(1, self.settings.kafka_port, self.settings.kafka_controller_port,
                         self.root / "kafka" / "node-1")
        return LocalKafka(self.settings.state_dir / "libs" / "kafka", (node,), security=security)

    def mariadb(self) -> LocalMariaDB:
        """The class server's MariaDB."""
        return LocalMariaDB(self.root / "mariadb", self.settings.mysql_port, bind=self.bind)

    def admin_settings(self, secret: dict | None = None) -> Settings:
        """Settings that log in to the class server's Kafka as its super user."""
        secret = secret or self.passwords()
        login = KafkaSecurity("SASL_SSL", CLIENT_MECHANISM, ADMIN, secret["admin"],
                              str(self.root / "tls" / "ca.pem"))
        return replace(self.settings, stack="local", namespace="", kafka_security=login,
                       bootstrap_servers=f"127.0.0.1:{self.settings.kafka_port}")

    def student_settings(self, student: Student) -> Settings:
        """The settings a student gets from their .env file (what `load_settings` reads)."""
        from ..config import load_settings

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
            "DATABASE_URL": f"mysql+pymysql://{mysql}@{self.host}:{self.settings.mysql_port}/{student.database}",
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
        mariadb = self.mariadb()
        mariadb.start()
        hosts = ("localhost", "127.0.0.1") + (("%",) if self.bind != "127.0.0.1" else ())
        for student in students:
            mine = replace(self.settings, mysql_user=mysql_name(student.name), explicit_database_url="",
                           mysql_password=student.mysql_password, mysql_database=student.database)
            mariadb.ensure_database_user(mine, hosts)
        self.write_env_files(students)
        return students

    def write_env_files(self, students: list[Student]) -> None:
        """Each student's .env (readable by its owner only) and the CA certificate, in students/."""
        self.students_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / "tls" / "ca.pem", self.students_dir / "ca.pem")
        for student in students:
            lines = [f"# {student.name}'s settings for the Kafka workbook on the class server.",
                     "# Private: it holds your passwords. Save it as .env in your copy of the workbook;",
                     "# save ca.pem beside it and write KAFKA_SSL_CA_LOCATION=ca.pem if the path below",
                     "# is not on your machine.",
                     *(f"{k}={v}" for k, v in self.student_env(student).items() if k != "WORKBOOK_STATE_DIR")]
            student.env_file.touch(mode=0o600)
            student.env_file.write_text("\n".join(lines) + "\n")

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
    """ALLOW ALL on the topics, groups and transactional ids starting with '<student>.'."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return [AclBinding(kind, f"{student}.", ResourcePatternType.PREFIXED, f"User:{student}", "*",
                       AclOperation.ALL, AclPermissionType.ALLOW)
            for kind in (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID)]


def grant_students(admin_settings: Settings, students: list[Student]) -> None:
    """Create (or refresh) each student's SCRAM logins and prefixed ACLs, as the super user."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    from ..clients import make_admin

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
