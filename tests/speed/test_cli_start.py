"""`prodpanel --help` loads neither the app nor the domains' command groups, and lists them as they are."""

import importlib
import subprocess
import sys

from app.cli import LAZY_GROUPS, main
from tests.helpers import run_cli


def test_help_imports_no_app_database_or_password_code():
    code = "import sys, app.cli; print(sorted(set(sys.modules) & {NAMES}))"
    names = {"sqlalchemy", "app.factory", "app.tasks", "app.auth.services", "argon2", "alembic", "waitress", "pandasim"}
    out = subprocess.run([sys.executable, "-c", code.replace("{NAMES}", repr(names))], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_help_lists_every_group_with_its_own_help_line():
    result = run_cli("--help")
    assert result.exit_code == 0
    for name, (target, line) in LAZY_GROUPS.items():
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert command.name == name and command.get_short_help_str(200) == line
        assert name in result.output
    assert run_cli("users", "--help").exit_code == 0  # a lazy group still runs
    assert {"serve", "db", "routes", "shell", "config-example"} <= set(main.list_commands(None))  # type: ignore[arg-type]


def test_the_binary_bundles_the_groups_imported_by_name():
    from pathlib import Path

    spec = (Path(__file__).resolve().parents[2] / "packaging" / "prodpanel.spec").read_text()
    for target, _ in LAZY_GROUPS.values():
        assert f'"{target.split(":")[0]}"' in spec
