"""The alerts' two outside systems: an SMTP server (e-mail) and a Mattermost/Slack-compatible
incoming webhook (`{"text": …}` JSON). The one place that talks to them; raises NotifyError."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import requests

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
    try:
        response = requests.post(settings.webhook_url, json={"text": text}, timeout=settings.timeout_s)
    except requests.RequestException as exc:
        raise NotifyError(f"webhook: {type(exc).__name__}") from exc  # the URL holds the hook's secret
    if response.status_code >= 300:
        raise NotifyError(f"webhook answered HTTP {response.status_code}")
