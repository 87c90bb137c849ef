"""The PanDA interaction log: one row per HTTP exchange with PanDA (or per call refused before one)."""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.db import UTCDateTime
from app.extensions import Model

OUTCOMES = ("ok", "rejected", "not_found", "auth", "unavailable", "unknown", "unsupported", "error")


class PandaCall(Model):
    __tablename__ = "panda_call"
    __table_args__ = (
        Index("ix_panda_call_at", "at"),
        Index("ix_panda_call_task_id_at", "task_id", "at"),
        Index("ix_panda_call_method", "method"),
        Index("ix_panda_call_outcome", "outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)  # when the request started
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True, index=True
    )
    server: Mapped[str] = mapped_column(String(300), default="")  # PanDA base URL
    transport: Mapped[str] = mapped_column(String(16), default="")  # v1 | legacy
    method: Mapped[str] = mapped_column(String(64))  # client call name, e.g. submit, kill
    task_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # jediTaskID (new id for submit)
    params: Mapped[dict] = mapped_column(JSON, default=dict)  # call arguments, credentials masked
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    return_code: Mapped[int | None] = mapped_column(Integer, nullable=True)  # PanDA's code when it gave one
    message: Mapped[str] = mapped_column(Text, default="")  # PanDA's message or the client's error
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # one of OUTCOMES
    attempt: Mapped[int] = mapped_column(Integer, default=1)  # 2+ = automatic retry of a read
    comment: Mapped[str] = mapped_column(Text, default="")  # the manager's reason for a command (never sent)

    user = relationship("User")

    def __repr__(self) -> str:
        return f"<PandaCall {self.method} task={self.task_id} {self.outcome}>"
