"""Task commands (each action taken on a task, with its comment and PanDA's answer) and bulk actions
(one action on a selection of tasks, sent by a background job, with a result per task)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.auth.models import User
from app.db import EnumText, UTCDateTime
from app.extensions import Model
from app.tasks.models import Task


class Outcome(StrEnum):
    """What became of an action on one task."""

    PENDING = "pending"  # a bulk item not sent yet
    SENDING = "sending"  # a bulk item claimed by the job (never sent twice)
    ACCEPTED = "accepted"  # PanDA registered the command (or made the change)
    REJECTED = "rejected"  # PanDA answered no: its reason is kept
    NOT_ALLOWED = "not_allowed"  # the matrix refused it: nothing was sent
    FAILED = "failed"  # PanDA could not be reached, or no token: nothing was registered
    UNKNOWN = "unknown"  # sent without a usable answer: PanDA may have registered it


_OUTCOMES = ", ".join(f"'{o.value}'" for o in Outcome)


class TaskCommand(Model):
    """One action on one task as sent to PanDA (or refused before), newest last per task."""

    __tablename__ = "task_command"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({_OUTCOMES})", name="outcome"),
        Index("ix_task_command_task_id_id", "task_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    panda_task_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the id it went to
    action: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # e.g. {"soft": true}
    comment: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True, index=True
    )
    username: Mapped[str] = mapped_column(String(150), default="")  # kept if the user row goes away
    bulk_id: Mapped[int | None] = mapped_column(
        ForeignKey("bulk_action.id", ondelete="SET NULL"), nullable=True, index=True
    )
    status_before: Mapped[str | None] = mapped_column(String(32), nullable=True)  # stored PanDA status then
    outcome: Mapped[Outcome] = mapped_column(EnumText(Outcome, 16))
    panda_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")  # the reason in words, or PanDA's answer
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    # A later queued command PanDA accepted for the same task before this one showed: it replaced
    # this one unless JEDI had executed it already.
    superseded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("task_command.id", ondelete="SET NULL"), nullable=True, index=True
    )

    task: Mapped[Task] = relationship()
    user: Mapped[User | None] = relationship()


class BulkAction(Model):
    """One action on a selection of tasks; its items are sent one by one by the bulk job."""

    __tablename__ = "bulk_action"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    comment: Mapped[str] = mapped_column(Text, default="")
    selection: Mapped[str] = mapped_column(String(300), default="")  # what was selected, in words
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retry_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("bulk_action.id", ondelete="SET NULL"), nullable=True, index=True
    )

    created_by: Mapped[User | None] = relationship()
    items: Mapped[list[BulkItem]] = relationship(
        back_populates="bulk", order_by="BulkItem.id", cascade="all, delete-orphan"
    )


class BulkItem(Model):
    """One task of a bulk action and its result."""

    __tablename__ = "bulk_item"
    __table_args__ = (
        UniqueConstraint("bulk_id", "task_id", name="uq_bulk_item_bulk_id_task_id"),
        CheckConstraint(f"outcome IN ({_OUTCOMES})", name="outcome"),
        Index("ix_bulk_item_outcome_bulk_id", "outcome", "bulk_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bulk_id: Mapped[int] = mapped_column(ForeignKey("bulk_action.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), index=True)
    outcome: Mapped[Outcome] = mapped_column(EnumText(Outcome, 16), default=Outcome.PENDING)
    reason: Mapped[str] = mapped_column(Text, default="")
    command_id: Mapped[int | None] = mapped_column(
        ForeignKey("task_command.id", ondelete="SET NULL"), nullable=True, index=True
    )
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # outcome last changed

    bulk: Mapped[BulkAction] = relationship(back_populates="items")
    task: Mapped[Task] = relationship()
