"""Simulated DEFT + JEDI: task rows in SQLite, a lifecycle driven by the simulated clock.

Nothing runs in the background. Every task row carries `due_at`, the simulated time of its next
transition (or of its queued command); each API call first applies, in time order, all
transitions that are due (`catch_up`). Jobs are never stored: a task keeps a few "rounds" of job
generation (first PandaID, count, start, stop) and every job's start, duration, status and sizes
are derived from the seed, so a 10 000-job task costs one row.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .config import SimConfig

FINAL_STATUSES = ("done", "finished", "failed", "broken", "aborted")
GOOD_PARENT = ("done", "finished")
BAD_PARENT = ("failed", "broken", "aborted")

# JediTaskSpec.attributes of panda-server 1.0.x: the keys of get_detailed_info
TASK_ATTRIBUTES = [
    "jediTaskID",
    "taskName",
    "status",
    "userName",
    "creationDate",
    "modificationTime",
    "startTime",
    "endTime",
    "frozenTime",
    "prodSourceLabel",
    "workingGroup",
    "vo",
    "coreCount",
    "taskType",
    "processingType",
    "taskPriority",
    "currentPriority",
    "architecture",
    "transUses",
    "transHome",
    "transPath",
    "lockedBy",
    "lockedTime",
    "termCondition",
    "splitRule",
    "walltime",
    "walltimeUnit",
    "outDiskCount",
    "outDiskUnit",
    "workDiskCount",
    "workDiskUnit",
    "ramCount",
    "ramUnit",
    "ioIntensity",
    "ioIntensityUnit",
    "workQueue_ID",
    "progress",
    "failureRate",
    "errorDialog",
    "reqID",
    "oldStatus",
    "cloud",
    "site",
    "countryGroup",
    "parent_tid",
    "eventService",
    "ticketID",
    "ticketSystemType",
    "stateChangeTime",
    "superStatus",
    "campaign",
    "mergeRamCount",
    "mergeRamUnit",
    "mergeWalltime",
    "mergeWalltimeUnit",
    "throttledTime",
    "numThrottled",
    "mergeCoreCount",
    "goal",
    "assessmentTime",
    "cpuTime",
    "cpuTimeUnit",
    "cpuEfficiency",
    "baseWalltime",
    "nucleus",
    "baseRamCount",
    "ttcRequested",
    "ttcPredicted",
    "ttcPredictionDate",
    "rescueTime",
    "requestType",
    "gshare",
    "resource_type",
    "useJumbo",
    "diskIO",
    "diskIOUnit",
    "memory_leak_core",
    "memory_leak_x2",
    "attemptNr",
    "container_name",
    "framework",
    "activatedTime",
    "queuedTime",
    "actionTime",
]
DATETIME_ATTRS = {
    "creationDate",
    "modificationTime",
    "startTime",
    "endTime",
    "frozenTime",
    "lockedTime",
    "stateChangeTime",
    "throttledTime",
    "assessmentTime",
    "ttcRequested",
    "ttcPredictionDate",
    "rescueTime",
    "activatedTime",
    "queuedTime",
    "actionTime",
}

# split rules (task_split_rules.split_rule_dict subset used by the panel) and changeable tags
SPLIT_RULE_TAGS = {
    "nEventsPerJob": "NE",
    "nFilesPerJob": "NF",
    "pushStatusChanges": "PC",
    "cloudAsVO": "CV",
    "messageDriven": "MD",
    "randomSeed": "RS",
    "firstEvent": "FT",
    "allowIncompleteInDS": "AI",
    "t1Weight": "TW",
    "nEsConsumers": "EC",
    "nMaxFilesPerJob": "MF",
    "nGBPerJob": "NG",
    "noInputPooling": "NI",
    "nEventsPerWorker": "ES",
    "nJumboJobs": "NJ",
    "avoidVP": "AV",
    "allowInputLAN": "IL",
    "useLocalIO": "LI",
    "noLoopingCheck": "LC",
    "maxCoreCount": "CC",
    "onlyTagsForFC": "OT",
    "useZipToPin": "UZ",
    "ignoreMissingInDS": "IM",
    "noAutoPause": "NP",
    "maxAttempt": "MA",
    "disableAutoRetry": "DR",
    "useScout": "US",
}
CHANGEABLE_SPLIT_RULE_TAGS = [
    "AI", "TW", "EC", "MF", "NG", "NI", "NF", "ES", "NJ", "AV", "IL", "LI", "LC", "CC", "OT", "UZ", "IM", "NP",
]  # fmt: skip
_TAG_NAMES = {v: k for k, v in SPLIT_RULE_TAGS.items()}

# superStatus mirrors DEFT's status, which JEDI updates on these transitions only
# (task_complex_module.py): a defined or pending task still says "registered".
SUPER_STATUS = {
    "registered": "registered",
    "scouting": "submitting",
    **{s: s for s in ("running", "assigning", "staging", "exhausted", "aborting", "aborted", "broken")},
    **{s: s for s in ("done", "finished", "failed")},
}

# GenTaskRefiner's transformation when the task names none
DEFAULT_TRANS_PATH = "https://pandaserver-doma.cern.ch/trf/user/runGen-00-00-02"


def fmt_dt(ts: float) -> str:
    """Epoch seconds -> the stored form (naive UTC, whole seconds, sortable text)."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_dt(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def decode_split_rule(split_rule: str | None) -> str:
    """Compact `NE=1000,PC=1` -> `nEventsPerJob=1000,pushStatusChanges=1` (like get_detailed_info)."""
    if not split_rule:
        return split_rule or ""
    out = []
    for item in split_rule.split(","):
        tag, _, value = item.partition("=")
        out.append(f"{_TAG_NAMES.get(tag, tag)}={value}" if tag in _TAG_NAMES else item)
    return ",".join(out)


def clean_user_id(dn: str) -> str:
    """The user name PanDA derives from a DN (subset of CoreUtils.clean_user_id for token DNs)."""
    username = re.sub(r"/(DC|O|OU|C|L)=[^/]+", "", dn)
    username = re.sub(r"/CN=[0-9]+", "", username)
    username = re.sub(r" [0-9]+", "", username)
    username = re.sub(r"_[0-9]+", "", username)
    username = username.replace("/CN=proxy", "").replace("/CN=limited proxy", "")
    username = re.sub(r"/CN=Robot:[^/]+", "", username)
    username = re.sub(r"/CN=nickname:[^/]+", "", username)
    mat = re.match(r".*/CN=([^/]+)/CN=([^/]+)", username)
    username = mat.group(2) if mat else username.replace("/CN=", "")
    for ch in "()'":
        username = username.replace(ch, "")
    return username


