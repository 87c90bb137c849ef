"""Chains through the API: a YAML or JSON document previewed and created (launched), problems named
by step and field, the chain read back, exported, cloned, and acted on as a whole."""

from __future__ import annotations

import yaml

from app.chains import schema
from app.chains import services as chain_services
from tests.actions.conftest import new_task  # noqa: F401 (keeps the fixtures' modules importable)
from tests.chains.conftest import chain_definition
from tests.helpers import settle_launches

PROBLEM = "application/problem+json"


def document(number: int = 8, **changes) -> dict:
    return schema.to_document(chain_definition(number, bunch_size=2, **changes))


def test_preview_then_create_a_chain_from_yaml(api, fake_panda, monkeypatch):
    manager = api()
    text = yaml.safe_dump(document())
    preview = manager.post("/api/v1/chains/preview", data=text, headers={"Content-Type": "application/yaml"})
    assert preview.status_code == 200, preview.json
    assert preview.json["task_count"] == 4
    reco = preview.json["steps"][1]["tasks"][0]
    assert reco["parent"] == "PROD2025-008.SIM.1" and reco["params"]["taskName"] == "PROD2025-008.RECO.1"
    created = manager.post("/api/v1/chains", data=text, headers={"Content-Type": "application/yaml"})
    assert created.status_code == 201, created.json
    chain = manager.get(created.headers["Location"]).json
    assert [s["step"] for s in chain["steps"]] == ["SIM", "RECO"] and len(chain["steps"][0]["tasks"]) == 2
    monkeypatch.setattr(chain_services, "ROWS_SHOWN", 1)
    first = manager.get(created.headers["Location"] + "?tasks=first").json  # as the chain page shows them
    assert [len(s["tasks"]) for s in first["steps"]] == [1, 1] and first["steps"][0]["states"] == chain["steps"][0]["states"]
    assert manager.get(created.headers["Location"] + "?tasks=some").status_code == 422
    assert settle_launches(60)
    assert {"PROD2025-008.SIM.1", "PROD2025-008.SIM.2"} <= set(fake_panda.submits)
    exported = manager.get(f"/api/v1/chains/{chain['id']}/definition?format=yaml")
    assert exported.mimetype == "application/yaml" and yaml.safe_load(exported.data)["name"] == "PROD2025-008"
    clone = manager.get(f"/api/v1/chains/{chain['id']}/clone").json
    assert clone["schema"] == schema.SCHEMA_ID and clone["steps"][0]["task_name"] != "PROD2025-008.SIM"
    listed = manager.get("/api/v1/chains").json["items"]
    assert [c["id"] for c in listed] == [chain["id"]]
    acted = manager.post(f"/api/v1/chains/{chain['id']}/actions/kill", json={"comment": "wrong tune"})
    assert acted.status_code == 202 and acted.json["counts"].get("not_allowed") == 4  # not in PanDA yet


def test_chain_problems_name_step_and_field(api):
    manager = api()
    broken = document()
    broken["steps"][1]["container_path"] = 5
    del broken["processing_type"]
    response = manager.post("/api/v1/chains/preview", json=broken)
    assert response.status_code == 422 and response.mimetype == PROBLEM
    where = {(e.get("step"), e["field"]) for e in response.json["errors"]}
    assert {(None, "processing_type"), (2, "container_path")} <= where
    bad_reco = document()
    bad_reco["steps"][1]["container_path"] = "/cvmfs/spd.jinr.ru/images/spdroot-dev-5.0.1.sif"
    constraint = manager.post("/api/v1/chains/preview", json=bad_reco)
    assert constraint.status_code == 422 and any(e.get("step") == 2 for e in constraint.json["errors"])
    not_yaml = manager.post("/api/v1/chains/preview", data="{: nope", headers={"Content-Type": "text/plain"})
    assert not_yaml.status_code == 422 and not_yaml.json["errors"][0]["field"] == "document"
