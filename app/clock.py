"""The one source of "now" for the panel; tests freeze and advance it through the `clock` fixture."""

from collections.abc import Callable
from datetime import UTC, datetime


def _system_now() -> datetime:
    return datetime.now(UTC)


_source: Callable[[], datetime] = _system_now


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    return _source()


def set_source(source: Callable[[], datetime] | None) -> None:
    """Replace the time source (tests only); None restores the system clock."""
    global _source
    _source = source or _system_now
