"""Benchmark: every page of the panel at 1 000, 100 000 and 1 000 000 tasks (SQLite) and at 100 000 on
PostgreSQL, in one run.

Seeding: the first SIM and RECO bunches are made by the app's own services (the task form's
`create_bunch`, the dispatcher's manifest); every further bunch copies their rows with its own names
(text replacement in the JSON columns, bulk inserts), so each task has the parameters, spec, launch
and manifest a real one has. Bunches of 1–200 tasks, a RECO bunch reading each SIM bunch task by task,
every fifth pair a chain; 90 % of the tasks in PanDA with their status history and a PanDA-log row,
the rest waiting to launch. The database grows to each size in turn.

Measuring: a separate worker process (its memory is the server's, not the seeder's) logs in as an
admin and requests every GET route the statement-count test knows (tests/speed/test_statements.py:
the same URL arguments and filtered variants) through the WSGI app in-process, timing the server
time of each request after three warm-up requests. It prints p50/p95 (ms) per page and size, the
ratio of each p50 to the same page at the smallest size and to /healthz, PostgreSQL's p50 against
SQLite's at the same size, and the worker's RSS.

Targets (issue 17): every page at 1M within 3x of itself at 1k; p50 < 50 ms at 1M; PostgreSQL within
1.5x of SQLite; RSS < 250 MB at 1M.

Usage: .venv/bin/python benchmarks/pages.py [--sizes 1000,100000,1000000] [--pg-size 100000]
       [--requests 20] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "benchmark-password-1"
TEMPLATE_PRODUCTION = "PROD2025-008"
SIZES = (1, 5, 20, 50, 100, 200)  # bunch sizes, drawn with the weights below
WEIGHTS = (30, 25, 20, 12, 8, 5)
PG_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
# Pages that load every task of the database into memory (not flat yet): measured up to this size
# only, since at 1M they would take gigabytes and hours.
LOADS_EVERY_TASK = {"prodrequests.reconcile": 10_000}


def _settings(instance: Path, database_url: str):
    from app.config import load_settings

    return dataclasses.replace(load_settings(instance, env={}), database_url=database_url)


# --- seeding ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Template:
    """JSON text of the template rows (one SIM and one RECO task with their bunch and launch)."""

    bunch: dict[str, str]  # step -> definition
    spec: dict[str, str]
    params: dict[str, str]
    manifest: dict[str, str]
    chain: str  # the chain document
    admin_id: int


def _as_text(value: Any) -> str:
    return json.dumps(value)


def _template(app) -> Template:
    """The first chain, made by the services: a SIM bunch of 2 and the RECO bunch reading it."""
    from sqlalchemy import select

    from app.auth.services import create_local_user
    from app.chains import services as chains
    from app.extensions import db
    from app.launches.dispatcher import build_manifest
    from app.tasks.models import Task
    from tests.chains.conftest import chain_definition

    with app.app_context():
        admin = create_local_user("bench-admin", PASSWORD, role="admin")
        admin.must_change_password = False
        db.session.flush()
        chain = chains.create_chain(chain_definition(bunch_size=2), admin, "template", is_admin=True).chain
        out = Template({}, {}, {}, {}, _as_text(chain.definition), admin.id)
        for task in db.session.scalars(select(Task).where(Task.bunch_index == 1)):
            launch = task.launches[0]
            launch.manifest = build_manifest(launch, None, "https://pandaserver.example:25443")
            out.bunch[task.step] = _as_text(task.bunch.definition)
            out.spec[task.step] = _as_text(task.spec)
            out.params[task.step] = _as_text(task.params)
            out.manifest[task.step] = _as_text(launch.manifest)
        db.session.commit()
        db.engine.dispose()
    return out


def _text_table(model, dialect: str):
    """`model`'s table with its JSON columns taking text: the copied JSON is inserted as it is
    (cast to json on PostgreSQL, stored as text by SQLite)."""
    from sqlalchemy import JSON, Column, MetaData, Table, Text, cast
    from sqlalchemy.types import TypeDecorator

    class JsonText(TypeDecorator):
        impl = Text
        cache_ok = True

        def bind_expression(self, bindvalue):
            return cast(bindvalue, JSON) if dialect == "postgresql" else bindvalue

    columns = [Column(c.name, JsonText if isinstance(c.type, JSON) else c.type) for c in model.__table__.columns]
    return Table(model.__tablename__, MetaData(), *columns)


class Seeder:
    """Adds bunch pairs (SIM + RECO reading it) until the database holds the target number of tasks."""

    def __init__(self, template: Template, conn) -> None:
        from sqlalchemy import func, select

        from app.tasks.models import Task, TaskBunch

        self.t, self.conn = template, conn
        self.rng = random.Random(17)
        self.task_id = (conn.scalar(select(func.max(Task.id))) or 0) + 1
        self.bunch_id = (conn.scalar(select(func.max(TaskBunch.id))) or 0) + 1
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def _names(self, text: str, production: str, index: int) -> str:
        """The template's JSON with this task's names, and the pair's production request (one request
        per 20 bunch pairs: the template's 42 is replaced)."""
        old = TEMPLATE_PRODUCTION
        for step in ("SIM", "RECO"):
            text = text.replace(f"{old}.{step}.1", f"{production}.{step}.{index}")
        request = 1000 + self.bunch_id // 40
        return text.replace(old, production).replace('"request_id": 42', f'"request_id": {request}')

    def _add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def grow(self, tasks_now: int, target: int) -> int:
        while tasks_now < target:
            pair = self.bunch_id  # a production per pair: PROD<year>-<n>, 900 a year from 2100 (not the template's)
            production = f"PROD{2100 + pair // 1800}-{pair // 2 % 900 + 1:03d}"
            size = min(self.rng.choices(SIZES, WEIGHTS)[0], max(1, (target - tasks_now) // 2))
            created = datetime(2025, 3, 1, tzinfo=UTC) + timedelta(minutes=pair)
            submitted = self.rng.random() < 0.9
            sim_ids: list[int] = []
            for step in ("SIM", "RECO"):
                bunch = self.bunch_id
                self._add("task_bunch", {
                    "id": bunch, "idempotency_key": f"bench-{bunch}", "base_name": f"{production}.{step}", "step": step,
                    "size": size, "definition": self._names(self.t.bunch[step], production, 1), "comment": "",
                    "created_by_id": self.t.admin_id, "created_at": created, "cloned_from_id": None,
                })  # fmt: skip
                self._add("audit_event", {"at": created, "user_id": self.t.admin_id, "username": "bench-admin",
                                          "action": "task.create", "target": f"{production}.{step}", "outcome": "ok",
                                          "request_id": "", "client_address": "", "details": json.dumps({"size": size})})  # fmt: skip
                for index in range(1, size + 1):
                    self._task(step, bunch, index, production, created, submitted, sim_ids)
                self.bunch_id += 1
            if pair % 5 == 0:
                self._chain(pair, production, created)
            tasks_now += 2 * size
            if sum(len(rows) for rows in self.rows.values()) > 50_000:
                self.flush()
        self.flush()
        return tasks_now

    def _task(self, step: str, bunch: int, index: int, production: str, created: datetime, submitted: bool,
              sim_ids: list[int]) -> None:  # fmt: skip
        task_id = self.task_id
        self.task_id += 1
        name = f"{production}.{step}.{index}"
        running = submitted and self.rng.random() < 0.2
        status = ("running" if running else "done") if submitted else None
        at = created + timedelta(minutes=5)
        self._add("task", {
            "id": task_id, "bunch_id": bunch, "bunch_index": index, "name": name,
            "output_dataset": f"MC2025_S1.minbias-P8-spdroot417-dev.10GeV.{name}", "step": step,
            "production": production, "spec": self._names(self.t.spec[step], production, index),
            "params": self._names(self.t.params[step], production, index),
            "parent_id": sim_ids[index - 1] if step == "RECO" else None, "cloned_from_id": None,
            "panda_task_id": task_id + 10_000 if submitted else None, "panda_status": status,
            "panda_checked_at": at if submitted else None, "created_at": created,
            "jobs_done": (5 if running else 10) if submitted else None, "jobs_total": 10 if submitted else None,
            "submitted_at": at if submitted else None, "started_at": at if submitted else None,
            "ended_at": None if running or not submitted else at + timedelta(hours=3),
        })  # fmt: skip
        if step == "SIM":
            sim_ids.append(task_id)
        self._add("launch", {
            "task_id": task_id, "idempotency_key": f"bench-{bunch}:{index}:1", "attempt": 1,
            "status": "submitted" if submitted else "pending", "due_at": created, "created_by_id": self.t.admin_id,
            "created_at": created, "claimed_at": at if submitted else None, "finished_at": at if submitted else None,
            "panda_task_id": task_id + 10_000 if submitted else None, "error": "", "after_parent_done": False,
            "manifest": self._names(self.t.manifest[step], production, index) if submitted else None,
        })  # fmt: skip
        if submitted:
            for k, state in enumerate(("registered", "running") if running else ("registered", "running", "done")):
                self._add("task_status_change", {"task_id": task_id, "status": state,
                                                 "began_at": at + timedelta(minutes=30 * k)})  # fmt: skip
            self._add("panda_call", {
                "at": at, "user_id": self.t.admin_id, "server": "https://pandaserver.example:25443",
                "transport": "v1", "method": "submit", "task_id": task_id + 10_000, "params": "{}",
                "http_status": 200, "return_code": 0, "message": "", "duration_ms": 80, "outcome": "ok",
                "attempt": 1, "comment": "",
            })  # fmt: skip

    def _chain(self, pair: int, production: str, created: datetime) -> None:
        chain = pair // 5 + 1
        self._add("chain", {
            "id": chain, "idempotency_key": f"bench-chain-{chain}", "name": f"{production}-chain{chain}",
            "processing_type": "MC production", "definition": self._names(self.t.chain, production, 1),
            "wait_for_parent_done": False, "comment": "",
            "created_by_id": self.t.admin_id, "created_at": created, "cloned_from_id": None,
        })  # fmt: skip
        for position, bunch in enumerate((self.bunch_id - 2, self.bunch_id - 1), start=1):
            self._add("chain_step", {"chain_id": chain, "position": position, "step": ("SIM", "RECO")[position - 1],
                                     "bunch_id": bunch})  # fmt: skip

    def flush(self) -> None:
        from app.audit.models import AuditEvent
        from app.chains.models import Chain, ChainStep
        from app.launches.models import Launch
        from app.panda.models import PandaCall
        from app.sync.models import TaskStatusChange
        from app.tasks.models import Task, TaskBunch

        models = {"task_bunch": TaskBunch, "task": Task, "launch": Launch, "task_status_change": TaskStatusChange,
                  "panda_call": PandaCall, "audit_event": AuditEvent, "chain": Chain, "chain_step": ChainStep}  # fmt: skip
        for name, model in models.items():  # parents first
            rows = self.rows.pop(name, [])
            if rows:
                self.conn.execute(_text_table(model, self.conn.dialect.name).insert(), rows)


def grow(instance: Path, url: str, target: int, template: Template) -> float:
    """Seed until the database holds `target` tasks; returns the seconds it took."""
    from sqlalchemy import create_engine, func, select

    from app.tasks.models import Task

    started = time.perf_counter()
    engine = create_engine(url)
    with engine.begin() as conn:
        have = conn.scalar(select(func.count()).select_from(Task)) or 0
        Seeder(template, conn).grow(have, target)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


# --- measuring (the worker process) ---------------------------------------------------------------


def _world(app):
    """The pages' URL arguments, picked from the seeded data: a submitted SIM task in the middle of a
    bunch of 200, that bunch, a bunch not sent yet, a chain in the middle, and a bulk action on the
    bunch (made by the service once)."""
    from sqlalchemy import func, select

    from app.actions import bulk
    from app.actions.matrix import Action
    from app.actions.models import BulkAction
    from app.actions.selection import Selection
    from app.auth.models import User
    from app.chains.models import Chain
    from app.extensions import db
    from app.launches.models import Launch
    from app.tasks.models import Task, TaskBunch
    from tests.speed.world import World

    big = db.session.scalar(
        select(TaskBunch.id).join(Task, Task.bunch_id == TaskBunch.id)
        .where(TaskBunch.size == 200, TaskBunch.step == "SIM", Task.panda_task_id.is_not(None))
        .order_by(TaskBunch.id.desc()).limit(1)
    ) or db.session.scalar(select(TaskBunch.id).where(TaskBunch.step == "SIM").order_by(TaskBunch.size.desc()).limit(1))  # fmt: skip
    task = db.session.scalar(select(Task.id).where(Task.bunch_id == big).order_by(Task.bunch_index).offset(
        db.session.scalar(select(func.count()).where(Task.bunch_id == big)) // 2).limit(1))  # fmt: skip
    waiting = db.session.scalar(select(Task.bunch_id).where(Task.panda_task_id.is_(None)).order_by(Task.id.desc()).limit(1))
    chains = db.session.scalar(select(func.max(Chain.id))) or 0
    chain = db.session.scalar(select(Chain.id).where(Chain.id >= chains // 2).order_by(Chain.id).limit(1))
    action = db.session.scalar(select(BulkAction.id).order_by(BulkAction.id).limit(1))
    if action is None:
        admin = db.session.scalar(select(User).where(User.username == "bench-admin"))
        action = bulk.start(Selection("bunch", target_id=big), Action.KILL, {"comment": "benchmark"}, admin).id
        db.session.commit()
    request = db.session.scalar(select(Task.spec["request_id"].as_integer()).where(Task.id == task))
    launch = db.session.scalar(
        select(Launch.id).join(Task, Task.id == Launch.task_id).where(Task.bunch_id == waiting).limit(1)
    )
    return World(task, big, waiting, chain, action, launch, request)


def worker(instance: Path, url: str, requests: int) -> dict:
    """Serve every page in this process and time it (run as a subprocess)."""
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.tasks.models import Task
    from tests.speed.test_statements import page_urls, variants

    app = create_app(_settings(instance, url))
    with app.app_context():
        world = _world(app)
        urls = page_urls(app, world) | variants(world)
        count = db.session.scalar(select(func.count()).select_from(Task)) or 0
        db.session.remove()
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    response = client.post("/login", data={"csrf_token": token, "username": "bench-admin", "password": PASSWORD})
    assert response.status_code == 302, response.status_code
    out: dict[str, dict[str, Any]] = {}
    for label, path in sorted(urls.items()):
        if count > LOADS_EVERY_TASK.get(label, count):
            continue
        times: list[float] = []
        warm_ups = 0
        # Three warm-up requests (caches, compiled templates); a page slower than 2 s is timed three
        # times without them, so that an O(N) page at 1M does not hold the run for hours.
        while len(times) < (3 if times and max(times) >= 2000 else requests):
            started = time.perf_counter()
            response = client.get(path)
            response.get_data()
            elapsed = (time.perf_counter() - started) * 1000
            if warm_ups < 3 and elapsed < 2000:
                warm_ups += 1
            else:
                times.append(elapsed)
        times.sort()
        out[label] = {"p50": statistics.median(times), "p95": times[math.ceil(len(times) * 0.95) - 1],
                      "status": response.status_code}  # fmt: skip
    status = Path("/proc/self/status").read_text().splitlines()
    rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    return {"pages": out, "rss_mb": rss_kb / 1024, "tasks": count}


# --- orchestration ---------------------------------------------------------------------------------


def _pg_database() -> tuple[str, Any]:
    import psycopg

    name = f"prodpanel_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def run(db_kind: str, sizes: list[int], requests: int) -> list[dict]:
    from sqlalchemy import create_engine

    from app import create_app, migrate

    results = []
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder)
        instance.chmod(0o700)
        drop = None
        if db_kind == "postgresql":
            url, drop = _pg_database()
        else:
            url = f"sqlite:///{instance / 'prodpanel.sqlite3'}"
        try:
            engine = create_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
            template = _template(create_app(_settings(instance, url)))
            for size in sizes:
                seeded_s = grow(instance, url, size, template)
                proc = subprocess.run(
                    [sys.executable, __file__, "--worker", str(instance), "--url", url, "--requests", str(requests)],
                    capture_output=True, text=True,
                )  # fmt: skip
                if proc.returncode:
                    raise SystemExit(f"the worker failed:\n{proc.stderr[-3000:]}")
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                result.update(db=db_kind, size=size, seed_s=seeded_s)
                results.append(result)
                print(f"{db_kind} {result['tasks']:,} tasks (seeded in {seeded_s:.0f} s): "
                      f"/healthz p50 {result['pages']['web.healthz']['p50']:.1f} ms, RSS {result['rss_mb']:.0f} MB",
                      flush=True)  # fmt: skip
        finally:
            if drop:
                drop()
    return results


def _cell(result: dict, label: str) -> str:
    timing = result["pages"].get(label)
    return f"{timing['p50']:.1f} / {timing['p95']:.1f}" if timing else "—"


def report(results: list[dict], command: str) -> str:
    """A markdown table: each page's p50/p95 per size, ratios to the smallest size and to /healthz."""
    sqlite = [r for r in results if r["db"] == "sqlite"]
    pg = [r for r in results if r["db"] == "postgresql"]
    base, largest = sqlite[0], sqlite[-1]
    same = next((r for r in sqlite if pg and r["size"] == pg[0]["size"]), None)
    lines = [f"Command: `{command}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)", "",
             "Server time in ms (p50 / p95, in-process WSGI, logged-in admin); ratios of p50. "
             "Tasks: " + ", ".join(f"{r['db']} {r['tasks']:,}" for r in results) + ".", ""]  # fmt: skip
    head = ["page", *(f"SQLite {r['tasks']:,}" for r in sqlite), f"{largest['tasks']:,} / {base['tasks']:,}",
            f"{largest['tasks']:,} / healthz"]  # fmt: skip
    if pg:
        head += [f"PostgreSQL {pg[0]['tasks']:,}", "PG / SQLite"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    worst = 0.0
    for label, timing in base["pages"].items():
        cells = [_cell(r, label) for r in sqlite]
        if label in largest["pages"]:
            ratio = largest["pages"][label]["p50"] / timing["p50"]
            worst = max(worst, ratio)
            cells += [f"{ratio:.2f}", f"{largest['pages'][label]['p50'] / largest['pages']['web.healthz']['p50']:.1f}"]
        else:
            cells += ["not measured (loads every task)", "—"]
        if pg and same:
            p = pg[0]["pages"].get(label)
            cells += [_cell(pg[0], label), f"{p['p50'] / same['pages'][label]['p50']:.2f}" if p else "—"]
        lines.append(f"| {label} (HTTP {timing['status']}) | " + " | ".join(cells) + " |")
    rss = ", ".join(f"{r['db']} {r['tasks']:,}: {r['rss_mb']:.0f} MB" for r in results)
    slowest = max(largest["pages"].items(), key=lambda item: item[1]["p50"])
    lines += ["", f"Worker peak RSS: {rss}. Largest ratio {largest['tasks']:,} / {base['tasks']:,}: {worst:.2f}; "
              f"slowest p50 at {largest['tasks']:,}: {slowest[0]} {slowest[1]['p50']:.1f} ms.",
              "Seeding: " + ", ".join(f"{r['db']} {r['tasks']:,} in {r['seed_s']:.0f} s" for r in results) + "."]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--pg-size", type=int, default=100_000, help="0: no PostgreSQL run")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--worker")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker), args.url, args.requests)))
        return
    results = run("sqlite", [int(s) for s in args.sizes.split(",")], args.requests)
    if args.pg_size:
        results += run("postgresql", [args.pg_size], args.requests)
    command = "python benchmarks/pages.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = report(results, command.strip())
    print(text)
    with Path(args.results).open("a") as fh:
        fh.write(f"\n## Pages (benchmarks/pages.py)\n\n{text}\n")


if __name__ == "__main__":
    main()
