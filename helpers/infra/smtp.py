"""SMTP: a server to send through, or a local sink that keeps what it receives (09_next_steps).

`SmtpServer.connect()` opens a logged-in connection (TLS when offered) and
closes its socket on every failure; the password is never shown. Without an
SMTP server of its own a class uses `LocalSmtpSink` (aiosmtpd on 127.0.0.1),
whose `.messages` a notebook can show.
"""
from __future__ import annotations

import email
import email.policy
import smtplib
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage

from helpers.core.errors import ServiceUnavailable
from helpers.core.settings import MASK
from helpers.infra.processes import free_port


class LocalSmtpSink:
    """An SMTP server on 127.0.0.1 that accepts every message and keeps it (`.messages`)."""

    def __init__(self, port: int | None = None):
        from aiosmtpd.controller import Controller

        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self.port = port or free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope) -> str:
        """aiosmtpd's hook: keep the message, answer 250."""
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted"

    def start(self) -> LocalSmtpSink:
        """Listen (in a thread of this process) until stop()."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    def __enter__(self) -> LocalSmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalSmtpSink(127.0.0.1:{self.port}, {len(self.messages)} messages received)"


@dataclass
class SmtpServer:
    """Where e-mails go: the configured server, or a local sink. The password is never shown."""

    host: str
    port: int
    user: str = ""
    password: str = field(default="", repr=False)
    sender: str = "workbook@localhost"
    recipient: str = "student@localhost"
    sink: LocalSmtpSink | None = field(default=None, repr=False)

    def __str__(self) -> str:
        login = f" as {self.user} (password {MASK if self.password else 'none'})" if self.user else ""
        kind = "a local sink" if self.sink else "the SMTP server of .env"
        return f"{kind} at {self.host}:{self.port}{login}, from {self.sender} to {self.recipient}"

    def connect(self, timeout: float = 30) -> smtplib.SMTP:
        """An open, logged-in SMTP connection (TLS when the server offers it); its socket is closed
        on every failure on the way."""
        smtp: smtplib.SMTP | None = None
        try:
            if self.port == 465:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
        except (OSError, smtplib.SMTPException) as exc:
            if smtp is not None:
                smtp.close()
            raise ServiceUnavailable(f"No SMTP server answers at {self.host}:{self.port} "
                                     f"({type(exc).__name__}): check SMTP_HOST and SMTP_PORT in .env, "
                                     "or leave SMTP_HOST empty to use a local sink.",
                                     service="smtp") from None
        if self.user:
            try:
                smtp.login(self.user, self.password)
            except (OSError, smtplib.SMTPException) as exc:   # the exception names no password
                smtp.close()
                raise ServiceUnavailable(f"The SMTP server at {self.host}:{self.port} refused the login "
                                         f"of {self.user} ({type(exc).__name__}): check SMTP_USER and "
                                         "SMTP_PASSWORD in .env.", service="smtp") from None
        return smtp
