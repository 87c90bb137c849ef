"""Naming conventions: round trips (incl. property tests over dotted/dashed physics tags) and errors."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.tasks import naming
from app.tasks.naming import DatasetName, NamingError, NamingRules, ProductionId, TaskName

RULES = NamingRules()
EXEC = "/cvmfs/spd.jinr.ru/production/MC/minbias-P8-spdroot417-dev.10GeV.V01"


def test_physics_tag_from_exec_path_strips_version():
    assert naming.physics_tag_from_path(EXEC, RULES) == "minbias-P8-spdroot417-dev.10GeV"
    assert naming.physics_tag_from_path(EXEC + "/", RULES) == "minbias-P8-spdroot417-dev.10GeV"


def test_task_names_format_and_parse():
    prod = ProductionId("", 2025, 8)
    assert TaskName(prod, "SIM").format(RULES) == "PROD2025-008.SIM"
    assert TaskName(prod, "RECO", 3).format(RULES) == "PROD2025-008.RECO.3"
    assert naming.parse_task_name("PROD2025-008.RECO.3", RULES) == TaskName(prod, "RECO", 3)
    assert naming.parse_task_name("PROD2025-1234.SIM", RULES).production.number == 1234


def test_campaign_prefix_allowed_by_config_only():
    name = "TEST_S1-PROD2025-001.SIM.1"
    parsed = naming.parse_task_name(name, RULES)
    assert parsed.production.campaign == "TEST_S1-"
    assert parsed.format(RULES) == name
    strict = NamingRules(campaign_prefixes=("",))
    with pytest.raises(NamingError) as err:
        naming.parse_task_name(name, strict)
    assert err.value.part == "production"


@pytest.mark.parametrize(
    ("text", "part", "message"),
    [
        ("PRD2025-008.SIM", "production", "must start with a production id like PROD2025-001"),
        ("PROD25-008.SIM", "production", "must start with a production id"),
        ("PROD2025-008.GEN", "step", "must end with a step (SIM, RECO)"),
        ("PROD2025-008", "step", "must end with a step"),
        ("PROD2025-008.SIM.0", "index", "bunch index 0 must be 1 or more"),
    ],
)
def test_task_name_errors_name_the_part(text, part, message):
    with pytest.raises(NamingError) as err:
        naming.parse_task_name(text, RULES)
    assert err.value.part == part
    assert message in str(err.value)


def test_dataset_parsed_from_the_right():
    text = "MC2025_S1.minbias-P8-spdroot417-dev.10GeV-UU.PROD2025-004.RECO.1"
    ds = naming.parse_dataset_name(text, RULES)
    assert ds == DatasetName(
        "MC2025_S1", "minbias-P8-spdroot417-dev.10GeV-UU", ProductionId("", 2025, 4), "RECO", 1
    )
    assert ds.format(RULES) == text


def test_dataset_errors():
    with pytest.raises(NamingError, match="does not follow the pattern") as err:
        naming.parse_dataset_name("MC2025_S1.tag.PROD2025-004", RULES)
    assert err.value.part == "dataset"
    with pytest.raises(NamingError, match="longer than 255"):
        naming.parse_dataset_name("S." + "a" * 260 + ".PROD2025-004.SIM.1", RULES)
    with pytest.raises(NamingError, match="physics tag") as err:
        naming.parse_dataset_name("S.bad tag.PROD2025-004.SIM.1", RULES)
    assert err.value.part == "tag"


def test_consistency_errors_name_the_offending_part():
    task = naming.parse_task_name("PROD2025-008.RECO", RULES)
    ds = naming.parse_dataset_name("S.tag.PROD2025-008.SIM.1", RULES)
    with pytest.raises(NamingError, match="step RECO does not match step type SIM") as err:
        naming.check_consistency(task, ds, "SIM", "tag", RULES)
    assert err.value.part == "task_name"
    task = naming.parse_task_name("PROD2025-008.SIM", RULES)
    with pytest.raises(NamingError, match="step SIM does not match step type RECO") as err:
        naming.check_consistency(naming.parse_task_name("PROD2025-008.RECO", RULES), ds, "RECO", "tag", RULES)
    assert err.value.part == "dataset"
    other = naming.parse_dataset_name("S.tag.PROD2025-009.SIM.1", RULES)
    with pytest.raises(
        NamingError, match="production PROD2025-009 does not match the task's production PROD2025-008"
    ):
        naming.check_consistency(task, other, "SIM", "tag", RULES)
    with pytest.raises(NamingError, match="physics tag tag does not match the execution path's tag other"):
        naming.check_consistency(task, ds, "SIM", "other", RULES)
    naming.check_consistency(task, ds, "SIM", "tag", RULES)


def test_configured_patterns():
    rules = NamingRules(
        step_types=("SIM", "DIGI", "RECO"),
        task_name_pattern="{production}-{step}",
        dataset_pattern="{scope}.{tag}.{production}.{step}.v{version}",
    )
    task = naming.parse_task_name("PROD2025-006-DIGI.2", rules)
    assert task == TaskName(ProductionId("", 2025, 6), "DIGI", 2)
    ds = naming.parse_dataset_name("mc.a.b-c.PROD2025-006.DIGI.v3", rules)
    assert (ds.tag, ds.version) == ("a.b-c", 3)


def test_unknown_placeholder_in_pattern_is_reported():
    with pytest.raises(NamingError, match="unknown placeholder"):
        naming.parse_task_name("x", NamingRules(task_name_pattern="{production}.{flavour}"))


# --- property tests -----------------------------------------------------------------------------

_segment = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8
)
tags = st.builds(
    lambda first, rest: first + "".join(sep + seg for sep, seg in rest),
    _segment,
    st.lists(st.tuples(st.sampled_from([".", "-", "_", "-.", ".-"]), _segment), max_size=6),
)
# Tags that themselves look like a production id and a step must still parse from the right.
tricky_tags = st.one_of(tags, st.builds(lambda t: t + ".PROD2024-001.SIM.2", tags))
productions = st.builds(
    ProductionId, st.sampled_from(RULES.campaign_prefixes), st.integers(2000, 2099), st.integers(0, 99999)
)
steps = st.sampled_from(RULES.step_types)


@given(
    tag=tricky_tags,
    production=productions,
    step=steps,
    version=st.integers(0, 10_000),
    scope=st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True),
)
def test_dataset_round_trip(tag, production, step, version, scope):
    ds = DatasetName(scope, tag, production, step, version)
    text = ds.format(RULES)
    parsed = naming.parse_dataset_name(text, RULES)
    assert parsed == ds
    assert parsed.format(RULES) == text


@given(production=productions, step=steps, index=st.none() | st.integers(1, 1000))
def test_task_name_round_trip(production, step, index):
    name = TaskName(production, step, index)
    text = name.format(RULES)
    assert naming.parse_task_name(text, RULES) == name
    assert naming.parse_task_name(text, RULES).format(RULES) == text


@given(tag=tags, version=st.integers(1, 99))
def test_tag_from_exec_path_round_trip(tag, version):
    path = f"/cvmfs/spd.jinr.ru/production/MC/{tag}.V{version:02d}"
    assert naming.physics_tag_from_path(path, RULES) == tag
