"""Errors of the token vault.

`TokenUnavailable` is what `token_for` raises when it cannot give a token; its `relogin` flag says
whether only the user can fix it (log in or link again). `IamUnreachable` is the one transient
case: SPD-IAM does not answer and no still-valid token is left. Nothing is wrong with the user's
grant, so callers wait instead of failing (a launch stays pending and is tried again) and never
tell the user to log in again.
"""

from __future__ import annotations

from datetime import datetime


class TokenUnavailable(Exception):
    """No valid PanDA token can be produced for the user; `reason` says why, in words for the user."""

    def __init__(self, reason: str, *, relogin: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.relogin = relogin  # True when only a new login (or re-link) can fix it


class IamUnreachable(TokenUnavailable):
    """SPD-IAM has not answered since `since` and the user's last token has expired: try again after
    `retry_after` seconds (the vault does not call SPD-IAM again before then)."""

    def __init__(self, since: datetime, retry_after: float) -> None:
        super().__init__(
            f"SPD-IAM unreachable since {since:%Y-%m-%d %H:%M:%S} UTC and no valid token is left; "
            "the panel tries again when SPD-IAM answers"
        )
        self.since = since
        self.retry_after = retry_after
