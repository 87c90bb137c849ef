"""Forms of the requests pages: an admin's path-catalog entry."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import InputRequired, Length, Optional


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class CatalogEntryForm(FlaskForm):
    kind = SelectField(
        "Kind",
        choices={"container": "Container image", "exec": "Execution files"},
        validators=[InputRequired()],
    )
    path = StringField(
        "Path", filters=[_strip], validators=[InputRequired("enter a path"), Length(max=1024)],
        description="e.g. /cvmfs/spd.jinr.ru/images/spdroot-4.1.8.sif",
    )  # fmt: skip
    note = StringField("Note", filters=[_strip], validators=[Optional(), Length(max=255)])

    def apply_errors(self, errors: dict[str, list[str]]) -> None:
        """Attach a service's refusals to their fields."""
        for name, messages in errors.items():
            field = getattr(self, name)
            field.errors = [*field.errors, *messages]
