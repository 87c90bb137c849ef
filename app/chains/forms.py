"""The chain form (the SPD slides' "Create Chain"): processing type, name, ordered steps.

``steps`` is ``FieldList(FormField(StepForm))`` with ``StepForm`` a plain ``wtforms.Form`` (one CSRF
token for the whole form) and no ``max_entries`` (it would drop rows silently: the constraints
refuse too many steps with a message). Rows are added, removed and moved by ``rearranged``, on the
raw form data, so that whatever the user typed (even what does not parse) comes back unchanged;
the same function serves htmx (the steps fragment) and the plain buttons without JavaScript.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, Optional

from app.chains.specs import ChainDefinition, Problem
from app.config import Settings
from app.launches.forms import ScheduleFields
from app.tasks.forms import TaskFields, _strip

_ROW_KEY = re.compile(r"steps-(\d+)-(.+)")


class StepForm(TaskFields, Form):
    """One step: the task form's fields; the comment is the chain's, the parent is derived."""

    comment = None
    parent_task = None
    # Not shown for processing steps (they start at their input's first event).
    initial_offset = IntegerField(
        "Initial offset", default=0, validators=[Optional()],
        description="random seed and first event of task i start at offset + i × total events",
    )  # fmt: skip


class ChainForm(ScheduleFields, FlaskForm):
    idempotency_key = HiddenField()
    cloned_from = HiddenField()
    processing_type = SelectField("Processing type", validators=[InputRequired()])
    name = StringField("Chain name", filters=[_strip], validators=[InputRequired(), Length(max=120)])
    wait_for_parent_done = BooleanField(
        "Submit the next step only when the parent is done",
        description="otherwise each step is submitted as soon as its parent has a PanDA id, "
        "and PanDA keeps it pending until the parent is done",
    )
    comment = TextAreaField("Comment", filters=[_strip], validators=[Optional(), Length(max=2000)])
    # Admin only: containers of different SpdRoot major.minor versions, and why.
    version_override_reason = StringField(
        "Version override reason", filters=[_strip], validators=[Optional(), Length(max=500)]
    )
    steps = FieldList(FormField(StepForm), min_entries=1)

    def configure(self, settings: Settings) -> ChainForm:
        self.processing_type.choices = [(t, t) for t in settings.chains.processing_types]
        for entry in self.steps:
            entry.form.configure(settings)
        return self

    def to_definition(self) -> ChainDefinition | None:
        """What the form says (None when a step's template overrides are not a JSON object: the
        field says so). Numbers that do not parse are None here; their fields carry the error."""
        steps = [entry.form.to_definition() for entry in self.steps]
        if any(step is None for step in steps):
            return None
        return ChainDefinition(
            name=self.name.data or "",
            processing_type=self.processing_type.data or "",
            steps=tuple(s for s in steps if s is not None),
            wait_for_parent_done=bool(self.wait_for_parent_done.data),
            version_override_reason=self.version_override_reason.data or "",
            comment=self.comment.data or "",
        )

    def fill(self, chain: ChainDefinition, settings: Settings) -> None:
        """Prefill from a definition (new, clone, import)."""
        self.name.data = chain.name
        self.processing_type.data = chain.processing_type
        self.wait_for_parent_done.data = chain.wait_for_parent_done
        self.version_override_reason.data = chain.version_override_reason
        self.comment.data = chain.comment
        while len(self.steps.entries):
            self.steps.pop_entry()
        for step in chain.steps:
            self.steps.append_entry().form.fill(step)
        self.configure(settings)

    def apply_problems(self, problems: list[Problem]) -> list[str]:
        """Put each problem beside its field (one already showing an error of its own keeps that);
        returns the ones that belong to no field of the form."""
        leftover = []
        for item in problems:
            field = self._field(item)
            if field is None:
                leftover.append(item.text)
            elif not field.errors:
                field.errors = [item.text]
            elif item.text not in field.errors:
                field.errors = [*field.errors, item.text]
        return leftover

    def _field(self, item: Problem) -> Any:
        if item.step is None:
            return getattr(self, item.field, None) if item.field != "steps" else None
        if not 0 < item.step <= len(self.steps.entries):
            return None
        return self.steps.entries[item.step - 1].form._fields.get(item.field)

    def summary(self, labels: dict[str, str]) -> list[str]:
        """Every error on the form, each naming its step and field (for the list above the form)."""
        lines = []
        for name, field in self._fields.items():
            if name in ("steps", "csrf_token"):
                continue
            lines += [
                e if e.startswith(f"{labels.get(name, name)}:") else f"{labels.get(name, name)}: {e}"
                for e in field.errors
            ]
        for i, entry in enumerate(self.steps.entries, start=1):
            where = f"step {i} ({entry.form.step.data or '?'})"
            for name, field in entry.form._fields.items():
                label = labels.get(name, name)
                lines += [e if e.startswith("step ") else f"{where}, {label}: {e}" for e in field.errors]
        return lines


def rearranged(
    formdata: MultiDict, action: str, prefill: Callable[[dict[str, str]], dict[str, str]]
) -> MultiDict:
    """The form data with the step rows renumbered 0…N-1 after `action`: ``add`` (a row built by
    `prefill` from the last row), ``remove:i``, ``up:i``, ``down:i`` (i: 0-based row position), or
    anything else (just renumbered). Every value typed is kept as typed."""
    rows: dict[int, MultiDict[str, str]] = {}
    rest: MultiDict[str, str] = MultiDict()
    for key, value in formdata.items(multi=True):
        match = _ROW_KEY.fullmatch(key)
        if match:
            rows.setdefault(int(match[1]), MultiDict()).add(match[2], value)
        elif key != "row_action":
            rest.add(key, value)
    ordered = [rows[index] for index in sorted(rows)]
    verb, _, arg = action.partition(":")
    position = int(arg) if arg.isdigit() else -1
    if verb == "add":
        last = {k: v for k, v in ordered[-1].items()} if ordered else {}
        ordered.append(MultiDict(prefill(last)))
    elif verb == "remove" and 0 <= position < len(ordered) and len(ordered) > 1:
        del ordered[position]
    elif verb == "up" and 0 < position < len(ordered):
        ordered[position - 1], ordered[position] = ordered[position], ordered[position - 1]
    elif verb == "down" and 0 <= position < len(ordered) - 1:
        ordered[position], ordered[position + 1] = ordered[position + 1], ordered[position]
    for index, row in enumerate(ordered):
        for key, value in row.items(multi=True):
            rest.add(f"steps-{index}-{key}", value)
    return rest


class ImportForm(FlaskForm):
    """A chain definition file (YAML or JSON) opened in the chain form."""

    document = FileField("Chain file", validators=[FileRequired("choose a YAML or JSON chain file")])


SWEEP_PARAMETERS = {
    "energy": "energy (in the physics tag, e.g. 10GeV)",
    "physics_tag": "physics tag",
    "exec_path": "path to execution files",
    "container_path": "path to container",
}


class SweepForm(FlaskForm):
    idempotency_key = HiddenField()
    parameter = SelectField("Vary", validators=[InputRequired()])
    values = TextAreaField(
        "Values, one per line", filters=[_strip], validators=[InputRequired("enter at least one value")],
        description="e.g. 10GeV, 13.5GeV, 27GeV on three lines: one chain per value",
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parameter.choices = list(SWEEP_PARAMETERS.items())

    def value_list(self) -> list[str]:
        return [line.strip() for line in (self.values.data or "").splitlines() if line.strip()]
