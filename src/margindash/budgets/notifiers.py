"""How alerts leave the building: e-mail over SMTP (standard library) and Slack-style webhooks.

Each channel is a `Notifier`: `send` either returns (delivered) or raises `DeliveryFailed`,
saying whether a retry could help. Retries, backoff and bookkeeping live in `alerts.py`.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol

import httpx

from margindash import __version__
from margindash.config import Settings

EMAIL, WEBHOOK = "email", "webhook"
_SMTPS_PORT = 465


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """What an alert says: a subject line, a plain-text body and its figures."""

    kind: str
    severity: str
    subject: str
    body: str
    details: dict[str, Any] = field(default_factory=dict)


class DeliveryFailed(Exception):
    """A delivery attempt failed; `retryable` says whether trying again later may work."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Notifier(Protocol):
    """One delivery channel."""

    channel: str

    def send(self, message: AlertMessage, *, target: str) -> None:
        """Deliver `message` to `target` (addresses or a URL) or raise DeliveryFailed."""
        ...


class EmailNotifier:
    """Sends alerts through an SMTP relay: STARTTLS, implicit TLS on port 465, optional login."""

    channel = EMAIL

    def __init__(
        self,
        *,
        host: str | None,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        timeout: float = 10.0,
    ):
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailNotifier:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.alert_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            timeout=settings.alert_timeout_seconds,
        )

    def send(self, message: AlertMessage, *, target: str) -> None:
        if not self.host:
            raise DeliveryFailed("SMTP_HOST is not set")
        host = self.host
        recipients = [address.strip() for address in target.split(",") if address.strip()]
        try:
            with self._connect(host) as smtp:
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(self._email(message, recipients))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryFailed(
                f"recipients refused: {exc.recipients}", retryable=min(codes) < 500
            ) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            raise DeliveryFailed(
                f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}", retryable=exc.smtp_code < 500
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None

    def _connect(self, host: str) -> smtplib.SMTP:
        if self.port == _SMTPS_PORT:
            return smtplib.SMTP_SSL(
                host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        smtp = smtplib.SMTP(host, self.port, timeout=self.timeout)
        if self.starttls:
            try:
                smtp.starttls(context=ssl.create_default_context())
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _email(self, message: AlertMessage, recipients: list[str]) -> EmailMessage:
        email = EmailMessage()
        email["Subject"] = message.subject
        email["From"] = self.sender
        email["To"] = ", ".join(recipients)
        email["Date"] = format_datetime(datetime.now(UTC))
        email["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        email["X-Margindash-Alert"] = f"{message.kind}; severity={message.severity}"
        email.set_content(message.body)
        return email


class WebhookNotifier:
    """POSTs Slack-compatible JSON (`text`) with the alert's figures under `alert`."""

    channel = WEBHOOK

    def __init__(self, *, timeout: float = 10.0):
        self.timeout = timeout

    def send(self, message: AlertMessage, *, target: str) -> None:
        payload = {
            "text": f"{message.subject}\n{message.body}",
            "alert": {"kind": message.kind, "severity": message.severity, **message.details},
        }
        try:
            # A client per alert: alerts are rare, and nothing is left open between them.
            response = httpx.post(
                target,
                json=payload,
                timeout=self.timeout,
                headers={"User-Agent": f"margindash/{__version__}"},
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        if response.is_success:
            return
        status = response.status_code
        retryable = status in (408, 429) or status >= 500
        raise DeliveryFailed(
            f"HTTP {status}: {response.text[:200]}",
            retryable=retryable,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )


def notifiers_from(settings: Settings) -> dict[str, Notifier]:
    """The channels configured by the settings, by name."""
    return {
        EMAIL: EmailNotifier.from_settings(settings),
        WEBHOOK: WebhookNotifier(timeout=settings.alert_timeout_seconds),
    }


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the normal backoff is close enough


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
