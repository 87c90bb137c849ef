"""The chain document: one schema for export and import (YAML and JSON), field-level messages."""

from __future__ import annotations

import json

import pytest
import yaml

from app.chains import schema
from tests.chains.conftest import chain_definition


@pytest.mark.parametrize("fmt", schema.FORMATS)
def test_round_trip(fmt):
    chain = chain_definition(wait_for_parent_done=True, comment="10 GeV minimum bias")
    text = schema.dumps(schema.to_document(chain), fmt)
    assert schema.from_document(schema.loads(text, f"x.{fmt}")) == chain


def test_export_reads_like_the_form():
    document = schema.to_document(chain_definition())
    assert document["schema"] == "prodpanel.chain/1"
    reco = document["steps"][1]
    assert "total_events" not in reco and "parent_task" not in reco and reco["files_per_job"] == 1
    assert list(yaml.safe_load(schema.dumps(document, "yaml"))) == list(document)  # key order kept


def test_every_problem_names_its_step_and_field():
    document = schema.to_document(chain_definition())
    document.pop("processing_type")
    document["colour"] = "blue"
    document["steps"][0]["total_events"] = "10k"
    document["steps"][0]["bunch_size"] = True
    del document["steps"][1]["exec_path"]
    document["steps"][1]["nevents"] = 5
    with pytest.raises(schema.SchemaError) as raised:
        schema.from_document(document)
    assert [p.text for p in raised.value.problems] == [
        "colour: unknown field",
        "processing type: missing",
        'step 1 (SIM), total events: must be a whole number or empty (null), got "10k"',
        "step 1 (SIM), tasks to launch: must be a whole number, got true",
        "step 2 (RECO), nevents: unknown field",
        "step 2 (RECO), path to execution files: missing",
    ]
    assert [(p.step, p.field) for p in raised.value.problems][2:] == [
        (1, "total_events"),
        (1, "bunch_size"),
        (2, "nevents"),
        (2, "exec_path"),
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], "document: must be a mapping with the chain's fields"),
        (
            {"schema": "other/1", "name": "x", "processing_type": "MC production", "steps": []},
            "schema: must be",
        ),
        (
            {"schema": "prodpanel.chain/1", "name": "x", "processing_type": "MC production"},
            "steps: must be a list",
        ),
    ],
)
def test_shape_errors(document, message):
    with pytest.raises(schema.SchemaError) as raised:
        schema.from_document(document)
    assert any(p.text.startswith(message) for p in raised.value.problems), raised.value.problems


def test_unparsable_files_say_so():
    with pytest.raises(schema.SchemaError, match=r"c.json: not valid YAML or JSON \(Expecting"):
        schema.loads("{nope", "c.json")
    with pytest.raises(schema.SchemaError, match="c.yaml: not valid YAML or JSON"):
        schema.loads("steps: [unclosed", "c.yaml")
    assert schema.loads(json.dumps({"a": 1})) == {"a": 1}
