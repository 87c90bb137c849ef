"""Where the panel's resources (templates, static, migrations) and its instance folder live.

The instance folder holds everything site-specific: config.toml, the SQLite database, keys and backups.
Resolution order: --instance DIR > PRODPANEL_INSTANCE > next to the executable when frozen > ./instance.
"""

import os
import sys
from collections.abc import Mapping
from pathlib import Path


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
    """Create the folder (and parents) and restrict it to the owner: it holds keys and tokens."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path
