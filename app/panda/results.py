"""Typed results of the PanDA client calls, built from the server's dicts (API v1 or legacy).

Every result keeps the server's dict in `raw` for fields the panel does not model yet.
Datetimes are timezone-aware UTC (PanDA sends naive UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.panda.errors import first_part


def as_utc(value: Any) -> datetime | None:
    """Naive-UTC datetime or ISO string from PanDA -> aware UTC datetime; anything else -> None."""
    if isinstance(value, str) and value:
        try:
            value = datetime.fromisoformat(value.replace("/", "T", 1) if "/" in value[:11] else value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None


def _int(value: Any) -> int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    if value is None or value == "NULL":
        return None
    return str(value)


@dataclass(frozen=True)
class ServerAlive:
    alive: bool
    transport: str  # "v1" or "legacy"
    message: str = ""


@dataclass(frozen=True)
class UserAttributes:
    """What PanDA sees of the caller (`system/get_user_attributes`)."""

    dn: str
    dn_clean: str
    fqans: tuple[str, ...]
    is_production_user: bool
    production_working_groups: tuple[str, ...] = ()
    primary_working_group: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserAttributes:
        return cls(
            dn=str(data.get("user_dn_raw") or ""),
            dn_clean=str(data.get("user_dn_clean") or ""),
            fqans=tuple(str(f) for f in data.get("fqans") or ()),
            is_production_user=bool(data.get("is_production_user")),
            production_working_groups=tuple(str(g) for g in data.get("production_working_groups") or ()),
            primary_working_group=_str(data.get("primary_working_group")),
        )


@dataclass(frozen=True)
class SubmitResult:
    task_id: int
    code: int  # 0 = new task, 3 = accepted as incremental execution of an existing task
    message: str


@dataclass(frozen=True)
class CommandResult:
    """A queued task command (kill, finish, retry, pause, ...): code 0 = registered.

    A retry with new parameters answers 0 with `new_task_id` (a production task is registered
    again as a new task) or 3 (accepted as an incremental execution of the same task).
    """

    code: int
    message: str
    new_task_id: int | None = None


@dataclass(frozen=True)
class ChangeResult:
    """A direct change (priority, attribute, split rule): `n_changed` tasks were updated."""

    n_changed: int
    message: str


def parse_statistics(text: Any) -> dict[str, int]:
    """`finished*3,failed*1` -> {"finished": 3, "failed": 1} (counts of input files by status)."""
    counts: dict[str, int] = {}
    if not isinstance(text, str):
        return counts
    for item in text.split(","):
        name, _, number = item.strip().partition("*")
        if name and number.strip().isdigit():
            counts[name] = counts.get(name, 0) + int(number)
    return counts


@dataclass(frozen=True)
class TaskDetails:
    """`task/get_details`: datasets, input-file statistics and job ids."""

    task_id: int
    status: str | None
    in_ds: str | None
    out_ds: str | None
    statistics: dict[str, int]
    panda_ids: tuple[int, ...]
    merge_status: str | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, task_id: int, data: dict[str, Any]) -> TaskDetails:
        return cls(
            task_id=task_id,
            status=_str(data.get("status")),
            in_ds=_str(data.get("inDS")),
            out_ds=_str(data.get("outDS")),
            statistics=parse_statistics(data.get("statistics")),
            panda_ids=tuple(i for i in (_int(x) for x in data.get("PandaID") or ()) if i is not None),
            merge_status=_str(data.get("mergeStatus")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class TaskInfo:
    """One task as `task/get_detailed_info` / `get_tasks_detailed_info_since` describe it."""

    task_id: int
    name: str
    status: str
    super_status: str | None
    user_name: str | None
    parent_tid: int | None  # None when PanDA stored the task's own id (no parent)
    req_id: int | None
    task_priority: int | None
    current_priority: int | None
    creation_date: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    modification_time: datetime | None
    n_files: int | None
    n_files_finished: int | None
    n_files_failed: int | None
    pct_finished: float | None
    pct_failed: float | None
    walltime: int | None
    walltime_unit: str | None
    error_dialog: str | None
    site: str | None
    cloud: str | None
    nucleus: str | None
    raw_task_params: dict[str, Any] | None = field(repr=False, default=None)
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskInfo:
        task_id = _int(data.get("jediTaskID") or data.get("jeditaskid")) or 0
        parent = _int(data.get("parent_tid"))
        raw_params = data.get("raw_task_params")
        return cls(
            task_id=task_id,
            name=str(data.get("taskName") or ""),
            status=str(data.get("status") or ""),
            super_status=_str(data.get("superStatus")),
            user_name=_str(data.get("userName")),
            parent_tid=None if parent in (None, task_id) else parent,
            req_id=_int(data.get("reqID")),
            task_priority=_int(data.get("taskPriority")),
            current_priority=_int(data.get("currentPriority")),
            creation_date=as_utc(data.get("creationDate")),
            start_time=as_utc(data.get("startTime")),
            end_time=as_utc(data.get("endTime")),
            modification_time=as_utc(data.get("modificationTime")),
            n_files=_int(data.get("nFiles")),
            n_files_finished=_int(data.get("nFilesFinished")),
            n_files_failed=_int(data.get("nFilesFailed")),
            pct_finished=_float(data.get("pctFinished")),
            pct_failed=_float(data.get("pctFailed")),
            walltime=_int(data.get("walltime")),
            walltime_unit=_str(data.get("walltimeUnit")),
            error_dialog=first_part(data["errorDialog"]) if data.get("errorDialog") else None,  # raw keeps all
            site=_str(data.get("site")),
            cloud=_str(data.get("cloud")),
            nucleus=_str(data.get("nucleus")),
            raw_task_params=raw_params if isinstance(raw_params, dict) else None,
            raw=dict(data),
        )


@dataclass(frozen=True)
class TaskSummary:
    """One entry of `get_tasks_modified_since` (keyed by reqID on the server)."""

    task_id: int
    name: str
    status: str
    req_id: int | None
    modification_time: datetime | None
    creation_date: datetime | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSummary:
        return cls(
            task_id=_int(data.get("jediTaskID")) or 0,
            name=str(data.get("taskName") or ""),
            status=str(data.get("status") or ""),
            req_id=_int(data.get("reqID")),
            modification_time=as_utc(data.get("modificationTime")),
            creation_date=as_utc(data.get("creationDate")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class JobFile:
    lfn: str
    type: str  # input, pseudo_input, output, log
    size: int | None
    dataset: str | None
    status: str | None


@dataclass(frozen=True)
class JobDescription:
    """One PanDA job of a task (`task/get_job_descriptions`)."""

    panda_id: int
    status: str
    computing_site: str | None
    attempt_nr: int | None
    n_events: int | None
    start_time: datetime | None
    end_time: datetime | None
    duration_s: float | None
    core_count: int | None
    error_diag: str | None
    files: tuple[JobFile, ...]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def output_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files if f.type == "output")

    @property
    def log_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files if f.type == "log")

    @property
    def walltime_s(self) -> float:
        """Consumed walltime: the job's duration, or end - start when the server gave no duration."""
        if self.duration_s is not None:
            return self.duration_s
        if self.start_time and self.end_time:
            return (self.end_time - self.start_time).total_seconds()
        return 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobDescription:
        files = tuple(
            JobFile(
                lfn=str(f.get("lfn") or ""),
                type=str(f.get("type") or ""),
                size=_int(f.get("fsize")),
                dataset=_str(f.get("dataset")),
                status=_str(f.get("status")),
            )
            for f in data.get("Files") or ()
            if isinstance(f, dict)
        )
        diag = next(
            (
                str(data[k])
                for k in (
                    "pilotErrorDiag",
                    "exeErrorDiag",
                    "transExitDiag",
                    "ddmErrorDiag",
                    "taskBufferErrorDiag",
                )
                if data.get(k) not in (None, "", "NULL")
            ),
            None,
        )
        return cls(
            panda_id=_int(data.get("PandaID")) or 0,
            status=str(data.get("jobStatus") or ""),
            computing_site=_str(data.get("computingSite")),
            attempt_nr=_int(data.get("attemptNr")),
            n_events=_int(data.get("nEvents")),
            start_time=as_utc(data.get("startTime")),
            end_time=as_utc(data.get("endTime")),
            duration_s=_float(data.get("jobDuration")),
            core_count=_int(data.get("actualCoreCount") or data.get("coreCount")),
            error_diag=diag,
            files=files,
            raw=dict(data),
        )
