"""The five causes of 5xx the attacker's fuzzing found (issue 16 item 1), each answered with a 4xx or
a message now: huge integers, the calendar's last day, very long search text, deep nesting, CR/LF in
the login's `next`."""

import io
import json

import pytest
from flask import g

from app.audit.services import record
from app.auth.services import create_local_user
from app.inputs import MAX_DEPTH
from tests.conftest import TEST_PASSWORD
from tests.helpers import csrf_token, post_form
from tests.tasks.conftest import form_data, post, sim_definition

HUGE = str(2**63)
HUGER = "9" * 5000  # beyond int()'s 4300-digit limit too


@pytest.mark.parametrize("number", [HUGE, HUGER], ids=["2^63", "5000-digits"])
@pytest.mark.parametrize(
    "path",
    [
        "/tasks/{n}", "/tasks/{n}/relaunch", "/tasks/{n}/manifest.json", "/tasks/bunch/{n}", "/chains/{n}",
        "/requests/{n}", "/panda/tasks/{n}/calls", "/actions/bulk/{n}", "/tasks/{n}/actions/kill",
    ],
)  # fmt: skip
def test_ids_beyond_the_database_are_not_found(client, login_as, path, number):
    login_as("admin")
    assert client.get(path.format(n=number)).status_code == 404


# The task table (app/monitoring) validates its whole URL state and answers 400 with a message for
# any page it cannot use; the other listings show their first page for a page that is not a number;
# the seek-paged ones (audit, PanDA log, a task's calls, launches, chains) answer 400 to a cursor that
# is not an id. The 400 page says what is wrong.
CURSOR = "must be a whole number from 0 to 9223372036854775807"


@pytest.mark.parametrize(("url", "not_a_page", "says"), [
    ("/tasks/?page={n}", 400, "page: "), ("/audit/?after={n}", 400, "after " + CURSOR),
    ("/chains/?after={n}", 400, "after " + CURSOR), ("/panda/calls?before={n}", 400, "before " + CURSOR),
    ("/panda/tasks/1/calls?after={n}", 400, "after " + CURSOR), ("/requests/?page={n}", 200, "page numbers go up to 1000000"),
    ("/launches/?after={n}", 400, "after " + CURSOR),
])  # fmt: skip
def test_pages_beyond_any_listing_are_a_bad_request(client, login_as, url, not_a_page, says):
    login_as("admin")
    refused = client.get(url.format(n=HUGE))
    assert refused.status_code == 400 and says in refused.get_data(as_text=True)
    assert client.get(url.format(n="2")).status_code == 200
    assert client.get(url.format(n=HUGER)).status_code == not_a_page
    assert client.get(url.format(n="abc")).status_code == not_a_page


def test_huge_numbers_in_query_parameters_and_hidden_fields(client, login_as, db):
    login_as("admin")
    assert client.get(f"/tasks/clone?task={HUGE}").status_code == 404
    assert client.get(f"/tasks/clone?bunch={HUGER}").status_code == 404
    assert client.get(f"/tasks/new?after={HUGE}").status_code == 200
    assert client.get(f"/tasks/panda?ids=1,{HUGE},²&bunch={HUGE}").status_code == 200
    page = client.get(f"/panda/calls?user={HUGE}&task_id={HUGE}")
    assert page.status_code == 200 and "task id: a number" in page.get_data(as_text=True)
    data = form_data(sim_definition(), key="k1") | {"cloned_from_task": HUGE, "cloned_from_bunch": HUGER}
    assert post(client, "/tasks/preview", data).status_code == 200
    assert post(client, "/tasks/preview", data | {"request_id": HUGE}).status_code == 400


