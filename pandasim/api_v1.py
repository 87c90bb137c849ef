"""The /api/v1 task and system endpoints, with panda-server 1.0.x's signatures and validation.

Each handler has the real endpoint's parameter names, annotations and defaults, because the
`validated` decorator reproduces `api/v1/common.py::request_validation` from them (GET casting,
JSON type checks, `Argument error: ...`, `expecting POST, received GET`, ownership checks).
No `from __future__ import annotations` here: the decorator reads the annotations at runtime.
"""

import ast
import inspect
import json
import re
import types
from functools import wraps
from typing import Any, Union, get_args, get_origin

from .jedi import CHANGEABLE_SPLIT_RULE_TAGS, clean_user_id, make_reassign_comment
from .taskbuffer import (
    MESSAGE_PROD_ROLE,
    MESSAGE_SSL,
    MESSAGE_TASK_ID,
    MESSAGE_TASK_OWNER,
    SimRequest,
    detailed_info,
    get_dn,
    has_production_role,
    insert_task_params,
    is_secure,
    job_descriptions,
    job_ids,
    send_command,
    task_details,
    tasks_in_time_range,
)


def generate_response(success: bool, message: str = "", data: Any = None) -> dict[str, Any]:
    return {"success": success, "message": message, "data": data}


def _normalize(t: Any) -> Any:
    return {list: list, dict: dict, set: set, tuple: tuple}.get(t, t)


def validated(
    secure: bool = True, production: bool = False, method: str | None = None, task_owner: bool = False
):
    """The checks of request_validation, in the same order and with the same messages."""

    def decorator(func):
        sig = inspect.signature(func)

        @wraps(func)
        def wrapper(req: SimRequest, **kwargs):
            if secure and not is_secure(req):
                return generate_response(False, message=MESSAGE_SSL)
            if production and not has_production_role(req):
                return generate_response(False, message=MESSAGE_PROD_ROLE)
            if method and method != req.method:
                return generate_response(False, message=f"expecting {method}, received {req.method}")
            try:
                bound = sig.bind(req, **kwargs)
            except TypeError as exc:
                return generate_response(False, message=f"Argument error: {exc}")
            bound.apply_defaults()
            for name, value in list(bound.arguments.items()):
                if name == "req":
                    continue
                expected = sig.parameters[name].annotation
                if expected is inspect.Parameter.empty:
                    continue
                default = sig.parameters[name].default
                try:
                    if default == value:
                        continue
                except Exception:
                    pass
                origin, args = get_origin(expected), get_args(expected)
                if req.method == "GET":
                    try:
                        if value == "None" and default is None:
                            value = None
                        elif expected is str:
                            pass
                        elif expected is bool:
                            value = value.lower() in ("true", "1")
                        elif expected is int:
                            value = int(float(value))
                        elif origin is list and args:
                            if isinstance(value, str):
                                value = [value]
                            if args[0] is int:
                                value = [int(float(i)) for i in value]
                        else:
                            norm = _normalize(expected)
                            if not isinstance(value, norm):
                                value = ast.literal_eval(value)
                            if not isinstance(value, norm):
                                raise TypeError
                        bound.arguments[name] = value
                    except (ValueError, TypeError, SyntaxError, AttributeError):
                        type_name = getattr(expected, "__name__", str(expected))
                        return generate_response(
                            False,
                            message=f"Type error: '{name}' with value '{value}' could not be casted to type "
                            f"{type_name} from {type(value).__name__}.",
                        )
                if origin and origin is not Union and origin is not types.UnionType:
                    if not isinstance(value, origin):
                        return generate_response(
                            False,
                            message=f"Type error: '{name}' must be of type {origin.__name__}, got {type(value).__name__}.",
                        )
                    if args and origin is list and not all(isinstance(i, args[0]) for i in value):
                        return generate_response(
                            False, message=f"Type error: All elements in '{name}' must be {args[0].__name__}."
                        )
                elif (
                    origin is None
                    and not isinstance(value, _normalize(expected))
                    and not (value is None and value == default)
                ):
                    return generate_response(
                        False,
                        message=f"Type error: '{name}' must be of type {expected.__name__}, got {type(value).__name__}.",
                    )
            if task_owner:
                task_id = bound.arguments.get("task_id")
                if task_id and not req.sim.owns_or_prod(task_id, req):
                    return generate_response(False, message=MESSAGE_TASK_OWNER)
            return func(*bound.args, **bound.kwargs)

        wrapper.validated = True
        return wrapper

    return decorator


