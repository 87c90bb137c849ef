"""The path catalog: container images and execution-file paths the task form suggests.

Entries are found by scanning the configured globs on CVMFS (`[catalog]`, only where the glob's fixed
folder is mounted) and entered by admins for hosts without CVMFS. Suggestions are ranked for the
selected request: its own paths first, then matching physics tag and software version.
`app.prodrequests.jobs.rescan_catalog` is the periodic refresh (a scheduler job); admins can also rescan at once.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select

from app import clock
from app.audit.services import record
from app.auth.models import User
from app.config import Settings, get_settings
from app.extensions import db
from app.prodrequests.models import KINDS, CatalogEntry
from app.prodrequests.schema import ProductionRequest
from app.tasks import naming

LABELS = {"container": "path to container", "exec": "path to execution files"}
_MAGIC = re.compile(r"[*?[]")


class EntryRefused(Exception):
    """An admin's entry breaks a rule; `errors` maps form fields to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for ms in errors.values() for m in ms))
        self.errors = errors


@dataclass(frozen=True)
class ScanResult:
    found: int
    added: int
    removed: int
    unmounted: tuple[str, ...]  # globs whose fixed folder does not exist here: their rows are kept

    @property
    def summary(self) -> str:
        text = f"Scan found {self.found} path(s): {self.added} new, {self.removed} gone."
        if self.unmounted:
            text += f" Not mounted here (entries kept): {', '.join(self.unmounted)}."
        return text


@dataclass(frozen=True)
class Suggestion:
    path: str
    source: str  # "request" (the request's own path) | "scan" | "admin"
    rank: int  # RANKS index: 0 the request's own path … 4 no match
    reason: str  # RANKS[rank]: why it ranks where it does


RANKS = (
    "the request's own path",
    "physics tag and software version match",
    "physics tag matches",
    "software version matches",
    "",
)


# --- scanning --------------------------------------------------------------------------------------


def _fixed_folder(pattern: str) -> str:
    """The part of a glob before its first wildcard: /cvmfs/spd.jinr.ru/images/*.sif → /cvmfs/spd.jinr.ru/images."""
    fixed: list[str] = []
    for part in PurePosixPath(pattern).parts:
        if _MAGIC.search(part):
            break
        fixed.append(part)
    return str(PurePosixPath(*fixed)) if fixed else ""


def _globs(settings: Settings) -> dict[str, list[str]]:
    return {"container": settings.catalog.container_globs, "exec": settings.catalog.exec_globs}


def rescan(settings: Settings | None = None) -> ScanResult:
    """Scan the configured globs and bring the scan's rows up to date; admins' rows are left alone.

    A glob whose fixed folder is missing (CVMFS not mounted here) keeps its rows; a row no configured
    glob matches any more is removed. Flushes."""
    settings = settings or get_settings()
    now = clock.now()
    found: dict[str, set[str]] = {kind: set() for kind in KINDS}
    mounted: dict[str, list[str]] = {kind: [] for kind in KINDS}
    unmounted: list[str] = []
    for kind, patterns in _globs(settings).items():
        for pattern in patterns:
            if not _is_mounted(_fixed_folder(pattern)):
                unmounted.append(pattern)
                continue
            mounted[kind].append(pattern)
            found[kind].update(glob.glob(pattern))
    added = removed = 0
    rows = {(row.kind, row.path): row for row in db.session.scalars(select(CatalogEntry))}
    for kind, paths in found.items():
        for path in paths:
            row = rows.get((kind, path))
            if row is None:
                db.session.add(CatalogEntry(kind=kind, path=path, source="scan", created_at=now, seen_at=now))
                added += 1
            elif row.source == "scan":
                row.seen_at = now
    configured = _globs(settings)
    for (kind, path), row in rows.items():
        if row.source != "scan" or path in found[kind]:
            continue
        if _matches(path, mounted[kind]) or not _matches(path, configured[kind]):
            db.session.delete(row)
            removed += 1
    db.session.flush()
    return ScanResult(sum(len(p) for p in found.values()), added, removed, tuple(unmounted))


def _is_mounted(folder: str) -> bool:
    try:
        return folder.startswith("/") and Path(folder).is_dir()
    except OSError:  # an automount that fails (CVMFS misconfigured): as if not mounted
        return False


def _matches(path: str, patterns: list[str]) -> bool:
    return any(PurePosixPath(path).match(pattern) for pattern in patterns)


# --- admins' entries -------------------------------------------------------------------------------


def entries() -> list[CatalogEntry]:
    return list(db.session.scalars(select(CatalogEntry).order_by(CatalogEntry.kind, CatalogEntry.path)))


def path_problem(kind: str, path: str, settings: Settings) -> str | None:
    """Why `path` cannot be a `kind` path of a task (the task form's own rules), or None."""
    roots = settings.tasks.cvmfs_roots
    if not path.startswith("/") or ".." in PurePosixPath(path).parts or re.search(r"\s", path):
        return "the path must be absolute, without spaces or '..'"
    if not any(path.startswith(root.rstrip("/") + "/") for root in roots):
        return f"the path must be under {', '.join(roots)}"
    if kind == "container" and not re.fullmatch(settings.tasks.container_regex, path):
        return f"a container image must match {settings.tasks.container_regex}"
    return None


