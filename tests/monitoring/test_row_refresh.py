"""The polled refresh of the task table's active rows: the page polls only its active rows, the
refresh reads them in one statement and answers each row whole (in the page's columns, swapped out
of band), and polls on only those still active."""

from __future__ import annotations

import re

from sqlalchemy import event, select

from app.extensions import db
from app.monitoring.records import records_by_id, task_records
from app.sync.services import FINAL
from app.tasks.models import Task


def _poll_url(html: str) -> str:
    return re.search(r'id="panda-poll"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")


def test_active_rows_refresh_whole_in_one_statement(client, login_as, seeded):
    login_as("viewer")
    html = client.get("/tasks/?status=running&status=scouting&cols=name,jobs_done,priority_current,progress").get_data(
        as_text=True
    )
    url = _poll_url(html)
    ids = [int(i) for i in re.search(r"ids=([0-9,]+)", url).group(1).split(",")]
    shown = [int(i) for i in re.findall(r'<tr data-task="(\d+)" id="task-row-\1"', html)]
    assert sorted(ids) == sorted(shown) and len(ids) == 50  # every row shown is active here
    assert "cols=name,jobs_done,priority_current,progress" in url

    # The sync moved two tasks: one further, one to its end.
    moving, ending = db.session.get(Task, ids[0]), db.session.get(Task, ids[1])
    moving.jobs_done, moving.jobs_total, moving.priority_current = 7, 8, 4321
    ending.panda_status = "done"
    db.session.commit()

    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        tasks, records = records_by_id(ids)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert len(statements) == 1 and [t.id for t in tasks] == sorted(ids)
    assert records == task_records(tasks)  # the same records as the page's

    answer = client.get(url).get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-task="(\d+)" id="task-row-\d+" hx-swap-oob="true">(.*?)</tr>', answer, re.S))
    assert sorted(map(int, rows)) == sorted(ids)  # each row whole, the ended one a last time
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rows[str(moving.id)], re.S)
    assert len(cells) == 4 and cells[1] == "7" and cells[2] == "4 321" and cells[3] == "87.5 %"
    again = _poll_url(answer)
    still = {t.id for t in db.session.scalars(select(Task).where(Task.id.in_(ids)))
             if t.panda_status not in FINAL}  # fmt: skip
    assert str(ending.id) not in re.split(r"[=,&]", again) and len(still) == 49
    assert all(str(i) in re.split(r"[=,&]", again) for i in still)


def test_a_bad_column_in_the_refresh_answers_400(client, login_as, seeded):
    login_as("viewer")
    response = client.get("/tasks/rows?ids=1,2&cols=name,nope")
    assert response.status_code == 400 and "unknown column" in response.get_data(as_text=True)
