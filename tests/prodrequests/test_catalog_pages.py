"""The admins' path-catalog page: list, add (refusals keep what was typed), remove, rescan now."""

from __future__ import annotations

from html import unescape

from sqlalchemy import select

from app.prodrequests.models import CatalogEntry
from tests.helpers import post_form

SIF = "/cvmfs/spd.jinr.ru/images/spdroot-4.1.9.sif"


def test_only_admins_see_and_change_the_catalog(client, login_as, db):
    login_as("manager")
    assert client.get("/requests/catalog").status_code == 403
    for url in ("/requests/catalog", "/requests/catalog/rescan", "/requests/catalog/1/delete"):
        assert (
            post_form(client, url, {"kind": "container", "path": SIF}, token_page="/requests/").status_code
            == 403
        )
    assert db.session.scalar(select(CatalogEntry)) is None
    assert 'id="catalog-link"' not in client.get("/requests/").get_data(as_text=True)


def test_an_admin_adds_and_removes_a_path(client, login_as, db):
    login_as("admin")
    assert 'id="catalog-link"' in client.get("/requests/").get_data(as_text=True)
    response = post_form(
        client,
        "/requests/catalog",
        {"kind": "container", "path": SIF, "note": "pre-release"},
        token_page="/requests/",
    )
    assert response.status_code == 302
    page = unescape(client.get("/requests/catalog").get_data(as_text=True))
    assert f"Added {SIF}." in page and f"<code>{SIF}</code>" in page and "pre-release" in page
    entry = db.session.scalar(select(CatalogEntry))
    assert (entry.source, entry.kind) == ("admin", "container")
    assert (
        post_form(client, f"/requests/catalog/{entry.id}/delete", {}, token_page="/requests/").status_code
        == 302
    )
    assert db.session.scalar(select(CatalogEntry)) is None
    assert (
        post_form(client, f"/requests/catalog/{entry.id}/delete", {}, token_page="/requests/").status_code
        == 404
    )


def test_a_refused_path_keeps_what_was_typed(client, login_as, db):
    login_as("admin")
    typed = {"kind": "container", "path": "/opt/images/mine.sif", "note": "my note"}
    response = post_form(client, "/requests/catalog", typed, token_page="/requests/")
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 400
    assert "the path must be under /cvmfs/spd.jinr.ru/" in html
    assert 'value="/opt/images/mine.sif"' in html and 'value="my note"' in html
    assert '<option selected value="container">' in html
    empty = post_form(client, "/requests/catalog", {"kind": "exec", "path": ""}, token_page="/requests/")
    assert empty.status_code == 400 and "enter a path" in empty.get_data(as_text=True)
    assert db.session.scalar(select(CatalogEntry)) is None


def test_rescan_now_scans_the_configured_tree(client, login_as, db, tmp_path):
    images = tmp_path / "cvmfs" / "spd.jinr.ru" / "images"
    images.mkdir(parents=True)
    (images / "spdroot-4.1.8.sif").write_text("")
    login_as("admin")
    response = post_form(
        client, "/requests/catalog/rescan", {}, token_page="/requests/", follow_redirects=True
    )
    html = unescape(response.get_data(as_text=True))
    assert "Scan found 1 path(s): 1 new, 0 gone." in html
    assert "production/MC/*" in html and "Not mounted here (entries kept)" in html  # no MC folder
    assert db.session.scalar(select(CatalogEntry.path)) == str(images / "spdroot-4.1.8.sif")
