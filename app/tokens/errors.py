"""Errors of the token vault."""


class TokenUnavailable(Exception):
    """No valid PanDA token can be produced for the user; `reason` says why, in words for the user."""

    def __init__(self, reason: str, *, relogin: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.relogin = relogin  # True when only a new login (or re-link) can fix it