def uniform(seed: int, task_id: int, rnd: int, k: int, salt: str) -> float:
    """A deterministic uniform draw in [0, 1) for one job property."""
    digest = hashlib.blake2b(f"{seed}:{task_id}:{rnd}:{k}:{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class RoundFails:
    """Which jobs of a round fail for good, in O(1) per job and per count whatever the round's size:
    failures are spread evenly at the failure rate from a per-round phase (exact integer arithmetic),
    so the failures among the first n jobs are `count(n)` without looking at any job."""

    SCALE = 1_000_000

    def __init__(self, seed: int, task_id: int, rnd: int, rate: float, forced: str) -> None:
        self.forced = forced
        self.rate = round(min(max(rate, 0.0), 1.0) * self.SCALE)
        self.phase = int(uniform(seed, task_id, rnd, 0, "fail") * self.SCALE)

    def count(self, n: int) -> int:
        """Failed jobs among the jobs 0 .. n-1."""
        if self.forced == "failed":
            return n
        if self.forced in ("finished", "exhausted"):  # every other job
            return n // 2
        return (self.rate * n + self.phase) // self.SCALE - self.phase // self.SCALE

    def __contains__(self, k: int) -> bool:
        return self.count(k + 1) > self.count(k)


# A task row (spec, parameters, simulation state) larger than this is refused when a state is opened.
MAX_ROW_BYTES = 2_000_000

# PandaIDs handed out per round at most: a larger round (a task of 1e20 jobs) never lists more jobs
# than slots x elapsed waves, so this keeps next_panda_id far below SQLite's 2**63.
MAX_ROUND_IDS = 10**12


class StateError(Exception):
    """The state file cannot be used (not a simulator state, or a row too large to load)."""


class Jedi:
    """The task store and lifecycle engine (thread-safe, one SQLite connection)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.db = sqlite3.connect(
            config.state_path or ":memory:", check_same_thread=False, isolation_level=None
        )
        try:
            self.db.execute("PRAGMA journal_mode=WAL" if config.state_path else "PRAGMA journal_mode=MEMORY")
            self.db.execute("PRAGMA synchronous=OFF")
            self._create_schema()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StateError(
                f"{config.state_path} is not a simulator state ({exc}); move it away to start afresh"
            ) from None
        self._check_row_sizes()
        # Receives the task-status messages of each committed catch_up (mq.StatusPublisher.publish).
        self.on_status: Callable[[list[dict[str, Any]]], None] | None = None
        self._messages: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ storage
    def _create_schema(self) -> None:
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS tasks (
                jediTaskID INTEGER PRIMARY KEY,
                in_jedi INTEGER NOT NULL DEFAULT 0,
                taskName TEXT NOT NULL,
                userName TEXT NOT NULL,
                prodSourceLabel TEXT NOT NULL,
                vo TEXT NOT NULL,
                status TEXT NOT NULL,
                modificationTime TEXT NOT NULL,
                reqID INTEGER,
                parent_tid INTEGER,
                due_at REAL,
                spec TEXT NOT NULL,
                params TEXT NOT NULL,
                sim TEXT NOT NULL,
                cmd TEXT
            );
            CREATE INDEX IF NOT EXISTS ix_tasks_due ON tasks (due_at) WHERE due_at IS NOT NULL;
            CREATE INDEX IF NOT EXISTS ix_tasks_user_label_mod ON tasks (userName, prodSourceLabel, modificationTime);
            CREATE INDEX IF NOT EXISTS ix_tasks_mod ON tasks (modificationTime);
            CREATE INDEX IF NOT EXISTS ix_tasks_user_mod ON tasks (userName, modificationTime);
            CREATE INDEX IF NOT EXISTS ix_tasks_parent ON tasks (parent_tid);
            CREATE INDEX IF NOT EXISTS ix_tasks_user_name ON tasks (userName, taskName);
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            -- which task a PandaID belongs to: each round of jobs takes the PandaIDs pid0 .. pid0+m-1
            CREATE TABLE IF NOT EXISTS rounds (pid0 INTEGER PRIMARY KEY, m INTEGER NOT NULL, task_id INTEGER NOT NULL);
            -- the datasets DDM knows: outputs of the tasks JEDI defined (input of tasks without a parent)
            CREATE TABLE IF NOT EXISTS datasets (name TEXT PRIMARY KEY, task_id INTEGER NOT NULL);
            INSERT OR IGNORE INTO meta VALUES ('next_task_id', 1);
            INSERT OR IGNORE INTO meta VALUES ('next_panda_id', 1);
            INSERT OR IGNORE INTO meta VALUES ('clock', 0);
            """
        )

    def _check_row_sizes(self) -> None:
        """Refuse a state whose task rows are too large to load quickly (each call loads rows)."""
        row = self.db.execute(
            "SELECT jediTaskID, length(spec) + length(params) + length(sim) + coalesce(length(cmd), 0) AS size "
            "FROM tasks WHERE size > ? LIMIT 1",
            (MAX_ROW_BYTES,),
        ).fetchone()
        if row is not None:
            self.db.close()
            raise StateError(
                f"task {row[0]} in {self.config.state_path} is too large ({row[1]:,} bytes, at most "
                f"{MAX_ROW_BYTES:,}) to be loaded at every call; move the state file away to start afresh"
            )

    def saved_clock(self) -> float:
        """The simulated time the stored state has reached (0 for a new state)."""
        (value,) = self.db.execute("SELECT value FROM meta WHERE key='clock'").fetchone()
        return float(value)

    def _next(self, key: str, n: int = 1) -> int:
        (value,) = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        self.db.execute("UPDATE meta SET value=? WHERE key=?", (value + n, key))
        return int(value)

    def _load(self, task_id: int) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT jediTaskID, in_jedi, spec, params, sim, cmd FROM tasks WHERE jediTaskID=?", (task_id,)
        ).fetchone()
        return self._row_to_task(row) if row else None

    @staticmethod
    def _row_to_task(row: tuple) -> dict[str, Any]:
        return {
            "id": row[0],
            "in_jedi": bool(row[1]),
            "spec": json.loads(row[2]),
            "params": json.loads(row[3]),
            "sim": json.loads(row[4]),
            "cmd": json.loads(row[5]) if row[5] else None,
        }

    def _save(self, t: dict[str, Any], insert: bool = False) -> None:
        spec, sim, cmd = t["spec"], t["sim"], t["cmd"]
        dues = [d for d in (sim.get("due"), cmd["at"] if cmd else None) if d is not None]
        values = (
            int(t["in_jedi"]),
            spec["taskName"],
            spec["userName"],
            spec["prodSourceLabel"],
            spec["vo"],
            spec["status"],
            spec["modificationTime"],
            spec["reqID"],
            spec["parent_tid"],
            min(dues) if dues else None,
            json.dumps(spec),
            json.dumps(t["params"]),
            json.dumps(sim),
            json.dumps(cmd) if cmd else None,
            t["id"],
        )
        if insert:
            self.db.execute(
                "INSERT INTO tasks (in_jedi, taskName, userName, prodSourceLabel, vo, status, modificationTime, "
                "reqID, parent_tid, due_at, spec, params, sim, cmd, jediTaskID) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
        else:
            self.db.execute(
                "UPDATE tasks SET in_jedi=?, taskName=?, userName=?, prodSourceLabel=?, vo=?, status=?, "
                "modificationTime=?, reqID=?, parent_tid=?, due_at=?, spec=?, params=?, sim=?, cmd=? "
                "WHERE jediTaskID=?",
                values,
            )

    # ------------------------------------------------------------------ clock-driven lifecycle
    def catch_up(self, now: float) -> int:
        """Apply every transition and queued command due at or before `now`, in time order across
        tasks (a child's refiner sees its parent as it was at that moment); returns how many."""
        applied = 0
        with self.lock:
            self.db.execute("BEGIN")
            try:
                while True:
                    due = self.db.execute(
                        "SELECT jediTaskID, due_at FROM tasks WHERE due_at IS NOT NULL AND due_at <= ? "
                        "ORDER BY due_at, jediTaskID LIMIT 2",
                        (now,),
                    ).fetchall()
                    if not due:
                        break
                    # The first task runs until the next task's turn, then the order is looked at again.
                    horizon = due[1][1] if len(due) > 1 else now
                    t = self._load(due[0][0])
                    applied += self._advance_task(t, horizon)
                    self._save(t)
                self.db.execute("UPDATE meta SET value=? WHERE key='clock' AND value<?", (int(now), int(now)))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                self._messages.clear()
                raise
            messages, self._messages = self._messages, []
        if messages and self.on_status is not None:  # after the commit, outside the lock, as JEDI
            self.on_status(messages)
        return applied

    def _advance_task(self, t: dict[str, Any], now: float) -> int:
        steps = 0
        while True:
            sim, cmd = t["sim"], t["cmd"]
            due = sim.get("due")
            cmd_at = cmd["at"] if cmd else None
            candidates = [d for d in (due, cmd_at) if d is not None and d <= now]
            if not candidates:
                return steps
            if steps > 200:  # never loop forever on a task that keeps rescheduling itself in the past
                sim["due"] = now + 1.0 if due is not None and due <= now else due
                if cmd is not None and cmd["at"] <= now:
                    cmd["at"] = now + 1.0
                return steps
            at = min(candidates)
            if cmd_at is not None and cmd_at == at and (due is None or cmd_at <= due):
                t["cmd"] = None
                self._execute_command(t, cmd, at)
            else:
                phase = sim.get("phase")
                sim["due"] = None
                sim["phase"] = None
                getattr(self, f"_phase_{phase}")(t, due)
            steps += 1

    def _set_status(self, t: dict[str, Any], status: str, at: float, error: str | None = None) -> None:
        spec = t["spec"]
        spec["status"] = status
        spec["superStatus"] = SUPER_STATUS.get(status, spec["superStatus"])
        spec["modificationTime"] = fmt_dt(at)
        spec["stateChangeTime"] = fmt_dt(at)
        if error is not None:
            spec["errorDialog"] = error
        if self.on_status is not None and "PC=1" in (spec.get("splitRule") or "").split(","):
            self._messages.append(
                {"msg_type": "task_status", "taskid": t["id"], "status": status, "timestamp": int(at)}
            )
        if status in FINAL_STATUSES or status == "exhausted":
            spec["endTime"] = fmt_dt(at)
            self._wake_children(t["id"], at)

    def _schedule(self, t: dict[str, Any], phase: str, at: float) -> None:
        t["sim"]["phase"] = phase
        t["sim"]["due"] = at

    def _wake_children(self, parent_id: int, at: float) -> None:
        rows = self.db.execute(
            "SELECT jediTaskID, in_jedi, spec, params, sim, cmd FROM tasks "
            "WHERE parent_tid=? AND jediTaskID<>? AND status='pending'",
            (parent_id, parent_id),
        ).fetchall()
        for row in rows:
            child = self._row_to_task(row)
            if child["sim"].get("phase") is None:
                self._schedule(child, "parent_check", at)
                self._save(child)

    # phases -------------------------------------------------------------
    def _phase_pickup(self, t: dict[str, Any], at: float) -> None:
        t["in_jedi"] = True
        t["spec"]["creationDate"] = fmt_dt(t["sim"]["submit_at"])
        self._set_status(t, "registered", at)
        self._schedule(t, "refine", at + self.config.timings.refine_s)

    def _phase_refine(self, t: dict[str, Any], at: float) -> None:
        """JEDI's TaskRefiner: extractCommon, then the parent check, then doRefine (TaskRefiner.py)."""
        if t["sim"].get("outcome") == "broken":
            self._break(t, at, "task parameters are broken (simulated)")
            return
        error = extract_common_error(t["params"])
        if error is not None:
            self._break(t, at, error)
            return
        parent = t["spec"]["parent_tid"]
        if parent is not None and parent != t["id"]:
            self._phase_parent_check(t, at)
            return
        self._refine(t, at)

    def _phase_parent_check(self, t: dict[str, Any], at: float) -> None:
        """checkParentTask_JEDI: done/finished -> refine; still running -> pending; broken, aborted,
        failed or not in JEDI at all -> the child breaks."""
        parent_id = t["spec"]["parent_tid"]
        row = self.db.execute(
            "SELECT status, sim FROM tasks WHERE jediTaskID=? AND in_jedi=1", (parent_id,)
        ).fetchone()
        parent_status = row[0] if row else None
        if parent_status in GOOD_PARENT:
            self._refine(t, at, parent_done_jobs=json.loads(row[1]).get("n_ok", 0))
        elif parent_status is None or parent_status in BAD_PARENT:
            self._break(t, at, f"parent task {parent_id} failed to complete")
        elif t["spec"]["status"] != "pending":
            self._set_status(t, "pending", at, f"pending until parent task {parent_id} is done")

    def _refine(self, t: dict[str, Any], at: float, parent_done_jobs: int | None = None) -> None:
        """doRefine: the job parameters and datasets; the task is defined or breaks."""
        error = do_refine_error(t["params"], self._known_dataset)
        if error is not None:
            self._break(t, at, error)
            return
        self._define(t, at, parent_done_jobs)

    def _known_dataset(self, name: str) -> bool:
        """Whether DDM knows the dataset: in the simulator, the output of a task JEDI defined."""
        return self.db.execute("SELECT 1 FROM datasets WHERE name=?", (name,)).fetchone() is not None

    def _break(self, t: dict[str, Any], at: float, error: str) -> None:
        """A refinement failure: `tobroken` with JEDI's errorDialog, `broken` shortly after."""
        self._set_status(t, "tobroken", at, error)
        self._schedule(t, "broken", at + self.config.timings.abort_s)

    def _phase_broken(self, t: dict[str, Any], at: float) -> None:
        self._set_status(t, "broken", at)

    def _define(self, t: dict[str, Any], at: float, parent_done_jobs: int | None = None) -> None:
        params, sim = t["params"], t["sim"]
        if params.get("noInput"):
            n_events = int(params.get("nEvents") or params.get("nEventsPerJob") or 1)
            per_job = int(params.get("nEventsPerJob") or n_events)
            n_jobs = -(-n_events // max(per_job, 1))
        else:
            n_files = parent_done_jobs if parent_done_jobs is not None else int(params.get("nFiles") or 10)
            n_jobs = -(-n_files // max(int(params.get("nFilesPerJob") or 1), 1))
            sim["n_input_files"] = n_files
        sim["n_jobs"] = max(n_jobs, 1)
        t["spec"]["errorDialog"] = None
        t["spec"]["startTime"] = t["spec"]["startTime"] or fmt_dt(at)
        self.db.executemany(  # JEDI registers the output datasets of a defined task
            "INSERT OR IGNORE INTO datasets VALUES (?, ?)",
            [(item["dataset"], t["id"]) for item in output_items(params)],
        )
        self._set_status(t, "defined", at)
        self._schedule(t, "generate", at + self.config.timings.generate_s)

    def _phase_generate(self, t: dict[str, Any], at: float) -> None:
        sim, params, spec = t["sim"], t["params"], t["spec"]
        spec["startTime"] = spec["startTime"] or fmt_dt(at)
        n_scouts = self.config.timings.n_scouts
        if params.get("skipScout") or sim["n_jobs"] <= n_scouts:
            self._start_round(t, sim["n_jobs"], at, "run")
            self._set_status(t, "running", at)
            self._schedule(t, "run_end", self._next_tick(t, at))
        else:
            self._start_round(t, n_scouts, at, "scout")
            sim["scouts"] = n_scouts
            self._set_status(t, "scouting", at)
            self._schedule(t, "scout_end", self._rounds_end(t))

    def _phase_scout_end(self, t: dict[str, Any], at: float) -> None:
        self._settle(t, at)
        sim = t["sim"]
        if sim["n_ok"] == 0:
            self._set_status(t, "failed", at, "all scout jobs failed")
            return
        rest = sim["n_jobs"] - sim["scouts"]
        self._start_round(t, rest, at, "run")
        self._set_status(t, "running", at)
        self._schedule(t, "run_end", self._next_tick(t, at))

    def _phase_run_end(self, t: dict[str, Any], at: float) -> None:
        end = self._rounds_end(t)
        if end > at:  # a wave ended: JEDI touches the task (progress), the rest keeps running
            counts = self.task_counts(t, at, ended_waves_only=True)  # O(1): this runs at every wave
            t["spec"]["progress"] = int(100 * counts["finished"] / max(counts["n_jobs"], 1))
            t["spec"]["modificationTime"] = fmt_dt(at)
            self._schedule(t, "run_end", self._next_tick(t, at))
            return
        self._settle(t, at)
        self._finalize(t, at)

    def _next_tick(self, t: dict[str, Any], at: float) -> float:
        """The next wave boundary after `at` of any live round, or the end of the last round."""
        end = self._rounds_end(t)
        ticks = [end]
        for r in t["sim"]["rounds"]:
            if r["settled"] or round_end(r) <= at:
                continue
            waves_done = math.floor((at - r["start"]) / r["wl"]) + 1
            ticks.append(r["start"] + max(waves_done, 1) * r["wl"])
        return max(min(ticks), at)

    def _finalize(self, t: dict[str, Any], at: float, finishing: bool = False) -> None:
        sim = t["sim"]
        if sim.get("outcome") == "exhausted" and not finishing:
            self._set_status(t, "exhausted", at, "task exhausted: too many failed jobs (simulated)")
        elif sim["n_ok"] >= sim["n_jobs"]:
            self._set_status(t, "done", at)
        elif sim["n_ok"] == 0 and not finishing:
            self._set_status(t, "failed", at)
        else:
            self._set_status(t, "finished", at)

    def _phase_abort_done(self, t: dict[str, Any], at: float) -> None:
        self._settle(t, at)
        self._set_status(t, "aborted", at)

    def _phase_finish_done(self, t: dict[str, Any], at: float) -> None:
        end = self._rounds_end(t)
        if end > at:
            self._schedule(t, "finish_done", end)
            return
        self._settle(t, at)
        self._finalize(t, at, finishing=True)

    def _phase_retry_ready(self, t: dict[str, Any], at: float) -> None:
        self._set_status(t, "ready", at)
        self._schedule(t, "retry_run", at + self.config.timings.generate_s)

    def _phase_rerefine(self, t: dict[str, Any], at: float) -> None:
        self._set_status(t, "rerefine", at)
        self._schedule(t, "retry_ready", at + self.config.timings.abort_s)

    def _phase_retry_run(self, t: dict[str, Any], at: float) -> None:
        sim = t["sim"]
        todo = sim["n_jobs"] - sim["n_ok"]
        sim["n_fail"] = 0
        t["spec"]["attemptNr"] = (t["spec"]["attemptNr"] or 0) + 1
        t["spec"]["endTime"] = None
        if todo <= 0:
            self._finalize(t, at)
            return
        self._start_round(t, todo, at, "run")
        self._set_status(t, "running", at)
        self._schedule(t, "run_end", self._next_tick(t, at))

    def _phase_reassigning(self, t: dict[str, Any], at: float) -> None:
        self._set_status(t, "reassigning", at)
        self._schedule(t, "restore", at + self.config.timings.abort_s)

    def _phase_restore(self, t: dict[str, Any], at: float) -> None:
        sim, spec = t["sim"], t["spec"]
        saved = sim.pop("saved", None) or {}
        self._set_status(t, spec.get("oldStatus") or "ready", at)
        if saved.get("phase"):
            self._schedule(t, saved["phase"], max(saved["due"], at))
        elif spec["status"] == "pending":  # the parent may have ended meanwhile
            self._schedule(t, "parent_check", at)

    # commands -------------------------------------------------------------
    def _execute_command(self, t: dict[str, Any], cmd: dict[str, Any], at: float) -> None:
        """What TaskCommando does when it consumes a queued command."""
        spec, sim = t["spec"], t["sim"]
        status = spec["status"]
        name = cmd["cmd"]
        allowed, _ = check_command_allowed(name, status, True, cmd.get("comment"))
        if not allowed:  # status moved on since the command was queued
            return
        timings = self.config.timings
        if name == "kill":
            self._stop_rounds(t, at, cancel=True)
            sim["saved"] = None
            self._set_status(t, "toabort", at)
            self._schedule(t, "abort_done", at + timings.abort_s)
        elif name == "finish":
            soft = (cmd.get("comment") or "").startswith("soft ")
            self._stop_rounds(t, at, cancel=not soft)
            self._set_status(t, "passed", at)  # accepted; real 1.0.4 shows "passed" here
            self._schedule(t, "finish_done", max(at + timings.abort_s, self._rounds_end(t)))
        elif name == "retry":
            self._set_status(t, "toretry", at)
            self._schedule(t, "retry_ready", at + timings.abort_s)
        elif name == "incexec":
            new_params = cmd.get("new_params") or {}
            t["params"].update(new_params)
            if "nEvents" in new_params and t["params"].get("noInput"):
                per_job = int(t["params"].get("nEventsPerJob") or new_params["nEvents"])
                sim["n_jobs"] = max(math.ceil(int(new_params["nEvents"]) / max(per_job, 1)), 1)
            self._set_status(t, "toincexec", at)
            self._schedule(t, "rerefine", at + timings.abort_s)
        elif name == "pause":
            spec["oldStatus"] = status
            sim["saved"] = {"phase": sim.get("phase"), "due": sim.get("due")}
            if sim.get("phase") in ("run_end", "scout_end"):
                self._stop_rounds(t, at, cancel=False)
                sim["saved"] = {"phase": "resume_rounds", "due": at}
            sim["phase"], sim["due"] = None, None
            self._set_status(t, "paused", at)
        elif name == "resume":
            saved = sim.pop("saved", None) or {}
            self._set_status(t, spec.get("oldStatus") or "ready", at)
            if saved.get("phase") == "resume_rounds":
                self._resume_rounds(t, at)
            elif saved.get("phase"):
                self._schedule(t, saved["phase"], max(saved["due"], at))
            elif spec["status"] == "pending":  # the parent may have ended while paused
                self._schedule(t, "parent_check", at)
        elif name == "avalanche":
            rest = sim["n_jobs"] - sim.get("scouts", 0)
            if rest > 0:
                self._start_round(t, rest, at, "run")
            self._set_status(t, "running", at)
            self._schedule(t, "run_end", self._next_tick(t, at))
        elif name == "reassign":
            target, value, _back = parse_reassign_comment(cmd.get("comment") or "")
            if target in ("site", "cloud", "nucleus"):
                spec[target] = value
            spec["oldStatus"] = status
            sim["saved"] = {"phase": sim.get("phase"), "due": sim.get("due")}
            sim["phase"], sim["due"] = None, None
            self._set_status(t, "toreassign", at)
            self._schedule(t, "reassigning", at + timings.abort_s)
        elif name == "release":
            spec["modificationTime"] = fmt_dt(at)

    # rounds of jobs ---------------------------------------------------------
    def _wave_len(self, t: dict[str, Any]) -> float:
        walltime = t["params"].get("walltime")
        base = (
            float(walltime)
            if isinstance(walltime, int | float) and walltime > 0
            else self.config.timings.job_walltime_s
        )
        return base

    def _start_round(self, t: dict[str, Any], m: int, at: float, kind: str) -> None:
        if m <= 0:
            return
        sim = t["sim"]
        ids = min(m, MAX_ROUND_IDS)
        pid0 = self._next("next_panda_id", ids)
        self.db.execute("INSERT INTO rounds VALUES (?, ?, ?)", (pid0, ids, t["id"]))
        sim["rounds"].append(
            {
                "pid0": pid0,
                "m": m,
                "start": at,
                "stop": None,
                "cancel": False,
                "kind": kind,
                "rnd": len(sim["rounds"]),
                "wl": self._wave_len(t),
                "slots": self.config.timings.slots,
                "settled": False,
                "attempt": (t["spec"]["attemptNr"] or 0) + 1,
            }
        )

    def _stop_rounds(self, t: dict[str, Any], at: float, cancel: bool) -> None:
        for r in t["sim"]["rounds"]:
            if not r["settled"] and r["stop"] is None and round_end(r) > at:
                r["stop"] = at
                r["cancel"] = cancel

    def _resume_rounds(self, t: dict[str, Any], at: float) -> None:
        sim = t["sim"]
        carry = (
            sim["n_jobs"]
            - (sim["n_ok"] + sim["n_fail"])
            - sum(self._round_counts(t, r, at)["exists"] for r in sim["rounds"] if not r["settled"])
        )
        self._start_round(t, carry, at, "run")
        self._schedule(t, "run_end", max(self._next_tick(t, at), at))

    def _rounds_end(self, t: dict[str, Any]) -> float:
        ends = [round_end(r) for r in t["sim"]["rounds"] if not r["settled"]]
        return max(ends) if ends else 0.0

    def _settle(self, t: dict[str, Any], at: float) -> None:
        sim = t["sim"]
        for r in sim["rounds"]:
            if r["settled"] or round_end(r) > at:
                continue
            c = self._round_counts(t, r, round_end(r))
            sim["n_ok"] += c["finished"]
            sim["n_fail"] += c["failed"]
            r["settled"] = True

    def fails(self, t: dict[str, Any], r: dict[str, Any]) -> RoundFails:
        outcome = t["sim"].get("outcome") or ""
        return RoundFails(self.config.seed, t["id"], r["rnd"], self.config.job_failure_rate, outcome)

    def job_times(self, t: dict[str, Any], r: dict[str, Any], k: int) -> tuple[float, float]:
        """Start and natural end of job k of round r."""
        wl = r["wl"]
        wave_start = r["start"] + (k // r["slots"]) * wl
        start = wave_start + 0.1 * wl * uniform(self.config.seed, t["id"], r["rnd"], k, "start")
        duration = wl * (0.8 + 0.1 * uniform(self.config.seed, t["id"], r["rnd"], k, "dur"))
        return start, start + duration

    def job_status(
        self, t: dict[str, Any], r: dict[str, Any], k: int, now: float, fails: RoundFails | None = None
    ) -> tuple[str | None, float, float]:
        """(status or None when the job does not exist yet, start, end) of job k at `now`."""
        start, end = self.job_times(t, r, k)
        stop = r["stop"]
        if stop is not None and start >= stop:
            return None, start, end
        wave_start = r["start"] + (k // r["slots"]) * r["wl"]
        if now < start:
            return ("activated" if now >= wave_start - r["wl"] else None), start, end
        if stop is not None and r["cancel"] and stop < end and now >= stop:
            return "cancelled", start, stop
        if now < end:
            return "running", start, end
        failed = k in (fails if fails is not None else self.fails(t, r))
        return ("failed" if failed else "finished"), start, end

    def _round_counts(
        self, t: dict[str, Any], r: dict[str, Any], now: float, ended_waves_only: bool = False
    ) -> dict[str, int]:
        """Job counts of one round at `now`: the waves that ended in aggregate (O(1)), the few current
        waves job by job (at most a few times `slots` jobs, whatever the round's size) unless
        `ended_waves_only`."""
        counts = {"finished": 0, "failed": 0, "running": 0, "activated": 0, "cancelled": 0, "exists": 0}
        m, slots, wl = r["m"], r["slots"], r["wl"]
        fails = self.fails(t, r)
        n_waves = -(-m // slots)
        ended_by = now if r["stop"] is None else min(now, r["stop"])
        done_waves = min(n_waves, max(0, math.floor((ended_by - r["start"]) / wl)))
        done_jobs = min(m, done_waves * slots)
        counts["failed"] = fails.count(done_jobs)
        counts["finished"] = done_jobs - counts["failed"]
        counts["exists"] = done_jobs
        horizon = now if r["stop"] is None else min(now, r["stop"])
        for w in range(done_waves, done_waves if ended_waves_only else n_waves):
            if r["start"] + w * wl - wl > horizon:
                break
            for k in range(w * slots, min(m, (w + 1) * slots)):
                status, _, _ = self.job_status(t, r, k, now, fails)
                if status is not None:
                    counts[status] += 1
                    counts["exists"] += 1
        return counts

    def task_counts(self, t: dict[str, Any], now: float, ended_waves_only: bool = False) -> dict[str, int]:
        """Settled + live job counts of a task at `now` (`ended_waves_only`: O(1) per round)."""
        sim = t["sim"]
        total = {
            "finished": sim["n_ok"],
            "failed": sim["n_fail"],
            "running": 0,
            "activated": 0,
            "cancelled": 0,
        }
        for r in sim["rounds"]:
            if r["settled"]:
                continue
            c = self._round_counts(t, r, now, ended_waves_only)
            for key in total:
                total[key] += c[key]
        total["n_jobs"] = sim.get("n_jobs", 0)
        return total

    # ------------------------------------------------------------------ DEFT insert
    def insert_task(self, params: dict[str, Any], user_name: str, parent_tid: int | None, now: float) -> int:
        """Write the DEFT row ('waiting'); JEDI picks it up after `pickup_s`."""
        with self.lock:
            task_id = self._next("next_task_id")
            spec = dict.fromkeys(TASK_ATTRIBUTES)
            spec.update(
                jediTaskID=task_id,
                taskName=params["taskName"],
                status="waiting",
                userName=user_name,
                prodSourceLabel=params.get("prodSourceLabel"),
                vo=params.get("vo"),
                workingGroup=params.get("workingGroup"),
                taskType=params.get("taskType"),
                processingType=params.get("processingType"),
                taskPriority=params.get("taskPriority", 100),
                currentPriority=params.get("currentPriority", params.get("taskPriority", 100)),
                architecture=reformat_architecture(params.get("architecture")),
                transUses=params.get("transUses"),
                transHome=params.get("transHome"),
                transPath=params.get("transPath", DEFAULT_TRANS_PATH),
                splitRule=build_split_rule(params),
                walltime=params.get("walltime", 0),
                walltimeUnit=params.get("walltimeUnit"),
                ramCount=params.get("ramCount", 2000),  # GenTaskRefiner: 2000 MBPerCore when unset
                ramUnit=params.get("ramUnit") if "ramCount" in params else "MBPerCore",
                baseRamCount=params.get("baseRamCount", 0),
                baseWalltime=params.get("baseWalltime", 600),  # JEDI: a 10-minute offset by default
                cpuEfficiency=params.get("cpuEfficiency", 90),
                coreCount=params.get("coreCount", 1),
                cpuTime=params.get("cpuTime"),
                cpuTimeUnit=params.get("cpuTimeUnit"),
                outDiskCount=params.get("outDiskCount", 0),
                outDiskUnit=params.get("outDiskUnit"),
                workDiskCount=params.get("workDiskCount", 0),
                reqID=int(params["reqID"]) if str(params.get("reqID", "")).isdigit() else task_id,
                cloud=params.get("cloud", params.get("workingGroup")),
                site=params.get("site"),
                nucleus=params.get("nucleus"),
                parent_tid=parent_tid if parent_tid is not None else task_id,
                campaign=params.get("campaign"),
                container_name=params.get("container_name"),
                gshare=params.get("gshare", "Undefined"),
                eventService=0,
                useJumbo=None,
                attemptNr=0,
                progress=0,
                failureRate=0,
                modificationTime=fmt_dt(now),
                creationDate=fmt_dt(now),
                superStatus="waiting",
            )
            outcome = None
            for pattern, forced in self.config.outcome_rules.items():
                if re.search(pattern, params["taskName"]):
                    outcome = forced
                    break
            sim = {
                "submit_at": now,
                "phase": "pickup",
                "due": now + self.config.timings.pickup_s,
                "n_jobs": 0,
                "n_ok": 0,
                "n_fail": 0,
                "rounds": [],
                "outcome": outcome,
            }
            t = {"id": task_id, "in_jedi": False, "spec": spec, "params": params, "sim": sim, "cmd": None}
            self._save(t, insert=True)
            return task_id

    # ------------------------------------------------------------------ read helpers
    def get(self, task_id: int, jedi_only: bool = True) -> dict[str, Any] | None:
        with self.lock:
            t = self._load(task_id)
        if t is None or (jedi_only and not t["in_jedi"]):
            return None
        return t

    def task_of_job(self, panda_id: int) -> int | None:
        """The jediTaskID of a PandaID (None for an id no round has handed out)."""
        with self.lock:
            row = self.db.execute(
                "SELECT pid0, m, task_id FROM rounds WHERE pid0 <= ? ORDER BY pid0 DESC LIMIT 1", (panda_id,)
            ).fetchone()
        return row[2] if row and panda_id < row[0] + row[1] else None

    def save(self, t: dict[str, Any]) -> None:
        with self.lock:
            self._save(t)

    def count_active(self, user_name: str, label: str) -> int:
        statuses = ("registered", "defined", "ready", "scouting", "running", "paused", "throttled")
        with self.lock:
            (n,) = self.db.execute(
                f"SELECT COUNT(*) FROM tasks WHERE userName=? AND prodSourceLabel=? AND in_jedi=1 "
                f"AND status IN ({','.join('?' * len(statuses))})",
                (user_name, label, *statuses),
            ).fetchone()
        return int(n)

    def find_latest_by_name(self, vo: str, label: str, user: str, name: str) -> tuple[int, str, bool] | None:
        with self.lock:
            row = self.db.execute(
                "SELECT jediTaskID, status, in_jedi FROM tasks WHERE vo=? AND prodSourceLabel=? AND userName=? "
                "AND taskName=? ORDER BY jediTaskID DESC LIMIT 1",
                (vo, label, user, name),
            ).fetchone()
        return (row[0], row[1], bool(row[2])) if row else None

    def select_rows(self, sql: str, args: tuple) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            rows = self.db.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall()
        return {"tasks_by_status": dict(rows), "tasks": sum(n for _, n in rows)}


def round_end(r: dict[str, Any]) -> float:
    """When the last job of a round ends (or when it was cancelled)."""
    n_waves = math.ceil(r["m"] / r["slots"])
    natural = r["start"] + n_waves * r["wl"]
    stop = r["stop"]
    if stop is None:
        return natural
    if r["cancel"]:
        return min(stop, natural)
    stop_wave_start = r["start"] + math.floor((stop - r["start"]) / r["wl"]) * r["wl"]
    return min(natural, stop_wave_start + r["wl"])


# TaskRefinerBase.extractCommon reads these keys unconditionally: a missing one breaks the task.
EXTRACT_COMMON_KEYS = (
    "taskName", "userName", "vo", "prodSourceLabel", "taskPriority", "architecture", "transUses",
    "transHome", "processingType", "taskType",
)  # fmt: skip


def extract_common_error(params: dict[str, Any]) -> str | None:
    """JEDI's errorDialog when extractCommon fails (TaskRefiner.py appends the traceback)."""
    try:
        for key in EXTRACT_COMMON_KEYS:
            params[key]
    except Exception as exc:
        return f"failed to extract common parameters with {type(exc).__name__}:{exc} {traceback.format_exc()}"
    return None


def do_refine_error(params: dict[str, Any], known_dataset: Callable[[str], bool]) -> str | None:
    """JEDI's errorDialog when doBasicRefine fails: no jobParameters, an output or log item without
    `value`, or an input dataset DDM does not know (its diag, then TaskRefiner's own line)."""
    try:
        items = list(params["jobParameters"])
        if "log" in params:
            items += [params["log"]] if isinstance(params["log"], dict) else list(params["log"])
        seen: set[str] = set()
        for item in items:
            if item["type"] != "template" or "dataset" not in item or item["dataset"] in seen:
                continue
            seen.add(item["dataset"])
            if item["param_type"] == "input" and not known_dataset(item["dataset"]):
                diag = f'doBasicRefine : unknown input dataset "{item["dataset"]}"'
                return f"{diag} failed to refine task with UnknownDatasetError:{diag}"
            if item["param_type"] in ("output", "log"):
                item["value"]
    except Exception as exc:  # e.g. KeyError 'jobParameters', KeyError 'value'
        return f"failed to refine task with {type(exc).__name__}:{exc}"
    return None


def output_items(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The output and log items (with a dataset) of a task's parameters."""
    logs = params.get("log")
    items = [*(params.get("jobParameters") or []), *(logs if isinstance(logs, list) else [logs] if logs else [])]
    return [
        i for i in items if isinstance(i, dict) and i.get("param_type") in ("output", "log") and i.get("dataset")
    ]


def reformat_architecture(architecture: str | None) -> str | None:
    """JediTaskSpec.reformat_architecture: the old `sw_platform@base_platform#cpu&gpu` text becomes a
    JSON object ("" becomes "{}"); JSON without an encoded platform stays as it is. The GPU spec's
    extended attributes (`:cuda>=12` ...) are not simulated."""
    if architecture is None:
        return None
    try:
        if "encoded_platform" not in json.loads(architecture):
            return architecture
    except (ValueError, TypeError):
        pass
    new: dict[str, Any] = {}
    sw_platform = re.match(r"[^@#&]*", architecture).group(0)  # type: ignore[union-attr]
    if sw_platform:
        new["sw_platform"] = sw_platform
    base = re.search(r"@([^#&]*)", architecture)
    if base and base.group(1):
        new["base_platform"] = base.group(1)
    if "#" in architecture:
        specs_text = re.search(r"#([^\^@&]*)", architecture).group(1).strip("()")  # type: ignore[union-attr]
        specs = [dict(zip(("arch", "vendor", "instr"), (spec + "-*-*").split("-")[:3], strict=True))
                 for spec in specs_text.split("|") if spec]  # fmt: skip
    elif architecture and not re.match(r"[\^@&]", architecture) and architecture.split("-")[0]:
        specs = [{"arch": architecture.split("-")[0]}]
    else:
        specs = []
    specs = [d for d in ({k: v for k, v in spec.items() if v != "*"} for spec in specs) if d]
    if specs:
        new["cpu_specs"] = specs
    gpu = re.search(r"&([^\^@#:]*)", architecture)
    if gpu and gpu.group(1):
        vendor_model = dict(zip(("vendor", "model"), (gpu.group(1) + "-*").split("-")[:2], strict=True))
        gpu_spec = {k: v for k, v in vendor_model.items() if v != "*"}
        if gpu_spec:
            new["gpu_spec"] = gpu_spec
    return json.dumps(new)


def job_params_template(params: dict[str, Any]) -> str | None:
    """The job-parameter template doBasicRefine makes: each output item's file name template becomes
    its stream (`--output=${OUTPUT0}`); hidden items are left out (get_detailed_info's
    `job_execution_params`)."""
    items = params.get("jobParameters")
    if not isinstance(items, list):
        return None
    streams: dict[int, str] = {}
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict) or item.get("type") != "template" or "dataset" not in item:
            continue
        if item["dataset"] in seen:
            continue
        seen.add(item["dataset"])
        kind = item.get("param_type")
        if kind in ("output", "log"):
            streams[index] = f"{kind.upper()}{counts.get(kind, 0)}"
            counts[kind] = counts.get(kind, 0) + 1
    text = ""
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "value" not in item or item.get("hidden") is True:
            continue
        value = str(item["value"])
        if index in streams:  # RefinerUtils.extractReplaceOutFileTemplate
            template = value.split("=")[-1].replace("'", "")
            value = value.replace(template, f"${{{streams[index]}}}")
        text += value + ("" if item.get("padding") is False else " ")
    return text[:-1]


def build_split_rule(params: dict[str, Any]) -> str:
    """The compact splitRule JEDI's generic refiner derives from the task parameters."""
    items = []
    if params.get("nEventsPerJob"):
        items.append(f"NE={params['nEventsPerJob']}")
    if params.get("nFilesPerJob"):
        items.append(f"NF={params['nFilesPerJob']}")
    if params.get("pushStatusChanges", True):
        items.append("PC=1")
    items += ["CV=1", "MD=1"]
    for item in params.get("jobParameters") or []:
        if not isinstance(item, dict) or item.get("param_type") != "number":
            continue
        value = str(item.get("value", ""))
        if "${RNDMSEED}" in value:
            items.append(f"RS={item.get('offset', 0)}")
        elif "${FIRSTEVENT}" in value:
            items.append(f"FT={item.get('offset', 0)}")
    return ",".join(items)


def check_command_allowed(com: str, status: str, prod_role: bool, comment: str | None) -> tuple[bool, str]:
    """Status preconditions of sendCommandTaskPanda (`_check_command_allowed`)."""
    if com in ("kill", "finish"):
        if status in {"finished", "done", "prepared", "broken", "aborted", "toabort", "aborting", "failed"}:
            return False, ""
    elif com == "retry":
        if status not in {"finished", "failed", "exhausted"}:
            return False, ""
        if status == "exhausted" and not prod_role:
            return False, "and production role is missing"
    elif com == "incexec":
        if status not in {"finished", "failed", "aborted", "done", "exhausted"}:
            return False, ""
    elif com == "reassign":
        _, _, back = parse_reassign_comment(comment or "")
        if not back and status not in {
            "defined",
            "ready",
            "running",
            "scouting",
            "scouted",
            "pending",
            "assigning",
            "exhausted",
        }:
            return False, ""
    elif com == "pause":
        if status in {"finished", "failed", "done", "aborted", "broken", "paused"}:
            return False, ""
    elif com == "resume":
        if status not in {"paused", "throttled", "staging"}:
            return False, ""
    elif com == "avalanche":
        if status != "scouting":
            return False, ""
    elif com == "release" and status not in {
        "scouting",
        "pending",
        "running",
        "ready",
        "assigning",
        "defined",
    }:
        return False, ""
    return True, ""


def make_reassign_comment(site: str | None, cloud: str | None, nucleus: str | None, mode: str | None) -> str:
    if site is not None:
        comment = f"site:{site}:y"
    else:
        comment = f"nucleus:{nucleus}" if nucleus is not None else f"cloud:{cloud}"
        comment += ":n"
    if mode == "nokill":
        comment += ":nokill reassign"
    elif mode == "soft":
        comment += ":soft reassign"
    return comment


def parse_reassign_comment(comment: str) -> tuple[str, str | None, bool]:
    """(target, value, back_to_old_status) of a reassign comment."""
    head = comment.split(" ")[0]
    parts = head.split(":")
    target = parts[0] if parts else "site"
    value = parts[1] if len(parts) > 1 else None
    back = len(parts) > 2 and parts[2] == "y"
    return target, value, back


def to_naive(text: str | None) -> datetime | None:
    """Stored text -> naive datetime (what panda-server returns)."""
    return parse_dt(text)


def since_floor(now: float, days: int) -> datetime:
    return datetime.fromtimestamp(now, UTC).replace(tzinfo=None) - timedelta(days=days)
