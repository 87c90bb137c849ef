"""The chain document: one schema for export, import and the API (YAML or JSON, same content).

    schema: prodpanel.chain/1
    name: PROD2025-008 minbias 10 GeV
    processing_type: MC production
    wait_for_parent_done: false        # optional
    version_override_reason: ""        # optional, admins only
    comment: ""                        # optional
    steps:
      - {step: SIM, task_name: PROD2025-008.SIM, bunch_size: 3, output_dataset: …, total_events: 10000,
         events_per_job: 1000, cloud: JINR, data_disk: JINR_DATADISK, exec_path: …, container_path: …}
      - {step: RECO, task_name: PROD2025-008.RECO, …}   # parent, input and events are derived

A step has the task form's fields (``app.tasks.specs.TaskDefinition`` without the comment, which is
the chain's). ``from_document`` checks the shape and types field by field and says where each
problem is; the chain constraints (``app.chains.constraints``) then check the content.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import yaml

from app.chains.specs import LABELS, STEP_FIELDS, ChainDefinition, Problem
from app.inputs import parse_document
from app.tasks.specs import TaskDefinition

SCHEMA_ID = "prodpanel.chain/1"
FORMATS = ("yaml", "json")
MAX_DOCUMENT_BYTES = 1_000_000

CHAIN_FIELDS: dict[str, Any] = {
    "name": str,
    "processing_type": str,
    "wait_for_parent_done": bool,
    "version_override_reason": str,
    "comment": str,
}
CHAIN_REQUIRED = ("name", "processing_type")
STEP_TYPES: dict[str, Any] = {
    name: hint for name, hint in typing.get_type_hints(TaskDefinition).items() if name in STEP_FIELDS
}
STEP_REQUIRED = ("step", "task_name", "cloud", "data_disk", "exec_path", "container_path")
# Defaults of the step fields a document may leave out (the task form's defaults).
STEP_DEFAULTS: dict[str, Any] = {"bunch_size": 1, "output_dataset": "", "initial_offset": 0}


class SchemaError(Exception):
    """The document does not follow the schema; ``problems`` say where, field by field."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.text for p in problems))
        self.problems = problems


def to_document(chain: ChainDefinition) -> dict[str, Any]:
    """The chain as a document (empty optional step fields left out, so it reads like the form)."""
    steps = []
    for d in chain.steps:
        values = {name: getattr(d, name) for name in STEP_FIELDS}
        steps.append(
            {
                k: v
                for k, v in values.items()
                if k in STEP_REQUIRED or k in STEP_DEFAULTS or v not in (None, "", {}, False)
            }
        )
    return {
        "schema": SCHEMA_ID,
        "name": chain.name,
        "processing_type": chain.processing_type,
        "wait_for_parent_done": chain.wait_for_parent_done,
        "version_override_reason": chain.version_override_reason,
        "comment": chain.comment,
        "steps": steps,
    }


def dumps(document: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def loads(text: str, filename: str = "") -> Any:
    """Parse YAML or JSON (JSON is YAML too, but its errors read better from the JSON parser)."""
    try:
        if filename.lower().endswith(".json") or text.lstrip().startswith("{"):
            return parse_document(json.loads, text)
        return parse_document(yaml.safe_load, text)
    except (ValueError, yaml.YAMLError) as exc:
        where = f"{filename}: " if filename else ""
        raise SchemaError(
            [Problem(None, "document", f"{where}not valid YAML or JSON ({_first_line(exc)})")]
        ) from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__


def from_document(document: Any) -> ChainDefinition:
    """The chain a document describes; ``SchemaError`` lists every problem of shape and type."""
    problems: list[Problem] = []

    def chain_problem(name: str, message: str) -> None:
        problems.append(Problem(None, name, f"{LABELS.get(name, name)}: {message}"))

    if not isinstance(document, dict):
        raise SchemaError([Problem(None, "document", "document: must be a mapping with the chain's fields")])
    if document.get("schema") != SCHEMA_ID:
        chain_problem("schema", f"must be {SCHEMA_ID!r}, got {document.get('schema')!r}")
    for key in document:
        if key not in CHAIN_FIELDS and key not in ("schema", "steps"):
            chain_problem(str(key), "unknown field")
    values: dict[str, Any] = {}
    for name, kind in CHAIN_FIELDS.items():
        if name not in document:
            if name in CHAIN_REQUIRED:
                chain_problem(name, "missing")
            continue
        error = _type_error(kind, document[name])
        if error:
            chain_problem(name, error)
        else:
            values[name] = document[name]
    raw_steps = document.get("steps")
    steps: list[TaskDefinition] = []
    if not isinstance(raw_steps, list) or not raw_steps:
        chain_problem("steps", "must be a list of one or more steps")
    else:
        for i, raw in enumerate(raw_steps, start=1):
            step = _step(raw, i, problems)
            if step is not None:
                steps.append(step)
    if problems:
        raise SchemaError(problems)
    return ChainDefinition(**values, steps=tuple(steps))


def _step(raw: Any, position: int, problems: list[Problem]) -> TaskDefinition | None:
    step_type = raw.get("step") if isinstance(raw, dict) and isinstance(raw.get("step"), str) else "?"

    def step_problem(name: str, message: str) -> None:
        label = LABELS.get(name, name)
        problems.append(Problem(position, name, f"step {position} ({step_type}), {label}: {message}"))

    if not isinstance(raw, dict):
        step_problem("step", "must be a mapping of the step's fields")
        return None
    before = len(problems)
    for key in raw:
        if key not in STEP_TYPES:
            step_problem(str(key), "unknown field")
    values = dict(STEP_DEFAULTS)
    for name, kind in STEP_TYPES.items():
        if name not in raw:
            if name in STEP_REQUIRED:
                step_problem(name, "missing")
            continue
        error = _type_error(kind, raw[name])
        if error:
            step_problem(name, error)
        else:
            values[name] = raw[name]
    if len(problems) > before:
        return None
    return TaskDefinition(**values)


_TYPE_WORDS = {str: "a text", int: "a whole number", bool: "true or false", dict: "a mapping"}


def _type_error(kind: Any, value: Any) -> str | None:
    """Why `value` is not of the field's type `kind` (None when it is)."""
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    for option in options:
        base = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return None
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return None
        if base in (str, bool, dict) and isinstance(value, base):
            return None
    words = [_TYPE_WORDS.get(typing.get_origin(o) or o, "empty (null)") for o in options]
    return f"must be {' or '.join(words)}, got {json.dumps(value, default=str)}"
