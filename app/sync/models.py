"""What the PanDA sync keeps besides the task rows: each task's status history and the sync's own state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime
from app.extensions import Model


class TaskStatusChange(Model):
    """One PanDA status of a task and when it began (by PanDA's clock when PanDA says, else when seen)."""

    __tablename__ = "task_status_change"
    __table_args__ = (
        Index("ix_task_status_change_task_id_began_at", "task_id", "began_at"),
        Index("ix_task_status_change_status_began_at", "status", "began_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(32))
    began_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SyncState(Model):
    """The sync's state for one PanDA server, shared by every panel instance on the database."""

    __tablename__ = "sync_state"

    server: Mapped[str] = mapped_column(String(300), primary_key=True)
    unreachable_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive cycles PanDA was unreachable
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # backing off
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_cycle_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_cycle_calls: Mapped[int] = mapped_column(Integer, default=0)
    # "<owner id>/<PanDA user name>" -> ISO time from which the next "modified since" query starts.
    cursors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
