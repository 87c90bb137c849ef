"""Where the panel's resources (templates, static, migrations) and its instance folder live.

The instance folder holds everything site-specific: config.toml, the SQLite database, keys and backups,
all private to the panel's user (folders 0700, files 0600).
Resolution order: --instance DIR > PRODPANEL_INSTANCE > next to the executable when frozen > ./instance.
"""

import contextlib
import logging
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def resource_root() -> Path:
    """Folder holding templates/ and static/: the PyInstaller bundle, or the repository root."""
    if is_frozen():
        return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
    return Path(__file__).resolve().parent.parent


def instance_dir(cli_value: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if cli_value:
        return Path(cli_value).expanduser().resolve()
    if env.get("PRODPANEL_INSTANCE"):
        return Path(env["PRODPANEL_INSTANCE"]).expanduser().resolve()
    if is_frozen():
        return Path(sys.executable).resolve().parent / "instance"
    return Path.cwd() / "instance"


def ensure_private_dir(path: Path) -> Path:
    """Create the folder (and parents) and restrict it to the owner: it holds keys and tokens. An
    existing folder that other users could enter is restricted too, with a warning."""
    if path.is_dir():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was open to other users (mode %04o); restricted to 0700", path, mode)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def create_private_file(path: Path) -> None:
    """Create `path` empty, for its owner only, unless it exists (SQLite gives a database's -wal and
    -shm files the database file's mode, so creating the database this way keeps all three private)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def write_private_file(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, readable and writable by its owner only."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # O_EXCL below: never reuse a file with wider modes
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def keep_private(folder: Path) -> list[Path]:
    """From now on this process creates files for its owner only (umask 077: the database and its
    -wal/-shm, backups, the simulator's state); warns about anything in the instance folder that
    other users can read or enter, and returns those paths (the shipped example config holds no secret)."""
    os.umask(0o077)
    exposed = []
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(root) / name
            if path.name == "config.example.toml":
                continue
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
                exposed.append(path)
                log.warning(
                    "%s is open to other users (mode %04o); restrict it: chmod go= %s",
                    path, stat.S_IMODE(mode), path,
                )  # fmt: skip
    return exposed
