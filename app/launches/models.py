"""The launch table: the outbox of PanDA submissions, one row per attempt of a task."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.auth.models import User
from app.db import EnumText, UTCDateTime
from app.extensions import Model
from app.launches.states import LaunchStatus

if TYPE_CHECKING:
    from app.tasks.models import Task

_STATUS_VALUES = ", ".join(f"'{status.value}'" for status in LaunchStatus)


class Launch(Model):
    """One submission of a task; claimed by the dispatcher exactly once (states: `states.py`).

    A later "resend" of a failed launch is a new row with a new idempotency key.
    """

    __tablename__ = "launch"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUS_VALUES})", name="status"),
        CheckConstraint("at_percent IS NULL OR at_percent BETWEEN 1 AND 100", name="at_percent"),
        Index("ix_launch_status_due_at", "status", "due_at"),
        Index("ix_launch_created_by_id_status", "created_by_id", "status"),  # an owner's state tabs
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[LaunchStatus] = mapped_column(EnumText(LaunchStatus, 16), default=LaunchStatus.PENDING)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    panda_task_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")  # the server's reason or what went wrong
    # A manager checked PanDA and confirmed the previous attempt is absent (when PanDA could not tell).
    confirmed_absent_by: Mapped[str | None] = mapped_column(String(150), nullable=True)
    # A chain option: hold the launch until the parent task is done in PanDA, instead of submitting
    # it with parent_tid as soon as the parent has a PanDA id (`gates.parent_gate`).
    after_parent_done: Mapped[bool] = mapped_column(Boolean, default=False)
    # A dependent launch (`gates.dependency_gate`): held until task `after_task_id` is done in PanDA,
    # or, with `at_percent`, until that many per cent of its jobs are done.
    after_task_id: Mapped[int | None] = mapped_column(
        ForeignKey("task.id", ondelete="SET NULL"), nullable=True, index=True
    )
    at_percent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set while the owner's token cannot be used for this launch ("token unusable: log in again");
    # `app.launches.jobs.flag_unusable_tokens` keeps it current.
    token_problem: Mapped[str] = mapped_column(String(500), default="")
    # What was (or is about to be) sent and what came back: the submission manifest.
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    task: Mapped[Task] = relationship(back_populates="launches", foreign_keys=[task_id])
    after_task: Mapped[Task | None] = relationship(foreign_keys=[after_task_id])
    created_by: Mapped[User | None] = relationship()
