"""Who a user is (identity and role) and, separately, how a local account proves it (password)."""

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.db import UTCDateTime
from app.extensions import Model

LOCAL_ISSUER = "local"


class User(Model):
    """An identity: local accounts use issuer 'local' and subject = username; IAM users their (iss, sub)."""

    __tablename__ = "user"
    __table_args__ = (
        UniqueConstraint("iss", "sub", name="uq_user_iss_sub"),
        CheckConstraint("role IN ('viewer', 'manager', 'admin')", name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    iss: Mapped[str] = mapped_column(String(300), default=LOCAL_ISSUER)
    sub: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set for the first-start administrator and for accounts an admin creates: the next login must
    # choose a new password before anything else.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # The IANA zone the user enters launch times in ("": not chosen yet, the browser's zone is offered).
    time_zone: Mapped[str] = mapped_column(String(64), default="")

    password: Mapped["LocalPassword | None"] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    @property
    def is_local(self) -> bool:
        return self.iss == LOCAL_ISSUER

    @property
    def name(self) -> str:
        return self.display_name or self.username

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"


class LocalPassword(Model):
    """The argon2 hash of a local account's password."""

    __tablename__ = "local_password"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    hash: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    user: Mapped[User] = relationship(back_populates="password")


class LoginFailure(Model):
    """One counted login attempt of a rate limiter (app.auth.services.LoginRateLimiter), in the
    database so that every `serve` process counts against the same budget. `username` "" is the
    client address's count whatever the usernames. Rows older than the limiter's window are deleted."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_key", "limiter", "address", "username", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    limiter: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(150))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
