"""The chain page lists the first tasks of each step (the bunch page lists every one) and counts every
task's state per step in the database; the API still lists every task."""

from __future__ import annotations

import re

from app.chains import services as chains
from tests.chains.conftest import chain_definition


def test_the_chain_page_lists_the_first_tasks_of_each_step_and_counts_them_all(
    client, login_as, db, monkeypatch
):
    monkeypatch.setattr(chains, "ROWS_SHOWN", 2)
    user = login_as("manager")
    chain = chains.create_chain(chain_definition(bunch_size=3), user, "k", is_admin=False).chain
    db.session.commit()
    html = client.get(f"/chains/{chain.id}").get_data(as_text=True)
    shown = re.findall(r'<a href="/tasks/\d+">(PROD2025-008\.(?:SIM|RECO)\.\d)</a>', html)
    assert shown[:2] == ["PROD2025-008.SIM.1", "PROD2025-008.SIM.2"] and "PROD2025-008.SIM.3</a>" not in html
    assert "PROD2025-008.RECO.1" in shown and "PROD2025-008.RECO.3</a></td>" not in html
    assert html.count("1 more on the bunch page") == 2
    assert html.count("3 pending") == 2  # every task of the step counted, not only the rows shown
    api = client.get(f"/api/v1/chains/{chain.id}", headers={"Accept": "application/json"}).get_json()
    assert [len(s["tasks"]) for s in api["steps"]] == [3, 3]
