"""The read-only parts: statistics and the error summary (the stats pages' services), production
requests (spd-requests, through the panel's cache), and the audit trail for admins."""

from __future__ import annotations

from app.audit.services import record


def test_statistics_and_error_summary(api):
    viewer = api("viewer", "read")
    stats = viewer.get("/api/v1/statistics")
    assert stats.status_code == 200 and stats.json["total"]["tasks"] == 0 and "Step" in stats.json["splits"]
    since = viewer.get("/api/v1/statistics?since=2026-01-01").json
    assert since["since"] == "2026-01-01" and since["since_total"]["tasks"] == 0
    bad = viewer.get("/api/v1/statistics?since=yesterday")
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "since"
    assert viewer.get("/api/v1/statistics/errors").json == {"groups": []}
    assert viewer.get("/api/v1/statistics/errors?task=x").status_code == 422


def test_my_alert_channels(api):
    viewer = api("viewer")
    assert viewer.get("/api/v1/statistics/notifications").json == {"email": False, "webhook": False}
    saved = viewer.post("/api/v1/statistics/notifications", json={"email": True})
    assert saved.status_code == 200 and saved.json == {"email": True, "webhook": False}
    assert viewer.get("/api/v1/statistics/notifications").json == {"email": True, "webhook": False}
    wrong = viewer.post("/api/v1/statistics/notifications", json={"webhook": "yes", "sms": True})
    assert wrong.status_code == 422 and {e["field"] for e in wrong.json["errors"]} == {"webhook", "sms"}


def test_requests_say_when_the_service_is_not_there(api):
    listed = api("viewer").get("/api/v1/requests")
    assert listed.status_code == 200 and listed.json["items"] == [] and listed.json["service_error"]
    refreshed = api("viewer").post("/api/v1/requests/refresh")
    assert refreshed.status_code == 200 and refreshed.json["count"] == 0 and refreshed.json["service_error"]
    detail = api("viewer").get("/api/v1/requests/42")  # its tasks and chains are shown all the same
    assert detail.status_code == 200 and detail.json["request"] is None and detail.json["service_error"]


def test_audit_filters_like_the_audit_page(api, db):
    admin = api("admin", "read")
    record("chain.create", target="PROD2026-101", user=None)
    db.session.commit()
    events = admin.get("/api/v1/audit?action=chain.").json["items"]
    assert [e["target"] for e in events] == ["PROD2026-101"]
    assert admin.get("/api/v1/audit?since=notadate").status_code == 422


def test_the_audit_trail_pages_by_number_or_by_keyset(api, db, clock):
    admin = api("admin", "read")
    for i in range(7):
        record("paging.test", target=f"P{i}", user=None)  # one time for all: the id breaks the ties
    db.session.commit()
    by_number, number = [], 1
    while number:
        listing = admin.get(f"/api/v1/audit?action=paging.&per_page=3&page={number}").json
        by_number.append([e["target"] for e in listing["items"]])
        number = listing["next_page"]
    assert by_number == [["P6", "P5", "P4"], ["P3", "P2", "P1"], ["P0"]]
    by_cursor, listing = [], admin.get("/api/v1/audit?action=paging.&per_page=3").json
    while True:
        by_cursor.append([e["target"] for e in listing["items"]])
        if listing["next_after"] is None:
            break
        assert listing["next_after"] == listing["items"][-1]["id"]
        listing = admin.get(f"/api/v1/audit?action=paging.&per_page=3&after={listing['next_after']}").json
        assert listing["page"] is None and listing["next_page"] is None  # paged by keyset, not by number
    assert by_cursor == by_number
    for bad in ("after=x", "after=0", "after=3&page=2"):
        wrong = admin.get(f"/api/v1/audit?{bad}")
        assert wrong.status_code == 422 and wrong.json["errors"][0]["field"] in ("after", "page"), bad
