"""The task form (the SPD slides' "Task creation" plus what a production manager needs)."""

from __future__ import annotations

import json
import typing
from typing import TYPE_CHECKING, Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from app.config import Settings
from app.launches.forms import ScheduleFields
from app.tasks.specs import DEFINITION_FIELDS, TaskDefinition

# The type of each definition field (the form has a field of the same name for every one).
_DEFINITION_TYPES = {name: typing.get_type_hints(TaskDefinition)[name] for name in DEFINITION_FIELDS}


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class TaskFields:
    """The task fields and their conversion to a ``TaskDefinition``: the task form has them all, and
    each step of the chain form (``app.chains.forms.StepForm``) has them except its own comment."""

    if TYPE_CHECKING:  # what wtforms.Form provides once mixed in

        @property
        def _fields(self) -> dict[str, Any]: ...

        def __getitem__(self, name: str) -> Any: ...

    step = SelectField("Step type", validators=[InputRequired()])
    task_name = StringField(
        "Task name", filters=[_strip], validators=[InputRequired(), Length(max=255)],
        description="PROD<yyyy>-<nnn>.<STEP>; members of a bunch get .1 … .N",
    )  # fmt: skip
    bunch_size = IntegerField(
        "Tasks to launch", default=1, validators=[InputRequired("tasks to launch is required")]
    )
    output_dataset = StringField(
        "Output dataset name", filters=[_strip], validators=[Optional(), Length(max=255)],
        description="<scope>.<physics tag>.<production>.<STEP>.<version>; bunch member i writes version + i − 1; "
        "leave empty to build it from the task name and the execution path",
    )  # fmt: skip
    total_events = IntegerField("Total events (per task)", validators=[Optional()])
    events_per_job = IntegerField("Events per job", validators=[Optional()])
    files_per_job = IntegerField(
        "Files per job", validators=[Optional()], description="processing steps (RECO)"
    )
    parent_task = StringField(
        "Parent task", filters=[_strip], validators=[Optional(), Length(max=255)],
        description="processing steps: the task whose output is read (default: the SIM task of the same production)",
    )  # fmt: skip
    cloud = SelectField("Cloud", validators=[InputRequired()])
    data_disk = SelectField("Data disk", validators=[InputRequired()])
    request_id = StringField(
        "Request", filters=[_strip], validators=[Optional()], description="spd-requests id"
    )
    skip_scout = BooleanField("Skip scout")
    initial_offset = IntegerField(
        "Initial offset", default=0, validators=[InputRequired("initial offset is required")],
        description="random seed and first event of task i start at offset + i × total events",
    )  # fmt: skip
    exec_path = StringField(
        "Path to execution files", filters=[_strip], validators=[InputRequired()],
        description="e.g. /cvmfs/spd.jinr.ru/production/MC/minbias-P8-spdroot417-dev.10GeV.V01",
        render_kw={"list": "exec-path-options", "autocomplete": "off", "data-catalog-check": ""},
    )  # fmt: skip
    container_path = StringField(
        "Path to container", filters=[_strip], validators=[InputRequired()],
        description="e.g. /cvmfs/spd.jinr.ru/images/spdroot-dev-4.1.7.sif",
        render_kw={"list": "container-path-options", "autocomplete": "off", "data-catalog-check": ""},
    )  # fmt: skip
    memory_mb = IntegerField("Memory (MB per core)", validators=[Optional()])
    walltime_s = IntegerField("Walltime per job (s)", validators=[Optional()])
    max_attempts = IntegerField("Max attempts", validators=[Optional()])
    comment = TextAreaField("Comment", filters=[_strip], validators=[Optional(), Length(max=2000)])
    # Admin-only ("available only for system" in the slides).
    priority = IntegerField("Priority", validators=[Optional()])
    site = StringField("Site", filters=[_strip], validators=[Optional(), Length(max=128)])
    working_group = StringField("Working group", filters=[_strip], validators=[Optional(), Length(max=64)])
    template_overrides = TextAreaField(
        "Template overrides (JSON)", filters=[_strip], validators=[Optional()],
        description='top-level task parameters that replace the template\'s, e.g. {"gshare": "Test"}',
    )  # fmt: skip

    def configure(self, settings: Settings) -> Any:
        cfg = settings.tasks
        self.step.choices = [(s, s) for s in cfg.step_types]
        self.cloud.choices = [(c, c) for c in cfg.clouds]
        self.data_disk.choices = [(d, d) for d in cfg.data_disks]
        return self

    def overrides_value(self) -> dict[str, Any] | None:
        """The template overrides as a dict, or None (with a field error) when not a JSON object."""
        text = self.template_overrides.data or ""
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            self.template_overrides.errors = [
                *self.template_overrides.errors,
                "template overrides must be a JSON object",
            ]
            return None
        return value

    def request_id_value(self) -> int | None:
        text = self.request_id.data or ""
        if not text:
            return None
        if not text.isdigit():
            return -1  # rejected by the service with the well-formedness message
        return int(text)

    def to_definition(self) -> TaskDefinition | None:
        """The definition the form says, field by field (None, with a field error, when the template
        overrides are not a JSON object)."""
        overrides = self.overrides_value()
        if overrides is None:
            return None
        values: dict[str, Any] = {}
        for name, kind in _DEFINITION_TYPES.items():
            if name not in self._fields:  # a chain step: the chain has the comment
                continue
            data = self[name].data
            if name == "template_overrides":
                values[name] = overrides
            elif name == "request_id":
                values[name] = self.request_id_value()
            elif kind is bool:
                values[name] = bool(data)
            elif kind is str:
                values[name] = data or ""
            elif kind == str | None:
                values[name] = data or None
            else:  # numbers: an empty field is the form's default (None when it has none)
                values[name] = data if data is not None else self[name].default
        return TaskDefinition(**values)

    def fill(self, definition: TaskDefinition) -> None:
        """Prefill from a definition (cloning, relaunch from manifest)."""
        for name, value in definition.to_dict().items():
            field = getattr(self, name, None)
            if field is None:
                continue
            if name == "template_overrides":
                field.data = json.dumps(value) if value else ""
            elif name == "request_id":
                field.data = "" if value is None else str(value)
            else:
                field.data = value

    def apply_errors(self, errors: dict[str, list[str]]) -> list[str]:
        """Attach service errors to their fields; returns those that belong to no field."""
        leftover = []
        for name, messages in errors.items():
            field = getattr(self, name, None)
            if field is None or not hasattr(field, "errors"):
                leftover.extend(messages)
                continue
            field.errors = [*field.errors, *messages]
        return leftover


class TaskForm(TaskFields, ScheduleFields, FlaskForm):
    built_dataset = ""  # the output dataset name built for an empty field (shown as the field's help)

    idempotency_key = HiddenField()
    cloned_from_task = HiddenField()
    cloned_from_bunch = HiddenField()


class ActionForm(FlaskForm):
    """A CSRF-protected button (resend failed, continue dispatching)."""


class ManifestUploadForm(FlaskForm):
    """Relaunch from a downloaded submission manifest (JSON file)."""

    manifest = FileField("Manifest file", validators=[FileRequired("choose a manifest JSON file")])
