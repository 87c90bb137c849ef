"""Typed specs: what a task definition (the form) says and what each task of a bunch is.

A ``TaskDefinition`` is one row of the form (a bunch of ``bunch_size`` tasks). ``expand_bunch`` turns it
into one ``TaskSpec`` per task: the input of ``app.panda.taskparams.build_task_params``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from app.tasks import naming


@dataclass(frozen=True)
class TaskDefinition:
    """The definition a production manager enters (shared by every task of the bunch)."""

    step: str
    task_name: str  # base name, e.g. PROD2025-008.SIM (bunch members get .1 … .N)
    bunch_size: int
    output_dataset: str  # dataset of the first task; member i writes version + i - 1
    total_events: int | None  # per task (generation steps)
    events_per_job: int | None
    cloud: str
    data_disk: str
    request_id: int | None
    skip_scout: bool
    initial_offset: int
    exec_path: str
    container_path: str
    files_per_job: int | None = None  # processing steps
    parent_task: str | None = None  # processing steps: the task whose output is read
    priority: int | None = None
    memory_mb: int | None = None
    walltime_s: int | None = None
    max_attempts: int | None = None
    site: str | None = None
    working_group: str | None = None
    template_overrides: dict[str, Any] = field(default_factory=dict)
    comment: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskDefinition:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class TaskSpec:
    """One task as the task-parameter builder sees it (all names resolved)."""

    step: str
    task_name: str
    output_dataset: str
    cloud: str
    data_disk: str
    exec_path: str
    container_path: str
    user_name: str
    offset: int = 0
    total_events: int | None = None
    events_per_job: int | None = None
    files_per_job: int | None = None
    input_dataset: str | None = None  # processing steps: the parent's output dataset
    request_id: int | None = None
    skip_scout: bool = False
    priority: int | None = None
    memory_mb: int | None = None
    walltime_s: int | None = None
    max_attempts: int | None = None
    site: str | None = None
    working_group: str | None = None
    template_overrides: dict[str, Any] = field(default_factory=dict)


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
    specs = []
    for i in range(1, n + 1):
        specs.append(
            TaskSpec(
                step=definition.step,
                task_name=naming.bunch_task_name(base_name, i, n).format(rules),
                output_dataset=naming.bunch_dataset_name(base_ds, i).format(rules),
                cloud=definition.cloud,
                data_disk=definition.data_disk,
                exec_path=definition.exec_path,
                container_path=definition.container_path,
                user_name=user_name,
                offset=offsets[i - 1],
                total_events=definition.total_events,
                events_per_job=definition.events_per_job,
                files_per_job=definition.files_per_job,
                input_dataset=input_datasets[i - 1] if input_datasets else None,
                request_id=definition.request_id,
                skip_scout=definition.skip_scout,
                priority=definition.priority,
                memory_mb=definition.memory_mb,
                walltime_s=definition.walltime_s,
                max_attempts=definition.max_attempts,
                site=definition.site,
                working_group=definition.working_group,
                template_overrides=dict(definition.template_overrides),
            )
        )
    return specs