# ------------------------------------------------------------------ system
@validated(secure=False, method="GET")
def is_alive(req: SimRequest) -> dict:
    return generate_response(True)


@validated(secure=True, method="GET")
def get_user_attributes(req: SimRequest) -> dict:
    raw = req.env["SSL_CLIENT_S_DN"]
    dn = get_dn(req)
    clean = clean_user_id(raw)
    fqans = req.fqans()
    prod = has_production_role(req)
    wgs: list[str] = []
    text = (
        f"User DN (raw): {raw}\nUser DN (bare): {dn}\nUser DN (clean): {clean}\n"
        f"Email address: None\nFQANs: {fqans}\nProduction user: {prod}\n"
        f"Production working groups: {wgs}\nPrimary production working group: None\n"
    )
    data = {
        "user_dn_raw": raw,
        "user_dn_clean": clean,
        "fqans": fqans,
        "is_production_user": prod,
        "production_working_groups": wgs,
        "primary_working_group": None,
    }
    return generate_response(True, text, data)


@validated(secure=True, method="GET")
def get_attributes(req: SimRequest, **kwargs: dict) -> dict:
    params = {k: str(v) for k, v in sorted(kwargs.items())}
    env = {k: str(v) for k, v in sorted(req.env.items())}
    text = "===== param =====\n" + "\n".join(f"{k} = {v}" for k, v in params.items())
    text += "\n\n====== env ======\n" + "\n".join(f"{k} : {v}" for k, v in env.items()) + "\n"
    return generate_response(True, text, {"parameters": params, "environment": env})


# ------------------------------------------------------------------ task: submission and reads
@validated(secure=True, method="POST")
def submit(req: SimRequest, task_parameters: dict, parent_tid: int = None) -> dict:
    code, message = insert_task_params(req, task_parameters, parent_tid)
    if code not in (0, 3):
        return generate_response(False, message=message, data=code)
    match = re.search(r"jediTaskID=(\d+)", message)
    return generate_response(True, message=message, data=int(match.group(1)) if match else None)


@validated(secure=True, method="GET")
def get_status(req, task_id):
    try:
        task_id = int(task_id)
    except ValueError:
        return generate_response(False, message=MESSAGE_TASK_ID)
    t = req.sim.jedi.get(task_id)
    if t is None:
        return generate_response(False, message="Task not found")
    return generate_response(True, data=t["spec"]["status"])


@validated(secure=True, method="GET")
def get_details(
    req: SimRequest, task_id: int, include_parameters: bool = False, include_status: bool = False
):
    details = task_details(req.sim, task_id, include_parameters, include_status)
    if not details:
        return generate_response(False, message="Task not found or error retrieving the details")
    return generate_response(True, data=details)


@validated(method="GET")  # secure by the decorator's default, like the real endpoint
def get_task_parameters(req: SimRequest, task_id: int) -> dict:
    t = req.sim.jedi.get(task_id, jedi_only=False)
    if t is None:
        return generate_response(False, message="Task not found")
    return generate_response(True, data=json.loads(json.dumps(t["params"])))


@validated(secure=True, method="GET")
def get_detailed_info(req: SimRequest, task_id: int) -> dict:
    info = detailed_info(req.sim, task_id)
    if info is None:
        return generate_response(False, message="Task not found or error retrieving task info")
    return generate_response(True, data=info)


@validated(secure=True, method="GET")
def get_parent_detailed_info(req: SimRequest, task_id: int) -> dict:
    child = req.sim.jedi.get(task_id)
    if child is None:
        return generate_response(False, message="Child task not found")
    parent_id = child["spec"]["parent_tid"]
    if parent_id is None or parent_id == task_id:
        return generate_response(False, message="No parent task found")
    info = detailed_info(req.sim, parent_id)
    if info is None:
        return generate_response(False, message="Parent task not found")
    return generate_response(True, data=info)


@validated(secure=True, method="GET")
def get_tasks_modified_since(
    req,
    since: str,
    dn: str = None,
    full: bool = False,
    min_task_id: int = None,
    prod_source_label: str = "user",
) -> dict:
    if not dn:
        dn = get_dn(req)
    return generate_response(
        True, data=tasks_in_time_range(req.sim, dn, since, full, min_task_id, prod_source_label)
    )


