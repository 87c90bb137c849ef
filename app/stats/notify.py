"""The alerts' two outside systems: an SMTP server (e-mail) and a Mattermost/Slack-compatible
incoming webhook (`{"text": …}` JSON). The one place that talks to them; raises NotifyError."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage

from app.config import NotifySettings


class NotifyError(Exception):
    """The server or the webhook did not take the message (the reason, without the webhook's URL)."""


def send_email(settings: NotifySettings, to: str, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.mail_from, to, subject
    message.set_content(body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise NotifyError(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {exc}") from exc


def post_webhook(settings: NotifySettings, text: str) -> None:
    # The standard library's client: the design keeps `requests` to the PanDA, IAM and requests-service
    # clients, and one JSON POST needs no session or retries.
    if not settings.webhook_url.startswith(("https://", "http://")):
        raise NotifyError("webhook: the URL must be http:// or https://")
    request = urllib.request.Request(
        settings.webhook_url, data=json.dumps({"text": text}).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout_s) as response:  # noqa: S310 (configured URL)
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:  # URLError is an OSError; ValueError: a malformed URL
        raise NotifyError(f"webhook: {type(exc).__name__}") from exc  # the URL holds the hook's secret
    if status >= 300:
        raise NotifyError(f"webhook answered HTTP {status}")