def test_the_calendars_last_day_is_no_upper_bound(client, login_as, db):
    login_as("admin")
    record("test.event", target="kept")
    db.session.commit()
    for until in ("9999-12-31", "0001-01-01"):
        assert client.get(f"/panda/calls?since=0001-01-01&until={until}").status_code == 200
    page = client.get("/audit/?action=test.&since=0001-01-01&until=9999-12-31").get_data(as_text=True)
    assert "kept" in page
    assert "kept" not in client.get("/audit/?action=test.&until=2000-01-01").get_data(as_text=True)


def test_search_text_over_the_cap_gets_a_message(client, login_as):
    login_as("admin")
    long = "%_" * 30_000
    assert client.get(f"/tasks/?q={long}").status_code < 500
    audit = client.get(f"/audit/?action={long}&target={long}")
    assert audit.status_code == 200
    assert "action: at most 500 characters (got 60000)" in audit.get_data(as_text=True)
    assert client.get(f"/panda/calls?method={long}").status_code == 200


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000], ids=["just-too-deep", "very-deep"])
def test_deep_template_overrides_are_refused_with_a_message(client, login_as, depth):
    login_as("admin")
    data = form_data(sim_definition(), key="k2") | {"template_overrides": nested(depth)}
    response = post(client, "/tasks/preview", data)
    assert response.status_code == 400
    assert f"template overrides nested deeper than {MAX_DEPTH} levels" in response.get_data(as_text=True)
    shallow = form_data(sim_definition(), key="k3") | {"template_overrides": nested(3).replace('"a"', '"gshare"', 1)}
    assert post(client, "/tasks/preview", shallow).status_code == 200


@pytest.mark.parametrize(
    "body",
    [nested(100_000), "[" * 100_000 + "]" * 100_000, json.dumps({"x": "y" * 2_100_000})],
    ids=["deep-objects", "deep-lists", "huge"],
)
def test_a_deep_or_huge_uploaded_manifest_is_not_a_manifest(client, login_as, body):
    login_as("manager")
    response = post(client, "/tasks/relaunch", {"manifest": (io.BytesIO(body.encode()), "deep.json")},
                    content_type="multipart/form-data", follow_redirects=True)  # fmt: skip
    assert response.status_code == 200 and response.request.path == "/tasks/"
    assert "deep.json is not a submission manifest of this panel" in response.get_data(as_text=True)


@pytest.mark.parametrize("document", [nested(50_000), "[" * 5_000 + "]" * 5_000], ids=["json", "yaml"])
def test_a_deep_chain_import_is_refused(client, login_as, document):
    login_as("manager")
    g.pop("csrf_token", None)
    token = csrf_token(client, "/chains/")
    response = client.post("/chains/import", data={"csrf_token": token, "document": (io.BytesIO(document.encode()), "c.yaml")},
                           content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 400
    assert "not valid YAML or JSON (nested deeper than" in response.get_data(as_text=True)


NEXTS = ["/tasks/\r\nSet-Cookie: x=1", "/audit/%0D%0A", "/\x00", "http://[::1", "/tâches/ü"]


@pytest.mark.parametrize("target", NEXTS, ids=["crlf", "encoded-crlf", "nul", "bad-ipv6", "non-ascii"])
def test_login_next_with_control_characters_goes_home_or_stays_same_site(client, db, target):
    create_local_user("nextuser", TEST_PASSWORD, role="viewer")
    db.session.commit()
    response = post_form(client, "/login", {"username": "nextuser", "password": TEST_PASSWORD, "next": target})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "\r" not in location and "\n" not in location and "\x00" not in location
    assert location in ("/", "/t%C3%A2ches/%C3%BC") or location.startswith("/audit/")
    again = client.get("/login", query_string={"next": target})  # already logged in: straight on
    assert again.status_code == 302 and again.headers["Location"] == location


def test_error_summary_ids_beyond_the_database(client, login_as):
    login_as("viewer")
    for scope in ("task", "bunch", "chain"):
        assert client.get(f"/statistics/errors?{scope}={HUGE}").status_code == 400
        assert client.get(f"/statistics/errors?{scope}=7").status_code == 200
