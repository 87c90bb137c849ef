"""Every chain constraint with a passing and a failing case; every message names step and field."""

from __future__ import annotations

import pytest

from app.chains import constraints
from app.chains.specs import ChainDefinition
from tests.chains.conftest import chain_definition, chain_form_data, ctx, reco_definition, step
from tests.tasks.conftest import sim_definition


def texts(constraint, chain: ChainDefinition, **context) -> list[str]:
    return [p.text for p in constraint(chain, ctx(**context))]


def test_the_valid_chain_passes_every_constraint():
    assert constraints.check(constraints.derive(chain_definition(), ctx()), ctx()) == []


def test_chain_fields():
    assert texts(constraints.chain_fields, chain_definition()) == []
    bad = chain_definition(name=" ", processing_type="stripping", steps=())
    assert texts(constraints.chain_fields, bad) == [
        "chain name: enter a name for the chain",
        "processing type: must be one of MC production, reprocessing",
        "steps: a chain needs at least one step",
    ]
    assert texts(constraints.chain_fields, chain_definition(), max_steps=1) == [
        "steps: 2 steps; a chain has at most 1"
    ]
    overridden = chain_definition(version_override_reason="validated by the software group")
    assert texts(constraints.chain_fields, overridden) == [
        "version override reason: only admins may override versions"
    ]
    assert texts(constraints.chain_fields, overridden, is_admin=True) == []


def test_first_step_generates():
    assert texts(constraints.first_step_generates, chain_definition()) == []
    reco_first = chain_definition(steps=(reco_definition(),))
    assert texts(constraints.first_step_generates, reco_first) == [
        "step 1 (RECO), step type: the first step must generate its events (SIM); "
        "RECO reads the output of a step before it"
    ]
    assert texts(constraints.first_step_generates, step(chain_definition(), 1, step="DIGI")) == [
        "step 1 (DIGI), step type: unknown step type 'DIGI'"
    ]


def test_processing_follows_generation():
    assert texts(constraints.processing_follows, chain_definition()) == []
    two_sims = chain_definition(steps=(sim_definition(), sim_definition()))
    assert texts(constraints.processing_follows, two_sims) == [
        "step 2 (SIM), step type: only the first step generates events; step 2 must process the output of step 1 (SIM)"
    ]


def test_distinct_step_types():
    assert texts(constraints.distinct_step_types, chain_definition()) == []
    chain = chain_definition()
    twice = chain.with_steps([*chain.steps, chain.steps[1]])
    assert texts(constraints.distinct_step_types, twice) == [
        "step 3 (RECO), step type: RECO is step 2 already; each step type appears once"
    ]


def test_input_is_the_previous_steps_output():
    assert (
        texts(
            constraints.input_is_previous_output, step(chain_definition(), 2, parent_task="PROD2025-008.SIM")
        )
        == []
    )
    wrong = step(chain_definition(), 2, parent_task="PROD2025-007.SIM")
    assert texts(constraints.input_is_previous_output, wrong) == [
        "step 2 (RECO), parent task: PROD2025-007.SIM is not step 1's task PROD2025-008.SIM; a step reads the "
        "output of the step before it (leave the parent empty: it is filled in)"
    ]
    # derive() fills the parent in: the RECO step reads step 1's output task by task.
    derived = constraints.derive(chain_definition(), ctx())
    assert derived.steps[1].parent_task == "PROD2025-008.SIM" and derived.steps[0].parent_task is None
    # and a step that names no request gets the chain's
    unnamed = constraints.derive(step(chain_definition(), 2, request_id=None), ctx())
    assert unnamed.steps[1].request_id == unnamed.steps[0].request_id is not None


def test_shared_production():
    assert texts(constraints.shared_production, chain_definition()) == []
    other = step(chain_definition(), 2, task_name="PROD2025-009.RECO")
    assert texts(constraints.shared_production, other) == [
        "step 2 (RECO), task name: production PROD2025-009 differs from step 1's PROD2025-008; "
        "all steps share one production id"
    ]


