"""The token vault: IAM tokens stored sealed, refreshed on the ID token's expiry, handed to PanDA.

The module itself satisfies the PanDA client's `TokenSource` protocol (`token_for(user)`).
"""

from app.tokens.errors import TokenUnavailable
from app.tokens.services import (
    delete_tokens,
    health,
    refresh_now,
    store_tokens,
    token_for,
    valid_until,
)

__all__ = [
    "TokenUnavailable",
    "delete_tokens",
    "health",
    "refresh_now",
    "store_tokens",
    "token_for",
    "valid_until",
]
