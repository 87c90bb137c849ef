"""A token source for unit tests of the PanDA client (the panel's is the token vault)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.panda.client import TokenSource
from app.tokens.errors import TokenUnavailable

if TYPE_CHECKING:
    from app.auth.models import User


class FixedTokens:
    """Gives every user the same token, or refuses with `fail` (as the vault does, TokenUnavailable)."""

    def __init__(self, token: str = "tok-abc", fail: str | None = None) -> None:
        self.token, self.fail = token, fail

    def token_for(self, user: User) -> str:
        if self.fail:
            raise TokenUnavailable(self.fail)
        return self.token


# Checked by mypy: the fake implements the protocol the PanDA client uses.
_checked: TokenSource = FixedTokens()
