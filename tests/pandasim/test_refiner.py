"""JEDI's TaskRefiner as the simulator plays it: the keys extractCommon and doRefine need, parent
semantics and input datasets, with the statuses and errorDialogs of panda-real-replies.md §2-3."""

from __future__ import annotations

from typing import Any

import pytest

from tests.pandasim.conftest import evgen, reco

REFINED_AT = 90  # pickup_s + refine_s: one refiner cycle after the submit
BROKEN_AFTER = 30  # abort_s: tobroken -> broken


def without(key: str) -> dict[str, Any]:
    params = evgen(f"spd.mc.refine.no-{key}")
    params.pop(key)
    return params


def log_without_value() -> dict[str, Any]:
    params = evgen("spd.mc.refine.log-no-value")
    params["log"].pop("value")
    return params


def output_without_dataset() -> dict[str, Any]:
    params = evgen("spd.mc.refine.output-no-dataset")
    params["jobParameters"][-1].pop("dataset")
    return params


EXTRACT_COMMON = "failed to extract common parameters with KeyError:'{}' Traceback (most recent call last):"

# panda-real-replies.md §3: the variant, then the status and errorDialog (start) after one refiner cycle
VARIANTS = {
    "jobParameters": (without("jobParameters"), "tobroken", "failed to refine task with KeyError:'jobParameters'"),
    "log": (without("log"), "defined", None),
    "taskPriority": (without("taskPriority"), "tobroken", EXTRACT_COMMON.format("taskPriority")),
    "architecture": (without("architecture"), "tobroken", EXTRACT_COMMON.format("architecture")),
    "transUses": (without("transUses"), "tobroken", EXTRACT_COMMON.format("transUses")),
    "transHome": (without("transHome"), "tobroken", EXTRACT_COMMON.format("transHome")),
    "processingType": (without("processingType"), "tobroken", EXTRACT_COMMON.format("processingType")),
    "taskType": (without("taskType"), "defined", None),
    "userName": (without("userName"), "defined", None),
    "nEvents": (without("nEvents"), "defined", None),
    "nEventsPerJob": (without("nEventsPerJob"), "defined", None),
    "cloud": (without("cloud"), "defined", None),
    "transPath": (without("transPath"), "defined", None),
    "log value": (log_without_value(), "tobroken", "failed to refine task with KeyError:'value'"),
    "output dataset": (output_without_dataset(), "defined", None),
    "ramUnit GB": (evgen("spd.mc.refine.ram-gb", ramUnit="GB"), "defined", None),
    "nEventsPerJob 0": (evgen("spd.mc.refine.ne0", nEventsPerJob=0), "defined", None),
}  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
def test_refiner_breaks_tasks_missing_what_jedi_needs(sim, prod, variant):
    params, status, dialog = VARIANTS[variant]
    task_id = prod.submit(params)
    sim.advance(REFINED_AT)
    info = prod.call("task/get_detailed_info", task_id=task_id)["data"]
    assert info["status"] == status
    if dialog is None:
        assert info["errorDialog"] is None
        return
    assert info["errorDialog"].startswith(dialog)
    if dialog.startswith("failed to refine"):
        assert info["errorDialog"] == dialog  # doRefine's failures carry no traceback
    sim.advance(BROKEN_AFTER)
    info = prod.call("task/get_detailed_info", task_id=task_id)["data"]
    assert info["status"] == "broken" and info["errorDialog"].startswith(dialog)


def test_child_of_a_broken_parent_breaks(sim, prod):
    parent = prod.submit(evgen("spd.mc.simbroken.parent"))
    child = prod.submit(reco("spd.mc.child-of-broken", input_ds="spd.mc.simbroken.parent.root"), parent_tid=parent)
    sim.advance(REFINED_AT + BROKEN_AFTER)
    assert prod.status(parent) == "broken"
    info = prod.call("task/get_detailed_info", task_id=child)["data"]
    assert (info["status"], info["parent_tid"]) == ("tobroken", parent)
    assert info["errorDialog"] == f"parent task {parent} failed to complete"
    sim.advance(BROKEN_AFTER)
    assert prod.status(child) == "broken"


def test_a_parent_that_does_not_exist_breaks_the_child(sim, prod):
    child = prod.submit(reco("spd.mc.orphan"), parent_tid=999999)
    sim.advance(REFINED_AT)
    info = prod.call("task/get_detailed_info", task_id=child)["data"]
    assert (info["status"], info["parent_tid"]) == ("tobroken", 999999)
    assert info["errorDialog"] == "parent task 999999 failed to complete"


def test_reco_without_parent_needs_a_known_input_dataset(sim, prod):
    orphan = prod.submit(reco("spd.mc.orphan2", input_ds="spd.mc.nowhere.root"))
    sim.advance(REFINED_AT)
    info = prod.call("task/get_detailed_info", task_id=orphan)["data"]
    diag = 'doBasicRefine : unknown input dataset "spd.mc.nowhere.root"'
    assert info["status"] == "tobroken"
    assert info["errorDialog"] == f"{diag} failed to refine task with UnknownDatasetError:{diag}"

    prod.submit(evgen("spd.mc.producer"))  # once defined, DDM knows its output spd.mc.test.evgen.v3.root
    sim.advance(REFINED_AT)
    reader = prod.submit(reco("spd.mc.reader", input_ds="spd.mc.test.evgen.v3.root"))
    sim.advance(REFINED_AT)
    assert prod.status(reader) == "defined"