@validated(secure=True, method="GET")
def get_tasks_detailed_info_since(req, since: str = None, filters: str = None, n_tasks: int = 500) -> dict:
    compact = clean_user_id(get_dn(req)) or get_dn(req)
    criteria: dict[str, Any] = {"userName": compact}
    regex_filters: dict[str, str] = {}
    if filters:
        try:
            parsed = json.loads(filters)
            if not isinstance(parsed, dict):
                return generate_response(False, message="filters must be a JSON object")
            for field, pattern in parsed.items():
                if isinstance(pattern, str) and any(c in pattern for c in r"^$*+?\|()"):
                    regex_filters[field] = pattern
                else:
                    criteria[field] = pattern
        except (json.JSONDecodeError, TypeError):
            return generate_response(False, message="filters is not valid JSON")
    task_ids = req.sim.task_ids_with_criteria(criteria, since, n_tasks)
    if task_ids is None:
        return generate_response(False, message="Failed to retrieve task IDs")
    result = []
    now = req.sim.now()
    for task_id in task_ids:
        info = detailed_info(req.sim, task_id, now)
        if info is None:
            continue
        skip = False
        for field, pattern in regex_filters.items():
            if field not in info:
                continue
            try:
                if re.search(pattern, str(info[field])) is None:
                    skip = True
                    break
            except re.error:
                skip = True
                break
        if not skip:
            result.append(info)
    return generate_response(True, data=result)


@validated(secure=True, method="GET")
def get_job_ids(req: SimRequest, task_id: int) -> dict:
    return generate_response(True, data=job_ids(req.sim, task_id))


@validated(secure=True, method="GET")
def get_job_descriptions(req: SimRequest, task_id: int, unsuccessful_only: bool = False) -> dict:
    return generate_response(True, data=job_descriptions(req.sim, task_id, unsuccessful_only))


@validated(secure=True, method="GET")
def get_datasets_and_files(
    req, task_id, dataset_types: list[str] = ("input", "pseudo_input"), dataset_only: bool = False
):
    data = req.sim.datasets_and_files(int(task_id), list(dataset_types), dataset_only)
    if not data:
        return generate_response(False, message="No data found for the task")
    return generate_response(True, data=data)


# ------------------------------------------------------------------ task: commands
def _command(req: SimRequest, task_id: Any, name: str, **kw: Any) -> dict:
    try:
        task_id = int(task_id)
    except ValueError:
        return generate_response(False, message=MESSAGE_TASK_ID)
    data, message = send_command(req, task_id, name, **kw)
    return generate_response(data == 0, message, data)


@validated(secure=True, method="POST", task_owner=True)
def kill(req: SimRequest, task_id: int, broadcast: bool = False) -> dict:
    return _command(req, task_id, "kill")


@validated(secure=True, method="POST", task_owner=True)
def finish(req: SimRequest, task_id: int, soft: bool = False, broadcast: bool = False) -> dict:
    return _command(req, task_id, "finish", qualifier="soft" if soft else None)


@validated(secure=True, method="POST", task_owner=True)
def retry(
    req: SimRequest,
    task_id: int,
    new_parameters: dict | str = None,
    no_child_retry: bool = False,
    discard_events: bool = False,
    disable_staging_mode: bool = False,
    keep_gshare_priority: bool = False,
    ignore_hard_exhausted: bool = False,
) -> dict:
    prod = has_production_role(req)
    if new_parameters:
        try:
            if isinstance(new_parameters, str):
                new_parameters = json.loads(new_parameters)
            old = req.sim.jedi.get(task_id, jedi_only=False)
            if old is None:
                raise ValueError("Expecting value: line 1 column 1 (char 0)")
            merged = dict(old["params"])
            merged.update(new_parameters)
            ret = insert_task_params(req, merged, None, allow_active=True)
        except Exception as exc:
            ret = 1, f"new parameter conversion failed with {exc}"
    else:
        if not prod and ignore_hard_exhausted:
            ignore_hard_exhausted = False
        qualifiers = [
            q
            for q, on in (
                ("sole", no_child_retry),
                ("discard", discard_events),
                ("staged", disable_staging_mode),
                ("keep", keep_gshare_priority),
                ("transcend", ignore_hard_exhausted),
            )
            if on
        ]
        ret = send_command(req, task_id, "retry", qualifier=" ".join(qualifiers) or None)
    if ret[0] == 5:
        message = f"retry has been triggered for failed jobs while the task is still {ret[1]}"
        ret = (0, message) if not new_parameters else (3, message)
    data, message = ret
    return generate_response(True, message, data)


