"""Typed specs: what a task definition (the form) says and what each task of a bunch is.

The task fields are declared once, here. ``TaskParameters`` are the fields every task of a bunch
gets unchanged; a ``TaskDefinition`` (one row of the form: a bunch of ``bunch_size`` tasks) adds the
bunch's names, size and offset; ``expand_bunch`` turns it into one ``TaskSpec`` per task, the input
of ``app.panda.taskparams.build_task_params``. Each field's metadata says whether only admins may
set it and what cloning and "next step" do with it; the form, the services and the pages read the
field lists from here.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from app.tasks import naming

ADMIN = {"admin": True}  # "available only for system" in the slides: shown to and accepted from admins only
NEW_NAME = {"clone": "reset", "next_step": "reset"}  # names, parent, comment: never copied
NEXT_STEP_RESET = {"next_step": "reset"}  # set anew for a processing step that reads a bunch's output


@dataclass(frozen=True, kw_only=True)
class TaskParameters:
    """The fields every task of a bunch gets unchanged from its definition."""

    step: str
    cloud: str
    data_disk: str
    exec_path: str
    container_path: str
    total_events: int | None = field(default=None, metadata=NEXT_STEP_RESET)  # per task (generation steps)
    events_per_job: int | None = field(default=None, metadata=NEXT_STEP_RESET)
    files_per_job: int | None = field(default=None, metadata=NEXT_STEP_RESET)  # processing steps
    request_id: int | None = None
    skip_scout: bool = False
    priority: int | None = field(default=None, metadata=ADMIN)
    memory_mb: int | None = None
    walltime_s: int | None = None
    max_attempts: int | None = None
    site: str | None = field(default=None, metadata=ADMIN)
    working_group: str | None = field(default=None, metadata=ADMIN)
    template_overrides: dict[str, Any] = field(default_factory=dict, metadata=ADMIN)


@dataclass(frozen=True, kw_only=True)
class TaskDefinition(TaskParameters):
    """The definition a production manager enters (shared by every task of the bunch)."""

    task_name: str = field(metadata=NEW_NAME)  # base name, e.g. PROD2025-008.SIM (members get .1 … .N)
    bunch_size: int
    output_dataset: str = field(metadata=NEW_NAME)  # dataset of the first task; member i: version + i - 1
    initial_offset: int = field(metadata=NEXT_STEP_RESET)
    parent_task: str | None = field(default=None, metadata=NEW_NAME)  # processing: the task read
    comment: str = field(default="", metadata=NEW_NAME)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskDefinition:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, kw_only=True)
class TaskSpec(TaskParameters):
    """One task as the task-parameter builder sees it (all names resolved)."""

    task_name: str
    output_dataset: str
    user_name: str
    offset: int = 0
    input_dataset: str | None = None  # processing steps: the parent's output dataset


def _names(**metadata: Any) -> tuple[str, ...]:
    return tuple(
        f.name
        for f in dataclasses.fields(TaskDefinition)
        if all(f.metadata.get(key) == value for key, value in metadata.items())
    )


DEFINITION_FIELDS = _names()
ADMIN_FIELDS = _names(admin=True)
CLONE_RESET = _names(clone="reset")  # cloning also resets the runtime state (PanDA ids, launches)
CLONE_COPIED = tuple(name for name in DEFINITION_FIELDS if name not in CLONE_RESET)
NEXT_STEP_RESET_FIELDS = _names(next_step="reset")
NEXT_STEP_COPIED = tuple(name for name in DEFINITION_FIELDS if name not in (*NEXT_STEP_RESET_FIELDS, "step"))


def next_step(previous: TaskDefinition, step: str, rules: naming.NamingRules) -> TaskDefinition:
    """A processing step (e.g. RECO) reading `previous`'s outputs task by task: same production, size
    and placement; names for `step`; what the next step sets anew (``NEXT_STEP_RESET_FIELDS``) reset."""
    base = naming.parse_task_name(previous.task_name, rules)
    dataset = naming.parse_dataset_name(previous.output_dataset, rules)
    return dataclasses.replace(
        previous,
        step=step,
        task_name=naming.TaskName(base.production, step).format(rules),
        output_dataset=dataclasses.replace(dataset, step=step, version=1).format(rules),
        total_events=None,
        events_per_job=None,
        files_per_job=1,
        parent_task=base.format(rules),
        initial_offset=0,
        comment="",
    )


def bunch_offsets(initial_offset: int, events_per_task: int, bunch_size: int) -> list[int]:
    """offset_i = initial + i × events per task (i = 0 … N-1): seeds and first events never overlap."""
    return [initial_offset + i * events_per_task for i in range(bunch_size)]


def expand_bunch(
    definition: TaskDefinition,
    rules: naming.NamingRules,
    *,
    user_name: str,
    input_datasets: list[str | None] | None = None,
) -> list[TaskSpec]:
    """One spec per bunch member, with names ``.1 … .N``, dataset versions and event offsets."""
    base_name = naming.parse_task_name(definition.task_name, rules).base()
    base_ds = naming.parse_dataset_name(definition.output_dataset, rules)
    n = definition.bunch_size
    offsets = bunch_offsets(definition.initial_offset, definition.total_events or 0, n)
    return [
        TaskSpec(
            **_shared(definition),
            task_name=naming.bunch_task_name(base_name, i, n).format(rules),
            output_dataset=naming.bunch_dataset_name(base_ds, i).format(rules),
            user_name=user_name,
            offset=offsets[i - 1],
            input_dataset=input_datasets[i - 1] if input_datasets else None,
        )
        for i in range(1, n + 1)
    ]


def _shared(definition: TaskDefinition) -> dict[str, Any]:
    """The definition's TaskParameters, copied (no dict shared between tasks)."""
    return {f.name: copy.deepcopy(getattr(definition, f.name)) for f in dataclasses.fields(TaskParameters)}
