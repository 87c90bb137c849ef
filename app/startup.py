"""Start-up failures an operator can fix (a bad configuration, a folder or file the panel cannot use, a
database it cannot open or does not know, a port taken): one line saying what and where, exit code 2,
and nothing changed. `--debug` or PRODPANEL_DEBUG=1 lets the original exception through, traceback
and all."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import NoReturn

import click
from flask.cli import ScriptInfo


class StartupError(click.ClickException):
    exit_code = 2


def debugging() -> bool:
    context = click.get_current_context(silent=True)
    info = context.find_object(ScriptInfo) if context else None
    return os.environ.get("PRODPANEL_DEBUG", "") not in ("", "0") or bool(info and info.data.get("debug"))


def refuse(message: str, cause: BaseException) -> NoReturn:
    """End the command with `message` (exit code 2), or with `cause` itself when debugging."""
    if debugging():
        raise cause
    raise StartupError(message) from cause


@contextlib.contextmanager
def failing_as(what: str) -> Iterator[None]:
    """An OSError or a database driver's error inside the block ends the command as `what: reason`."""
    from sqlalchemy.exc import DBAPIError  # here: `prodpanel --help` loads no database layer

    try:
        yield
    except (OSError, DBAPIError) as exc:
        refuse(f"{what}: {reason(exc)}", exc)


def reason(exc: BaseException) -> str:
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        lines = str(exc.orig).strip().splitlines()
        return lines[0] if lines else type(exc.orig).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__