@validated(secure=True, production=True, method="POST")
def resume(req: SimRequest, task_id: int) -> dict:
    return _command(req, task_id, "resume")


@validated(secure=True, production=True, method="POST")
def release(req: SimRequest, task_id: int) -> dict:
    return _command(req, task_id, "release")


@validated(secure=True, production=True, method="POST")
def pause(req: SimRequest, task_id: int) -> dict:
    return _command(req, task_id, "pause")


@validated(secure=True, production=True, method="POST")
def avalanche(req: SimRequest, task_id: int) -> dict:
    return _command(req, task_id, "avalanche")


@validated(secure=True, method="POST")
def reassign(
    req: SimRequest, task_id: int, site: str = None, cloud: str = None, nucleus: str = None, mode: str = None
):
    comment = make_reassign_comment(site, cloud, nucleus, mode)
    return _command(req, task_id, "reassign", comment=comment)


@validated(secure=True, method="POST")
def reload_input(req: SimRequest, task_id: int, ignore_hard_exhausted: bool = False) -> dict:
    qualifier = ["transcend"] if ignore_hard_exhausted and has_production_role(req) else []
    return _command(req, task_id, "incexec", comment=json.dumps([{}, qualifier]))


@validated(secure=True, production=True, method="POST")
def increase_attempts(req: SimRequest, task_id: int, increase: int) -> dict:
    try:
        task_id = int(task_id)
    except Exception:
        return generate_response(False, message=MESSAGE_TASK_ID)
    try:
        increase = int(increase)
        if increase < 0:
            raise ValueError
    except Exception:
        return generate_response(False, message=f"increase must be a positive integer, got {increase}")
    code, message = req.sim.increase_attempts(task_id, increase)
    return generate_response(code == 0, message, code)


@validated(secure=True, production=True, method="POST")
def change_priority(req: SimRequest, task_id: int, priority: int):
    n = req.sim.change_task_attribute(int(task_id), "currentPriority", int(priority))
    if n == 0:
        return generate_response(False, message="Task not found")
    return generate_response(True, message=f"{n} tasks changed")


@validated(secure=True, production=True, method="POST")
def change_attribute(req: SimRequest, task_id: int, attribute_name: str, value: int) -> dict:
    valid = ["ramCount", "wallTime", "cpuTime", "coreCount"]
    if attribute_name not in valid:
        return generate_response(
            False, message=f"{attribute_name} is not a valid attribute. Valid attributes are {valid}"
        )
    column = "walltime" if attribute_name == "wallTime" else attribute_name
    n = req.sim.change_task_attribute(int(task_id), column, value)
    if n == 0:
        return generate_response(False, message="Task not found")
    return generate_response(True, message=f"{n} tasks changed")


@validated(secure=True, production=True, method="POST")
def change_split_rule(req: SimRequest, task_id: int, attribute_name: str, value: str) -> dict:
    if attribute_name not in CHANGEABLE_SPLIT_RULE_TAGS:
        return generate_response(
            False,
            message=f"{attribute_name} is not a valid attribute. Valid attributes are {CHANGEABLE_SPLIT_RULE_TAGS}",
            data=2,
        )
    n = req.sim.change_split_rule(int(task_id), attribute_name, value)
    if n == 0:
        return generate_response(False, message="Task not found")
    return generate_response(True, message=f"{n} tasks changed")


@validated(secure=True, production=True, method="POST")
def change_modification_time(req: SimRequest, task_id: int, hour_offset: int) -> dict:
    n = req.sim.change_modification_time(int(task_id), hour_offset)
    if n == 0:
        return generate_response(False, message="Task not found")
    return generate_response(True, message=f"{n} tasks changed")


MODULES: dict[str, dict[str, Any]] = {
    "system": {f.__name__: f for f in (is_alive, get_user_attributes, get_attributes)},
    "task": {
        f.__name__: f
        for f in (
            submit,
            get_status,
            get_details,
            get_task_parameters,
            get_detailed_info,
            get_parent_detailed_info,
            get_tasks_modified_since,
            get_tasks_detailed_info_since,
            get_job_ids,
            get_job_descriptions,
            get_datasets_and_files,
            kill,
            finish,
            retry,
            resume,
            release,
            pause,
            avalanche,
            reassign,
            reload_input,
            increase_attempts,
            change_priority,
            change_attribute,
            change_split_rule,
            change_modification_time,
        )
    },
}