def test_shared_physics_tag():
    assert texts(constraints.shared_physics_tag, chain_definition()) == []
    other = step(
        chain_definition(), 2, output_dataset="MC2025_S1.minbias-P8-spdroot417-dev.27GeV.PROD2025-008.RECO.1"
    )
    assert texts(constraints.shared_physics_tag, other) == [
        "step 2 (RECO), output dataset: physics tag minbias-P8-spdroot417-dev.27GeV differs from step 1's "
        "minbias-P8-spdroot417-dev.10GeV; all steps share one physics tag"
    ]


def test_shared_request():
    chain = chain_definition()
    first = chain.steps[0].request_id
    assert first is not None and texts(constraints.shared_request, chain) == []
    assert texts(constraints.shared_request, step(chain, 2, request_id=None)) == []  # it belongs to the chain's
    assert texts(constraints.shared_request, step(chain, 2, request_id=first + 1)) == [
        f"step 2 (RECO), request: request #{first + 1} differs from step 1's #{first}; a chain serves one request"
    ]
    assert texts(constraints.shared_request, step(step(chain, 1, request_id=None), 2, request_id=7)) == []


def test_processing_events_are_derived_not_typed():
    assert texts(constraints.events_derived, chain_definition()) == []
    typed = step(chain_definition(), 2, total_events=10000, events_per_job=1000)
    assert texts(constraints.events_derived, typed) == [
        "step 2 (RECO), total events: RECO reads step 1's output (10000 events per task); leave it empty",
        "step 2 (RECO), events per job: RECO reads step 1's output (10000 events per task); leave it empty",
    ]
    assert constraints.derived_events(chain_definition(), 2, ctx()) == 10000


def test_consistent_bunch_sizes():
    assert texts(constraints.consistent_bunch_sizes, chain_definition(bunch_size=10)) == []
    mismatch = step(chain_definition(bunch_size=10), 2, bunch_size=12)
    assert texts(constraints.consistent_bunch_sizes, mismatch) == [
        "step 2 (RECO), tasks to launch: 12 does not match step 1's 10; each task of step 1 gets its own RECO child"
    ]


def test_compatible_containers():
    same_minor = step(chain_definition(), 2, container_path="/cvmfs/spd.jinr.ru/images/spdroot-dev-4.1.9.sif")
    assert texts(constraints.compatible_containers, same_minor) == []
    newer = step(chain_definition(), 2, container_path="/cvmfs/spd.jinr.ru/images/spdroot-dev-4.2.0.sif")
    assert texts(constraints.compatible_containers, newer) == [
        "step 2 (RECO), path to container: SpdRoot 4.2 differs from step 1's 4.1; the steps use the same SpdRoot "
        "major.minor (an admin may override with a reason)"
    ]
    overridden = ChainDefinition(
        **{**newer.__dict__, "version_override_reason": "RECO needs the 4.2 geometry"}
    )
    assert texts(constraints.compatible_containers, overridden, is_admin=True) == []
    assert texts(constraints.compatible_containers, overridden, is_admin=False) != []  # managers cannot
    unversioned = step(chain_definition(), 2, container_path="/cvmfs/spd.jinr.ru/images/latest.sif")
    assert texts(constraints.compatible_containers, unversioned) == [
        "step 2 (RECO), path to container: no SpdRoot version (as in spdroot-dev-4.1.7.sif) in "
        "/cvmfs/spd.jinr.ru/images/latest.sif; the steps' versions cannot be compared"
    ]


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/cvmfs/x/spdroot-dev-4.1.7.sif", (4, 1)),
        ("/cvmfs/x/SpdRoot_5.0.sif", (5, 0)),
        ("/cvmfs/x/root-6.30.sif", None),
        ("/cvmfs/x/spdroot417.sif", None),
    ],
)
def test_spdroot_version(path, version):
    assert constraints.spdroot_version(path, ctx().version_regex) == version


