"""The task tables on SQLite and PostgreSQL: every filter (and its negation) against the rows
checked in Python, keyset walks that return each matching row once and in order, URL round trips,
bad parameters answered 400, exports, counts and totals that agree with the table, and the bulk
selection equal to the table's filter."""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app import extensions
from app.actions.selection import selected_tasks, selection_from
from app.auth.models import User
from app.chains.models import ChainStep
from app.extensions import db
from app.monitoring import tables
from app.monitoring.filters import BadFilter, TaskFilter
from app.monitoring.tables import CURRENT, SUCCESSFUL_TABLE, TableState
from app.tasks.models import Task
from tests.helpers import csrf_token
from tests.monitoring.conftest import SEEDED

STATUSES = ["done", "finished", "failed", "running", "none", "pending", "aborted"]


def _all_tasks() -> list[Task]:
    return list(db.session.scalars(select(Task).order_by(Task.id)))


def _matches(f: TaskFilter, t: Task, usernames: dict[int, str], chains: dict[int, int]) -> bool:
    """The filter evaluated in Python, independently of its SQL."""
    checks: dict[str, Any] = {
        "status": lambda: (t.panda_status or "none") in f.status,
        "step": lambda: t.step in f.step,
        "creator": lambda: usernames.get(t.created_by_id or 0) == f.creator,
        "mine": lambda: t.created_by_id == f.user_id,
        "q": lambda: fnmatch.fnmatchcase(t.name, f.q if any(c in f.q for c in "*?") else f.q + "*"),
        "panda_id": lambda: t.panda_task_id in f.panda_id,
        "dataset": lambda: fnmatch.fnmatchcase(t.output_dataset, f.dataset if "*" in f.dataset else f.dataset + "*"),
        "bunch": lambda: t.bunch_id == f.bunch,
        "chain": lambda: chains.get(t.bunch_id) == f.chain,
        "cloud": lambda: t.cloud == f.cloud,
        "request": lambda: t.request_id == f.request,
        "ended": lambda: t.ended_at is not None
        and (f.ended.start is None or t.ended_at >= f.ended.start)
        and (f.ended.end is None or t.ended_at < f.ended.end),
    }
    return all(not (getattr(f, name) and check() == (name in f.negated)) for name, check in checks.items())


filter_args = st.fixed_dictionaries(
    {},
    optional={
        "status": st.lists(st.sampled_from(STATUSES), min_size=1, max_size=3),
        "step": st.lists(st.sampled_from(["SIM", "RECO"]), min_size=1, max_size=1),
        "creator": st.sampled_from(["seed-user-0", "seed-user-3", "nobody"]),
        "mine": st.just("1"),
        "q": st.sampled_from(["PROD2025-00", "PROD2025-01*.SIM.*", "*.b1?.*", "*RECO*", "PROD2025-0*.3"]),
        "dataset": st.sampled_from(["MC2025_S1.tag.PROD2025-02", "MC2025_S1.tag.*.5"]),
        "bunch": st.integers(1, 40).map(str),
        "chain": st.integers(1, 5).map(str),
        "cloud": st.sampled_from(["JINR", "PNPI"]),
        "request": st.sampled_from(["1", "7"]),
        "panda_id": st.lists(st.integers(1001, 1000 + SEEDED), min_size=1, max_size=4).map(
            lambda ids: ",".join(map(str, ids))
        ),
        "ended_from": st.sampled_from(["2025-03-02", "2025-03-03T12:00"]),
        "ended_to": st.sampled_from(["2025-03-05", "2025-03-09"]),
    },
)


def _with_negations(draw_args: dict[str, Any], negate: list[str]) -> MultiDict:
    args = MultiDict()
    for key, value in draw_args.items():
        for v in value if isinstance(value, list) else [value]:
            args.add(key, v)
    groups = {key.split("_")[0] if key.startswith("ended") else key for key in draw_args}
    for name in negate:
        if name in groups:
            args.add("not", name)
    return args


negations = st.lists(st.sampled_from(["status", "step", "creator", "q", "cloud", "chain", "ended", "mine"]))


def test_every_filter_and_its_negation_match_the_rows_checked_in_python(seeded):
    tasks = _all_tasks()
    usernames = dict(db.session.execute(select(User.id, User.username)).all())
    chains = dict(db.session.execute(select(ChainStep.bunch_id, ChainStep.chain_id)).all())

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(args=filter_args, negate=negations)
    def check(args, negate):
        f = TaskFilter.from_args(_with_negations(args, negate), user_id=seeded[1], steps=["SIM", "RECO"])
        got = set(db.session.scalars(select(Task.id).where(*f.clauses())))
        expected = {t.id for t in tasks if _matches(f, t, usernames, chains)}
        assert got == expected, f.describe()

    check()


def _sort_value(t: Task, key: str) -> Any:
    col = CURRENT.column(key)
    if not col.sort:
        return ()
    values = []
    for expr in col.sort:
        if key == "progress":
            values.append(t.jobs_done / t.jobs_total if t.jobs_done is not None and t.jobs_total else None)
        else:
            values.append(getattr(t, expr.key))
    return tuple(values)


