"""The bunch page lists its tasks a page at a time by position (keyset on the bunch index), while its
counts stay the whole bunch's; the polled progress fragment refreshes the rows of the page shown."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from app import clock
from app.extensions import db
from app.launches.schedule import Schedule
from app.tasks import services
from tests.tasks.conftest import sim_definition


def _indexes(page: str) -> list[int]:
    table = page.split('id="bunch-tasks"', 1)[1].split("</table>", 1)[0]
    return [int(n) for n in re.findall(r"<tr>\s*<td>(\d+)</td>", table)]


def _links(page: str) -> dict[str, str]:
    pager = page.split('id="bunch-pager"', 1)[1].split("</nav>", 1)[0]
    return {rel: unescape(href) for rel, href in re.findall(r'rel="(prev|next)" href="([^"]+)"', pager)}


def test_bunch_page_pages_its_tasks_by_position_and_counts_the_whole_bunch(client, login_as, make_user, monkeypatch):
    monkeypatch.setattr(services, "BUNCH_ROWS", 2)
    bunch, _, _ = services.create_bunch(
        sim_definition(bunch_size=5), make_user("manager"), "paging", is_admin=False,
        schedule=Schedule(at=clock.now() + timedelta(days=1)),  # pending: the fragment keeps polling
    )  # fmt: skip
    db.session.commit()
    login_as("viewer")
    url = f"/tasks/bunch/{bunch.id}"

    first = client.get(url).get_data(as_text=True)
    assert _indexes(first) == [1, 2] and "0 of 5 submitted" in first
    assert _links(first) == {"prev": "#", "next": f"{url}?after=2"}
    assert f'hx-get="{url}/progress"' in first  # the first page polls without a cursor

    middle = client.get(f"{url}?after=2").get_data(as_text=True)
    assert _indexes(middle) == [3, 4] and "0 of 5 submitted" in middle
    assert _links(middle) == {"prev": f"{url}?before=3", "next": f"{url}?after=4"}
    assert f'hx-get="{url}/progress?after=2"' in middle

    last = client.get(f"{url}?after=4").get_data(as_text=True)
    assert _indexes(last) == [5] and _links(last) == {"prev": f"{url}?before=5", "next": "#"}
    back = client.get(f"{url}?before=3").get_data(as_text=True)
    assert _indexes(back) == [1, 2] and _links(back) == {"prev": "#", "next": f"{url}?after=2"}

    fragment = client.get(f"{url}/progress?after=2").get_data(as_text=True)
    assert _indexes(fragment) == [3, 4] and "0 of 5 submitted" in fragment

    for bad in ("after=x", "before=-1", "after=99999999999999999999999"):
        reply = client.get(f"{url}?{bad}")
        assert reply.status_code == 400, bad
    assert client.get(f"{url}/progress?before=1.5").status_code == 400
