"""A scripted PanDA for unit tests of the dispatcher: outcomes per submit, a task registry by name."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.extensions import panda_clients
from app.panda.client import PandaApi
from app.panda.errors import (
    PandaNotFound,
    PandaOutcomeUnknown,
    PandaRejected,
    PandaUnavailable,
    PandaUnsupported,
)
from app.panda.results import (
    ChangeResult,
    CommandResult,
    JobDescription,
    SubmitResult,
    TaskInfo,
    TaskSummary,
    UserAttributes,
)
from app.tokens.errors import TokenUnavailable

if TYPE_CHECKING:
    from flask import Flask

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
        self.hidden: set[str] = set()  # task names not visible in listings (yet)
        self.listings: list[str] = []  # the comment of every listing asked for
        # Task actions: every command sent, as (method, task id, arguments); `refuse` maps a PanDA
        # task id to the error its next command raises.
        self.commands: list[tuple[str, int, dict[str, Any]]] = []
        self.refuse: dict[int, Exception] = {}

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
        comment: str = "",
    ) -> list[TaskInfo]:
        """The tasks (named `filters["taskName"]` when given), the first `n_tasks` by id as PanDA cuts
        its listing; `hidden` names are not visible (not yet registered by JEDI)."""
        self.listings.append(comment)
        if not self.visible:
            return []
        name = (filters or {}).get("taskName")
        return [
            _info(tid, t["params"]["taskName"])
            for tid, t in sorted(self.tasks.items())
            if t["params"]["taskName"] not in self.hidden and name in (None, t["params"]["taskName"])
        ][:n_tasks]

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
        self.listings.append("legacy")
        for tid, t in sorted(self.tasks.items()):
            if self.visible and t["params"]["taskName"] not in self.hidden:
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


    def _command(self, method: str, task_id: int, **args: Any) -> CommandResult:
        self.commands.append((method, task_id, args))
        error = self.refuse.pop(task_id, None)
        if error is not None:
            raise error
        return CommandResult(0, f"command={method} is registered for task ID {task_id}. will be executed in a few minutes")

    def _change(self, method: str, task_id: int, **args: Any) -> ChangeResult:
        self._command(method, task_id, **args)
        return ChangeResult(1, "1 tasks changed")

    def kill(self, user: User, task_id: int, *, broadcast: bool = False, comment: str = "") -> CommandResult:
        return self._command("kill", task_id, comment=comment)

    def finish(
        self, user: User, task_id: int, *, soft: bool = False, broadcast: bool = False, comment: str = ""
    ) -> CommandResult:
        return self._command("finish", task_id, soft=soft, comment=comment)

    def retry(
        self, user: User, task_id: int, *, new_parameters: dict[str, Any] | None = None, comment: str = ""
    ) -> CommandResult:
        return self._command("retry", task_id, new_parameters=new_parameters, comment=comment)

    def pause(self, user: User, task_id: int, *, comment: str = "") -> CommandResult:
        return self._command("pause", task_id, comment=comment)

    def resume(self, user: User, task_id: int, *, comment: str = "") -> CommandResult:
        return self._command("resume", task_id, comment=comment)

    def release(self, user: User, task_id: int, *, comment: str = "") -> CommandResult:
        return self._command("release", task_id, comment=comment)

    def avalanche(self, user: User, task_id: int, *, comment: str = "") -> CommandResult:
        return self._command("avalanche", task_id, comment=comment)

    def reassign(
        self, user: User, task_id: int, *, site: str | None = None, cloud: str | None = None, comment: str = ""
    ) -> CommandResult:
        return self._command("reassign", task_id, site=site, cloud=cloud, comment=comment)

    def increase_attempts(self, user: User, task_id: int, increase: int, *, comment: str = "") -> CommandResult:
        return self._command("increase_attempts", task_id, increase=increase, comment=comment)

    def change_priority(self, user: User, task_id: int, priority: int, *, comment: str = "") -> ChangeResult:
        return self._change("change_priority", task_id, priority=priority, comment=comment)

    def change_attribute(
        self, user: User, task_id: int, attribute_name: str, value: int, *, comment: str = ""
    ) -> ChangeResult:
        return self._change("change_attribute", task_id, attribute_name=attribute_name, value=value, comment=comment)

    def change_split_rule(
        self, user: User, task_id: int, attribute_name: str, value: str, *, comment: str = ""
    ) -> ChangeResult:
        return self._change("change_split_rule", task_id, attribute_name=attribute_name, value=value, comment=comment)


class LegacyFakePanda(FakePanda):
    """A server before panda-server 1.0: no get_tasks_detailed_info_since."""

    def get_tasks_detailed_info_since(
        self,
        user: User,
        since: datetime | None = None,
        *,
        filters: dict[str, Any] | None = None,
        n_tasks: int = 500,
        comment: str = "",
    ) -> list[TaskInfo]:
        raise PandaUnsupported("The legacy PanDA API has no equivalent of get_tasks_detailed_info_since.")


def install(app: Flask, fake: FakePanda) -> FakePanda:
    """Make `fake` the app's PanDA client for every caller. One fake serves all of them and pops its
    scripted outcomes in order, so the app sends its submits one at a time."""
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = dataclasses.replace(
        settings, panda=dataclasses.replace(settings.panda, max_parallel_submits=1)
    )
    panda_clients.init_app(app, lambda **_: fake)
    return fake


def _info(task_id: int, name: str) -> TaskInfo:
    return TaskInfo.from_dict({"jediTaskID": task_id, "taskName": name, "status": "registered"})


# Checked by mypy: the fakes implement the protocol the panel uses.
_checked: list[PandaApi] = [FakePanda(), LegacyFakePanda()]
