"""mypy (run by `make test`) covers every domain's services module, besides what [tool.mypy] lists."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_services_module_is_type_checked():
    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    covered = {ROOT / f for f in files}
    services = sorted((ROOT / "app").glob("*/services.py"))
    missing = [
        str(path.relative_to(ROOT))
        for path in services
        if path not in covered and path.parent not in covered and "simulator" not in path.parts
    ]
    assert services and not missing, f"add to [tool.mypy] files in pyproject.toml: {missing}"
