"""JEDI task parameters: golden files for each step type and for configuration overrides."""

import json
import os
from pathlib import Path

import pytest

from app.panda import taskparams
from app.panda.taskparams import TemplateError
from app.tasks import naming, specs
from tests.tasks.conftest import EXEC, SIF
from tests.tasks.conftest import sim_definition as base_sim_definition

GOLDEN = Path(__file__).with_name("golden")
RULES = naming.NamingRules()
SIM_DS = "MC2025_S1.minbias-P8-spdroot417-dev.10GeV.PROD2025-008.SIM.1"


def sim_definition(**changes):
    """The shared SIM definition (PROD2025-008) with the optional fields the golden files cover set."""
    golden = dict(
        bunch_size=3, initial_offset=500, priority=950, memory_mb=4000, walltime_s=7200, max_attempts=5
    )
    return base_sim_definition(**{**golden, **changes})


def reco_spec(**changes):
    values = dict(
        step="RECO",
        task_name="PROD2025-008.RECO",
        output_dataset=SIM_DS.replace("SIM", "RECO"),
        cloud="JINR",
        data_disk="JINR_DATADISK",
        exec_path=EXEC,
        container_path=SIF,
        user_name="Elena Zemlyanichkina",
        files_per_job=2,
        input_dataset=SIM_DS,
        request_id=42,
    )
    values.update(changes)
    return specs.TaskSpec(**values)


def check_golden(name, params):
    path = GOLDEN / f"{name}.json"
    text = json.dumps(params, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"golden file {path} missing: run with UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text(), f"task parameters differ from {path.name}"


def test_sim_bunch_golden():
    template = taskparams.load_template()
    bunch = specs.expand_bunch(sim_definition(), RULES, user_name="Elena Zemlyanichkina")
    check_golden("sim_bunch", [taskparams.build_task_params(s, template) for s in bunch])


def test_sim_minimal_golden():
    """Without optional fields: no skipScout key (JEDI tests presence), no ramCount/walltime/maxAttempt/reqID."""
    template = taskparams.load_template()
    definition = sim_definition(
        bunch_size=1,
        skip_scout=False,
        priority=None,
        memory_mb=None,
        walltime_s=None,
        max_attempts=None,
        request_id=None,
        initial_offset=0,
    )
    (spec,) = specs.expand_bunch(definition, RULES, user_name="Elena Zemlyanichkina")
    params = taskparams.build_task_params(spec, template)
    for key in ("skipScout", "ramCount", "ramUnit", "walltime", "maxAttempt", "reqID", "site"):
        assert key not in params
    check_golden("sim_single", params)


def test_reco_golden():
    params = taskparams.build_task_params(reco_spec(), taskparams.load_template())
    assert "noInput" not in params and "nEvents" not in params and "parent_tid" not in params
    check_golden("reco", params)


def test_required_jedi_keys_present():
    """reference §3.1: JEDI's extractCommon indexes these unconditionally."""
    template = taskparams.load_template()
    required = {
        "taskName",
        "userName",
        "vo",
        "prodSourceLabel",
        "taskPriority",
        "architecture",
        "transUses",
        "transHome",
        "processingType",
        "taskType",
        "jobParameters",
        "log",
    }
    for spec in [*specs.expand_bunch(sim_definition(), RULES, user_name="u"), reco_spec()]:
        assert required <= set(taskparams.build_task_params(spec, template))


def test_config_override_golden(tmp_path):
    override = tmp_path / "taskparams.toml"
    override.write_text(
        '[common]\nprodSourceLabel = "test"\nworkingGroup = "spd_test"\nuserName = "spd_prod"\nvo = "spd2"\n'
        '[layout]\ntrans_path = "{exec_path}/bin/run_sim.sh"\nwalltime_unit = "s"\n'
        'output_file = "{output_dataset}._${SN/P}.spd.root"\n'
        '[steps.SIM]\nprocessingType = "evgen"\n'
        'job_parameters = "-c {exec_path}/sim.cfg --rndm ${RNDMSEED} --first ${FIRSTEVENT} -n {events_per_job} -o {output_file}"\n'
    )
    template = taskparams.load_template(override)
    assert template.kind("SIM") == "generation"  # untouched keys keep the SPD defaults
    spec = specs.expand_bunch(sim_definition(bunch_size=1), RULES, user_name="ignored")[0]
    check_golden("sim_config_override", taskparams.build_task_params(spec, template))


def test_admin_template_overrides_win():
    spec = reco_spec(template_overrides={"taskPriority": 1, "gshare": "Test"}, site="JINR_PROD")
    params = taskparams.build_task_params(spec, taskparams.load_template())
    assert params["taskPriority"] == 1 and params["gshare"] == "Test" and params["site"] == "JINR_PROD"


def test_processing_without_input_is_refused():
    with pytest.raises(TemplateError, match="no parent task"):
        taskparams.build_task_params(reco_spec(input_dataset=None), taskparams.load_template())


def test_unknown_step_and_bad_template():
    with pytest.raises(TemplateError, match=r"no \[steps.DIGI\]"):
        taskparams.build_task_params(reco_spec(step="DIGI"), taskparams.load_template())
    with pytest.raises(TemplateError, match="kind must be one of"):
        taskparams.template_from_dict({"steps": {"SIM": {"kind": "x", "job_parameters": "a"}}})
    with pytest.raises(TemplateError, match="unknown tables"):
        taskparams.template_from_dict({"stepz": {}})
    with pytest.raises(TemplateError, match="placeholder {nope}"):
        taskparams.build_task_params(
            reco_spec(),
            taskparams.template_from_dict(
                {"steps": {"RECO": {"kind": "processing", "job_parameters": "--x {nope} ${IN}"}}}
            ),
        )


def test_bunch_offsets_do_not_overlap():
    assert specs.bunch_offsets(500, 10000, 3) == [500, 10500, 20500]
    bunch = specs.expand_bunch(sim_definition(bunch_size=20), RULES, user_name="u")
    assert [s.task_name for s in bunch][:2] == ["PROD2025-008.SIM.1", "PROD2025-008.SIM.2"]
    assert bunch[-1].task_name == "PROD2025-008.SIM.20"
    assert bunch[-1].output_dataset.endswith(".PROD2025-008.SIM.20")
    ranges = [(s.offset, s.offset + s.total_events) for s in bunch]
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert end == start
    template = taskparams.load_template()
    seeds = [
        item["offset"]
        for s in bunch
        for item in taskparams.build_task_params(s, template)["jobParameters"]
        if "${RNDMSEED}" in item["value"]
    ]
    assert seeds == [500 + i * 10000 for i in range(20)]


def test_single_task_keeps_bare_name():
    (spec,) = specs.expand_bunch(sim_definition(bunch_size=1), RULES, user_name="u")
    assert spec.task_name == "PROD2025-008.SIM" and spec.output_dataset == SIM_DS and spec.offset == 500


def test_broken_override_file_is_a_clear_error(tmp_path):
    with pytest.raises(TemplateError, match="task template file .*missing.toml"):
        taskparams.load_template(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[common\n")
    with pytest.raises(TemplateError, match="bad.toml"):
        taskparams.load_template(bad)
