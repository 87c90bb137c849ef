"""Reading JWT claims without verification: only for tokens that came straight from the issuer's
token endpoint over TLS (OIDC Core 3.1.3.7: TLS validation may replace the signature check there)."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

# A JWT wherever it appears: three base64url parts, the header starting with '{"' (= eyJ); the
# signature may be empty (alg "none"). The one pattern that keeps tokens out of logs and call records.
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def _part(token: str, index: int) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        value = json.loads(base64.urlsafe_b64decode(parts[index] + "=" * (-len(parts[index]) % 4)))
    except (ValueError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS, or {} when the string is not one (e.g. an opaque token)."""
    return _part(token, 1)


def unverified_header(token: str) -> dict[str, Any]:
    """The header of a compact JWS (`kid`, `alg`), or {} when the string is not one."""
    return _part(token, 0)


def expiry(token: str) -> datetime | None:
    exp = unverified_claims(token).get("exp")
    if isinstance(exp, int | float):
        return datetime.fromtimestamp(exp, UTC)
    return None
