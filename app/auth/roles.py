"""The panel's roles, ordered from least to most powerful, and how IAM groups map to them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.auth.models import User

ROLES: tuple[str, ...] = ("viewer", "manager", "admin")


def role_rank(role: str) -> int:
    return ROLES.index(role)


def role_at_least(user: User | None, role: str) -> bool:
    """True when the user is active and holds `role` or a stronger one."""
    return bool(user is not None and user.active and role_rank(user.role) >= role_rank(role))


def normalize_groups(value: Any) -> list[str]:
    """Group names as plain paths: IAM's `groups` ("spd/production") and WLCG's ("/spd/production")."""
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list):
        return []
    return [str(g).strip().strip("/") for g in value if str(g).strip("/ ")]


def role_for_groups(groups: list[str], role_map: dict[str, str]) -> str | None:
    """The strongest role any of the groups maps to, or None when none does."""
    roles = [role_map[g] for g in groups if g in role_map and role_map[g] in ROLES]
    return max(roles, key=role_rank) if roles else None