def add_entry(kind: str, path: str, note: str, user: User) -> CatalogEntry:
    """An admin's entry (for hosts where CVMFS is not mounted). Raises `EntryRefused`; flushes."""
    settings = get_settings()
    path = path.strip().rstrip("/") if kind == "exec" else path.strip()
    errors: dict[str, list[str]] = {}
    if kind not in KINDS:
        errors["kind"] = [f"kind must be one of {', '.join(KINDS)}"]
    elif problem := path_problem(kind, path, settings):
        errors["path"] = [problem]
    else:
        existing = db.session.scalar(
            select(CatalogEntry).where(CatalogEntry.kind == kind, CatalogEntry.path == path)
        )
        if existing is not None:
            by = "a CVMFS scan" if existing.source == "scan" else "an admin"
            errors["path"] = [f"{path} is in the catalog already (entered by {by})"]
    if errors:
        raise EntryRefused(errors)
    entry = CatalogEntry(kind=kind, path=path, source="admin", note=note.strip(), created_by_id=user.id)
    db.session.add(entry)
    db.session.flush()
    record("catalog.add", target=path, details={"kind": kind}, user=user)
    return entry


def delete_entry(entry_id: int, user: User) -> CatalogEntry | None:
    """Remove an entry (a scan's row comes back at the next scan if the path still exists); flushes."""
    entry = db.session.get(CatalogEntry, entry_id)
    if entry is None:
        return None
    db.session.delete(entry)
    db.session.flush()
    record(
        "catalog.delete", target=entry.path, details={"kind": entry.kind, "source": entry.source}, user=user
    )
    return entry


# --- ranking and checks ----------------------------------------------------------------------------


def version_digits(text: str, settings: Settings) -> str:
    """The digits of the software version in `text` ("spdroot-dev-4.1.7.sif" → "417"; "4.1.7" → "417")."""
    last = text.rstrip("/").rsplit("/", 1)[-1]
    match = re.search(settings.catalog.version_regex, last)
    if match is not None:
        value = match.group(1) if match.re.groups else match.group(0)
    elif re.fullmatch(r"[vV]?\d+(?:\.\d+)*", last.strip()):
        value = last
    else:
        return ""
    return re.sub(r"\D", "", value)


def physics_tag(path: str, settings: Settings) -> str:
    """The physics tag of an execution path, or "" when it has none."""
    try:
        return naming.physics_tag_from_path(path, naming.NamingRules.from_settings(settings.tasks))
    except naming.NamingError:
        return ""


def _natural(path: str) -> list[Any]:
    return [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", path)]


def suggestions(
    kind: str, request: ProductionRequest | None, settings: Settings | None = None
) -> list[Suggestion]:
    """Every catalog path of `kind`, best first for `request`: the request's own path, then paths with
    its physics tag and software version, its physics tag, its software version; newest first within."""
    settings = settings or get_settings()
    rows = db.session.scalars(select(CatalogEntry).where(CatalogEntry.kind == kind)).all()
    known = {row.path: row.source for row in rows}
    own = ""
    tag = version = ""
    if request is not None:
        own = request.container_path if kind == "container" else request.exec_path
        tag = request.physics_tag or (physics_tag(request.exec_path, settings) if request.exec_path else "")
        version = version_digits(request.software_version, settings) or version_digits(
            request.container_path or request.exec_path, settings
        )

    def rank(path: str) -> int:
        if own and path == own:
            return 0
        same_tag = kind == "exec" and bool(tag) and physics_tag(path, settings) == tag
        same_version = bool(version) and version_digits(path, settings) == version
        return 1 if same_tag and same_version else 2 if same_tag else 3 if same_version else 4

    paths = sorted(set(known) | ({own} if own else set()), key=_natural, reverse=True)
    ranked = sorted(((rank(p), p) for p in paths), key=lambda item: item[0])  # stable: newest first within
    return [Suggestion(path, known.get(path, "request"), r, RANKS[r]) for r, path in ranked]


def unknown_path_warnings(exec_path: str, container_path: str) -> list[str]:
    """A warning for each path the catalog does not list (only where the catalog lists paths of that kind)."""
    warnings = []
    for kind, path in (("exec", exec_path.rstrip("/")), ("container", container_path)):
        if not path:
            continue
        listed = db.session.scalars(
            select(CatalogEntry.path).where(CatalogEntry.kind == kind).limit(1)
        ).first()
        if listed is None:
            continue
        known = db.session.scalar(
            select(CatalogEntry.id).where(CatalogEntry.kind == kind, CatalogEntry.path == path)
        )
        if known is None:
            warnings.append(
                f"{LABELS[kind]} {path} is not in the path catalog (CVMFS scan and admin entries): "
                "check that it exists on CVMFS"
            )
    return warnings
