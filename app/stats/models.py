"""What the statistics read instead of the task table: a per-day summary kept by the sync, the
failed jobs' errors of each accounted task, and the alerts with their deliveries."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.db import UTCDateTime
from app.extensions import Model

ALL_DAYS = date(1, 1, 1)  # the `day` of a StatSplit row that sums every day


class StatSplit(Model):
    """The tasks PanDA knows, summed per day along one dimension at a time, and over every day
    (``day == ALL_DAYS``); the sync keeps it (app/stats/summary.py), the statistics page reads it. Its
    rows grow with the days and the keys of one dimension, not with their product, and its all-time
    totals and splits are one row per key. A task counts on the day it ended, or was submitted while
    it runs.

    `dimension` is "all" (`key` "": the daily total), "step", "status", "request" or "user" (`key`
    the id as text, "0" for none)."""

    __tablename__ = "stat_split"

    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    tasks: Mapped[int] = mapped_column(Integer, default=0)
    jobs_done: Mapped[int] = mapped_column(BigInteger, default=0)
    jobs_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    output_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    walltime_s: Mapped[int] = mapped_column(BigInteger, default=0)
    jobs_total: Mapped[int] = mapped_column(BigInteger, default=0)
    log_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class TaskError(Model):
    """Failed jobs of one task sharing a normalised error (read with the final accounting)."""

    __tablename__ = "task_error"
    __table_args__ = (
        UniqueConstraint(
            "task_id", "source", "code", "message", name="uq_task_error_task_id_source_code_message"
        ),
        Index("ix_task_error_source_code", "source", "code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # pilot, exe, ddm, taskbuffer, …
    code: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(String(300))  # normalised: numbers, paths, hosts replaced
    example: Mapped[str] = mapped_column(Text)  # one job's own text
    jobs: Mapped[int] = mapped_column(Integer)


class Alert(Model):
    """Something a person should look at; `key` names the event, so that it is raised (and sent) once."""

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_cleared_at_user_id", "cleared_at", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # stalled, failed, token, panda
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), nullable=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(String(300), default="")
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AlertDelivery(Model):
    """One alert sent to one person by one channel (never twice)."""

    __tablename__ = "alert_delivery"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)  # email, webhook
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    error: Mapped[str] = mapped_column(Text, default="")


class NotifyPreference(Model):
    """A person's opt-in to receive their alerts by e-mail and/or on the team's webhook."""

    __tablename__ = "notify_preference"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    email: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook: Mapped[bool] = mapped_column(Boolean, default=False)


class TaskProgress(Model):
    """When a task's jobs last moved (the sync sets it): an active task still for hours is stalled."""

    __tablename__ = "task_progress"

    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), primary_key=True)
    moved_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
