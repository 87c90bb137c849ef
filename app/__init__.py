"""The SPD production panel. `create_app` (app/factory.py) is imported on first use, so that a command
that needs no app, such as `prodpanel --help`, does not load every domain first."""

from typing import TYPE_CHECKING, Any

from app.version import VERSION

if TYPE_CHECKING:
    from app.factory import create_app

__all__ = ["VERSION", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from app.factory import create_app

        return create_app
    raise AttributeError(f"module 'app' has no attribute {name!r}")
