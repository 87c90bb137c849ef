"""Typed chain definitions: a chain is an ordered list of task definitions (its steps) plus the
chain's own fields. The steps are the task form's ``TaskDefinition``; what a later step derives from
the one before it (parent, input, events) is filled in by ``app.chains.constraints.derive``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from app.tasks.specs import TaskDefinition

# The words messages use for each field (the chain form shows the same labels).
LABELS = {
    "name": "chain name",
    "processing_type": "processing type",
    "steps": "steps",
    "wait_for_parent_done": "submit the next step only when the parent is done",
    "version_override_reason": "version override reason",
    "comment": "comment",
    "step": "step type",
    "task_name": "task name",
    "bunch_size": "tasks to launch",
    "output_dataset": "output dataset",
    "total_events": "total events",
    "events_per_job": "events per job",
    "files_per_job": "files per job",
    "parent_task": "parent task",
    "cloud": "cloud",
    "data_disk": "data disk",
    "request_id": "request",
    "skip_scout": "skip scout",
    "initial_offset": "initial offset",
    "exec_path": "path to execution files",
    "container_path": "path to container",
    "memory_mb": "memory",
    "walltime_s": "walltime",
    "max_attempts": "max attempts",
    "priority": "priority",
    "site": "site",
    "working_group": "working group",
    "template_overrides": "template overrides",
}
# The task fields a chain step does not have: its comment is the chain's.
STEP_EXCLUDED = ("comment",)
STEP_FIELDS = tuple(f.name for f in dataclasses.fields(TaskDefinition) if f.name not in STEP_EXCLUDED)


@dataclass(frozen=True, kw_only=True)
class ChainDefinition:
    """What the chain form (or an imported document) says."""

    name: str
    processing_type: str
    steps: tuple[TaskDefinition, ...]
    wait_for_parent_done: bool = False  # the panel holds a step back until its parent is done
    # Admin only: why steps may use containers of different SpdRoot major.minor versions.
    version_override_reason: str = ""
    comment: str = ""

    def with_steps(self, steps: list[TaskDefinition] | tuple[TaskDefinition, ...]) -> ChainDefinition:
        return dataclasses.replace(self, steps=tuple(steps))


@dataclass(frozen=True)
class Problem:
    """One broken rule: the step (1-based; None for the chain's own fields), the field and a sentence
    that names both, so it reads right in a summary, beside the field, or in an API reply."""

    step: int | None
    field: str
    text: str

    def __str__(self) -> str:
        return self.text


def problem(chain: ChainDefinition, step: int | None, field_name: str, message: str) -> Problem:
    """A Problem whose text starts with where it is: ``step 2 (RECO), total events: …``."""
    label = LABELS.get(field_name, field_name)
    if step is None:
        return Problem(None, field_name, f"{label}: {message}")
    step_type = chain.steps[step - 1].step if 0 < step <= len(chain.steps) else "?"
    return Problem(step, field_name, f"step {step} ({step_type or '?'}), {label}: {message}")
