"""Chains → steps → tasks: a chain is an ordered list of steps, each one task bunch (whose tasks are
linked to the previous step's tasks by ``Task.parent``); the definition is kept as a JSON document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from app import clock
from app.auth.models import User
from app.db import UTCDateTime
from app.extensions import Model
from app.tasks.models import TaskBunch


class Chain(Model):
    """One "Create chain": its steps were created together and launch linked (SIM → RECO)."""

    __tablename__ = "chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The form's idempotency key: a repeated POST finds this chain instead of creating another.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    processing_type: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)  # the chain document (app/chains/schema.py)
    wait_for_parent_done: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    cloned_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("chain.id", ondelete="SET NULL"), nullable=True, index=True
    )

    steps: Mapped[list[ChainStep]] = relationship(
        back_populates="chain", order_by="ChainStep.position", cascade="all, delete-orphan"
    )
    created_by: Mapped[User | None] = relationship()
    cloned_from: Mapped[Chain | None] = relationship(remote_side="Chain.id", back_populates="clones")
    clones: Mapped[list[Chain]] = relationship(back_populates="cloned_from")


class ChainStep(Model):
    """Step `position` (1-based) of a chain: one bunch of tasks of one step type."""

    __tablename__ = "chain_step"
    __table_args__ = (UniqueConstraint("chain_id", "position", name="uq_chain_step_chain_id_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("chain.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(32))
    bunch_id: Mapped[int] = mapped_column(ForeignKey("task_bunch.id", ondelete="CASCADE"), unique=True)

    chain: Mapped[Chain] = relationship(back_populates="steps")
    # TaskBunch.chain_step: the step a bunch is (None for bunches created on their own).
    bunch: Mapped[TaskBunch] = relationship(backref=backref("chain_step", uselist=False))
