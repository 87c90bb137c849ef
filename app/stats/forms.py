"""The notification opt-in form."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField


class NotifyForm(FlaskForm):
    email = BooleanField("E-mail me my alerts (to the address of my account)")
    webhook = BooleanField("Post my alerts to the team's chat channel (webhook)")
