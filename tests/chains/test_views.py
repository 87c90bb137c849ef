"""The chain form and pages through the Flask test client (PanDA is the scripted fake here; the
simulator over HTTP is test_sim_chain.py): rows with gaps, the htmx fragments and their no-JS
fallback, constraint errors beside their fields, create, repeated POSTs, clone, sweep, export and
import, the naming page."""

from __future__ import annotations

import io
import re
from html import unescape

import pytest
from sqlalchemy import func, select

from app.chains import schema
from app.chains.models import Chain
from app.launches.models import Launch
from app.tasks import naming
from app.tasks.models import Task, TaskBunch
from tests.chains.conftest import chain_definition, chain_form_data, post, step
from tests.helpers import bunch_counts, settle_launches
from tests.tasks.conftest import form_values

pytestmark = pytest.mark.usefixtures("fake_panda")


def rows(html: str) -> list[str]:
    """The step rows' field-name prefixes in the order shown (steps-0, steps-1 …)."""
    return re.findall(r'name="(steps-\d+)-task_name"', html)


def test_new_chain_form(client, login_as):
    login_as("manager")
    html = client.get("/chains/new").get_data(as_text=True)
    values = form_values(html, "chain-form")
    assert rows(html) == ["steps-0"] and values["steps-0-step"] == "SIM"
    assert re.fullmatch(r"PROD\d{4}-001\.SIM", values["steps-0-task_name"])
    assert values["name"] == values["steps-0-task_name"].removesuffix(".SIM")
    assert 'href="/tasks/naming"' in html and "Naming convention here" in html
    assert values["processing_type"] == "MC production"


def test_viewers_see_chains_but_cannot_build_them(client, login_as):
    login_as("viewer")
    assert client.get("/chains/").status_code == 200
    assert client.get("/chains/new").status_code == 403
    assert post(client, "/chains/create", chain_form_data(chain_definition(), key="k")).status_code == 403


def test_the_chain_list_pages_by_keyset(client, login_as, db):
    login_as("viewer")
    for i in range(55):
        db.session.add(Chain(idempotency_key=f"list-{i}", name=f"LIST-{i:02d}", processing_type="MC production",
                             definition={}))  # fmt: skip
    db.session.commit()

    def names(html: str) -> list[str]:
        return re.findall(r">LIST-(\d\d)</a>", html)

    def link(html: str, rel: str) -> str:
        return unescape(re.search(rf'rel="{rel}" href="([^"]*)"', html)[1])

    first = client.get("/chains/").get_data(as_text=True)
    assert names(first) == [f"{i:02d}" for i in range(54, 4, -1)] and link(first, "prev") == "#"
    assert "55 in all" in first and "?after=" in link(first, "next")  # the last chain shown: no OFFSET
    second = client.get(link(first, "next")).get_data(as_text=True)
    assert names(second) == ["04", "03", "02", "01", "00"] and link(second, "next") == "#"
    assert names(client.get(link(second, "prev")).get_data(as_text=True)) == names(first)
    assert client.get("/chains/?after=x").status_code == 400


def test_gaps_in_row_indexes_keep_every_step(client, login_as):
    login_as("manager")
    data = chain_form_data(chain_definition(), key="gaps", indexes=[0, 7])
    html = post(client, "/chains/preview", data).get_data(as_text=True)
    assert "nothing has been saved or sent" in html, re.findall(r'class="chain-error">([^<]*)', html)
    assert rows(html) == ["steps-0", "steps-1"]  # renumbered, none dropped
    assert form_values(html, "chain-form")["steps-1-task_name"] == "PROD2025-008.RECO"
    assert "PROD2025-008.RECO.3" in html.split('id="preview-step-2"', 1)[1]


def fragment_values(html: str) -> dict[str, str]:
    return form_values(f'<form id="fragment">{html}</form>', "fragment")


