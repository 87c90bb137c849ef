"""The OpenAPI document and the routes say the same: every /api/v1/ route is documented with its
methods and path parameters, nothing documented is missing, and the docs page renders it offline."""

from __future__ import annotations

import json
import re
from functools import cached_property
from urllib.parse import parse_qsl

import jsonschema_rs
from werkzeug.datastructures import MultiDict

from app.api.openapi import PUBLIC_PATHS, document
from app.monitoring.filters import QUERY_PARAMETERS
from app.monitoring.records import FIELDS
from tests.actions.conftest import new_task


def api_routes(app) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
            routes.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    return routes


def test_document_and_routes_agree(app):
    routes = {path: methods for path, methods in api_routes(app).items() if path not in PUBLIC_PATHS}
    documented = {path: set(operations) for path, operations in document()["paths"].items()}
    assert routes == documented
    assert set(api_routes(app)) >= PUBLIC_PATHS


def test_path_parameters_are_declared():
    for path, operations in document()["paths"].items():
        wanted = set(re.findall(r"{(\w+)}", path))
        for method, operation in operations.items():
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == wanted, f"{method} {path}"


def test_schema_references_resolve():
    doc = document()
    text = repr(doc)
    for name in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert name in doc["components"]["schemas"], name


def test_document_is_served_and_the_docs_page_loads_it_locally(client):
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.json["openapi"] == "3.1.0"
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "vendor/swagger-ui/swagger-ui-bundle.js" in page and 'data-spec-url="/api/v1/openapi.json"' in page
    bundle = client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    bundle.close()


def test_every_query_key_a_listing_reads_is_documented(app, api, monkeypatch):
    """Each GET operation without path parameters is called with a request whose query arguments
    remember every key the view and its services read: that set is exactly the operation's documented
    query parameters (an accepted but undocumented key fails here, as does a documented one never read).
    The task tables' filter keys are read whatever the query string, so all of them are checked."""
    read: set[str] = set()

    class Args(MultiDict):
        def __getitem__(self, key):
            read.add(key)
            return super().__getitem__(key)

        def get(self, key, default=None, type=None):
            read.add(key)
            return super().get(key, default, type)

        def getlist(self, key, type=None):
            read.add(key)
            return super().getlist(key, type)

        def __contains__(self, key):
            read.add(key)
            return super().__contains__(key)

    class Recording(app.request_class):
        @cached_property
        def args(self):
            return Args(parse_qsl(self.query_string.decode(), keep_blank_values=True))

    monkeypatch.setattr(app, "request_class", Recording)
    admin = api("admin", "read")
    operations = [path for path, ops in document()["paths"].items() if "get" in ops and "{" not in path]
    assert {"/tasks", "/tasks/successful", "/tasks/counts", "/launches", "/audit"} <= set(operations)
    for path in operations:
        read.clear()
        answer = admin.get(f"/api/v1{path}")
        assert answer.status_code == 200, (path, answer.json)
        documented = {p["name"] for p in document()["paths"][path]["get"]["parameters"] if p["in"] == "query"}
        assert read == documented, path
    assert {p.name for p in QUERY_PARAMETERS} <= documented_of("/tasks") & documented_of("/tasks/successful")


def documented_of(path: str) -> set[str]:
    return {p["name"] for p in document()["paths"][path]["get"]["parameters"]}


def test_task_filter_parameters_filter_as_documented(api, make_user, db):
    """A few documented filter keys through the API: repeated statuses, a negation, PanDA ids
    comma-separated, the successful table's totals."""
    owner = make_user("manager")
    running, done, failed = (new_task(owner, status) for status in ("running", "done", "failed"))
    viewer = api("viewer")

    def names(url: str) -> set[str]:
        answer = viewer.get(url)
        assert answer.status_code == 200, answer.json
        return {t["name"] for t in answer.json["items"]}

    assert names("/api/v1/tasks?status=running&status=failed") == {running.name, failed.name}
    assert names(f"/api/v1/tasks?status=running&not=status&creator={owner.username}") == {done.name, failed.name}
    assert names(f"/api/v1/tasks?panda_id={running.panda_task_id},{done.panda_task_id}") == {running.name, done.name}
    successful = viewer.get(f"/api/v1/tasks/successful?creator={owner.username}").json
    assert [t["name"] for t in successful["items"]] == [done.name] and successful["totals"]["tasks"] == 1
    counts = viewer.get(f"/api/v1/tasks/counts?creator={owner.username}&status=done").json["counts"]
    assert {c["status"]: c["count"] for c in counts} == {"running": 1, "done": 1, "failed": 1}  # status left out
    refused = viewer.get("/api/v1/tasks?status=sleeping")
    assert refused.status_code == 422 and "sleeping" in refused.json["detail"]


def test_the_export_and_the_api_give_the_same_task_records(client, api, login_as, make_user, db):
    """One record builder: the task list's JSON export and GET /api/v1/tasks give the same records, each
    with exactly the record's fields and valid against the document's Task schema."""
    owner = make_user("manager")
    new_task(owner, "running"), new_task(owner, "done"), new_task(owner, None, panda_id=None)
    query = f"creator={owner.username}&sort=name&order=asc"
    listed = api("viewer").get(f"/api/v1/tasks?{query}").json["items"]
    login_as("viewer")
    exported = json.loads(client.get(f"/tasks/export.json?{query}").get_data(as_text=True))["tasks"]
    assert len(listed) == 3 and listed == exported
    validator = jsonschema_rs.Draft202012Validator(document()["components"]["schemas"]["Task"])
    for record in listed:
        assert set(record) == set(FIELDS)
        validator.validate(record)