def _expected_order(rows: list[Task], key: str, ascending: bool) -> list[int]:
    def sort_key(t: Task):
        # NULLs lowest on both databases: first going up, last going down.
        return (*((0, 0) if v is None else (1, v) for v in _sort_value(t, key)), t.id)

    ordered = sorted(rows, key=sort_key)
    return [t.id for t in (ordered if ascending else ordered[::-1])]


def _walk(table, f: TaskFilter, state: TableState, backwards: bool = False) -> list[int]:
    """Every page by keyset: Next from the first page (or Previous from the last)."""
    seen: list[int] = []
    page = tables.page_of(table, f, TableState(**{**state.__dict__, "last": backwards}))
    for _ in range(1000):
        ids = page.ids
        seen = ids + seen if backwards else seen + ids
        more = page.has_prev if backwards else page.has_next
        if not more:
            return seen
        cursor = {"before": page.first_cursor} if backwards else {"after": page.last_cursor}
        page = tables.page_of(table, f, TableState(**{**state.__dict__, **cursor}))
    raise AssertionError("the walk does not end")


def test_keyset_walks_return_every_matching_row_once_in_order(seeded):
    tasks = _all_tasks()
    usernames = dict(db.session.execute(select(User.id, User.username)).all())
    chains = dict(db.session.execute(select(ChainStep.bunch_id, ChainStep.chain_id)).all())

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        args=filter_args,
        negate=negations,
        sort=st.sampled_from(CURRENT.keys),
        order=st.sampled_from(["asc", "desc"]),
        size=st.sampled_from([25, 50]),
        backwards=st.booleans(),
    )
    def check(args, negate, sort, order, size, backwards):
        f = TaskFilter.from_args(_with_negations(args, negate), user_id=seeded[1], steps=["SIM", "RECO"])
        state = TableState(sort, order, size)
        matching = [t for t in tasks if _matches(f, t, usernames, chains)]
        walked = _walk(CURRENT, f, state, backwards)
        assert walked == _expected_order(matching, sort, order == "asc")

    check()


def test_numbered_pages_and_keyset_pages_agree(seeded):
    f = TaskFilter.from_args(MultiDict({"status": "done"}))
    state = TableState("submitted_at", "asc", 25)
    walked = _walk(CURRENT, f, state)
    numbered = []
    for number in range(1, 5):
        numbered += tables.page_of(CURRENT, f, TableState("submitted_at", "asc", 25, page=number)).ids
    assert numbered == walked[:100] and len(walked) > 100


@given(args=filter_args, negate=negations)
@settings(max_examples=100, deadline=None)
def test_the_filter_survives_its_url(args, negate):
    f = TaskFilter.from_args(_with_negations(args, negate), user_id=3, steps=["SIM", "RECO"])
    again = TaskFilter.from_args(MultiDict(f.to_args()), user_id=3, steps=["SIM", "RECO"])
    assert again == f


@pytest.mark.parametrize(
    "query, message",
    [
        ("sort=nope", "unknown column"),
        ("sort=name;DROP TABLE task", "unknown column"),
        ("order=sideways", "asc or desc"),
        ("size=7", "size: one of"),
        ("page=99999999", "go further with Next"),
        ("page=-1", "not a number"),
        ("after=garbage", "malformed page position"),
        ("after=WzEsMl0", "malformed page position"),  # [1,2] for a sort with one key and the id: wrong types
        ("submitted_from=yesterday", "is not a date"),
        ("status=runing", "unknown PanDA status"),
        ("step=GEN", "unknown step"),
        ("panda_id=1;DROP", "is not a number"),
        ("request=abc", "is not a number"),
        ("not=everything", "cannot negate"),
        ("cols=name,secret", "unknown column"),
    ],
)
def test_bad_parameters_answer_400_with_a_message(client, login_as, query, message):
    login_as("viewer")
    positional = query.startswith(("page=", "after="))  # an export is every row: it has no position
    for url in ("/tasks/", "/tasks/successful") + (() if positional else ("/tasks/export.csv",)):
        response = client.get(f"{url}?{query}")
        assert response.status_code == 400, url
        assert message in response.get_data(as_text=True)


def _shown(html: str) -> list[str]:
    return re.findall(r'class="task-link">([^<]+)</a>', html)


