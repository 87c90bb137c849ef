"""The legacy /server/panda/<method> task API of panda-server 0.8.x (UserIF.py at tag 0.8.1).

Parameters are form fields (booleans as the strings "True"/"False"); replies are pickles of
protocol 0 (`WrappedPickle.dumps`), except `release_task` (JSON) and the bare string that
`changeTaskPriority` returns without the production role.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

from .jedi import CHANGEABLE_SPLIT_RULE_TAGS
from .taskbuffer import (
    MESSAGE_JSON,
    MESSAGE_PROD_ROLE,
    MESSAGE_SSL,
    MESSAGE_TASK_ID,
    SimRequest,
    get_dn,
    has_production_role,
    insert_task_params,
    is_secure,
    job_ids,
    jobs_by_panda_id,
    send_command,
    task_details,
    tasks_in_time_range,
)

CODE_SSL = 100
CODE_LOGIC = 101


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=0)


def resolve_true(value: Any) -> bool:
    return value == "True"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def isAlive(req: SimRequest, **_: Any) -> str:
    return "alive=yes"


def getVomsAttr(req: SimRequest, **_: Any) -> str:
    """The GRST_CRED_* variables, sorted, one "KEY : value" line each (taskbuffer/Utils.py)."""
    return "".join(sorted(f"{k} : {v}\n" for k, v in req.env.items() if k.startswith("GRST_CRED_")))


def getAttr(req: SimRequest, **kv: Any) -> str:
    text = "===== param =====\n" + "".join(f"{k} = {kv[k]}\n" for k in sorted(kv))
    return text + "\n====== env ======\n" + "".join(sorted(f"{k} : {v}\n" for k, v in req.env.items()))


def insertTaskParams(
    req: SimRequest, taskParams=None, properErrorCode=None, parent_tid=None, **_: Any
) -> bytes:
    proper = resolve_true(properErrorCode)
    if not is_secure(req):
        return dumps((False, MESSAGE_SSL))
    try:
        params = json.loads(taskParams)
    except Exception:
        return dumps((False, MESSAGE_JSON))
    code, message = insert_task_params(req, params, _int(parent_tid))
    if proper:
        return dumps((code, message))
    if code == 0:
        return dumps((True, int(message.rsplit("=", 1)[1])))
    return dumps((False, message))


def _checked_task_id(req: SimRequest, task_id: Any, proper: bool) -> int | bytes:
    """The task id of a task call, or its pickled refusal: UserIF checks SSL, then the id, answering
    with error codes under properErrorCode and with False otherwise."""
    if not is_secure(req):
        return dumps((CODE_SSL if proper else False, MESSAGE_SSL))
    tid = _int(task_id)
    return dumps((CODE_LOGIC if proper else False, MESSAGE_TASK_ID)) if tid is None else tid


def _command(req: SimRequest, task_id: Any, proper: bool, name: str, **kw: Any) -> bytes:
    tid = _checked_task_id(req, task_id, proper)
    if isinstance(tid, bytes):
        return tid
    if (
        name in ("kill", "finish", "retry")
        and not has_production_role(req)
        and not req.sim.owns_or_prod(tid, req)
    ) and req.sim.jedi.get(tid) is not None:
        return dumps((3 if proper else False, "permission denied"))
    code, message = send_command(req, tid, name, **kw)
    if not proper:
        return dumps((code == 0, message))
    return dumps((code, message))


def killTask(req: SimRequest, jediTaskID=None, properErrorCode=None, broadcast=None, **_: Any) -> bytes:
    return _command(req, jediTaskID, resolve_true(properErrorCode), "kill")


def finishTask(
    req: SimRequest, jediTaskID=None, properErrorCode=None, soft=None, broadcast=None, **_: Any
) -> bytes:
    return _command(
        req, jediTaskID, resolve_true(properErrorCode), "finish", qualifier="soft" if soft == "True" else None
    )


def retryTask(req: SimRequest, jediTaskID, properErrorCode=None, newParams=None, noChildRetry=None, discardEvents=None,
              disable_staging_mode=None, keep_gshare_priority=None, ignore_hard_exhausted=None, **_: Any) -> bytes:  # fmt: skip
    proper = resolve_true(properErrorCode)
    tid = _checked_task_id(req, jediTaskID, proper)
    if isinstance(tid, bytes):
        return tid
    if newParams is not None:
        try:
            new = json.loads(newParams)
            old = req.sim.jedi.get(tid, jedi_only=False)
            merged = dict(old["params"]) if old else {}
            merged.update(new)
            ret = insert_task_params(req, merged, None, allow_active=True)
        except Exception as exc:
            ret = 1, f"server error with {type(exc)}:{exc}"
    else:
        qualifiers = [q for q, v in (("sole", noChildRetry), ("discard", discardEvents), ("staged", disable_staging_mode),
                                     ("keep", keep_gshare_priority), ("transcend", ignore_hard_exhausted)) if resolve_true(v)]  # fmt: skip
        ret = send_command(req, tid, "retry", qualifier=" ".join(qualifiers) or None)
    if proper and ret[0] == 5:
        message = f"retry has been triggered for failed jobs while the task is still {ret[1]}"
        ret = (0, message) if newParams is None else (3, message)
    if not proper:
        ret = (ret[0] == 0, ret[1])
    return dumps(ret)


def reassignTask(
    req: SimRequest, jediTaskID, site=None, cloud=None, nucleus=None, soft=None, mode=None, **_: Any
) -> bytes:
    tid = _checked_task_id(req, jediTaskID, proper=True)
    if isinstance(tid, bytes):
        return tid
    if site is not None:
        comment = f"site:{site}:y"
    elif nucleus is not None:
        comment = f"nucleus:{nucleus}:n"
    else:
        comment = f"cloud:{cloud}:n"
    if mode == "nokill":
        comment += ":nokill reassign"
    elif mode == "soft" or soft == "True":
        comment += ":soft reassign"
    return dumps(send_command(req, tid, "reassign", comment=comment))


def _production_task_id(req: SimRequest, task_id: Any, denied: str = MESSAGE_PROD_ROLE) -> int | bytes:
    """The task id of a production-role call, or its pickled refusal: UserIF checks SSL, then the
    role, then the id, each answered (False, message)."""
    if not is_secure(req):
        return dumps((False, MESSAGE_SSL))
    if not has_production_role(req):
        return dumps((False, denied))
    tid = _int(task_id)
    return dumps((False, MESSAGE_TASK_ID)) if tid is None else tid


def _prod_command(req: SimRequest, task_id: Any, name: str, denied: str) -> bytes:
    tid = _production_task_id(req, task_id, denied)
    return tid if isinstance(tid, bytes) else dumps(send_command(req, tid, name))


def pauseTask(req: SimRequest, jediTaskID, **_: Any) -> bytes:
    return _prod_command(req, jediTaskID, "pause", MESSAGE_PROD_ROLE)


def resumeTask(req: SimRequest, jediTaskID, **_: Any) -> bytes:
    return _prod_command(req, jediTaskID, "resume", "production role required")


def avalancheTask(req: SimRequest, jediTaskID, **_: Any) -> bytes:
    return _prod_command(req, jediTaskID, "avalanche", "production role required")


def release_task(req: SimRequest, jedi_task_id, **_: Any) -> str:
    if not is_secure(req):
        return json.dumps((False, MESSAGE_SSL))
    if not has_production_role(req):
        return json.dumps((False, "production role required"))
    tid = _int(jedi_task_id)
    if tid is None:
        return json.dumps((False, MESSAGE_TASK_ID))
    return json.dumps(send_command(req, tid, "release"))


def reloadInput(
    req: SimRequest, jediTaskID, properErrorCode=None, ignore_hard_exhausted=None, **_: Any
) -> bytes:
    proper = resolve_true(properErrorCode)
    tid = _checked_task_id(req, jediTaskID, proper)
    if isinstance(tid, bytes):
        return tid
    qualifier = ["transcend"] if resolve_true(ignore_hard_exhausted) and has_production_role(req) else []
    return dumps(send_command(req, tid, "incexec", comment=json.dumps([{}, qualifier])))


def changeTaskPriority(req: SimRequest, jediTaskID=None, newPriority=None, **_: Any) -> bytes | str:
    if not is_secure(req):
        return dumps((False, MESSAGE_SSL))
    if not has_production_role(req):
        return "Failed : production or pilot role required"
    tid = _int(jediTaskID)
    if tid is None:
        return dumps((False, MESSAGE_TASK_ID))
    prio = _int(newPriority)
    if prio is None:
        return dumps((False, "newPriority must be an integer"))
    return dumps(req.sim.change_task_attribute(tid, "currentPriority", prio))


def increaseAttemptNrPanda(req: SimRequest, jediTaskID, increasedNr, **_: Any) -> bytes:
    if not is_secure(req):
        return dumps((False, MESSAGE_SSL))
    if not has_production_role(req):
        return dumps((3, MESSAGE_PROD_ROLE))
    tid = _int(jediTaskID)
    if tid is None:
        return dumps((4, MESSAGE_TASK_ID))
    nr = _int(increasedNr)
    if nr is None or nr < 0:
        return dumps((4, "increase must be a positive integer"))
    return dumps(req.sim.increase_attempts(tid, nr))


def changeTaskAttributePanda(req: SimRequest, jediTaskID, attrName, attrValue, **_: Any) -> bytes:
    tid = _production_task_id(req, jediTaskID)
    if isinstance(tid, bytes):
        return tid
    if attrName not in ["ramCount", "wallTime", "cpuTime", "coreCount"]:
        return dumps((2, f"disallowed to update {attrName}"))
    column = "walltime" if attrName == "wallTime" else attrName
    return dumps((req.sim.change_task_attribute(tid, column, _int(attrValue)), None))


def changeTaskSplitRulePanda(req: SimRequest, jediTaskID, attrName, attrValue, **_: Any) -> bytes:
    tid = _production_task_id(req, jediTaskID)
    if isinstance(tid, bytes):
        return tid
    if attrName not in CHANGEABLE_SPLIT_RULE_TAGS[:16]:
        return dumps((2, f"disallowed to update {attrName}"))
    return dumps((req.sim.change_split_rule(tid, attrName, attrValue), None))


def getTaskStatus(req: SimRequest, jediTaskID, **_: Any) -> bytes:
    tid = _int(jediTaskID)
    if tid is None:
        return dumps((False, MESSAGE_TASK_ID))
    req.sim.now()
    t = req.sim.jedi.get(tid)
    if t is None:
        raise IndexError("list index out of range")  # ret[0] on an empty result: HTTP 500 like 0.8.1
    return dumps(t["spec"]["status"])


def getTaskParamsMap(req: SimRequest, jediTaskID, **_: Any) -> bytes:
    tid = _int(jediTaskID)
    if tid is None:
        return dumps((False, MESSAGE_TASK_ID))
    req.sim.now()
    t = req.sim.jedi.get(tid, jedi_only=False)
    return dumps(json.dumps(t["params"]) if t else "")


def getJediTaskDetails(
    req: SimRequest, jediTaskID, fullFlag=None, withTaskInfo=None, **_: Any
) -> bytes | bool:
    if not is_secure(req):
        return False
    tid = _int(jediTaskID)
    return dumps(
        task_details(req.sim, tid, resolve_true(fullFlag), resolve_true(withTaskInfo)) if tid else {}
    )


def getJediTasksInTimeRange(
    req: SimRequest, timeRange, dn=None, fullFlag=None, minTaskID=None, task_type="user", **_: Any
):
    if not is_secure(req):
        return False
    if dn is None:
        dn = get_dn(req)
    return dumps(
        tasks_in_time_range(req.sim, dn, timeRange, resolve_true(fullFlag), _int(minTaskID), task_type)
    )


def getPandaIDsWithTaskID(req: SimRequest, jediTaskID, **_: Any) -> bytes:
    tid = _int(jediTaskID)
    if tid is None:
        return dumps((False, MESSAGE_TASK_ID))
    return dumps(job_ids(req.sim, tid))


def getJobStatus(req: SimRequest, ids=None, no_pickle=None, **_: Any) -> str:
    """Jobs by PandaID (UserIF.getJobStatus, no auth): `ids` a JSON list, at most 5500; with
    `Accept: application/json` the reply is a JSON list of JobSpec.to_dict() (None for unknown ids).
    The pickled JobSpec objects and the no_pickle slot lists of the other modes are not simulated."""
    if "application/json" not in req.env.get("HTTP_ACCEPT", ""):
        raise NotImplementedError("the simulator answers getJobStatus only to Accept: application/json")
    try:
        panda_ids = [int(i) for i in json.loads(ids)][:5500]
    except (TypeError, ValueError):
        panda_ids = []
    return json.dumps(jobs_by_panda_id(req.sim, panda_ids))


METHODS = {
    f.__name__: f
    for f in (
        isAlive,
        getVomsAttr,
        getAttr,
        insertTaskParams,
        killTask,
        finishTask,
        retryTask,
        reassignTask,
        pauseTask,
        resumeTask,
        avalancheTask,
        release_task,
        reloadInput,
        changeTaskPriority,
        increaseAttemptNrPanda,
        changeTaskAttributePanda,
        changeTaskSplitRulePanda,
        getTaskStatus,
        getTaskParamsMap,
        getJediTaskDetails,
        getJediTasksInTimeRange,
        getPandaIDsWithTaskID,
        getJobStatus,
    )
}
