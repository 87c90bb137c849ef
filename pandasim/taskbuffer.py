"""Server-side task logic shared by both transports (what TaskBuffer/DBProxy do in panda-server)."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .clock import SimClock
from .config import SimConfig
from .jedi import (
    DATETIME_ATTRS,
    TASK_ATTRIBUTES,
    Jedi,
    check_command_allowed,
    clean_user_id,
    decode_split_rule,
    fmt_dt,
    job_params_template,
    since_floor,
    to_naive,
    uniform,
)

MESSAGE_SSL = "SSL secure connection is required"
MESSAGE_PROD_ROLE = "production or pilot role required"
MESSAGE_TASK_OWNER = "not the task owner or no production role"
MESSAGE_TASK_ID = "jediTaskID must be an integer"
MESSAGE_JSON = "failed to load JSON"

MAX_JOB_DESCRIPTIONS = 5500
# Jobs one call looks at, whatever the task's size (its oldest jobs): the per-call cost stays bounded.
MAX_JOBS_LISTED = 10_000


@dataclass
class SimRequest:
    """What PandaRequest gives the API functions: the (token-augmented) environment and method."""

    sim: PandaCore
    method: str
    env: dict[str, str] = field(default_factory=dict)

    def fqans(self) -> list[str]:
        return [
            v.split()[-1]
            for k, v in sorted(self.env.items())
            if k.startswith("GRST_CRED_") and v.startswith("VOMS")
        ]


def is_secure(req: SimRequest) -> bool:
    dn = req.env.get("SSL_CLIENT_S_DN")
    return bool(dn) and "/CN=limited proxy" not in dn


def get_dn(req: SimRequest) -> str:
    return req.env.get("SSL_CLIENT_S_DN", "")


def has_production_role(req: SimRequest) -> bool:
    dn = get_dn(req)
    if any(sdn in dn for sdn in req.sim.config.production_dns):
        return True
    return any(re.search("^/[^/]+/Role=production", fqan) for fqan in req.fqans())


class PandaCore:
    """The simulated server's data layer: JEDI store + clock + config."""

    def __init__(self, config: SimConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self.jedi = Jedi(config)

    def now(self) -> float:
        """Current simulated time, after applying everything that became due."""
        now = self.clock.now()
        self.jedi.catch_up(now)
        return now

    def owns_or_prod(self, task_id: int, req: SimRequest) -> bool:
        if has_production_role(req):
            return True
        t = self.jedi.get(int(task_id))
        if t is None:
            return False
        compact = clean_user_id(get_dn(req)) or get_dn(req)
        return t["spec"]["userName"] == compact

    # immediate (non-command) modifications ------------------------------------
    def change_task_attribute(self, task_id: int, attr: str, value: Any) -> int:
        now = self.now()
        with self.jedi.lock:
            t = self.jedi.get(task_id)
            if t is None:
                return 0
            t["spec"][attr] = value
            if attr != "modificationTime":
                t["spec"]["modificationTime"] = fmt_dt(now)
            self.jedi.save(t)
        return 1

    def change_modification_time(self, task_id: int, hour_offset: int) -> int:
        now = self.now()
        return self.change_task_attribute(task_id, "modificationTime", fmt_dt(now + 3600 * int(hour_offset)))

    def change_split_rule(self, task_id: int, tag: str, value: str) -> int:
        now = self.now()
        with self.jedi.lock:
            t = self.jedi.get(task_id)
            if t is None:
                return 0
            items = [
                i for i in (t["spec"]["splitRule"] or "").split(",") if i and not i.startswith(f"{tag}=")
            ]
            if value not in (None, "", "None"):
                items.append(f"{tag}={value}")
            t["spec"]["splitRule"] = ",".join(items)
            t["spec"]["modificationTime"] = fmt_dt(now)
            self.jedi.save(t)
        return 1

    def increase_attempts(self, task_id: int, increase: int) -> tuple[int, str]:
        now = self.now()
        t = self.jedi.get(task_id)
        if t is None:
            return 1, f"jediTaskID={task_id} not found"
        ok = ["running", "scouting", "ready"]
        status, old = t["spec"]["status"], t["spec"]["oldStatus"]
        if status not in ok and old not in ok:
            return 2, f"command rejected since status={status} or oldStatus={old} not in {ok}"
        counts = self.jedi.task_counts(t, now)
        n_inputs = max(counts["n_jobs"] - counts["finished"], 0)
        return 0, f"increased attemptNr for {n_inputs} inputs (0 reactivated)"

    def task_ids_with_criteria(
        self, criteria: dict[str, Any], since: str | None, n_tasks: int
    ) -> list[int] | None:
        now = self.now()
        for key in criteria:
            if key not in TASK_ATTRIBUTES:
                return None
        floor = since_floor(now, 90)
        if since is not None:
            try:
                time_range = datetime.strptime(since, "%Y-%m-%d %H:%M:%S")
            except ValueError:
                return None
            floor = max(floor, time_range)
        indexed = {
            "jediTaskID",
            "taskName",
            "userName",
            "prodSourceLabel",
            "vo",
            "status",
            "reqID",
            "parent_tid",
        }
        conditions, args, post = (
            ["in_jedi=1", "modificationTime>=?"],
            [floor.strftime("%Y-%m-%d %H:%M:%S")],
            {},
        )
        for key, value in criteria.items():
            if key in indexed:
                if value in ("NULL", "NOT NULL"):
                    conditions.append(f"{key} IS {value}")
                elif value is None:
                    conditions.append(f"{key} IS NULL")
                else:
                    conditions.append(f"{key}=?")
                    args.append(value)
            else:
                post[key] = value
        sql = f"SELECT jediTaskID, spec FROM tasks WHERE {' AND '.join(conditions)} ORDER BY jediTaskID"
        if not post:
            sql += f" LIMIT {int(n_tasks)}"
        ids = []
        for task_id, spec_json in self.jedi.select_rows(sql, tuple(args)):
            if post:
                spec = json.loads(spec_json)
                if not all(_matches(spec.get(k), v) for k, v in post.items()):
                    continue
            ids.append(task_id)
            if len(ids) >= n_tasks:
                break
        return sorted(ids)

    def datasets_and_files(self, task_id: int, types: list[str], dataset_only: bool) -> list[dict[str, Any]]:
        now = self.now()
        t = self.jedi.get(task_id)
        if t is None:
            return []
        out = []
        for ds in datasets(t):
            if ds["type"] not in types:
                continue
            entry: dict[str, Any] = {"dataset": {"name": ds["name"], "id": ds["id"]}}
            if not dataset_only:
                files = []
                for job in iter_jobs(self, t, now):
                    status = job["status"]
                    if ds["type"] in ("input", "pseudo_input"):
                        fstatus = {"finished": "finished", "failed": "failed"}.get(status, "running")
                        files.append(
                            {
                                "lfn": f"{ds['name']}.{job['serial']:06d}",
                                "scope": t["spec"]["vo"],
                                "id": job["serial"],
                                "status": fstatus,
                            }
                        )
                entry["files"] = files
            out.append(entry)
        return out


def _matches(actual: Any, wanted: Any) -> bool:
    if wanted == "NULL" or wanted is None:
        return actual is None
    if wanted == "NOT NULL":
        return actual is not None
    return str(actual) == str(wanted)


# ---------------------------------------------------------------------- submission
def insert_task_params(
    req: SimRequest, params: dict[str, Any], parent_tid: int | None, allow_active: bool = False
) -> tuple[int, str]:
    """insertTaskParamsPanda with properErrorCode=True: (code, message)."""
    sim = req.sim
    now = sim.now()
    dn = get_dn(req)
    prod = has_production_role(req)
    compact = clean_user_id(dn) or dn
    params = json.loads(json.dumps(params))
    try:
        if not prod or "userName" not in params:
            params["userName"] = compact
        if "parentTaskName" in params:
            found = sim.jedi.select_rows(
                "SELECT jediTaskID FROM tasks WHERE userName=? AND taskName=? AND in_jedi=1 ORDER BY jediTaskID DESC LIMIT 1",
                (params["userName"], params["parentTaskName"]),
            )
            if not found:
                return (
                    11,
                    f'failed to find parent with user="{params["userName"]}" name={params["parentTaskName"]}',
                )
            parent_tid = found[0][0]
        if not prod or "taskType" not in params:
            params["taskType"] = "anal"
            params["taskPriority"] = 1000
        name, label, vo = params["taskName"], params["prodSourceLabel"], params["vo"]
        limit = sim.config.max_active_tasks_per_user
        if limit is not None:
            n_active = sim.jedi.count_active(params["userName"], label)
            if n_active > limit:
                return 10, f"Too many active tasks for {params['userName']} {n_active}>{limit}"
        if params["taskType"] == "anal" and (params.get("uniqueTaskName") is True or allow_active):
            old = sim.jedi.find_latest_by_name(vo, label, params["userName"], name)
            if old is not None:
                old_id, old_status, in_jedi = old
                if not in_jedi:
                    return 1, (
                        f"jediTaskID={old_id} is already queued for outDS={name}. You cannot submit duplicated tasks. "
                    )
                final = ["finished", "failed", "aborted", "done", "exhausted"]
                active_ok = (
                    allow_active and old_status in ("running", "scouting", "pending") and label == "user"
                )
                if old_status not in final and not active_ok:
                    return 2, (
                        f"jediTaskID={old_id} is in the {old_status} state for outDS={name}. "
                        "You can re-submit the task with new parameters for the same or another input "
                        "once it goes into finished/failed/done. "
                        "Or you can retry the task once it goes into running/finished/failed/done. "
                        "Note that retry != resubmission according to "
                        "https://twiki.cern.ch/twiki/bin/view/PanDA/PandaJEDI#Task_retry_and_resubmission "
                    )
                new_params = {
                    k: v
                    for k, v in params.items()
                    if k in ("nEvents", "nFiles", "cliParams", "ramCount", "site", "cloud")
                }
                _queue(sim, old_id, "incexec", "DEFT", None, now, new_params=new_params)
                return 3, (
                    f"reactivation accepted. jediTaskID={old_id} (currently in {old_status} state) "
                    "will be re-executed with old and/or new input"
                )
        task_id = sim.jedi.insert_task(params, params["userName"], parent_tid, now)
    except Exception:
        return 4, "failed to register task"
    return 0, f"succeeded. new jediTaskID={task_id}"


# ---------------------------------------------------------------------- commands
def _queue(
    sim: PandaCore, task_id: int, name: str, owner: str, comment: str | None, now: float, **extra: Any
) -> None:
    with sim.jedi.lock:
        t = sim.jedi.get(task_id)
        if t is None:
            return
        # a newer command replaces the one not yet consumed (DELETE + INSERT in PRODSYS_COMM)
        t["cmd"] = {
            "cmd": name,
            "comment": comment,
            "owner": owner,
            "at": now + sim.config.timings.command_delay_s,
            **extra,
        }
        sim.jedi.save(t)


def send_command(
    req: SimRequest, task_id: int, name: str, comment: str | None = None, qualifier: str | None = None
) -> tuple[int, str]:
    """sendCommandTaskPanda with properErrorCode=True."""
    sim = req.sim
    now = sim.now()
    prod = has_production_role(req)
    compact = clean_user_id(get_dn(req)) or get_dn(req)
    t = sim.jedi.get(task_id)
    if t is None:
        return 2, f"jediTaskID={task_id} not found"
    status, label = t["spec"]["status"], t["spec"]["prodSourceLabel"]
    allowed, add_msg = check_command_allowed(name, status, prod, comment)
    if not allowed:
        if name == "retry" and status in ("running", "scouting", "pending") and label == "user":
            return 5, status
        return (
            4,
            f"Command rejected: the {name} command is not accepted if the task is in {status} status {add_msg}",
        )
    if comment is None:
        comment = f"{qualifier + ' ' if qualifier else ''}{name} by {compact}"
    _queue(sim, task_id, name, "DEFT", comment, now)
    return 0, f"command={name} is registered for task ID {task_id}. will be executed in a few minutes"


# ---------------------------------------------------------------------- reads
def datasets(t: dict[str, Any]) -> list[dict[str, Any]]:
    """The task's JEDI datasets in table order: input/pseudo input, outputs, log."""
    params, task_id = t["params"], t["id"]
    out: list[dict[str, Any]] = []
    if params.get("noInput"):
        out.append({"id": task_id * 100 + 1, "name": "pseudo_dataset", "type": "pseudo_input"})
    items = [i for i in params.get("jobParameters") or [] if isinstance(i, dict)]
    for item in items:
        if item.get("param_type") == "input" and item.get("dataset"):
            out.append({"id": task_id * 100 + len(out) + 1, "name": item["dataset"], "type": "input"})
    if not any(d["type"] in ("input", "pseudo_input") for d in out):
        out.append({"id": task_id * 100 + 1, "name": "pseudo_dataset", "type": "pseudo_input"})
    for item in items:
        if item.get("param_type") == "output" and item.get("dataset"):
            out.append(
                {"id": task_id * 100 + len(out) + 1, "name": item["dataset"], "type": "output", "item": item}
            )
    logs = params.get("log")
    for item in logs if isinstance(logs, list) else [logs] if isinstance(logs, dict) else []:
        if item.get("dataset"):
            out.append(
                {"id": task_id * 100 + len(out) + 1, "name": item["dataset"], "type": "log", "item": item}
            )
    return out


def _file_counts(sim: PandaCore, t: dict[str, Any], now: float) -> dict[str, int]:
    c = sim.jedi.task_counts(t, now) if t["sim"].get("n_jobs") else {
        "finished": 0, "failed": 0, "running": 0, "activated": 0, "cancelled": 0, "n_jobs": 0,
    }  # fmt: skip
    per_job = max(int(t["params"].get("nFilesPerJob") or 1), 1) if not t["params"].get("noInput") else 1
    n_files = t["sim"].get("n_input_files", c["n_jobs"] * per_job) if c["n_jobs"] else 0
    finished = min(c["finished"] * per_job, n_files)
    failed = min(c["failed"] * per_job, n_files - finished)
    used = min((c["finished"] + c["failed"] + c["running"] + c["activated"]) * per_job, n_files)
    return {"n_files": n_files, "finished": finished, "failed": failed, "used": used, "running": c["running"] * per_job,
            "activated": c["activated"] * per_job}  # fmt: skip


def task_details(sim: PandaCore, task_id: int, full: bool, with_status: bool) -> dict[str, Any]:
    """getJediTaskDetails: {} when the task is unknown."""
    now = sim.now()
    t = sim.jedi.get(task_id)
    if t is None:
        return {}
    ret: dict[str, Any] = {
        "inDS": "",
        "outDS": "",
        "statistics": "",
        "PandaID": [],
        "mergeStatus": None,
        "mergePandaID": [],
    }
    if with_status:
        ret["status"] = t["spec"]["status"]
    dsets = datasets(t)
    ret["inDS"] = ",".join(d["name"] for d in dsets if d["type"] == "input")
    ret["outDS"] = ",".join(d["name"] for d in dsets if d["type"] in ("output", "log"))
    fc = _file_counts(sim, t, now)
    parts, picked = [], fc["n_files"]
    tobedone = fc["n_files"] - fc["used"]
    for label, value in (("tobedone", tobedone), ("finished", fc["finished"]), ("failed", fc["failed"])):
        if value > 0:
            parts.append(f"{label}*{value}")
            picked -= value
    if t["spec"]["prodSourceLabel"] == "user":
        for label in ("running", "activated"):
            if fc[label] > 0:
                parts.append(f"{label}*{fc[label]}")
                picked -= fc[label]
    if picked > 0:
        parts.append(f"picked*{picked}")
    ret["statistics"] = ",".join(parts)
    ret["PandaID"] = [job["PandaID"] for job in iter_jobs(sim, t, now)]
    if full:
        ret["cliParams"] = t["params"].get("cliParams", "")
    return ret


def task_digest(sim: PandaCore, t: dict[str, Any], now: float) -> dict[str, Any]:
    """getJediTaskDigest (get_tasks_modified_since with full=True)."""
    dsets = datasets(t)
    fc = _file_counts(sim, t, now)
    stat = {"finished": fc["finished"], "failed": fc["failed"], "running": fc["running"] + fc["activated"]}
    stat["ready"] = fc["n_files"] - sum(stat.values())
    return {
        "inDS": ",".join(sorted(d["name"] for d in dsets if d["type"] in ("input", "pseudo_input"))),
        "outDS": ",".join(sorted(d["name"] for d in dsets if d["type"] == "output")),
        "statistics": ",".join(f"{k}*{v}" for k, v in sorted(stat.items()) if v > 0),
        "PandaID": [],
        "mergeStatus": None,
        "mergePandaID": [],
        "cliParams": t["params"].get("cliParams", ""),
    }


def _spec_out(spec: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in TASK_ATTRIBUTES:
        value = spec.get(key)
        out[key] = to_naive(value) if key in DATETIME_ATTRS and isinstance(value, str) else value
    return out


def detailed_info(sim: PandaCore, task_id: int, now: float | None = None) -> dict[str, Any] | None:
    """get_task_details_json: all JediTaskSpec columns + job template + raw params + file progress
    (`now`: the time a listing already caught up to, so that it catches up once, not per task)."""
    now = sim.now() if now is None else now
    t = sim.jedi.get(task_id)
    if t is None:
        return None
    info = _spec_out(t["spec"])
    info["splitRule"] = decode_split_rule(t["spec"]["splitRule"])
    info["job_execution_params"] = job_params_template(t["params"])
    info["task_creation_arguments"] = t["params"].get("cliParams")
    info["raw_task_params"] = json.loads(json.dumps(t["params"]))
    fc = _file_counts(sim, t, now)
    info["nFiles"] = fc["n_files"]
    info["nFilesFinished"] = fc["finished"]
    info["nFilesFailed"] = fc["failed"]
    info["nFilesMissing"] = 0
    info["pctFinished"] = round(100 * fc["finished"] / fc["n_files"]) if fc["n_files"] else 0
    info["pctFailed"] = round(100 * fc["failed"] / fc["n_files"]) if fc["n_files"] else 0
    return info


def tasks_in_time_range(
    sim: PandaCore, dn: str | None, since: str, full: bool, min_task_id: int | None, label: str
) -> dict[Any, dict[str, Any]]:
    """getJediTasksInTimeRange: tasks of one user modified since `since`, keyed by reqID."""
    if dn in ("NULL", "", "None", None):
        return {}
    match = re.match(r"^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)$", since)
    if match is None:
        return {}
    now = sim.now()
    floor = max(datetime(*(int(g) for g in match.groups())), since_floor(now, 30))
    compact = clean_user_id(dn) or dn
    sql = (
        "SELECT spec FROM tasks WHERE userName=? AND modificationTime>=? AND prodSourceLabel=? AND in_jedi=1"
    )
    args: list[Any] = [compact, floor.strftime("%Y-%m-%d %H:%M:%S"), label]
    if min_task_id is not None:
        sql += " AND jediTaskID>?"
        args.append(min_task_id)
    if full:
        sql += " ORDER BY jediTaskID LIMIT 500"
    attrs = ("jediTaskID", "modificationTime", "status", "processingType", "transUses", "transHome",
             "architecture", "reqID", "creationDate", "site", "cloud", "taskName")  # fmt: skip
    result: dict[Any, dict[str, Any]] = {}
    for (spec_json,) in sim.jedi.select_rows(sql, tuple(args)):
        spec = json.loads(spec_json)
        entry = {
            a: to_naive(spec[a]) if a in ("modificationTime", "creationDate") else spec[a] for a in attrs
        }
        if full:
            t = sim.jedi.get(spec["jediTaskID"])
            if t is not None:
                entry.update(task_digest(sim, t, now))
        result[entry["reqID"]] = entry
    return result


# ---------------------------------------------------------------------- jobs
JOB_ATTRIBUTES = [
    "PandaID",
    "jobDefinitionID",
    "schedulerID",
    "pilotID",
    "creationTime",
    "creationHost",
    "modificationTime",
    "modificationHost",
    "AtlasRelease",
    "transformation",
    "homepackage",
    "prodSeriesLabel",
    "prodSourceLabel",
    "prodUserID",
    "assignedPriority",
    "currentPriority",
    "attemptNr",
    "maxAttempt",
    "jobStatus",
    "jobName",
    "maxCpuCount",
    "maxCpuUnit",
    "maxDiskCount",
    "maxDiskUnit",
    "ipConnectivity",
    "minRamCount",
    "minRamUnit",
    "startTime",
    "endTime",
    "cpuConsumptionTime",
    "cpuConsumptionUnit",
    "commandToPilot",
    "transExitCode",
    "pilotErrorCode",
    "pilotErrorDiag",
    "exeErrorCode",
    "exeErrorDiag",
    "supErrorCode",
    "supErrorDiag",
    "ddmErrorCode",
    "ddmErrorDiag",
    "brokerageErrorCode",
    "brokerageErrorDiag",
    "jobDispatcherErrorCode",
    "jobDispatcherErrorDiag",
    "taskBufferErrorCode",
    "taskBufferErrorDiag",
    "computingSite",
    "computingElement",
    "jobParameters",
    "metadata",
    "prodDBlock",
    "dispatchDBlock",
    "destinationDBlock",
    "destinationSE",
    "nEvents",
    "grid",
    "cloud",
    "cpuConversion",
    "sourceSite",
    "destinationSite",
    "transferType",
    "taskID",
    "cmtConfig",
    "stateChangeTime",
    "prodDBUpdateTime",
    "lockedby",
    "relocationFlag",
    "jobExecutionID",
    "VO",
    "pilotTiming",
    "workingGroup",
    "processingType",
    "prodUserName",
    "nInputFiles",
    "countryGroup",
    "batchID",
    "parentID",
    "specialHandling",
    "jobsetID",
    "coreCount",
    "nInputDataFiles",
    "inputFileType",
    "inputFileProject",
    "inputFileBytes",
    "nOutputDataFiles",
    "outputFileBytes",
    "jobMetrics",
    "workQueue_ID",
    "jediTaskID",
    "jobSubStatus",
    "actualCoreCount",
    "reqID",
    "maxRSS",
    "maxVMEM",
    "maxSWAP",
    "maxPSS",
    "avgRSS",
    "avgVMEM",
    "avgSWAP",
    "avgPSS",
    "maxWalltime",
    "nucleus",
    "eventService",
    "failedAttempt",
    "hs06sec",
    "gshare",
    "hs06",
    "totRCHAR",
    "totWCHAR",
    "totRBYTES",
    "totWBYTES",
    "rateRCHAR",
    "rateWCHAR",
    "rateRBYTES",
    "rateWBYTES",
    "resource_type",
    "diskIO",
    "memory_leak",
    "memory_leak_x2",
    "container_name",
    "job_label",
    "gco2_regional",
    "gco2_global",
    "cpu_architecture_level",
    "outputFileType",
]


def iter_jobs(sim: PandaCore, t: dict[str, Any], now: float):
    """The existing jobs of the task at `now` as small records (status, times, serial, PandaID),
    oldest first, at most MAX_JOBS_LISTED of them."""
    return itertools.islice(_all_jobs(sim, t, now), MAX_JOBS_LISTED)


def _all_jobs(sim: PandaCore, t: dict[str, Any], now: float):
    serial_base = 0
    for r in t["sim"]["rounds"]:
        fails = sim.jedi.fails(t, r)
        for k in range(r["m"]):
            status, start, end = sim.jedi.job_status(t, r, k, now, fails)
            if status is None:
                wave_start = r["start"] + (k // r["slots"]) * r["wl"]
                if now < wave_start - r["wl"] or (r["stop"] is not None and wave_start >= r["stop"]):
                    break  # the later waves of this round do not exist yet (or never will)
                continue
            yield {
                "round": r,
                "k": k,
                "status": status,
                "start": start,
                "end": end,
                "PandaID": r["pid0"] + k,
                "serial": serial_base + k + 1,
            }
        serial_base += r["m"]


def job_ids(sim: PandaCore, task_id: int) -> list[int]:
    now = sim.now()
    t = sim.jedi.get(task_id)
    return [] if t is None else [job["PandaID"] for job in iter_jobs(sim, t, now)]


def job_descriptions(sim: PandaCore, task_id: int, unsuccessful_only: bool) -> list[dict[str, Any]]:
    now = sim.now()
    t = sim.jedi.get(task_id)
    if t is None:
        return []
    out = []
    for job in iter_jobs(sim, t, now):
        if unsuccessful_only and job["status"] not in ("failed", "cancelled", "closed"):
            continue
        out.append(_job_dict(sim, t, job, now))
        if len(out) >= MAX_JOB_DESCRIPTIONS:
            break
    return out


def jobs_by_panda_id(sim: PandaCore, panda_ids: list[int]) -> list[dict[str, Any] | None]:
    """Jobs as 0.8.x `JobSpec.to_dict()` gives them (attributes only, no Files, datetimes as
    text), in the order asked, None for unknown ids (UserIF.getJobStatus with JSON)."""
    by_task: dict[int, dict[int, dict[str, Any]]] = {}
    out: list[dict[str, Any] | None] = []
    for panda_id in panda_ids:
        task_id = sim.jedi.task_of_job(panda_id)
        if task_id is None:
            out.append(None)
            continue
        if task_id not in by_task:
            by_task[task_id] = {j["PandaID"]: j for j in job_descriptions(sim, task_id, False)}
        job = by_task[task_id].get(panda_id)
        out.append(
            None
            if job is None
            else {k: str(job[k]) if isinstance(job[k], datetime) else job[k] for k in JOB_ATTRIBUTES}
        )
    return out


# What a failed job reports, as PanDA pilots and payloads word it (pilot codes: PanDA pilot's
# ErrorCodes); each failed job gets one, chosen from its seed. Placeholders vary per job.
JOB_ERRORS: tuple[tuple[str, int, str], ...] = (
    ("pilot", 1212, "Payload ran out of memory: maxRSS {rss} kB exceeds the limit of {limit} kB on {host}"),
    ("pilot", 1235, "Payload exceeded maximum allowed memory (PSS {rss} kB > {limit} kB), killed at {n} s"),
    ("pilot", 1137, "Failed to stage-out file {lfn}: connection to root://{host}:1094//spd/{lfn} timed out"),
    ("pilot", 1099, "Failed to stage-in file {lfn}: [ERROR] Server responded with an error: [3011] No such file"),
    ("pilot", 1150, "Looping job killed by pilot: no update of the output files for {n} s"),
    ("pilot", 1201, "Payload received SIGTERM from the batch system after {n} s (job {panda_id})"),
    ("exe", 65, "spdroot exited with code 65: G4Exception issued by G4Navigator::ComputeStep at event {n}"),
    ("exe", 139, "Segmentation violation in spdroot (signal 11) at address 0x{hex} in event {n}"),
)


def _job_error(u: Any, job: dict[str, Any], lfn: str, site: str, ram_mb: int) -> dict[str, Any]:
    source, code, text = JOB_ERRORS[int(u("err") * len(JOB_ERRORS)) % len(JOB_ERRORS)]
    limit = ram_mb * 1024
    diag = text.format(rss=int(limit * (1.05 + 0.2 * u("rss"))), limit=limit, n=int(1000 + 9000 * u("n")),
                       host=f"{site.lower().replace('_', '-')}-wn{int(u('wn') * 90) + 10:03d}.jinr.ru",
                       lfn=lfn, panda_id=job["PandaID"], hex=f"{int(u('hex') * 2**40):010x}")  # fmt: skip
    return {f"{source}ErrorCode": code, f"{source}ErrorDiag": diag, "transExitCode": code if source == "exe" else 0}


def _job_dict(sim: PandaCore, t: dict[str, Any], job: dict[str, Any], now: float) -> dict[str, Any]:
    seed, params, spec, r, k = sim.config.seed, t["params"], t["spec"], job["round"], job["k"]
    status = job["status"]
    u = lambda salt: uniform(seed, t["id"], r["rnd"], k, salt)  # noqa: E731
    d = dict.fromkeys(JOB_ATTRIBUTES)
    n_jobs = max(t["sim"]["n_jobs"], 1)
    per_job = int(params.get("nEventsPerJob") or 0)
    if params.get("noInput") and per_job:
        total = int(params.get("nEvents") or per_job * n_jobs)
        n_events = min(per_job, max(total - (job["serial"] - 1) * per_job, 0)) or per_job
    else:
        n_events = per_job or 1000
    done = status in ("finished", "failed", "cancelled")
    start = _naive(int(job["start"])) if status != "activated" else None
    end = _naive(int(job["end"])) if done else None
    sites = sim.config.sites
    site = spec.get("site") or sites[int(u("site") * len(sites))]
    walltime = (job["end"] - job["start"]) if done else None
    core_count = int(spec.get("coreCount") or 1)
    created = _naive(int(r["start"]))
    serial = job["serial"]
    d.update(
        PandaID=job["PandaID"],
        jobDefinitionID=t["id"],
        jobName=f"{spec['taskName']}${serial}",
        jobStatus="closed" if status == "cancelled" else status,
        jobSubStatus="toreassign" if status == "cancelled" else None,
        prodSourceLabel=spec["prodSourceLabel"],
        prodUserName=spec["userName"],
        VO=spec["vo"],
        jediTaskID=t["id"],
        taskID=t["id"],
        reqID=spec["reqID"],
        jobsetID=t["id"],
        attemptNr=r["attempt"],
        maxAttempt=int(params.get("maxAttempt") or 3),
        assignedPriority=spec["taskPriority"],
        currentPriority=spec["currentPriority"],
        computingSite=site,
        cloud=spec.get("cloud"),
        nucleus=spec.get("nucleus"),
        transformation=params.get("transPath"),
        homepackage=params.get("transHome"),
        cmtConfig=params.get("architecture"),
        container_name=params.get("container_name"),
        processingType=spec.get("processingType"),
        workingGroup=spec.get("workingGroup"),
        gshare=spec.get("gshare"),
        coreCount=core_count,
        actualCoreCount=core_count if done else None,
        minRamCount=spec.get("ramCount"),
        minRamUnit="MB",
        maxWalltime=params.get("walltime"),
        creationTime=created,
        modificationTime=end or start or created,
        stateChangeTime=end or start or created,
        startTime=start,
        endTime=end,
        nEvents=n_events if status == "finished" else 0,
        cpuConsumptionTime=int(walltime * core_count * (0.85 + 0.1 * u("cpu"))) if walltime else 0,
        cpuConsumptionUnit="s",
        hs06sec=int(walltime * core_count * 10) if walltime else None,
        maxRSS=int(1.5e6 * (0.6 + 0.4 * u("rss"))) if done else None,
        transExitCode=0 if status == "finished" else None,
        pilotErrorCode=0,
        exeErrorCode=0,
        taskBufferErrorCode=106 if status == "cancelled" else 0,
        taskBufferErrorDiag="killed by JEDI" if status == "cancelled" else None,
        jobParameters=_job_params(params, serial),
        specialHandling=None,
        eventService=0,
        resource_type="SCORE" if core_count == 1 else "MCORE",
        job_label="managed" if spec["prodSourceLabel"] == "managed" else "user",
    )
    files = []
    out_bytes = 0
    for ds in datasets(t):
        if ds["type"] not in ("output", "log"):
            continue
        item = ds["item"]
        lfn = _lfn(str(item.get("value", "")), serial)
        if ds["type"] == "log":
            size = int(2e6 * (0.5 + u("log"))) if done else None
            fstatus = "ready" if done else "unknown"
        else:
            size = int(n_events * 2.0e5 * (0.8 + 0.4 * u("out"))) if status == "finished" else None
            fstatus = "ready" if status == "finished" else ("failed" if done else "unknown")
            out_bytes += size or 0
        files.append(
            {
                "row_ID": job["PandaID"] * 10 + len(files),
                "PandaID": job["PandaID"],
                "GUID": f"{uniform(seed, t['id'], serial, len(files), 'guid'):.16f}"[2:18],
                "lfn": lfn,
                "type": ds["type"],
                "dataset": ds["name"],
                "status": fstatus,
                "prodDBlock": None,
                "prodDBlockToken": None,
                "dispatchDBlock": None,
                "dispatchDBlockToken": None,
                "destinationDBlock": f"{ds['name']}_sub{t['id']:08d}",
                "destinationDBlockToken": item.get("token"),
                "destinationSE": item.get("destination") or site,
                "fsize": size,
                "md5sum": None,
                "checksum": f"ad:{int(uniform(seed, t['id'], serial, len(files), 'ck') * 2**32):08x}"
                if size
                else None,
                "scope": spec["vo"],
                "jediTaskID": t["id"],
                "datasetID": ds["id"],
                "fileID": job["PandaID"] * 10 + len(files),
                "attemptNr": r["attempt"],
            }
        )
    if status == "failed":
        first = next((f["lfn"] for f in files if f["type"] == "output"), spec["taskName"])
        d.update(_job_error(u, job, first, site, int(spec.get("ramCount") or 2000)))
    d["nOutputDataFiles"] = sum(1 for f in files if f["type"] == "output")
    d["outputFileBytes"] = out_bytes if status == "finished" else 0
    d["Files"] = files
    d["jobDuration"] = (end - start).total_seconds() if start and end else None
    kind = "scout" if r["kind"] == "scout" else "normal"
    d["extendedProdSourceLabel"] = f"{spec['prodSourceLabel']}_{kind}"
    return d


def _naive(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


def _lfn(value: str, serial: int) -> str:
    name = value.split("=")[-1].split()[-1] if value else f"file.{serial}"
    return name.replace("${SN/P}", f"{serial:06d}").replace("${SN}", str(serial))


def _job_params(params: dict[str, Any], serial: int) -> str:
    out = []
    for item in params.get("jobParameters") or []:
        if not isinstance(item, dict) or item.get("hidden"):
            continue
        value = str(item.get("value", ""))
        offset = int(item.get("offset") or 0)
        per_job = int(params.get("nEventsPerJob") or 1)
        value = value.replace("${RNDMSEED}", str(offset + serial)).replace(
            "${FIRSTEVENT}", str(offset + (serial - 1) * per_job + 1)
        )
        value = (
            value.replace("${SN/P}", f"{serial:06d}")
            .replace("${SN}", str(serial))
            .replace("${MAXEVENTS}", str(per_job))
        )
        out.append(value)
    return " ".join(out)
