"""The panel's roles, ordered from least to most powerful."""

ROLES: tuple[str, ...] = ("viewer", "manager", "admin")


def role_rank(role: str) -> int:
    return ROLES.index(role)


def role_at_least(user, role: str) -> bool:
    """True when the user is active and holds `role` or a stronger one."""
    return bool(user is not None and user.active and role_rank(user.role) >= role_rank(role))
