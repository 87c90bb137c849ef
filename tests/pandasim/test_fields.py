"""get_detailed_info's field values in each status, as panda-server 1.0.4 with JEDI shows them
(JEDI's defaults from TaskRefinerBase.extractCommon and GenTaskRefiner, DEFT's superStatus)."""

from __future__ import annotations

from tests.pandasim.conftest import evgen, reco


def info(prod, task_id: int) -> dict:
    return prod.call("task/get_detailed_info", task_id=task_id)["data"]


def test_values_of_a_defined_task(sim, prod):
    params = evgen("spd.mc.fields", nEvents=20000)
    for key in ("walltime", "ramCount", "ramUnit", "cloud"):
        params.pop(key)
    task_id = prod.submit(params)
    sim.advance(60)
    registered = info(prod, task_id)
    assert (registered["status"], registered["superStatus"], registered["startTime"]) == (
        "registered", "registered", None,
    )  # fmt: skip
    sim.advance(30)
    defined = info(prod, task_id)
    assert (defined["status"], defined["superStatus"]) == ("defined", "registered")
    assert defined["startTime"] is not None
    assert (defined["walltime"], defined["baseWalltime"], defined["cpuEfficiency"]) == (0, 600, 90)
    assert (defined["ramCount"], defined["ramUnit"], defined["baseRamCount"]) == (2000, "MBPerCore", 0)
    assert (defined["outDiskCount"], defined["workDiskCount"], defined["coreCount"]) == (0, 0, 1)
    assert defined["architecture"] == "{}"  # "" reformatted to JSON
    assert defined["cloud"] == "spd_prod"  # GenTaskRefiner: the working group when no cloud is given
    assert defined["job_execution_params"] == (
        "--config gen.cfg --seed ${RNDMSEED} --first-event ${FIRSTEVENT} --nevents 1000 ${OUTPUT0}"
    )  # the output item's file name template became its stream, as in the real server's reply


def test_super_status_follows_deft(sim, prod):
    scouted = prod.submit(evgen("spd.mc.fields.scout", skipScout=False, nEvents=100000))
    direct = prod.submit(evgen("spd.mc.fields.direct"))
    child = prod.submit(reco("spd.mc.fields.child"), parent_tid=direct)
    sim.advance(60 + 30 + 60)
    assert (info(prod, scouted)["status"], info(prod, scouted)["superStatus"]) == ("scouting", "submitting")
    assert (info(prod, direct)["status"], info(prod, direct)["superStatus"]) == ("running", "running")
    assert (info(prod, child)["status"], info(prod, child)["superStatus"]) == ("pending", "registered")
    sim.advance(6 * 3600)
    assert info(prod, direct)["superStatus"] == info(prod, direct)["status"] == "done"


def test_architecture_in_the_old_format_becomes_json(sim, prod):
    task_id = prod.submit(evgen("spd.mc.fields.arch", architecture="x86_64-el9-gcc13@el9"))
    sim.advance(90)
    assert info(prod, task_id)["architecture"] == (
        '{"sw_platform": "x86_64-el9-gcc13", "base_platform": "el9", "cpu_specs": [{"arch": "x86_64"}]}'
    )
