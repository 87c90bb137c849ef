"""The estimate shown before a launch: CPU hours (consumed walltime), output volume and duration of
a task or bunch, from the accounted tasks that finished with the same physics tag and step (per-event
walltime and output size; per task when the step makes no events of its own). "No history" when
there is none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from statistics import median

from sqlalchemy import select

from app.extensions import db
from app.tasks import naming
from app.tasks.models import Task
from app.tasks.services import naming_rules
from app.tasks.specs import TaskDefinition

HISTORY = 200  # the most recent finished tasks the estimate learns from
SUCCEEDED = ("done", "finished")


@dataclass(frozen=True)
class Estimate:
    tag: str
    step: str
    history: int  # finished tasks it is based on (0: no history)
    cpu_hours: float = 0.0
    output_bytes: int = 0
    duration: timedelta | None = None  # of one task, from start to end

    @property
    def output_tb(self) -> float:
        return self.output_bytes / 1e12


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def estimate(definition: TaskDefinition) -> Estimate | None:
    """The estimate for the bunch `definition` makes (None when its dataset name has no tag)."""
    try:
        tag = naming.parse_dataset_name(definition.output_dataset, naming_rules()).tag
    except naming.NamingError:
        return None
    rows = db.session.execute(
        select(Task.walltime_s, Task.events_processed, Task.output_bytes, Task.started_at, Task.ended_at)
        .where(Task.panda_status.in_(SUCCEEDED), Task.step == definition.step, Task.accounted_at.is_not(None),
               Task.walltime_s.is_not(None), Task.output_dataset.like(f"%.{_like(tag)}.%", escape="\\"))
        .order_by(Task.ended_at.desc().nulls_last())  # the sort index's order (app/db.py NullsLow)
        .limit(HISTORY)
    ).all()  # fmt: skip
    if not rows:
        return Estimate(tag, definition.step, 0)
    size = definition.bunch_size
    events = (definition.total_events or 0) * size
    counted = sum(r.events_processed or 0 for r in rows)
    if events and counted:  # per event
        walltime = sum(r.walltime_s for r in rows) / counted * events
        output = sum(r.output_bytes or 0 for r in rows) / counted * events
    else:  # per task
        walltime = sum(r.walltime_s for r in rows) / len(rows) * size
        output = sum(r.output_bytes or 0 for r in rows) / len(rows) * size
    durations = [(r.ended_at - r.started_at).total_seconds() for r in rows if r.started_at and r.ended_at]
    duration = timedelta(seconds=round(median(durations))) if durations else None
    return Estimate(tag, definition.step, len(rows), walltime / 3600, int(output), duration)
