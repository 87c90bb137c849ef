"""Task bunches (one saved definition) and their tasks; their launches are `app.launches.models`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Computed,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.auth.models import User
from app.db import NullsLow, UTCDateTime
from app.extensions import Model
from app.launches.models import Launch
from app.launches.states import LaunchStatus

# The task tables' sort and filter columns (app/monitoring/tables.py), each indexed with the id.
SORT_INDEXES: dict[str, tuple[str, ...]] = {
    "panda_status": ("panda_status",), "ended_at": ("ended_at",), "panda_task_id": ("panda_task_id",),
    "name": ("production", "step", "bunch_index"), "parent_id": ("parent_id",),
    "created_by_id": ("created_by_id",), "step": ("step",), "jobs_done": ("jobs_done",),
    "jobs_total": ("jobs_total",), "priority_default": ("priority_default",),
    "priority_current": ("priority_current",), "events_requested": ("events_requested",),
    "events_processed": ("events_processed",), "request_id": ("request_id",), "bunch_id": ("bunch_id",),
    "cloud": ("cloud",), "submitted_at": ("submitted_at",), "started_at": ("started_at",),
    "walltime_s": ("walltime_s",), "output_bytes": ("output_bytes",), "log_bytes": ("log_bytes",),
    "progress": ("progress",), "events_per_job": ("events_per_job",),
}  # fmt: skip
# The ratios the task tables sort on, computed by the database from the counters the sync stores
# (generated columns: virtual on SQLite, stored on PostgreSQL), so that an index walks them in order.
PROGRESS_SQL = "CAST(jobs_done AS FLOAT) / NULLIF(jobs_total, 0)"
EVENTS_PER_JOB_SQL = "CAST(events_processed AS FLOAT) / NULLIF(jobs_total, 0)"
TO_ACCOUNT = "accounted_at IS NULL AND panda_task_id IS NOT NULL"  # the rows of ix_task_to_account


class TaskBunch(Model):
    """One "Create task": a definition launched as N tasks (N = 1 for a single task)."""

    __tablename__ = "task_bunch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The form's idempotency key: a repeated POST finds this row instead of creating a second bunch.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    base_name: Mapped[str] = mapped_column(String(255), index=True)
    step: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    cloned_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("task_bunch.id", ondelete="SET NULL"), nullable=True, index=True
    )

    tasks: Mapped[list[Task]] = relationship(back_populates="bunch", order_by="Task.bunch_index")
    created_by: Mapped[User | None] = relationship()
    cloned_from: Mapped[TaskBunch | None] = relationship(remote_side="TaskBunch.id", back_populates="clones")
    clones: Mapped[list[TaskBunch]] = relationship(back_populates="cloned_from")


class Task(Model):
    """One PanDA task as the panel defines it; names are unique (PanDA does not check them)."""

    __tablename__ = "task"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bunch_id: Mapped[int] = mapped_column(ForeignKey("task_bunch.id", ondelete="CASCADE"))
    bunch_index: Mapped[int] = mapped_column(Integer)  # 1..N
    name: Mapped[str] = mapped_column(String(255), unique=True)
    output_dataset: Mapped[str] = mapped_column(String(255), unique=True)
    step: Mapped[str] = mapped_column(String(32))
    production: Mapped[str] = mapped_column(String(64))  # e.g. PROD2025-008
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the TaskSpec (input of the parameter builder)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # the exact JEDI task parameters, fixed at creation
    # Indexed with the id (ix_task_sort_parent_id): the task page's children and the tables' sort.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("task.id", ondelete="SET NULL"), nullable=True)
    cloned_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("task.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # Not unique: ids are unique per PanDA server only, and the panel may change servers (the sandbox
    # simulator starts again at 1, a test server hands out ids a production server uses too).
    panda_task_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    panda_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    panda_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    # What the PanDA sync stored (app/sync): PanDA's own view of the task, never read from a page.
    panda_modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    panda_error: Mapped[str | None] = mapped_column(Text, nullable=True)  # JEDI's errorDialog
    jobs_done: Mapped[int | None] = mapped_column(Integer, nullable=True)
    jobs_failed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    jobs_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    events_requested: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    events_processed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # known once accounted
    priority_default: Mapped[int | None] = mapped_column(Integer, nullable=True)  # taskPriority
    priority_current: Mapped[int | None] = mapped_column(Integer, nullable=True)  # currentPriority
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # creationDate
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cloud: Mapped[str | None] = mapped_column(String(64), nullable=True)
    site: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Final accounting, from the job descriptions once the task is final (accounted_jobs of jobs_total).
    accounted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accounted_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    walltime_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # consumed, all attempts
    output_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    log_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    accounting_error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it could not be read
    # Copied from the bunch and the spec at creation so that the task tables filter and sort on them
    # through an index (a join or a JSON path cannot be walked in order). No foreign key: the bunch's
    # creator is the reference (SQLite cannot add a named foreign key to an existing table in place).
    created_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The request the task counts for: the one its spec names, else its chain's (the first step naming
    # one). The chain form names it in every step (app/chains/constraints.py derive); migration 0025
    # filled it in for older chains. The statistics key on the spec's own (app/stats/summary.py).
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Generated by the database (never written): jobs done per job, events processed per job.
    progress: Mapped[float | None] = mapped_column(Float, Computed(PROGRESS_SQL), nullable=True)
    events_per_job: Mapped[float | None] = mapped_column(Float, Computed(EVENTS_PER_JOB_SQL), nullable=True)

    bunch: Mapped[TaskBunch] = relationship(back_populates="tasks")
    parent: Mapped[Task | None] = relationship(
        remote_side="Task.id", foreign_keys=[parent_id], back_populates="children"
    )
    children: Mapped[list[Task]] = relationship(foreign_keys=[parent_id], back_populates="parent")
    cloned_from: Mapped[Task | None] = relationship(
        remote_side="Task.id", foreign_keys=[cloned_from_id], back_populates="clones"
    )
    clones: Mapped[list[Task]] = relationship(foreign_keys=[cloned_from_id], back_populates="cloned_from")
    launches: Mapped[list[Launch]] = relationship(
        back_populates="task", order_by="Launch.id", foreign_keys="Launch.task_id"
    )

    __table_args__ = (
        UniqueConstraint("bunch_id", "bunch_index", name="uq_task_bunch_id_bunch_index"),
        # The tables' sort indexes follow the class (_sort_indexes).
        # The home page counts a user's active tasks per status (app/stats/dashboard.py).
        Index("ix_task_creator_status", "created_by_id", "panda_status"),
        # The final accounting's queue (app/sync/jobs.py to_account), in its order: the tasks PanDA knows
        # not accounted yet (the active ones and the final ones waiting), not every task (migration 0026).
        Index("ix_task_to_account", "ended_at", "id", sqlite_where=text(TO_ACCOUNT), postgresql_where=text(TO_ACCOUNT)),
    )

    @property
    def latest_launch(self) -> Launch | None:
        return self.launches[-1] if self.launches else None

    @property
    def submitted_launch(self) -> Launch | None:
        return next((launch for launch in self.launches if launch.status == LaunchStatus.SUBMITTED), None)


def _sort_indexes() -> None:
    """The sync selects non-final tasks; the task tables (app/monitoring) filter and sort on every
    column: (column, id) walks a filter or a sort in keyset order, the id breaking ties. Each but the
    status's own ends with the status: a status filter is checked in the index while walking a sort,
    before the row is read (migration 0018). A nullable column keeps its NULLs lowest on both
    databases (NullsLow, migration 0025), the order the tables ask for."""
    c = Task.__table__.c
    for name, columns in SORT_INDEXES.items():
        status = (c.panda_status,) if name != "panda_status" else ()
        Index(f"ix_task_sort_{name}", *(NullsLow(c[n]) if c[n].nullable else c[n] for n in columns), c.id, *status)


_sort_indexes()
