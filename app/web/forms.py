"""The base of the pages' GET filter bars."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict

from app.inputs import MAX_ID, too_long


def strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class FilterForm(FlaskForm):
    """A GET filter bar over the query string: no CSRF (it changes nothing), every field optional.
    A bad value is reported (`messages`) and ignored (`value`), and stays in the bar as typed (`typed`).
    Text longer than a search needs and numbers beyond the database's integers are bad values too."""

    class Meta:
        csrf = False

    def __init__(self, args: MultiDict[str, str]) -> None:
        super().__init__(formdata=args)
        self._args = args
        self.validate()
        for field in self:
            problem = too_long(args.get(field.name))
            if problem is None and isinstance(field.data, int) and abs(field.data) > MAX_ID:
                problem = "number too large"
            if problem:
                field.errors = [*field.errors, problem]

    def value(self, name: str) -> Any:
        """The field's parsed value, or None when it is empty or wrong."""
        field = self[name]
        return None if field.errors or field.data in ("", None) else field.data

    def messages(self) -> list[str]:
        """One line per wrong field: its label and what it expects (its description)."""
        return [f"{field.label.text}: {field.description or field.errors[0]}" for field in self if field.errors]

    def typed(self) -> dict[str, str]:
        """What the user typed, field by field (for the bar and the page links)."""
        return {field.name: (self._args.get(field.name) or "").strip() for field in self}
