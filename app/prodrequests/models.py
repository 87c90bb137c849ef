"""The path catalog: container images and execution-file paths offered in the task form."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.db import UTCDateTime
from app.extensions import Model

KINDS = ("container", "exec")
SOURCES = ("scan", "admin")  # found on CVMFS by a scan | entered by an admin (hosts without CVMFS)


class CatalogEntry(Model):
    """One known path. Scans add and remove their own rows; admins' rows are left to admins."""

    __tablename__ = "path_catalog_entry"
    __table_args__ = (
        CheckConstraint("kind IN ('container', 'exec')", name="kind"),
        CheckConstraint("source IN ('scan', 'admin')", name="source"),
        UniqueConstraint("kind", "path", name="uq_path_catalog_entry_kind_path"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(1024))
    source: Mapped[str] = mapped_column(String(8))
    note: Mapped[str] = mapped_column(String(255), default="")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    # When a scan last found the path (admins' entries: never).
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
