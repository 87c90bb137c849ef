"""The append-only audit trail: who did what, to what, with which outcome."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.db import UTCDateTime
from app.extensions import Model


class AuditEvent(Model):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_at", "at"),
        Index("ix_audit_event_action", "action"),
        # The outcomes offered by the filter, one seek each (`known_outcomes`), and an outcome's count.
        Index("ix_audit_event_outcome_action", "outcome", "action"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True, index=True
    )
    username: Mapped[str] = mapped_column(String(150), default="")  # kept if the user row goes away
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(300), default="")
    outcome: Mapped[str] = mapped_column(String(32), default="ok")
    request_id: Mapped[str] = mapped_column(String(64), default="")
    client_address: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict] = mapped_column(JSON, default=dict)

    user = relationship("User")
