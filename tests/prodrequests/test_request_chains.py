"""A request's chains: its page lists them with their tasks and counts them in its progress; a chain's
task that names no request itself counts for its chain's request, in the page and in the
reconciliation report."""

from __future__ import annotations

from html import unescape

from app import clock as app_clock
from app.prodrequests import services
from tests.prodrequests.conftest import make_chain, make_task


def section(html: str, element_id: str) -> str:
    return html.split(f'id="{element_id}"', 1)[1].split("</table>", 1)[0]


def test_a_request_page_lists_its_chains_their_tasks_and_counts_them(client, login_as, make_user, db):
    user = make_user("manager")
    chain = make_chain(
        user, 1, sim_request=3, reco_request=None, statuses=("done", "running"), events=4_000_000
    )
    make_task(user, 2, request_id=3, status="done", events=1_000_000)
    make_chain(user, 3, sim_request=5, reco_request=5)  # another request's chain
    db.session.commit()
    login_as("viewer")
    html = unescape(client.get("/requests/3").get_data(as_text=True))
    chains = section(html, "request-chains")
    assert f'<a href="/chains/{chain.id}">PROD2025-001</a>' in chains and "SIM → RECO" in chains
    assert "PROD2025-003" not in chains
    tasks = section(html, "request-tasks")
    for name in ("PROD2025-001.SIM", "PROD2025-001.RECO", "PROD2025-002.SIM"):
        assert f"{name}</a>" in tasks, name  # the RECO names no request: it counts for its chain's
    assert "PROD2025-003" not in tasks
    assert tasks.count(f'<a href="/chains/{chain.id}">PROD2025-001</a>') == 2  # the chain column
    assert 'id="events-produced">5 000 000 (50 %)<' in html  # the chain's SIM + the single task
    assert 'id="events-planned">5 000 000<' in html  # RECO processes the SIM's events: not counted twice
    assert 'id="progress-tasks">3, 1 chain(s) (1 still running or waiting)<' in html  # the running RECO


def test_a_manager_follows_a_chain_back_to_its_request(client, login_as, make_user, db):
    user = make_user("manager")
    chain = make_chain(user, 1, sim_request=3, reco_request=3)
    db.session.commit()
    login_as("manager")
    client.get("/requests/")  # the list fills the cache the chain page reads its title from
    html = unescape(client.get(f"/chains/{chain.id}").get_data(as_text=True))
    assert (
        'For request <a href="/requests/3" class="chain-request">#3 jpsi (Pythia8) at 27 GeV, SpdRoot 4.1.7 (done, Charmonia)</a>'
        in html
    )


def test_a_chain_naming_no_request_is_not_listed(app, make_user, db):
    user = make_user("manager")
    make_chain(user, 1, sim_request=None, reco_request=None)
    make_chain(user, 2, sim_request=None, reco_request=4)  # a later step names it: the chain is its
    db.session.commit()
    assert [c.name for c in services.chains_for_request(4)] == ["PROD2025-002"]
    assert [t.name for t in services.tasks_for_request(4)] == ["PROD2025-002.SIM", "PROD2025-002.RECO"]
    assert services.chains_for_request(1) == services.tasks_for_request(1) == []


def test_reconciliation_counts_chain_tasks(client, login_as, make_user, db):
    user = make_user("manager")
    make_chain(user, 1, sim_request=4, reco_request=None, statuses=("done", "done"), events=20_000_000)
    make_chain(user, 2, sim_request=2, reco_request=2, statuses=("done", "failed"), events=1_000_000)
    make_chain(user, 3, sim_request=None, reco_request=None)
    db.session.commit()
    report = services.reconciliation()
    orphans = sorted(t.name for t, _ in report.orphan_tasks)
    assert orphans == ["PROD2025-003.RECO", "PROD2025-003.SIM"]  # only the chain naming no request
    assert not {2, 4} & {r.id for r in report.without_tasks}
    assert [(r.id, p.produced, p.tasks) for r, p in report.short] == [(2, 1_000_000, 2)]  # 4 got its 20M
    login_as("viewer")
    html = unescape(client.get("/requests/reconcile").get_data(as_text=True))
    assert "Tasks without a request (2)" in html
    assert "PROD2025-001.RECO" not in html.split('id="orphan-tasks"')[1].split("</section>")[0]


def test_progress_reads_what_the_sync_accounted(client, login_as, make_user, db):
    user = make_user("manager")
    chain = make_chain(
        user, 1, sim_request=3, reco_request=3, statuses=("finished", "done"), events=4_000_000
    )
    sim, reco = (s.bunch.tasks[0] for s in chain.steps)
    for task, events, size in ((sim, 3_900_000, 2 * 10**12), (reco, 3_900_000, 5 * 10**11)):
        task.accounted_at, task.events_processed, task.output_bytes = app_clock.now(), events, size
    make_task(user, 2, request_id=3, status="done", events=1_000_000)  # done, not accounted yet: planned
    db.session.commit()
    login_as("viewer")
    html = unescape(client.get("/requests/3").get_data(as_text=True))
    assert 'id="events-produced">4 900 000 (49 %)<' in html  # SIM's jobs made 3.9M of its 4M; RECO adds none
    assert 'id="output-size">2.50 TB<' in html  # both steps' output (the single task's is not known yet)
