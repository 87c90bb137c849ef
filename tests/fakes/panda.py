"""A scripted PanDA for unit tests of the dispatcher: outcomes per submit, a task registry by name."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.panda.client import PandaApi
from app.panda.errors import (
    PandaNotFound,
    PandaOutcomeUnknown,
    PandaRejected,
    PandaUnavailable,
    PandaUnsupported,
)
from app.panda.results import JobDescription, SubmitResult, TaskInfo, TaskSummary, UserAttributes
from app.tokens.errors import TokenUnavailable

if TYPE_CHECKING:
    from app.auth.models import User


class FakePanda:
    """Stands in for PandaClient: ``script`` holds the outcomes of the next submits
    (ok | unknown | reject | unavailable | lost | notoken | crash); ``visible`` says whether
    submitted tasks show up in listings."""

    server = "fake://panda"

    def __init__(self) -> None:
        self.ids = itertools.count(1000)
        self.tasks: dict[int, dict[str, Any]] = {}
        self.script: list[str] = []
        self.submits: list[str] = []
        self.visible = True

    def close(self) -> None:
        pass

    def get_user_attributes(self, user: User) -> UserAttributes:
        return UserAttributes(
            dn=f"/CN={user.username}", dn_clean=user.username, fqans=(), is_production_user=True
        )

    def check_production_role(self, user: User) -> UserAttributes:
        return self.get_user_attributes(user)

    def submit(self, user: User, task_params: dict[str, Any], parent_tid: int | None = None) -> SubmitResult:
        outcome = self.script.pop(0) if self.script else "ok"
        self.submits.append(task_params["taskName"])
        if outcome == "reject":
            raise PandaRejected(
                "PanDA refused the task: too many active tasks.", code=10, server_message="too many"
            )
        if outcome == "unavailable":
            raise PandaUnavailable("PanDA is unavailable")
        if outcome == "lost":  # sent, never arrived
            raise PandaOutcomeUnknown("no reply")
        if outcome == "notoken":
            raise TokenUnavailable("log in with SPD-IAM again", relogin=True)
        task_id = next(self.ids)
        self.tasks[task_id] = {"params": task_params, "parent_tid": parent_tid}
        if outcome == "crash":  # a bug after the request left: it did arrive
            raise RuntimeError("bad reply handling")
        if outcome == "unknown":
            raise PandaOutcomeUnknown("timeout after sending")
        return SubmitResult(task_id=task_id, code=0, message=f"succeeded. new jediTaskID={task_id}")

    def get_detailed_info(self, user: User, task_id: int) -> TaskInfo:
        task = self.tasks.get(task_id)
        if task is None:
            raise PandaNotFound("task not found")
        return _info(task_id, task["params"]["taskName"])

    def get_tasks_detailed_info_since(
        self,
        user: User,
        since: datetime | None = None,
        *,
        filters: dict[str, Any] | None = None,
        n_tasks: int = 500,
    ) -> list[TaskInfo]:
        if not self.visible:
            return []
        name = (filters or {}).get("taskName")
        return [
            _info(tid, t["params"]["taskName"])
            for tid, t in self.tasks.items()
            if t["params"]["taskName"] == name
        ]

    def get_tasks_modified_since(
        self,
        user: User,
        since: datetime,
        *,
        dn: str | None = None,
        full: bool = False,
        min_task_id: int | None = None,
        prod_source_label: str = "managed",
    ) -> list[TaskSummary]:
        """Legacy listing: one entry per reqID (the newest task), like the server's dict keyed by reqID."""
        by_req: dict[Any, TaskSummary] = {}
        for tid, t in sorted(self.tasks.items()):
            if self.visible:
                req_id = t["params"].get("reqID", tid)
                by_req[req_id] = TaskSummary.from_dict(
                    {"jediTaskID": tid, "taskName": t["params"]["taskName"], "reqID": req_id}
                )
        return list(by_req.values())

    def get_job_descriptions(
        self, user: User, task_id: int, *, unsuccessful_only: bool = False
    ) -> list[JobDescription]:
        if task_id not in self.tasks:
            raise PandaNotFound("task not found")
        return []


class LegacyFakePanda(FakePanda):
    """A server before panda-server 1.0: no get_tasks_detailed_info_since."""

    def get_tasks_detailed_info_since(
        self,
        user: User,
        since: datetime | None = None,
        *,
        filters: dict[str, Any] | None = None,
        n_tasks: int = 500,
    ) -> list[TaskInfo]:
        raise PandaUnsupported("The legacy PanDA API has no equivalent of get_tasks_detailed_info_since.")


def _info(task_id: int, name: str) -> TaskInfo:
    return TaskInfo.from_dict({"jediTaskID": task_id, "taskName": name, "status": "registered"})


# Checked by mypy: the fakes implement the protocol the panel uses.
_checked: list[PandaApi] = [FakePanda(), LegacyFakePanda()]
