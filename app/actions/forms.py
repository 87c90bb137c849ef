"""The action form: the comment and every action's parameters (the services parse and check them)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from app.actions.modify import SPLIT_RULES


class ActionForm(FlaskForm):
    """One task action (or a bulk action's parameters): the fields an action does not use stay empty."""

    comment = TextAreaField(
        "Comment", description="why: stored with the command, in the PanDA log and the audit trail"
    )
    soft = BooleanField("Soft: let running jobs end", description="otherwise they are killed")
    memory_mb = StringField("New memory per core, MB", description="empty: unchanged")
    walltime_s = StringField("New walltime per job, s", description="empty: unchanged")
    priority = StringField("New priority", description="0 to 10000")
    increase = StringField("Attempts to add", description="1 to 100")
    site = StringField("Site", description="either a site …")
    cloud = StringField("Cloud", description="… or a cloud")

    def values(self) -> dict[str, Any]:
        return {field.name: field.data for field in self if field.name != "csrf_token"}

    def show_errors(self, errors: dict[str, str]) -> None:
        for name, message in errors.items():
            self[name].errors = [message]


# The fields each action's page shows (besides the comment).
FIELDS: dict[str, tuple[str, ...]] = {
    "finish": ("soft",),
    "retry": ("memory_mb", "walltime_s"),
    "priority": ("priority",),
    "increase_attempts": ("increase",),
    "reassign": ("site", "cloud"),
}


class ModifyForm(FlaskForm):
    """What PanDA can change in a submitted task; a field left as it is, or empty, is not changed."""

    priority = StringField("Priority", description="0 to 10000 (admins)")
    memory_mb = StringField("Memory per core, MB")
    walltime_s = StringField("Walltime per job, s")
    split_rule = SelectField(
        "Split rule",
        choices=[
            SelectChoice("", "—"),
            *(SelectChoice(tag, f"{tag} ({name})") for tag, name in SPLIT_RULES.items()),
        ],
        validate_choice=False,
    )  # the service checks it
    split_value = StringField("Split rule value")
    add_attempts = StringField(
        "Attempts to add", description="1 to 100: more attempts for the inputs not yet done"
    )
    comment = TextAreaField("Comment", description="why: stored with each change")

    def values(self) -> dict[str, Any]:
        return {field.name: field.data for field in self if field.name != "csrf_token"}

    form_errors: list[str]

    def show_errors(self, errors: dict[str, str]) -> None:
        self.form_errors = []
        for name, message in errors.items():
            if name in self:
                self[name].errors = [message]
            else:
                self.form_errors.append(message)
