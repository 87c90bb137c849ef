"""The path catalog: a scan over a temporary tree shaped like CVMFS, admins' entries, and the
ranking of suggestions for a request."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.config import get_settings
from app.prodrequests import catalog
from app.prodrequests.mapping import to_request
from app.prodrequests.models import CatalogEntry

IMAGES = "/cvmfs/spd.jinr.ru/images"
MC = "/cvmfs/spd.jinr.ru/production/MC"


@pytest.fixture
def cvmfs(tmp_path):
    """tmp_path/cvmfs/spd.jinr.ru with two images (and a stray file) and three production folders."""
    root = tmp_path / "cvmfs" / "spd.jinr.ru"
    (root / "images").mkdir(parents=True)
    for name in ("spdroot-4.1.7.sif", "spdroot-dev-4.1.8.sif", "README.txt"):
        (root / "images" / name).write_text("x")
    for name in (
        "jpsi-P8-spdroot417.27GeV.V01",
        "jpsi-P8-spdroot417.27GeV.V02",
        "minbias-P8-spdroot418.10GeV.V01",
    ):
        (root / "production" / "MC" / name).mkdir(parents=True)
    return root


def rows(db) -> dict[tuple[str, str], str]:
    return {(e.kind, e.path.rsplit("/", 1)[-1]): e.source for e in db.session.scalars(select(CatalogEntry))}


def test_scan_finds_the_images_and_folders_and_follows_changes(app, db, cvmfs, clock):
    result = catalog.rescan()
    db.session.commit()
    assert (result.found, result.added, result.removed, result.unmounted) == (5, 5, 0, ())
    assert rows(db) == {
        ("container", "spdroot-4.1.7.sif"): "scan",
        ("container", "spdroot-dev-4.1.8.sif"): "scan",
        ("exec", "jpsi-P8-spdroot417.27GeV.V01"): "scan",
        ("exec", "jpsi-P8-spdroot417.27GeV.V02"): "scan",
        ("exec", "minbias-P8-spdroot418.10GeV.V01"): "scan",
    }
    assert all(e.seen_at == clock() for e in db.session.scalars(select(CatalogEntry)))

    (cvmfs / "images" / "spdroot-4.1.7.sif").unlink()
    (cvmfs / "production" / "MC" / "jpsi-P8-spdroot417.27GeV.V03").mkdir()
    clock.advance(3600)
    again = catalog.rescan()
    assert (again.found, again.added, again.removed) == (5, 1, 1)
    assert ("container", "spdroot-4.1.7.sif") not in rows(db)
    assert db.session.scalar(select(CatalogEntry).where(CatalogEntry.path.endswith("V01"))).seen_at == clock()
    assert again.summary == "Scan found 5 path(s): 1 new, 1 gone."


def test_an_unmounted_tree_keeps_its_entries(app, db, cvmfs):
    catalog.rescan()
    shutil.rmtree(cvmfs / "images")  # like CVMFS not mounted on this host
    result = catalog.rescan()
    assert result.removed == 0 and result.unmounted == (get_settings().catalog.container_globs[0],)
    assert ("container", "spdroot-dev-4.1.8.sif") in rows(db)
    assert "Not mounted here (entries kept)" in result.summary


def test_scans_leave_admins_entries_alone(app, db, cvmfs, make_user):
    admin = make_user("admin")
    entry = catalog.add_entry("container", f"{IMAGES}/spdroot-4.1.9.sif", "pre-release", admin)
    catalog.rescan()
    assert db.session.get(CatalogEntry, entry.id).source == "admin"
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "catalog.add"))
    assert event.target == f"{IMAGES}/spdroot-4.1.9.sif" and event.username == admin.username


@pytest.mark.parametrize(
    ("kind", "path", "field", "message"),
    [
        ("container", "images/x.sif", "path", "the path must be absolute"),
        ("container", "/cvmfs/spd.jinr.ru/../etc/x.sif", "path", "without spaces or '..'"),
        ("container", "/opt/images/x.sif", "path", "the path must be under /cvmfs/spd.jinr.ru/"),
        ("container", f"{IMAGES}/spdroot.tar", "path", r"a container image must match [^\s]+\.sif"),
        ("binary", f"{IMAGES}/x.sif", "kind", "kind must be one of container, exec"),
    ],
)
def test_admins_entries_follow_the_task_forms_rules(app, make_user, kind, path, field, message):
    with pytest.raises(catalog.EntryRefused) as caught:
        catalog.add_entry(kind, path, "", make_user("admin"))
    assert caught.value.errors == {field: [message]} or message in caught.value.errors[field][0]


def test_a_path_is_entered_once(app, make_user):
    admin = make_user("admin")
    catalog.add_entry("exec", f"{MC}/jpsi-P8-spdroot417.27GeV.V01/", "", admin)  # stored without the slash
    with pytest.raises(catalog.EntryRefused, match="in the catalog already"):
        catalog.add_entry("exec", f"{MC}/jpsi-P8-spdroot417.27GeV.V01", "", admin)


def test_versions_are_compared_by_their_digits(app):
    settings = get_settings()
    assert catalog.version_digits(f"{IMAGES}/spdroot-dev-4.1.7.sif", settings) == "417"
    assert catalog.version_digits(f"{MC}/minbias-P8-spdroot417-dev.10GeV.V01", settings) == "417"
    assert catalog.version_digits("spdroot-4.1.8", settings) == "418"
    assert catalog.version_digits("4.1.8", settings) == "418"
    assert catalog.version_digits(f"{MC}/jpsi-P8-spdroot418.27GeV.V01", settings) == "418"  # not 41827
    assert catalog.version_digits(f"{MC}/minbias-FTF-spdroot418.13.5GeV.V01", settings) == "418"
    assert catalog.version_digits(f"{IMAGES}/spdroot-4.1.10.sif", settings) == "4110"
    assert catalog.version_digits("latest", settings) == ""


def jpsi_418(**changes):
    record = {
        "id": 10, "title": "jpsi 4.1.8", "state": "New", "n_events": 20_000_000, "created": "2025-02-01T00:00:00Z",
        "tag": "jpsi-P8-spdroot418.27GeV", "software": "spdroot-4.1.8",
    }  # fmt: skip
    return to_request({**record, **changes})


@pytest.fixture
def entries(app, db):
    paths = {
        "container": ["spdroot-4.1.7.sif", "spdroot-4.1.8.sif", "spdroot-dev-4.1.8.sif", "spdroot-4.1.10.sif"],
        "exec": [
            "jpsi-P8-spdroot418.27GeV.V01", "jpsi-P8-spdroot418.27GeV.V02", "jpsi-P8-spdroot417.27GeV.V09",
            "jpsi-P8-spdroot418.10GeV.V01", "minbias-P8-spdroot418.27GeV.V01", "opencharm-P8-spdroot417.27GeV.V01",
        ],
    }  # fmt: skip
    for kind, names in paths.items():
        folder = IMAGES if kind == "container" else MC
        db.session.add_all(CatalogEntry(kind=kind, path=f"{folder}/{n}", source="scan") for n in names)
    db.session.commit()


def ranked(kind, request):
    return [(s.path.rsplit("/", 1)[-1], s.reason) for s in catalog.suggestions(kind, request)]


def test_ranking_for_a_request_puts_its_tag_and_version_first(entries):
    assert ranked("exec", jpsi_418()) == [
        ("jpsi-P8-spdroot418.27GeV.V02", "physics tag and software version match"),
        ("jpsi-P8-spdroot418.27GeV.V01", "physics tag and software version match"),
        ("minbias-P8-spdroot418.27GeV.V01", "software version matches"),
        ("jpsi-P8-spdroot418.10GeV.V01", "software version matches"),
        ("opencharm-P8-spdroot417.27GeV.V01", ""),
        ("jpsi-P8-spdroot417.27GeV.V09", ""),
    ]
    assert ranked("container", jpsi_418()) == [
        ("spdroot-dev-4.1.8.sif", "software version matches"),
        ("spdroot-4.1.8.sif", "software version matches"),
        ("spdroot-4.1.10.sif", ""),  # newest first among the rest: 4.1.10 after 4.1.9, not before 4.1.2
        ("spdroot-4.1.7.sif", ""),
    ]


def test_a_request_for_another_version_of_the_same_tag(entries):
    assert ranked("exec", jpsi_418(software="spdroot-4.1.7"))[:4] == [
        ("jpsi-P8-spdroot418.27GeV.V02", "physics tag matches"),
        ("jpsi-P8-spdroot418.27GeV.V01", "physics tag matches"),
        ("opencharm-P8-spdroot417.27GeV.V01", "software version matches"),
        ("jpsi-P8-spdroot417.27GeV.V09", "software version matches"),
    ]


def test_the_requests_own_paths_come_first_even_outside_the_catalog(entries):
    own = jpsi_418(
        container=f"{IMAGES}/spdroot-4.1.8-patched.sif", config_path=f"{MC}/jpsi-P8-spdroot418.27GeV.V01"
    )
    containers = catalog.suggestions("container", own)
    assert (containers[0].path, containers[0].source, containers[0].rank) == (
        f"{IMAGES}/spdroot-4.1.8-patched.sif",
        "request",
        0,
    )
    assert ranked("exec", own)[0] == ("jpsi-P8-spdroot418.27GeV.V01", "the request's own path")


def test_without_a_request_everything_is_listed_newest_first(entries):
    assert [name for name, _ in ranked("container", None)] == [
        "spdroot-dev-4.1.8.sif", "spdroot-4.1.10.sif", "spdroot-4.1.8.sif", "spdroot-4.1.7.sif",
    ]  # fmt: skip


def test_paths_missing_from_the_catalog_are_warned_about(entries):
    assert (
        catalog.unknown_path_warnings(f"{MC}/jpsi-P8-spdroot418.27GeV.V01/", f"{IMAGES}/spdroot-4.1.8.sif")
        == []
    )
    warnings = catalog.unknown_path_warnings(f"{MC}/jpsi-P8-spdroot418.27GeV.V07", f"{IMAGES}/other.sif")
    assert warnings == [
        f"path to execution files {MC}/jpsi-P8-spdroot418.27GeV.V07 is not in the path catalog "
        "(CVMFS scan and admin entries): check that it exists on CVMFS",
        f"path to container {IMAGES}/other.sif is not in the path catalog (CVMFS scan and admin entries): "
        "check that it exists on CVMFS",
    ]


def test_an_empty_catalog_warns_about_nothing(app):
    assert catalog.unknown_path_warnings(f"{MC}/anything.V01", f"{IMAGES}/any.sif") == []
