"""The OpenAPI 3.1 document of /api/v1/, written beside the routes it describes (a test keeps the
two in sync, and schemathesis checks every response against it)."""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

from app.actions.matrix import Action
from app.api.models import SCOPES
from app.chains.forms import SWEEP_PARAMETERS
from app.chains.schema import CHAIN_FIELDS, STEP_TYPES
from app.launches.listing import STATES as LAUNCH_STATES
from app.launches.states import LaunchStatus
from app.monitoring.filters import QUERY_PARAMETERS, QueryParameter
from app.monitoring.records import TYPES as RECORD_TYPES
from app.monitoring.tables import CURRENT, SUCCESSFUL_TABLE, TOTALS_FIELDS, Table
from app.tasks.specs import DEFINITION_FIELDS, TaskDefinition
from app.version import VERSION

PROBLEM = "application/problem+json"
STR, INT, BOOL, OBJ = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "object"}
TIME = {"type": ["string", "null"], "format": "date-time"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema["type"]
    return {**schema, "type": [kind, "null"] if isinstance(kind, str) else [*kind, "null"]}


def obj(properties: dict[str, Any], required: tuple[str, ...] | None = None, **extra: Any) -> dict[str, Any]:
    """An object schema; every property is required unless `required` says otherwise."""
    return {"type": "object", "properties": properties,
            "required": list(properties if required is None else required), **extra}  # fmt: skip


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _filter_schema(parameter: QueryParameter) -> dict[str, Any]:
    """The schema of one of the task filter's query-string keys (a repeated key: an array)."""
    kinds: dict[str, dict[str, Any]] = {
        "string": STR, "boolean": BOOL, "integer": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "date-time": {"type": "string", "description": "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], UTC",
                      "examples": ["2026-03-01", "2026-03-01T12:00"]},
    }  # fmt: skip
    one = kinds[parameter.type]
    if parameter.choices:
        one = {"enum": list(parameter.choices)}
    return array(one) if parameter.repeated else one


def _json_type(hint: Any) -> dict[str, Any]:
    """The JSON schema of a definition field's Python type."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    base = args[0] if args else hint
    schema = {str: STR, int: INT, bool: BOOL}.get(base, OBJ)
    return nullable(schema) if optional else schema


_DEFINITION_TYPES = typing.get_type_hints(TaskDefinition)
TASK_DEFINITION = obj(
    {name: _json_type(_DEFINITION_TYPES[name]) for name in DEFINITION_FIELDS},
    required=("step", "task_name", "cloud", "data_disk", "exec_path", "container_path"),
    additionalProperties=False,
)
TASK_CREATE = {
    **TASK_DEFINITION,
    "properties": {**TASK_DEFINITION["properties"], "idempotency_key": STR,
                   "cloned_from_task": INT, "cloned_from_bunch": INT},
}  # fmt: skip
CHAIN_DOCUMENT = obj(
    {"schema": {"const": "prodpanel.chain/1"}, **{k: _json_type(v) for k, v in CHAIN_FIELDS.items()},
     "steps": array(obj({k: _json_type(v) for k, v in STEP_TYPES.items()}, required=()))},
    required=("schema", "name", "processing_type", "steps"),
)  # fmt: skip

LAUNCH = obj({
    "state": {"enum": list(LAUNCH_STATES)}, "condition": STR, "id": INT, "task_id": INT, "attempt": INT, "status": {"enum": list(LaunchStatus)}, "due_at": TIME,
    "created_at": TIME, "claimed_at": TIME, "finished_at": TIME, "panda_task_id": nullable(INT), "error": STR,
    "after_parent_done": BOOL, "created_by": nullable(STR), "after_task_id": nullable(INT),
    "at_percent": nullable(INT), "token_problem": STR,
})  # fmt: skip
_RECORD_TYPES = {"integer": INT, "string": STR, "time": TIME}
TASK = obj({  # the task tables' record (app/monitoring/records.py), also their JSON export's
    name: _RECORD_TYPES[kind] if isinstance(kind, str) else {"type": list(kind)} for name, kind in RECORD_TYPES.items()
})
TASK_DETAIL = {"allOf": [ref("Task"), obj({"definition": OBJ, "params": OBJ, "launches": array(ref("Launch"))})]}
BUNCH = obj({
    "id": INT, "base_name": STR, "step": STR, "size": INT, "comment": STR, "created_at": TIME,
    "created_by": nullable(STR), "definition": OBJ, "task_ids": array(INT),
})  # fmt: skip
PROGRESS = obj({name: INT for name in ("total", "submitted", "pending", "sending", "failed", "unknown",
                                       "needs_decision")} | {"done": BOOL})  # fmt: skip
SUCCESSFUL_TOTALS = obj({"tasks": INT, "events_per_job": {"type": ["number", "null"]},
                         **{name: nullable(INT) for name in TOTALS_FIELDS.values()}})  # fmt: skip
CHAIN = obj({
    "id": INT, "name": STR, "processing_type": STR, "wait_for_parent_done": BOOL, "comment": STR,
    "created_at": TIME, "created_by": nullable(STR), "cloned_from_id": nullable(INT),
    "steps": array(obj({"position": INT, "step": STR, "bunch_id": INT, "task_ids": array(INT)})),
})  # fmt: skip
CHAIN_TASK = {"allOf": [ref("Task"), obj({"state": STR, "reason": STR})]}
CHAIN_DETAIL = {"allOf": [ref("Chain"), obj({"definition": ref("ChainDocument"), "steps": array(obj({
    "position": INT, "step": STR, "bunch_id": INT, "kind": STR, "states": OBJ, "tasks": array(CHAIN_TASK),
}))})]}  # fmt: skip
COMMAND = obj({
    "id": INT, "task_id": INT, "action": STR, "params": OBJ, "comment": STR,
    "outcome": {"enum": ["pending", "sending", "accepted", "rejected", "not_allowed", "failed", "unknown"]},
    "panda_code": nullable(INT), "message": STR, "requested_at": TIME, "username": STR,
})  # fmt: skip
BULK = obj({
    "id": INT, "action": STR, "params": OBJ, "comment": STR, "selection": STR, "created_at": TIME,
    "finished_at": TIME, "counts": {"type": "object", "additionalProperties": INT}, "done": BOOL,
    "items": array(obj({"task_id": INT, "outcome": STR, "reason": STR})),
})  # fmt: skip
ACTION_BODY = {"type": "object", "properties": {
    "comment": STR, "soft": BOOL, "memory_mb": INT, "walltime_s": INT, "priority": INT, "increase": INT,
    "site": STR, "cloud": STR,
}, "description": "the action's parameters and its comment (needed by kill, finish and avalanche)"}  # fmt: skip
MODIFY_BODY = {"type": "object", "properties": {
    "priority": INT, "memory_mb": INT, "walltime_s": INT, "split_rule": STR, "split_value": STR, "add_attempts": INT,
    "comment": STR, "preview": BOOL,
}}  # fmt: skip
MODIFICATION = obj({"changes": array(obj({"field": STR, "label": STR, "current": {}, "new": {}})),
                    "commands": array(ref("Command"))})  # fmt: skip
BULK_BODY = {"type": "object", "required": ["action"], "properties": {
    "action": {"enum": [a.value for a in Action if a is not Action.MODIFY]},
    "task_ids": array(INT), "filter": obj({p.name: _filter_schema(p) for p in QUERY_PARAMETERS}, required=()),
    "bunch_id": INT, "chain_id": INT, "request_id": INT,
    "params": ACTION_BODY, "comment": STR,
}}  # fmt: skip
PLANNED = obj({"name": STR, "output_dataset": STR, "parent": nullable(STR), "params": OBJ, "diff": STR,
               "diff_against": nullable(STR)})  # fmt: skip
TASK_PREVIEW = obj({"definition": OBJ, "warnings": array(STR), "tasks": array(PLANNED)})
CHAIN_PREVIEW = obj({"definition": ref("ChainDocument"), "warnings": array(STR), "task_count": INT,
    "steps": array(obj({"position": INT, "step": STR, "kind": STR, "events_per_task": nullable(INT),
        "tasks": array(obj({"name": STR, "output_dataset": STR, "parent": nullable(STR),
                            "input_dataset": nullable(STR), "params": OBJ}, required=("name", "params")))}))})  # fmt: skip
TOKEN = obj({"id": INT, "name": STR, "scope": {"enum": list(SCOPES)}, "created_at": TIME, "expires_at": TIME,
             "last_used_at": TIME})  # fmt: skip
ME = obj(
    {
        "username": STR,
        "role": {"enum": ["viewer", "manager", "admin"]},
        "token": {"oneOf": [ref("Token"), {"type": "null"}]},
    }
)
AUDIT = obj({"id": INT, "at": TIME, "username": STR, "action": STR, "target": STR, "outcome": STR,
             "request_id": STR, "details": OBJ})  # fmt: skip
REQUEST = {"type": "object", "properties": {"id": INT, "title": STR, "status": STR, "events_requested": INT},
           "required": ["id", "title", "status"]}  # fmt: skip
REQUEST_DETAIL = obj({
    "id": INT, "request": {"oneOf": [ref("Request"), {"type": "null"}]}, "service_error": nullable(STR),
    "chain_ids": array(INT), "task_ids": array(INT), "task_count": INT, "next_after": nullable(INT),
    "progress": {"type": ["object", "null"]},
})  # fmt: skip
FIELD_ERROR = obj({"field": STR, "message": STR, "step": INT}, required=("field", "message"))
CHANGED = obj({"changed": INT})
LOOKED_UP = obj({"result": STR})
NOTIFY = obj({"email": BOOL, "webhook": BOOL})
NOTICE = obj({"message": STR, "category": {"enum": ["info", "success", "warning", "danger"]}})
TOTALS = obj({**{k: INT for k in ("tasks", "jobs_done", "jobs_failed", "events", "output_bytes", "walltime_s")},
              "output_tb": {"type": "number"}, "walltime_h": {"type": "number"}})  # fmt: skip
STAT_ROWS = array(obj({"label": STR, "totals": TOTALS, "filter": {"type": ["object", "null"]}}))
STATISTICS = obj({"since": {"type": ["string", "null"]}, "total": TOTALS, "since_total": {"oneOf": [TOTALS, {"type": "null"}]},
                  "weeks": STAT_ROWS, "months": STAT_ROWS, "splits": {"type": "object", "additionalProperties": STAT_ROWS}})  # fmt: skip
ERROR_SUMMARY = obj({"groups": array(obj({
    "source": STR, "code": INT, "message": STR, "example": STR, "jobs": INT, "tasks": INT, "memory": BOOL,
    "affected": array(obj({"id": INT, "name": STR, "jobs": INT, "retry_memory_mb": nullable(INT)})),
}))})  # fmt: skip
SWEEP_BODY = {"type": "object", "required": ["parameter", "values"], "properties": {
    "parameter": {"enum": list(SWEEP_PARAMETERS)}, "values": array(STR),
    "preview": BOOL, "idempotency_key": STR,
}}  # fmt: skip
SWEEP = {"type": "object", "properties": {
    "variants": array(obj({"value": STR, "problems": array(STR), "definition": {"oneOf": [ref("ChainDocument"), {"type": "null"}]}})),
    "chains": array(ref("Chain")),
}}  # fmt: skip
PROBLEM_SCHEMA = obj({"type": STR, "title": STR, "status": INT, "detail": STR, "instance": STR,
                      "errors": array(ref("FieldError"))}, required=("type", "title", "status", "detail"))  # fmt: skip

SCHEMAS = {
    "Problem": PROBLEM_SCHEMA, "FieldError": FIELD_ERROR, "Task": TASK, "TaskDetail": TASK_DETAIL,
    "TaskDefinition": TASK_DEFINITION, "TaskCreate": TASK_CREATE, "TaskPreview": TASK_PREVIEW, "Launch": LAUNCH,
    "Bunch": BUNCH, "BunchDetail": {"allOf": [ref("Bunch"), obj({"progress": PROGRESS, "tasks": array(ref("Task")), "next_after": nullable(INT)})]},
    "Created": {"allOf": [ref("Bunch"), obj({"warnings": array(STR)})]},
    "Chain": CHAIN, "ChainDetail": CHAIN_DETAIL, "ChainDocument": CHAIN_DOCUMENT, "ChainPreview": CHAIN_PREVIEW,
    "ChainCreated": {"allOf": [ref("Chain"), obj({"warnings": array(STR)})]},
    "Command": COMMAND, "Bulk": BULK, "ActionBody": ACTION_BODY, "BulkBody": BULK_BODY, "Token": TOKEN, "Me": ME,
    "AuditEvent": AUDIT, "Statistics": STATISTICS, "ErrorSummary": ERROR_SUMMARY, "Sweep": SWEEP, "SweepBody": SWEEP_BODY, "ModifyBody": MODIFY_BODY, "Modification": MODIFICATION, "Request": REQUEST, "RequestDetail": REQUEST_DETAIL,
}  # fmt: skip


def paged(item: str) -> dict[str, Any]:
    return obj({"items": array(ref(item)), "page": INT, "per_page": INT, "next_page": nullable(INT)})


def seek_paged(item: str) -> dict[str, Any]:
    """A page of a list that also pages by keyset (``after``): null ``page`` and ``next_page`` then."""
    return obj({"items": array(ref(item)), "page": nullable(INT), "per_page": INT, "next_page": nullable(INT),
                "next_after": nullable(INT)})  # fmt: skip


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": ref("Problem")}}}


def path_id(name: str) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
    return {"name": name, "in": "path", "required": True, "schema": schema, "example": 1}


def query(name: str, description: str = "", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema or STR,
        "description": description,
    }


PAGING = [query("page", "page number, from 1", {"type": "integer", "minimum": 1, "maximum": 100_000}),
          query("per_page", "items per page", {"type": "integer", "minimum": 1})]  # fmt: skip
SEEK_PAGING = [*PAGING, query("after", "instead of page: the items after this one (the previous page's next_after), "
                              "as fast at any depth", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1})]  # fmt: skip
SCHEDULE = [
    query(
        "at", "launch at this time (ISO 8601; without an offset: the user's time zone)", {"type": "string"}
    ),
    query("after_task", "launch when this task (name or PanDA id) is done"),
    query(
        "at_percent", "… or has this % of its jobs done", {"type": "integer", "minimum": 1, "maximum": 100}
    ),
]


def task_filters(table: Table | None) -> list[dict[str, Any]]:
    """A task table's query parameters: every key of its filter (made from `TaskFilter`'s declaration,
    app/monitoring/filters.py), its sort keys and order, paging (None: the filter's keys only)."""
    keys = [query(p.name, p.description, _filter_schema(p)) for p in QUERY_PARAMETERS]
    if table is None:
        return keys
    return [
        *keys,
        query("sort", f"the column to sort by (default {table.default_sort})", {"enum": list(table.keys)}),
        query("order", "asc or desc (default)", {"enum": ["asc", "desc"]}),
        *PAGING,
    ]


def op(summary: str, role: str, ok: tuple[int, dict[str, Any] | None, str], *, tag: str, params: list | None = None,
       body: dict[str, Any] | None = None, refusals: tuple[int, ...] = (), write: bool = False, created: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """One operation: its success answer (status, JSON schema or None for text, what it is) and the
    problems it may answer with."""
    status, schema, description = ok
    responses: dict[str, Any] = {
        str(status): {"description": description, **(_json(schema) if schema else {})}
    }
    if schema is None:
        responses[str(status)]["content"] = {"application/json": {}, "application/yaml": {}}
    if created is not None:  # an operation that previews (200) or creates (201)
        responses["201"] = {"description": "created", **_json(created)}
    responses["401"] = _problem("no valid token or session")
    responses["403"] = _problem(f"needs the {role} role" + (" and a write token" if write else ""))
    for code in refusals:
        responses[str(code)] = _problem({400: "the request was not understood (a session without its CSRF token)",
                                         404: "no such object", 409: "refused in the current state",
                                         422: "invalid input, field by field",
                                         424: "the requests service could not answer"}[code])  # fmt: skip
    out: dict[str, Any] = {"summary": summary, "tags": [tag], "description": f"Role: {role}.",
                           "parameters": params or [], "responses": responses}  # fmt: skip
    if body is not None:
        out["requestBody"] = {"required": True, "content": body}
    return out


_CHAIN_BODY = {"application/json": {"schema": ref("ChainDocument")},
               "application/yaml": {"schema": {"type": "string"}}}  # fmt: skip


def _paths() -> dict[str, Any]:
    task, chain, bunch = path_id("task_id"), path_id("chain_id"), path_id("bunch_id")
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "example": "kill",
        "schema": {"enum": [a.value for a in Action if a is not Action.MODIFY]},
    }
    return {
        "/me": {"get": op("Who is calling (user, role, token)", "viewer", (200, ref("Me"), "the caller"), tag="meta")},
        "/tasks": {
            "get": op("List tasks (the task list's filters)", "viewer", (200, paged("Task"), "a page of tasks"),
                      tag="tasks", params=task_filters(CURRENT), refusals=(422,)),
            "post": op("Create and launch a task or bunch (now or scheduled)", "manager",
                       (201, ref("Created"), "the bunch created"), tag="tasks", params=SCHEDULE, body=_json(ref("TaskCreate"))["content"], refusals=(400, 404, 409, 422), write=True),
        },
        "/tasks/successful": {"get": op(
            "List successful (done, finished) tasks with the totals of every match", "viewer",
            (200, {"allOf": [paged("Task"), obj({"totals": SUCCESSFUL_TOTALS})]}, "a page of tasks and the totals"),
            tag="tasks", params=task_filters(SUCCESSFUL_TABLE), refusals=(422,))},
        "/tasks/counts": {"get": op(
            "Counts per PanDA status of what the task list's other filters match (capped)", "viewer",
            (200, obj({"counts": array(obj({"status": STR, "count": INT})), "cap": INT}), "the counts"),
            tag="tasks", params=task_filters(None), refusals=(422,))},
        "/tasks/{task_id}/relaunch": {"get": op(
            "A new task's definition from the task's submission manifest", "manager", (200, OBJ, "the definition"),
            tag="tasks", params=[task], refusals=(404, 409))},
        "/bunches/{bunch_id}/edit": {"post": op(
            "Edit a bunch none of whose launches went out yet (preview: the differences only)", "manager",
            (200, obj({"changed": array(STR), "tasks": array(obj({"name": STR, "diff": STR, "diff_against": nullable(STR)}))}),
             "the fields changed, or each task's difference"), tag="tasks", params=[bunch],
            body=_json({**TASK_DEFINITION, "properties": {**TASK_DEFINITION["properties"], "preview": BOOL}})["content"],
            refusals=(400, 404, 409, 422), write=True)},
        "/tasks/preview": {"post": op("Preview a definition: each task's PanDA parameters", "manager",
                                      (200, ref("TaskPreview"), "the planned tasks"), tag="tasks",
                                      body=_json(ref("TaskDefinition"))["content"], refusals=(400, 422), write=True)},
        "/tasks/{task_id}": {"get": op("A task with its definition, parameters and launches", "viewer",
                                       (200, ref("TaskDetail"), "the task"), tag="tasks", params=[task], refusals=(404,))},
        "/tasks/{task_id}/clone": {"get": op("A task's definition to clone (next free production)", "manager",
                                             (200, OBJ, "the definition"), tag="tasks", params=[task], refusals=(404,))},
        "/tasks/{task_id}/actions/{name}": {"post": op(
            "Take an action on a task (the status × action × role matrix decides)", "viewer (the matrix names the role)",
            (200, ref("Command"), "the command and PanDA's answer"), tag="actions", params=[task, name],
            body=_json(ref("ActionBody"))["content"], refusals=(400, 404, 409, 422), write=True)},
        "/tasks/{task_id}/modify": {"post": op(
            "Modify a submitted task: priority, memory, walltime, split rule, attempts", "viewer (the matrix names the role)",
            (200, ref("Modification"), "the difference (preview) or the commands sent"), tag="actions", params=[task],
            body=_json(ref("ModifyBody"))["content"], refusals=(400, 404, 409, 422), write=True)},
        "/bunches/{bunch_id}": {"get": op("A bunch with its launch progress and tasks", "viewer",
                                          (200, ref("BunchDetail"), "the bunch"), tag="tasks", refusals=(404, 422),
                                          params=[bunch, query("after", "every task when absent; else the next 50 after this bunch index (0: the first; the previous page's next_after)", {"type": "integer", "minimum": 0})])},
        "/bunches/{bunch_id}/clone": {"get": op("A bunch's definition to clone", "manager", (200, OBJ, "the definition"),
                                                tag="tasks", params=[bunch], refusals=(404,))},
        "/bunches/{bunch_id}/resend": {"post": op(
            "Resend the bunch's failed launches", "manager", (200, CHANGED, "how many were resent"), tag="launches",
            params=[bunch], refusals=(400, 404), write=True)},
        "/bunches/{bunch_id}/look-up": {"post": op(
            "Look the bunch's unanswered submits up in PanDA now", "manager", (200, LOOKED_UP, "what was found"),
            tag="launches", params=[bunch], refusals=(400, 404), write=True)},
        "/tasks/{task_id}/look-up": {"post": op(
            "Look the task's unanswered submit up in PanDA now", "manager", (200, LOOKED_UP, "what was found"),
            tag="launches", params=[task], refusals=(400, 404), write=True)},
        "/tasks/{task_id}/not-submitted": {"post": op(
            "The unanswered submit did not reach PanDA (checked by hand): send the task again", "manager",
            (200, ref("Launch"), "the new attempt"), tag="launches", params=[task], refusals=(400, 404, 409), write=True)},
        "/tasks/{task_id}/adopt": {"post": op(
            "The unanswered submit reached PanDA as this task id (checked by hand; PanDA confirms the name)", "manager",
            (200, ref("Launch"), "the launch, submitted"), tag="launches", params=[task],
            body=_json(obj({"panda_task_id": {"type": "integer", "minimum": 1}}))["content"],
            refusals=(400, 404, 409, 422), write=True)},
        "/tasks/{task_id}/refresh": {"post": op(
            "Read the task from PanDA now and store it", "manager", (200, NOTICE, "what PanDA said"), tag="tasks",
            params=[task], refusals=(400, 404), write=True)},
        "/actions/bulk": {"post": op("Start a bulk action on a selection of tasks", "viewer (the matrix names the role)",
                                     (202, ref("Bulk"), "the bulk action, sent by the background job"), tag="actions",
                                     body=_json(ref("BulkBody"))["content"], refusals=(400, 409, 422), write=True)},
        "/actions/bulk/{bulk_id}": {"get": op("A bulk action's progress and per-task results", "viewer",
                                              (200, ref("Bulk"), "the bulk action"), tag="actions",
                                              params=[path_id("bulk_id")], refusals=(404,))},
        "/actions/bulk/{bulk_id}/retry": {"post": op(
            "Retry a bulk action's commands PanDA could not be reached for (a new bulk action)", "viewer (the matrix names the role)",
            (202, ref("Bulk"), "the new bulk action"), tag="actions", params=[path_id("bulk_id")],
            refusals=(400, 404, 409, 422), write=True)},
        "/chains": {
            "get": op("List chains", "viewer", (200, paged("Chain"), "a page of chains"), tag="chains", params=PAGING,
                      refusals=(422,)),
            "post": op("Create and launch a chain from its document (YAML or JSON; now or scheduled)", "manager",
                       (201, ref("ChainCreated"), "the chain created"), tag="chains", body=_CHAIN_BODY, params=SCHEDULE,
                       refusals=(400, 409, 422), write=True),
        },
        "/chains/preview": {"post": op("Preview a chain document: every task of every step", "manager",
                                       (200, ref("ChainPreview"), "the planned chain"), tag="chains", body=_CHAIN_BODY,
                                       refusals=(400, 422), write=True)},
        "/chains/{chain_id}": {"get": op("A chain with its steps' tasks and states", "viewer",
                                         (200, ref("ChainDetail"), "the chain"), tag="chains", refusals=(404, 422),
                                         params=[chain, query("tasks", "all (default): every task of each step; first: the first 50 of each, the rest from GET /bunches/{bunch_id}?after=50", {"type": "string", "enum": ["all", "first"]})])},
        "/chains/{chain_id}/definition": {"get": op(
            "Export a chain's document", "viewer", (200, None, "the document (JSON or YAML)"), tag="chains",
            params=[chain, query("format", "json (default) or yaml", {"enum": ["json", "yaml"]})], refusals=(404, 422))},
        "/chains/{chain_id}/clone": {"get": op("A chain's document to clone (next free production)", "manager",
                                               (200, ref("ChainDocument"), "the document"), tag="chains", params=[chain],
                                               refusals=(404,))},
        "/chains/{chain_id}/sweep": {"post": op(
            "Sweep: one chain per value of energy, physics tag, exec path or container (preview first)", "manager",
            (200, ref("Sweep"), "the variants (preview)"), tag="chains", params=[chain],
            body=_json(ref("SweepBody"))["content"], refusals=(400, 404, 422), write=True, created=ref("Sweep"))},
        "/chains/{chain_id}/steps/{position}/resend": {"post": op(
            "Resend a step's failed launches (later steps resume after them)", "manager",
            (200, CHANGED, "how many were resent"), tag="chains", params=[chain, path_id("position")],
            refusals=(400, 404), write=True)},
        "/chains/{chain_id}/refresh": {"post": op(
            "Read the chain's unfinished tasks from PanDA now", "manager", (200, NOTICE, "what PanDA said"),
            tag="chains", params=[chain], refusals=(400, 404), write=True)},
        "/chains/{chain_id}/actions/{name}": {"post": op(
            "Take an action on every task of a chain (a bulk action)", "viewer (the matrix names the role)",
            (202, ref("Bulk"), "the bulk action"), tag="chains", params=[chain, name],
            body=_json(ref("ActionBody"))["content"], refusals=(400, 404, 409, 422), write=True)},
        "/launches": {"get": op("List launches, newest first (upcoming ones: soonest first)", "viewer", (200, seek_paged("Launch"), "a page of launches"),
                                tag="launches", refusals=(422,), params=[
                                    query("state", "as on the Launches page", {"enum": list(LAUNCH_STATES)}),
                                    query("owner", "username of who launched it"),
                                    query("status", "launch status", {"enum": list(LaunchStatus)}),
                                    query("task_id", "", {"type": "integer", "minimum": 1}),
                                    query("bunch_id", "", {"type": "integer", "minimum": 1}), *SEEK_PAGING])},
        "/launches/{launch_id}/cancel": {"post": op(
            "Cancel a pending launch (its owner or an admin)", "manager", (200, CHANGED, "how many were cancelled"),
            tag="launches", params=[path_id("launch_id")], body=_json(obj({"whole_bunch": BOOL}, required=()))["content"],
            refusals=(400, 404, 409, 422), write=True)},
        "/launches/{launch_id}/reschedule": {"post": op(
            "Reschedule a pending launch: at a time, after a task, at N % (none: now)", "manager",
            (200, CHANGED, "how many were rescheduled"), tag="launches", params=[path_id("launch_id")],
            body=_json(obj({"at": STR, "after_task": STR, "at_percent": INT, "whole_bunch": BOOL}, required=()))["content"],
            refusals=(400, 404, 409, 422), write=True)},
        "/requests": {"get": op("List production requests (spd-requests, cached)", "viewer",
                                (200, {"allOf": [paged("Request"), obj({"service_error": nullable(STR)})]},
                                 "a page of requests"), tag="requests", refusals=(422,),
                                params=[query("status"), query("group", "physics group"), *PAGING])},
        "/requests/refresh": {"post": op(
            "Read the requests service again now", "viewer", (200, obj({"count": INT, "service_error": nullable(STR)}),
            "how many requests it lists"), tag="requests", refusals=(400,))},
        "/requests/{request_id}/task-definition": {"get": op(
            "A task definition prefilled from the request, to complete and create", "manager",
            (200, OBJ, "the definition (the task form's fields)"), tag="requests", params=[path_id("request_id")],
            refusals=(404, 424))},
        "/requests/{request_id}/chain-definition": {"get": op(
            "A chain document prefilled from the request, to complete and create", "manager",
            (200, ref("ChainDocument"), "the document"), tag="requests", params=[path_id("request_id")],
            refusals=(404, 424))},
        "/requests/{request_id}": {"get": op("A request with its chains, tasks and progress", "viewer",
                                             (200, ref("RequestDetail"), "the request"), tag="requests",
                                             params=[path_id("request_id"), query("after", "the task ids after this one (the previous page's next_after)", {"type": "integer", "minimum": 0})],
                                             refusals=(404, 422))},
        "/statistics": {"get": op(
            "Statistics: totals, per week and month, splits by step, status, request, creator", "viewer",
            (200, ref("Statistics"), "the statistics"), tag="statistics", refusals=(422,),
            params=[query("since", "YYYY-MM-DD: the evolution and splits from this day", {"type": "string", "format": "date"})])},
        "/statistics/errors": {"get": op(
            "Failed jobs grouped by normalised error (overall, or of a task, bunch or chain)", "viewer",
            (200, ref("ErrorSummary"), "the groups, most jobs first"), tag="statistics", refusals=(422,),
            params=[query(k, f"a {k} id", {"type": "integer", "minimum": 1}) for k in ("task", "bunch", "chain")])},
        "/statistics/notifications": {
            "get": op("My alerts' channels", "viewer", (200, NOTIFY, "the choices"), tag="statistics"),
            "post": op("Choose my alerts' channels (a choice left out stays)", "viewer", (200, NOTIFY, "the choices"),
                       tag="statistics", body=_json(obj({"email": BOOL, "webhook": BOOL}, required=()))["content"],
                       refusals=(400, 422), write=True),
        },
        "/audit": {"get": op("The audit trail, newest first", "admin", (200, seek_paged("AuditEvent"), "a page of events"),
                             tag="audit", refusals=(422,), params=[
                                 query("action", "starts with"), query("user", "username"), query("outcome"),
                                 query("target", "contains"), query("since", "YYYY-MM-DD", {"type": "string", "format": "date"}),
                                 query("until", "YYYY-MM-DD", {"type": "string", "format": "date"}), *SEEK_PAGING])},
    }  # fmt: skip


PUBLIC_PATHS = {"/openapi.json", "/docs"}  # served without a token; not operations of the API


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once per process)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "SPD production panel API", "version": VERSION, "description": (
            "The panel's services for scripts and the `prodpanel` CLI. Authenticate with a personal API token "
            "(token page; `Authorization: Bearer <token>`; a read token may only GET) or, from the browser, the "
            "session cookie with the `X-CSRFToken` header. Errors are RFC 9457 problem documents; lists are "
            "paged with `page` and `per_page` (`next_page` is null on the last page).")},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a personal API token (ppt_…)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "prodpanel_session"},
            },
        },
    }  # fmt: skip