def test_pages_exports_counts_and_bulk_selection_agree(client, login_as, seeded):
    login_as("manager")
    query = "status=running&status=scouting&status=failed&not=step&step=RECO&sort=started_at&order=asc&size=25"
    f = TaskFilter.from_args(MultiDict([tuple(p.split("=")) for p in query.split("&")]), steps=["SIM", "RECO"])
    usernames = dict(db.session.execute(select(User.id, User.username)).all())
    chains = dict(db.session.execute(select(ChainStep.bunch_id, ChainStep.chain_id)).all())
    matching = [t for t in _all_tasks() if _matches(f, t, usernames, chains)]
    expected = _expected_order(matching, "started_at", True)
    assert len(expected) > 25
    names = dict(db.session.execute(select(Task.id, Task.name)).all())

    html = client.get(f"/tasks/?{query}").get_data(as_text=True)
    assert _shown(html) == [names[i] for i in expected[:25]]
    assert f"rows 1–25 of {len(expected)} matching" in html
    assert 'rel="next" href="/tasks/?status=running&amp;status=scouting&amp;status=failed&amp;step=RECO&amp;not=step' in html

    exported = list(csv.DictReader(io.StringIO(client.get(f"/tasks/export.csv?{query}").get_data(as_text=True))))
    assert [int(row["id"]) for row in exported] == expected
    document = json.loads(client.get(f"/tasks/export.json?{query}").get_data(as_text=True))
    assert [record["id"] for record in document["tasks"]] == expected
    assert document["schema"] == "prodpanel.task/1" and ["not", "step"] in document["filter"]
    assert {r["panda_status"] for r in document["tasks"]} <= {"running", "scouting", "failed"}
    assert all(r["step"] != "RECO" for r in document["tasks"])

    counts = client.get(f"/tasks/counts?table=tasks&{query}").get_data(as_text=True)
    shown_counts = dict(re.findall(r'data-status="([a-z]+)"[^>]*>[a-z]+ <span class="badge[^"]*">(\d+)<', counts))
    assert sum(int(shown_counts[s]) for s in ("running", "scouting", "failed") if s in shown_counts) == len(expected)

    # "all N matching this filter" carries the same filter and selects exactly the table's rows.
    form = re.search(r'<form[^>]*id="bulk-form".*?</form>', html, re.S).group(0)
    fields = MultiDict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
    fields.add("scope", "filter")
    selection = selection_from(fields)
    assert sorted(t.id for t in selected_tasks(selection)) == sorted(expected)
    assert "status=running|scouting|failed" in selection.describe() and "step not=RECO" in selection.describe()


def test_successful_table_totals_are_summed_over_every_matching_row(client, login_as, seeded):
    login_as("viewer")
    f = TaskFilter.from_args(MultiDict({"cloud": "JINR"}))
    rows = [t for t in _all_tasks() if t.panda_status in ("done", "finished") and t.cloud == "JINR"]
    totals = tables.totals(SUCCESSFUL_TABLE, f)
    assert totals["tasks"] == len(rows) > 50
    assert totals["walltime"] == sum(t.walltime_s for t in rows)
    assert totals["output_gb"] == sum(t.output_bytes for t in rows)
    assert totals["jobs_total"] == sum(t.jobs_total for t in rows)
    html = client.get("/tasks/successful?cloud=JINR&sort=walltime&order=desc").get_data(as_text=True)
    top = max(rows, key=lambda t: (t.walltime_s, t.id))
    assert _shown(html)[0] == top.name and "Total:" not in html  # the row is loaded after the page
    url = re.search(r'id="totals-foot" hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "cloud=JINR" in url
    row = client.get(url).get_data(as_text=True)
    assert f"Total: {len(rows)} tasks" in row and f"{sum(t.walltime_s for t in rows) / 3600:.1f} h" in row
    exported = json.loads(client.get("/tasks/successful/export.json?cloud=JINR").get_data(as_text=True))
    assert sorted(r["id"] for r in exported["tasks"]) == sorted(t.id for t in rows)


def test_counts_are_capped_never_counted_over_everything(seeded, monkeypatch):
    monkeypatch.setattr(extensions, "COUNT_CAP", 100)
    page = tables.page_of(CURRENT, TaskFilter(), TableState("created"))
    assert page.total == 101 and page.total_text == "100+"


def test_columns_are_chosen_per_user_and_the_url_overrides_them(client, login_as, app, seeded):
    viewer = login_as("viewer")
    html = client.get("/tasks/").get_data(as_text=True)
    assert 'data-col="creator"' in html and 'data-col="cloud"' not in html  # the defaults
    saved = client.post("/tasks/columns", data={"csrf_token": csrf_token(client, "/tasks/"), "table": "tasks",
                                                "col": ["name", "cloud"], "back": "/tasks/?status=done"})  # fmt: skip
    assert saved.status_code == 302 and saved.headers["Location"] == "/tasks/?status=done"
    html = client.get("/tasks/").get_data(as_text=True)
    assert re.findall(r'data-col="([a-z_]+)"', html) == ["name", "cloud"]
    assert re.findall(r'data-col="([a-z_]+)"', client.get("/tasks/?cols=status").get_data(as_text=True)) == ["status"]
    # Another user keeps the defaults.
    client.post("/logout", data={"csrf_token": csrf_token(client, "/tasks/")})
    login_as("viewer")
    assert 'data-col="creator"' in client.get("/tasks/").get_data(as_text=True)
    assert viewer.id


def test_time_windows_are_utc_days(seeded):
    f = TaskFilter.from_args(MultiDict({"ended_from": "2025-03-03", "ended_to": "2025-03-03"}))
    assert f.ended.start == datetime(2025, 3, 3, tzinfo=UTC) and f.ended.end == datetime(2025, 3, 4, tzinfo=UTC)
    with pytest.raises(BadFilter):
        TaskFilter.from_args(MultiDict({"ended_to": "2025-02-30"}))
