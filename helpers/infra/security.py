"""A broker that takes logins over TLS and checks ACLs: the class server's Kafka (plumbing).

`BrokerSecurity` turns a LocalKafka node into a SASL_SSL broker: one listener
for clients and for its own inter-broker traffic, TLS with a certificate
signed by a CA made with openssl (`ensure_certificates`), SCRAM logins, the
controller on 127.0.0.1 with SASL/PLAIN (SCRAM credentials live in the
metadata the controller itself serves), and KRaft's StandardAuthorizer with
`admin` the only super user. Who the students are and what they may do is
the class server's business (helpers.classroom.classserver).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from helpers.core.settings import mask_secrets
from helpers.infra.files import write_private
from helpers.infra.prereqs import say
from helpers.infra.processes import run_command

ADMIN = "admin"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
CLIENT_MECHANISM = "SCRAM-SHA-512"             # what the students' .env files name
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
CA_DAYS, CERT_DAYS = 3650, 825
OPENSSL_TIMEOUT_S = 60


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
        passwords = [self.admin_password, self.controller_password, *(p for _, p in self.users)]
        return mask_secrets(text, passwords)


def openssl(*args: str, cwd: Path) -> None:
    """Run openssl quietly; raise a StackError with its last words when it fails."""
    run_command(["openssl", *args], cwd=cwd, timeout=OPENSSL_TIMEOUT_S, what=f"openssl {args[0]}")


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
    write_private(tls_dir / "broker.pem", pem)
    for private in ("ca.key", "broker.key", "broker.pem"):
        (tls_dir / private).chmod(0o600)
    stamp.write_text(names)