def test_htmx_add_prefills_the_reco_step(client, login_as):
    login_as("manager")
    data = chain_form_data(chain_definition(steps=chain_definition().steps[:1]))
    fragment = post(client, "/chains/steps", {**data, "row_action": "add"}, headers={"HX-Request": "true"})
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert html.strip().startswith('<div id="chain-steps">') and "<html" not in html
    assert rows(html) == ["steps-0", "steps-1"]
    values = fragment_values(html)
    assert (values["steps-1-step"], values["steps-1-task_name"]) == ("RECO", "PROD2025-008.RECO")
    assert values["steps-1-output_dataset"] == "MC2025_S1.minbias-P8-spdroot417-dev.10GeV.PROD2025-008.RECO.1"
    assert values["steps-1-bunch_size"] == "3" and values["steps-1-exec_path"] == values["steps-0-exec_path"]
    assert 'name="steps-1-total_events"' not in html  # derived from step 1, not typed twice
    assert "the output of step 1" in html and "10000 per task" in html


def test_htmx_remove_and_move_keep_what_was_typed(client, login_as):
    login_as("manager")
    data = chain_form_data(chain_definition(), indexes=[2, 5])
    data["steps-5-files_per_job"] = "two"  # not a number: must come back as typed
    html = post(client, "/chains/steps", {**data, "row_action": "up:1"}).get_data(as_text=True)
    values = fragment_values(html)
    assert (values["steps-0-step"], values["steps-1-step"]) == ("RECO", "SIM")
    assert values["steps-0-files_per_job"] == "two"
    html = post(client, "/chains/steps", {**data, "row_action": "remove:0"}).get_data(as_text=True)
    values = fragment_values(html)
    assert (
        rows(html) == ["steps-0"]
        and values["steps-0-step"] == "RECO"
        and values["steps-0-files_per_job"] == "two"
    )
    # The last step cannot be removed.
    single = chain_form_data(chain_definition(steps=chain_definition().steps[:1]))
    html = post(client, "/chains/steps", {**single, "row_action": "remove:0"}).get_data(as_text=True)
    assert rows(html) == ["steps-0"] and re.search(r'value="remove:0"[^>]*disabled', html)


def test_changing_a_step_type_shows_that_kinds_fields(client, login_as):
    login_as("manager")
    data = chain_form_data(chain_definition())
    data["steps-1-step"] = "SIM"
    html = post(client, "/chains/steps", {**data, "row_action": "refresh"}).get_data(as_text=True)
    assert 'name="steps-1-total_events"' in html and 'name="steps-1-files_per_job"' not in html


