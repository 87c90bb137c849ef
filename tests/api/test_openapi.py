"""The OpenAPI document and the routes say the same: every /api/v1/ route is documented with its
methods and path parameters, nothing documented is missing, and the docs page renders it offline."""

from __future__ import annotations

import re

from app.api.openapi import PUBLIC_PATHS, document


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
