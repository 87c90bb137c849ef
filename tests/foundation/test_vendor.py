"""The vendored browser libraries are exactly what frontend/package-lock.json pins, and pages load
nothing from the internet.

static/vendor/ is produced by `make vendor` (npm ci + frontend/copy-vendor.mjs) and committed;
these tests catch a hand-edited file, a version bumped in one place only, and a CDN link.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
STATIC = ROOT / "static"
VENDOR = STATIC / "vendor"
TEMPLATES = ROOT / "templates"

# What base.html must load: the shell does not work without these.
REQUIRED_IN_BASE = {
    "vendor/bootstrap/bootstrap.min.css",
    "vendor/bootstrap/bootstrap.bundle.min.js",
    "vendor/htmx/htmx.min.js",
    "css/app.css",
    "js/app.js",
}

REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
URL_ATTR = re.compile(
    r"""\b(src|href|action|formaction|poster|data|srcset|hx-(?:get|post|put|patch|delete))\s*=\s*(["'])(.*?)\2""",
    re.IGNORECASE | re.DOTALL,
)
CSS_URL = re.compile(r"""url\(\s*(["']?)(.*?)\1\s*\)""", re.IGNORECASE | re.DOTALL)
CSS_IMPORT = re.compile(r"""@import\s+(?:url\()?\s*["']?([^"')\s;]+)""", re.IGNORECASE)
STATIC_URL_FOR = re.compile(r"""url_for\(\s*["']static["']\s*,\s*filename\s*=\s*["']([^"']+)["']""")


def _manifest() -> dict:
    return json.loads((VENDOR / "MANIFEST.json").read_text())


def _lock() -> dict:
    return json.loads((FRONTEND / "package-lock.json").read_text())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _vendored_files() -> set[str]:
    return {entry["file"] for pkg in _manifest()["packages"].values() for entry in pkg["files"]}


def test_manifest_versions_match_package_json_and_lock():
    manifest = _manifest()["packages"]
    lock = _lock()["packages"]
    pinned = json.loads((FRONTEND / "package.json").read_text())["dependencies"]

    assert set(manifest) == set(pinned), "every pinned package is vendored and nothing else"
    for pkg, info in manifest.items():
        locked = lock[f"node_modules/{pkg}"]
        assert info["version"] == locked["version"] == pinned[pkg], pkg
        assert info["integrity"] == locked["integrity"], pkg


def test_vendored_files_match_manifest_hashes():
    for pkg, info in _manifest()["packages"].items():
        assert info["files"], f"{pkg} lists no files"
        for entry in info["files"]:
            path = VENDOR / entry["file"]
            assert path.is_file(), f"{entry['file']} is in MANIFEST.json but missing"
            assert _sha256(path) == entry["sha256"], f"{entry['file']} differs from MANIFEST.json"


def test_no_unlisted_files_in_vendor():
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()}
    assert on_disk - {"MANIFEST.json"} == _vendored_files()


def test_pinned_majors_are_the_ones_the_code_is_written_for():
    # htmx 4 changed attribute inheritance (CSRF header!) and error swapping: upgrading is a
    # deliberate change, not a lock refresh.
    versions = {pkg: info["version"] for pkg, info in _manifest()["packages"].items()}
    assert versions["bootstrap"] == "5.3.8"
    assert versions["chart.js"] == "4.6.1"
    assert versions["htmx.org"].startswith("2.0.")


def test_base_template_loads_only_local_vendored_assets():
    base = (TEMPLATES / "base.html").read_text()
    referenced = set(STATIC_URL_FOR.findall(base))
    missing = REQUIRED_IN_BASE - referenced
    assert not missing, f"base.html does not load {sorted(missing)}"

    vendored = _vendored_files()
    for filename in referenced:
        assert (STATIC / filename).is_file(), f"base.html refers to missing static/{filename}"
        if filename.startswith("vendor/"):
            assert filename.removeprefix("vendor/") in vendored, f"{filename} is not in MANIFEST.json"

    # Every <script src> / <link href> goes through url_for('static', …), i.e. is served locally.
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", base, re.IGNORECASE):
        for _attr, _q, value in URL_ATTR.findall(tag):
            assert "url_for('static'" in value or 'url_for("static"' in value, (
                f"non-static asset in base.html: {tag}"
            )


@pytest.mark.parametrize(
    "template", sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.html")) or ["<none>"]
)
def test_templates_load_nothing_remote(template):
    assert template != "<none>", "no templates found"
    source = (TEMPLATES / template).read_text()
    remote = [value for _attr, _q, value in URL_ATTR.findall(source) if REMOTE.match(value)]
    remote += [value for _q, value in CSS_URL.findall(source) if REMOTE.match(value)]
    assert not remote, f"{template} loads from the internet: {remote}"
    assert "@import" not in source


def test_stylesheets_load_nothing_remote():
    sheets = sorted(p for p in STATIC.rglob("*.css") if p.is_file())
    assert sheets
    for sheet in sheets:
        text = sheet.read_text()
        remote = [value for _q, value in CSS_URL.findall(text) if REMOTE.match(value)]
        remote += [value for value in CSS_IMPORT.findall(text) if REMOTE.match(value)]
        assert not remote, f"{sheet.relative_to(ROOT)} loads from the internet: {remote}"


def test_own_scripts_mention_no_remote_url():
    scripts = sorted(p for p in (STATIC / "js").rglob("*.js") if p.is_file())
    assert scripts
    for script in scripts:
        assert not re.search(r"https?://", script.read_text()), f"{script.relative_to(ROOT)}"


def test_vendored_scripts_point_to_no_remote_source_map():
    for script in sorted(p for p in VENDOR.rglob("*.js") if p.is_file()):
        for target in re.findall(r"sourceMappingURL=(\S+)", script.read_text()):
            assert not REMOTE.match(target), f"{script.relative_to(ROOT)}: {target}"


def test_node_modules_is_not_committed():
    ignore = (FRONTEND / ".gitignore").read_text().split()
    assert "node_modules/" in ignore
