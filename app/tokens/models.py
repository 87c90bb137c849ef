"""Stored OAuth tokens (sealed with AES-GCM, see app/tokens/crypto.py) and their health."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.auth.models import User
from app.db import UTCDateTime
from app.extensions import Model

# What each sealed column holds; also the "purpose" in the ciphertext's associated data.
SEALED_KINDS = ("refresh_token", "id_token", "access_token", "exchanged_token")


class UserToken(Model):
    """One grant of one user: the tokens from the IAM login, from a device-code link, or sandbox tokens.

    Token values exist only as `*_sealed` ciphertexts; expiries are plain so pages can show health.
    """

    __tablename__ = "user_token"
    __table_args__ = (
        UniqueConstraint("user_id", "source", name="uq_user_token_user_id_source"),
        CheckConstraint("source IN ('login', 'device-link', 'sandbox')", name="source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    issuer: Mapped[str] = mapped_column(String(300), default="")
    client_id: Mapped[str] = mapped_column(String(200), default="")  # the client the refresh token belongs to
    subject: Mapped[str] = mapped_column(String(300), default="")
    scope: Mapped[str] = mapped_column(String(500), default="")
    groups: Mapped[list] = mapped_column(JSON, default=list)

    refresh_token_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    id_token_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    access_token_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    exchanged_token_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    id_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refresh_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    exchanged_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    obtained_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)  # login / link time
    last_refresh_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refresh_count: Mapped[int] = mapped_column(Integer, default=0)
    needs_relogin: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str] = mapped_column(String(500), default="")

    panda_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    panda_is_production: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    panda_check_message: Mapped[str] = mapped_column(String(500), default="")

    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)

    user: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return f"<UserToken user={self.user_id} {self.source}>"


class DeviceLink(Model):
    """A device-code link in progress (app/tokens/device.py): one per user, until approved, cancelled
    or replaced. In the database so that any `serve` process can poll what another started; the
    device code is a secret and exists only sealed (purpose "device-link:device_code")."""

    __tablename__ = "device_link"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    user_code: Mapped[str] = mapped_column(String(64))
    verification_uri: Mapped[str] = mapped_column(String(500))
    verification_uri_complete: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    interval_s: Mapped[int] = mapped_column(Integer)
    device_code_sealed: Mapped[bytes] = mapped_column(LargeBinary)
