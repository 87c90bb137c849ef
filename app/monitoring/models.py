"""What the task tables keep per user: the columns each one chose ("Select field")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model


class UserPreference(Model):
    """One named choice of a user, e.g. ``columns.tasks`` -> the keys of the columns shown."""

    __tablename__ = "user_preference"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
