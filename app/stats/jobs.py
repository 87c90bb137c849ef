"""The alerts job (the scheduler runs it every `[stats] alerts_interval_s`): evaluate the alerts,
then send each new one to the people concerned who opted in, once per person and channel
(`alert_delivery`); a send that fails is tried again at the next run. Commits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from app.auth.models import User
from app.config import get_settings
from app.extensions import db
from app.stats import alerts
from app.stats.models import Alert, AlertDelivery, NotifyPreference
from app.stats.notify import NotifyError, post_webhook, send_email

log = logging.getLogger(__name__)


@dataclass
class AlertReport:
    raised: int = 0
    sent: int = 0
    errors: list[str] = field(default_factory=list)


def run_alerts() -> AlertReport:
    """Evaluate the alerts and deliver the undelivered ones; commits."""
    report = AlertReport(raised=len(alerts.evaluate()))
    db.session.commit()
    settings = get_settings().notify
    channels = [c for c, on in (("email", settings.smtp_host), ("webhook", settings.webhook_url)) if on]
    if not channels:
        return report
    subscribed = db.session.execute(select(User, NotifyPreference).join(NotifyPreference)).all()
    open_alerts = db.session.scalars(select(Alert).where(Alert.cleared_at.is_(None)).order_by(Alert.id)).all()
    for alert in open_alerts:
        done = {
            (d.user_id, d.channel)
            for d in db.session.scalars(select(AlertDelivery).where(AlertDelivery.alert_id == alert.id))
        }
        for user, preference in subscribed:
            if not alerts.recipients(alert, [user]):
                continue
            for channel in channels:
                if (user.id, channel) in done or not getattr(preference, channel):
                    continue
                # The webhook is the team's channel: a team-wide alert is posted there once.
                posted = channel == "webhook" and alert.user_id is None and any(c == channel for _, c in done)
                if posted or _deliver(alert, user, channel, report):
                    db.session.add(AlertDelivery(alert_id=alert.id, user_id=user.id, channel=channel))
                    db.session.commit()
                    done.add((user.id, channel))
    return report


def _text(alert: Alert) -> str:
    base = get_settings().server.base_url.rstrip("/")
    link = f" {base}{alert.url}" if base and alert.url else ""
    return f"[prodpanel] {alert.message}{link}"


def _deliver(alert: Alert, user: User, channel: str, report: AlertReport) -> bool:
    settings = get_settings().notify
    try:
        if channel == "email":
            if not user.email:
                return False
            send_email(settings, user.email, f"[prodpanel] {alert.kind}: {alert.message[:120]}", _text(alert))
        else:
            mention = f"@{user.username} " if alert.user_id is not None else ""
            post_webhook(settings, mention + _text(alert))
    except NotifyError as exc:
        report.errors.append(str(exc))
        log.warning("alert %s to %s by %s not sent: %s", alert.id, user.username, channel, exc)
        return False
    report.sent += 1
    return True
