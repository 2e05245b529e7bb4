"""E-mail for each buy signal: a consumer of `buy` with a side effect (08_next_steps).

The mailer is notebook 04's loop with an e-mail instead of a produce: it reads
`buy` in a group of its own, sends one message per signal through SMTP, and
commits a signal's offset only once its e-mail is accepted by the server. A
crash between the two sends that e-mail again on restart (at-least-once).

The SMTP server comes from the settings (`SMTP_HOST`, `SMTP_PORT`, `SMTP_USER`,
`SMTP_PASSWORD`, `SMTP_FROM`, `SMTP_TO` in `.env`); the password is never
shown. Without `SMTP_HOST`, `LocalSmtpSink` (aiosmtpd) listens on 127.0.0.1
and keeps what it receives, so the notebook can show the messages.
"""
from __future__ import annotations

import contextlib
import email
import email.policy
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pandas as pd
from confluent_kafka import TopicPartition

from .clients import batches_to_end, make_consumer
from .config import Settings, load_settings
from .errors import DeliveryError, InputError, ServiceUnavailable
from .schemas import BUY, decode

DISCLAIMER = ("A teaching workbook's paper signal on historical prices (2000-2013), "
              "not investment advice.")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        login = f" as {self.user} (password {'***' if self.password else 'none'})" if self.user else ""
        kind = "a local sink" if self.sink else "the SMTP server of .env"
        return f"{kind} at {self.host}:{self.port}{login}, from {self.sender} to {self.recipient}"

    def connect(self, timeout: float = 30) -> smtplib.SMTP:
        """An open, logged-in SMTP connection (TLS when the server offers it)."""
        try:
            if self.port == 465:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
        except (OSError, smtplib.SMTPException) as exc:
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


def smtp_server(settings: Settings | None = None) -> SmtpServer:
    """The SMTP server of the settings, or (without SMTP_HOST) a local sink, started."""
    settings = settings or load_settings()
    if settings.smtp_host:
        return SmtpServer(settings.smtp_host, settings.smtp_port, settings.smtp_user,
                          settings.smtp_password, settings.smtp_from, settings.smtp_to)
    sink = LocalSmtpSink().start()
    return SmtpServer("127.0.0.1", sink.port, sender=settings.smtp_from, recipient=settings.smtp_to,
                      sink=sink)


def utc_day(ts: int) -> str:
    """'2009-10-20': the UTC day of an epoch-millisecond time."""
    return pd.Timestamp(int(ts), unit="ms", tz="UTC").strftime("%Y-%m-%d")


def signal_email(signal: dict[str, Any], server: SmtpServer) -> EmailMessage:
    """The e-mail of one buy signal: what, when, why, and that it is a paper signal."""
    message = EmailMessage()
    message["From"], message["To"] = server.sender, server.recipient
    message["Subject"] = (f"Buy signal: {signal['ticker']} at ${signal['close']:,.2f} "
                          f"on {utc_day(signal['alert_ts'])}")
    message.set_content("\n".join([
        f"{signal['ticker']} closed at ${signal['close']:,.2f} on {utc_day(signal['alert_ts'])} (UTC),",
        f"above the alert price, and moved {signal['variation_ex']:.1%} within the bar of "
        f"{utc_day(signal['variation_ts'])} (close/open {signal['variation_in']:+.1%}).",
        "", DISCLAIMER]))
    return message


@dataclass
class MailReport:
    """What one run of the mailer did."""

    read: int = 0
    sent: int = 0
    subjects: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.read:,} signals read, {self.sent:,} e-mails sent"


def email_signals(settings: Settings, server: SmtpServer, *, group: str | None = None,
                  limit: int | None = None) -> MailReport:
    """Send one e-mail per `buy` signal the group has not handled yet, until caught up (or `limit`).

    Each signal's offset is committed once its e-mail is accepted: a re-run of
    the same group sends only what is new.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InputError(f"limit must be a whole number of e-mails or None, got {limit!r}.")
    topic = settings.topics.buy
    consumer = make_consumer(group or settings.group("mailer"), settings)
    consumer.subscribe([topic])
    report = MailReport()
    smtp = server.connect()
    try:
        for batch in batches_to_end(consumer):
            sent_now: dict[int, int] = {}
            for msg in batch[:None if limit is None else limit - report.sent]:
                report.read += 1
                message = signal_email(decode(BUY, msg.value()), server)
                try:
                    smtp.send_message(message)
                except smtplib.SMTPException as exc:
                    raise DeliveryError(f"The SMTP server refused the e-mail of a {topic} signal "
                                        f"({type(exc).__name__}); its offset was not committed.") from None
                report.sent += 1
                report.subjects.append(str(message["Subject"]))
                sent_now[msg.partition()] = msg.offset() + 1
            if sent_now:
                consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in sent_now.items()],
                                asynchronous=False)
            if limit is not None and report.sent >= limit:
                break
    finally:
        consumer.close()
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
    return report