def test_row_buttons_work_without_javascript(client, login_as):
    login_as("manager")
    data = chain_form_data(chain_definition(steps=chain_definition().steps[:1]), key="nojs")
    page = post(client, "/chains/edit", {**data, "row_action": "add"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and rows(html) == ["steps-0", "steps-1"]
    assert form_values(html, "chain-form")["idempotency_key"] == "nojs"
    assert 'formaction="/chains/edit"' in html and 'hx-post="/chains/steps"' in html  # both paths offered
    assert "chain-error" not in html  # adding a row validates nothing


def test_constraint_errors_name_step_and_field_and_keep_the_values(client, login_as):
    login_as("manager")
    chain = step(chain_definition(bunch_size=10), 2, bunch_size=12)
    chain = step(chain, 2, container_path="/cvmfs/spd.jinr.ru/images/spdroot-dev-4.2.0.sif")
    response = post(client, "/chains/preview", chain_form_data(chain, key="bad"))
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="preview"' not in html
    summary = re.findall(r'class="chain-error">([^<]*)<', html)
    assert (
        "step 2 (RECO), tasks to launch: 12 does not match step 1&#39;s 10; each task of step 1 gets its own RECO child"
        in summary
    )
    assert any(s.startswith("step 2 (RECO), path to container: SpdRoot 4.2 differs") for s in summary)
    bunch_size = html.split('name="steps-1-bunch_size"', 1)[1][:400]
    assert 'value="12"' in bunch_size.split(">", 1)[0] and "does not match step 1" in bunch_size
    assert form_values(html, "chain-form")["steps-1-container_path"].endswith("4.2.0.sif")
    assert db_count(Chain) == 0


def test_form_type_errors_and_constraints_show_together(client, login_as):
    login_as("manager")
    data = chain_form_data(step(chain_definition(), 2, bunch_size=2), key="t")
    data["steps-0-events_per_job"] = "lots"
    html = post(client, "/chains/create", data).get_data(as_text=True)
    summary = re.findall(r'class="chain-error">([^<]*)<', html)
    assert "step 1 (SIM), events per job: Not a valid integer value." in summary
    assert any(s.startswith("step 2 (RECO), tasks to launch: 2 does not match") for s in summary)
    assert form_values(html, "chain-form")["steps-0-events_per_job"] == "lots"
    assert db_count(Chain) == 0


def db_count(model) -> int:
    from app.extensions import db

    return db.session.scalar(select(func.count()).select_from(model))


def test_create_links_every_reco_to_its_sim_and_a_repeated_post_creates_nothing(client, login_as, db):
    login_as("manager")
    data = chain_form_data(chain_definition(wait_for_parent_done=True), key="c1")
    response = post(client, "/chains/create", data)
    assert response.status_code == 302
    assert settle_launches(30)
    chain = db.session.scalar(select(Chain))
    assert response.headers["Location"] == f"/chains/{chain.id}"
    assert [(s.position, s.step, s.bunch.size) for s in chain.steps] == [(1, "SIM", 3), (2, "RECO", 3)]
    sims, recos = chain.steps[0].bunch.tasks, chain.steps[1].bunch.tasks
    assert [t.parent_id for t in recos] == [t.id for t in sims]
    assert [t.spec["input_dataset"] for t in recos] == [t.output_dataset for t in sims]
    assert all(t.launches[0].after_parent_done for t in recos) and not any(
        t.launches[0].after_parent_done for t in sims
    )
    assert chain.definition == schema.to_document(schema.from_document(chain.definition))
    assert chain.definition["steps"][1]["parent_task"] == "PROD2025-008.SIM"
    # The SIM tasks went to PanDA; the RECO tasks wait until their SIM is done (the chain option).
    db.session.expire_all()
    assert all(t.panda_task_id for t in sims) and not any(t.panda_task_id for t in recos)
    assert recos[0].latest_launch.error.startswith("waiting for parent task PROD2025-008.SIM.1 to be done")
    # The same POST again (a double click, a refresh) shows the same chain; a changed form is refused.
    again = post(client, "/chains/create", data)
    assert again.headers["Location"] == f"/chains/{chain.id}" and db_count(Chain) == 1
    changed = post(client, "/chains/create", {**data, "comment": "other"})
    assert changed.status_code == 409 and "already created chain PROD2025-008" in changed.get_data(
        as_text=True
    )
    assert db_count(TaskBunch) == 2 and db_count(Task) == 6
    page = client.get(f"/chains/{chain.id}").get_data(as_text=True)
    assert "waiting for parent task PROD2025-008.SIM.3 to be done" in page
    assert page.count('class="card flex-grow-1 chain-flow-step"') == 2
    # Whole-chain actions: the bulk confirmation over the chain's six tasks, filtered by the matrix.
    assert 'id="chain-kill-all"' in page and 'id="chain-retry-all"' in page
    confirm = post(client, "/actions/bulk/confirm", {"scope": "chain", "target_id": str(chain.id), "action": "kill"})
    assert "6 task(s)" in confirm.get_data(as_text=True)
    fragment = client.get(f"/chains/{chain.id}/progress").get_data(as_text=True)
    assert fragment.startswith('\n<div id="chain-flow"') or fragment.lstrip().startswith(
        '<div id="chain-flow"'
    )
    bunch_page = client.get(f"/tasks/bunch/{chain.steps[0].bunch_id}").get_data(as_text=True)
    assert f'href="/chains/{chain.id}"' in bunch_page


def test_resending_a_failed_step_touches_nothing_else(client, login_as, db, fake_panda):
    from app.chains import services

    user = login_as("manager")
    result = services.create_chain(chain_definition(number=20), user, "r1", is_admin=False)
    db.session.commit()
    sim_bunch, reco_bunch = (s.bunch for s in result.chain.steps)
    fake_panda.script = ["ok", "reject", "ok"]
    assert settle_launches()  # the SIM step's launches go first, then the RECO step's that may
    assert bunch_counts(reco_bunch.id) == {
        "submitted": 2,
        "pending": 1,
    }
    reco_2 = reco_bunch.tasks[1]
    assert reco_2.latest_launch.error.startswith(
        "waiting for parent task PROD2025-020.SIM.2 to reach PanDA (its launch failed"
    )
    page = client.get(f"/chains/{result.chain.id}").get_data(as_text=True)
    assert 'id="resend-step-1"' in page and 'id="resend-step-2"' not in page
    before = {launch.id for launch in db.session.scalars(select(Launch))}
    post(client, f"/chains/{result.chain.id}/steps/1/resend", {})
    assert settle_launches(30)
    db.session.expire_all()
    new = [launch for launch in db.session.scalars(select(Launch)) if launch.id not in before]
    assert [(launch.task.name, launch.attempt) for launch in new] == [("PROD2025-020.SIM.2", 2)]
    assert sorted(fake_panda.submits) == sorted(
        ["PROD2025-020.SIM.1", "PROD2025-020.SIM.2", "PROD2025-020.SIM.3", "PROD2025-020.SIM.2",
         "PROD2025-020.RECO.1", "PROD2025-020.RECO.3", "PROD2025-020.RECO.2"]
    )  # fmt: skip
    assert fake_panda.tasks[reco_2.panda_task_id]["parent_tid"] == sim_bunch.tasks[1].panda_task_id


def test_clone_moves_the_chain_to_the_next_production(client, login_as, db, clock):
    from app.chains import services

    user = login_as("manager")
    source = services.create_chain(chain_definition(number=30), user, "src", is_admin=False).chain
    db.session.commit()
    html = client.get(f"/chains/{source.id}/clone").get_data(as_text=True)
    values = form_values(html, "chain-form")
    # The next free number of this year (the clock says 2026).
    assert values["name"] == "PROD2026-001" and values["cloned_from"] == str(source.id)
    assert (values["steps-0-task_name"], values["steps-1-task_name"]) == (
        "PROD2026-001.SIM",
        "PROD2026-001.RECO",
    )
    assert (
        values["steps-1-output_dataset"].endswith(".PROD2026-001.RECO.1")
        and values["steps-0-total_events"] == "10000"
    )
    assert "Clone of chain PROD2025-030" in html
    assert post(client, "/chains/create", values).status_code == 302
    clone = db.session.scalar(select(Chain).where(Chain.name == "PROD2026-001"))
    assert (
        clone.cloned_from_id == source.id and clone.steps[0].bunch.cloned_from_id == source.steps[0].bunch_id
    )


def test_sweep_previews_a_table_then_creates_the_chains(client, login_as, db, clock):
    from app.chains import services

    user = login_as("manager")
    source = services.create_chain(
        chain_definition(number=40, bunch_size=1), user, "sw", is_admin=False
    ).chain
    db.session.commit()
    html = post(
        client, f"/chains/{source.id}/sweep", {"parameter": "energy", "values": "13.5GeV\n27\nhot"}
    ).get_data(as_text=True)
    table = html.split('id="sweep-table"', 1)[1]
    assert (
        "PROD2026-001.SIM</code> → <code>MC2025_S1.minbias-P8-spdroot417-dev.13.5GeV.PROD2026-001.SIM.1"
        in table
    )
    assert "minbias-P8-spdroot417-dev.27GeV.V01" in table and "PROD2026-002.RECO" in table
    assert "&#39;hot&#39; is not an energy such as 27GeV" in table
    assert (
        'id="sweep-create"' not in html and db_count(Chain) == 1
    )  # nothing saved; a bad value blocks creating
    values = form_values(html, "sweep-form")
    values["values"] = "13.5GeV\n27"
    html = post(client, f"/chains/{source.id}/sweep", values).get_data(as_text=True)
    assert 'id="sweep-create"' in html
    response = post(client, f"/chains/{source.id}/sweep/create", form_values(html, "sweep-form"))
    assert response.status_code == 302
    names = sorted(c.name for c in db.session.scalars(select(Chain)))
    assert names == ["PROD2025-040", "PROD2026-001 13.5GeV", "PROD2026-002 27"]
    again = post(client, f"/chains/{source.id}/sweep/create", form_values(html, "sweep-form"))
    assert again.status_code == 302 and db_count(Chain) == 3  # the same key creates nothing twice


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_and_import_in_one_schema(client, login_as, db, fmt):
    from app.chains import services

    user = login_as("manager")
    source = services.create_chain(chain_definition(number=50), user, "ex", is_admin=False).chain
    db.session.commit()
    exported = client.get(f"/chains/{source.id}/export.{fmt}")
    assert exported.headers["Content-Disposition"] == f'attachment; filename="PROD2025-050.chain.{fmt}"'
    text = exported.get_data(as_text=True)
    assert schema.from_document(schema.loads(text, f"x.{fmt}")) == services.definition_of(source)
    upload = {"document": (io.BytesIO(text.encode()), f"PROD2025-050.chain.{fmt}")}
    html = post(client, "/chains/import", upload, content_type="multipart/form-data").get_data(as_text=True)
    assert "Chain from PROD2025-050.chain." in html and "nothing is saved" in html
    assert form_values(html, "chain-form")["steps-1-task_name"] == "PROD2025-050.RECO"
    assert "task name PROD2025-050.SIM.1 is already used" in html  # checked at once: names are taken
    broken = text.replace("total_events: 10000", "total_events: ten thousand").replace(
        '"total_events": 10000', '"total_events": "ten"'
    )
    upload = {"document": (io.BytesIO(broken.encode()), f"c.{fmt}")}
    response = post(client, "/chains/import", upload, content_type="multipart/form-data")
    assert response.status_code == 400
    assert "step 1 (SIM), total events: must be a whole number or empty (null)" in response.get_data(
        as_text=True
    )


def test_naming_page_is_built_from_the_configured_rules(app, client, login_as):
    import dataclasses

    login_as("viewer")
    html = client.get("/tasks/naming").get_data(as_text=True)
    examples = re.findall(r'class="naming-example">([^<]*)<', html)
    rules = naming.NamingRules()
    assert naming.parse_task_name(examples[2].split(", ")[0], rules).step == "SIM"
    assert naming.parse_dataset_name(examples[5], rules).tag == "minbias-P8-spdroot417-dev.10GeV"
    assert "TEST_S1-PROD" in html
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = dataclasses.replace(
        settings,
        tasks=dataclasses.replace(
            settings.tasks, campaign_prefixes=["", "MC_S2-"], task_name_pattern="{production}_{step}"
        ),
    )
    html = client.get("/tasks/naming").get_data(as_text=True)
    assert "MC_S2-PROD" in html and "TEST_S1-PROD" not in html and re.search(r"PROD\d{4}-001_SIM", html)


def test_the_saved_message_says_when_the_chain_goes(client, login_as, db, clock):
    login_as("manager")
    later = {"launch_when": "at", "launch_at": "2026-01-16T09:30", "time_zone": "UTC"}
    post(client, "/chains/create", {**chain_form_data(chain_definition(), key="later"), **later})
    html = client.get(f"/chains/{db.session.scalar(select(Chain.id))}").get_data(as_text=True)
    assert "launching at 2026-01-16 09:30" in html and "submitting to PanDA" not in html
    post(client, "/chains/create", chain_form_data(chain_definition(number=9), key="now"))
    html = client.get(f"/chains/{max(db.session.scalars(select(Chain.id)))}").get_data(as_text=True)
    assert "submitting to PanDA" in html
