"""E-mail for each buy signal: a consumer of `buy` with a side effect (09_next_steps).

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
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from confluent_kafka import TopicPartition

from helpers.core.errors import DeliveryError, InputError
from helpers.core.schemas import BUY, decode, utc_day
from helpers.core.settings import Settings
from helpers.infra.clients import batches_to_end, make_consumer
from helpers.infra.smtp import LocalSmtpSink, SmtpServer

DISCLAIMER = ("A teaching workbook's paper signal on historical prices (2000-2013), "
              "not investment advice.")


def smtp_server(settings: Settings) -> SmtpServer:
    """The SMTP server of the settings, or (without SMTP_HOST) a local sink, started."""
    if settings.smtp_host:
        return SmtpServer(settings.smtp_host, settings.smtp_port, settings.smtp_user,
                          settings.smtp_password, settings.smtp_from, settings.smtp_to)
    sink = LocalSmtpSink().start()
    return SmtpServer("127.0.0.1", sink.port, sender=settings.smtp_from, recipient=settings.smtp_to,
                      sink=sink)


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
    report = MailReport()
    smtp = server.connect()
    try:
        consumer = make_consumer(group or settings.group("mailer"), settings)
    except BaseException:
        smtp.close()
        raise
    consumer.subscribe([topic])
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
        smtp.close()                  # a no-op after quit(); the socket's end when quit() failed
    return report