def test_names_follow_conventions():
    assert texts(constraints.names_follow_conventions, chain_definition()) == []
    bad = step(chain_definition(), 1, task_name="PROD2025-008.SIM.1")
    bad = step(bad, 2, task_name="SIM-2025", output_dataset="MC2025_S1.x.PROD2025-008.SIM.1")
    assert texts(constraints.names_follow_conventions, bad) == [
        "step 1 (SIM), task name: enter the name without the bunch index .N",
        "step 2 (RECO), task name: task name 'SIM-2025' must start with a production id like PROD2025-001",
    ]
    wrong_step = step(
        chain_definition(),
        2,
        output_dataset=f"MC2025_S1.{'minbias-P8-spdroot417-dev.10GeV'}.PROD2025-008.SIM.1",
    )
    assert texts(constraints.names_follow_conventions, wrong_step) == [
        "step 2 (RECO), output dataset: step SIM does not match step type RECO"
    ]


def test_every_constraint_is_run_by_check():
    chain = step(chain_definition(), 2, bunch_size=2, total_events=5)
    found = {p.field for p in constraints.check(chain, ctx())}
    assert {"bunch_size", "total_events"} <= found
    assert all(p.text.startswith(f"step {p.step} (") for p in constraints.check(chain, ctx()))


def test_adding_a_reco_after_a_sim_prefills_everything_derivable():
    sim_row = {
        "step": "SIM", "task_name": "PROD2025-008.SIM", "bunch_size": "3",
        "output_dataset": "MC2025_S1.minbias-P8-spdroot417-dev.10GeV.PROD2025-008.SIM.1", "total_events": "10000",
        "events_per_job": "1000", "cloud": "JINR", "data_disk": "JINR_DATADISK", "request_id": "42", "skip_scout": "y",
        "initial_offset": "500", "exec_path": "/cvmfs/a/b.V01", "container_path": "/cvmfs/a/spdroot-4.1.7.sif",
    }  # fmt: skip
    row = constraints.prefill_next_step(sim_row, ctx())
    assert row["step"] == "RECO" and row["task_name"] == "PROD2025-008.RECO"
    assert row["output_dataset"] == "MC2025_S1.minbias-P8-spdroot417-dev.10GeV.PROD2025-008.RECO.1"
    for name in (
        "bunch_size",
        "cloud",
        "data_disk",
        "request_id",
        "skip_scout",
        "exec_path",
        "container_path",
    ):
        assert row[name] == sim_row[name], name
    assert (row["total_events"], row["events_per_job"], row["initial_offset"], row["files_per_job"]) == (
        "",
        "",
        "0",
        "1",
    )
    # What cannot be derived stays empty instead of failing.
    assert constraints.prefill_next_step({"step": "SIM", "task_name": "oops"}, ctx())["task_name"] == ""


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"output_dataset": ""},  # built later from the execution path: the RECO's is built too
        {"task_name": "oops"},  # names that do not parse: nothing derived from them
    ],
)
def test_next_step_is_the_row_add_step_prefills(changes):
    """A chain built outside the form (from a request) gets the same step as "Add step" would add."""
    sim = sim_definition(8, bunch_size=3, initial_offset=500, **changes)
    reco = constraints.next_step(sim, ctx())
    sim_row = chain_form_data(ChainDefinition(name="c", processing_type="MC production", steps=(sim,)))
    row = constraints.prefill_next_step(
        {k.removeprefix("steps-0-"): v for k, v in sim_row.items() if k.startswith("steps-0-")}, ctx()
    )
    reco_row = chain_form_data(ChainDefinition(name="c", processing_type="MC production", steps=(reco,)))
    assert {k.removeprefix("steps-0-"): v for k, v in reco_row.items() if k.startswith("steps-0-")} == {
        k: v for k, v in row.items() if v not in ("", None)
    }
    assert reco.step == "RECO" and reco.parent_task is None and reco.total_events is None
