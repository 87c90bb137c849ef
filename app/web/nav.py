"""The main navigation: an entry appears only when its page exists and the user's role may see it."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from flask import current_app

from app.auth.roles import role_at_least

if TYPE_CHECKING:
    from app.auth.models import User


class NavItem(NamedTuple):
    label: str
    endpoint: str
    min_role: str


NAV: tuple[NavItem, ...] = (
    NavItem("Tasks", "tasks.index", "viewer"),
    NavItem("Chains", "chains.index", "viewer"),
    NavItem("Launches", "launches.index", "viewer"),
    NavItem("Successful tasks", "monitoring.successful", "viewer"),
    NavItem("Statistics", "statistics.index", "viewer"),
    NavItem("Requests", "prodrequests.index", "viewer"),
    NavItem("PanDA log", "panda.calls", "manager"),
    NavItem("Tokens", "tokens.index", "viewer"),
    NavItem("Users", "auth.users", "admin"),
    NavItem("Audit", "audit.index", "admin"),
)


def visible_nav(user: User | None) -> list[NavItem]:
    return [i for i in NAV if i.endpoint in current_app.view_functions and role_at_least(user, i.min_role)]
