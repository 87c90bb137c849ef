"""Build JEDI task parameters (taskParamMap) from a typed task spec.

The shape follows reference/panda.md §3: the keys JEDI's refiner indexes unconditionally, the
jobParameters item format (``constant`` items and ``template`` items with ``param_type`` input, output,
log or number) and JEDI's placeholders. Everything SPD may want to adapt (the job-parameter line,
dataset and file name patterns, prodSourceLabel, taskType, processingType, VO, working group …) lives
in a TOML template (``app/panda/templates/taskparams.toml``, overridable per instance), not in code.

``parent_tid`` is not a task parameter: processing steps are submitted with it as a separate argument.
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.tasks.specs import TaskSpec

DEFAULT_TEMPLATE_PATH = Path(__file__).with_name("templates") / "taskparams.toml"
STEP_KINDS = ("generation", "processing")

# Placeholders of the panel are {name}; JEDI's are ${NAME} and must survive substitution.
_PANEL_PLACEHOLDER = re.compile(r"(?<!\$)\{(\w+)\}")
_NUMBER_MARKERS = ("${RNDMSEED}", "${FIRSTEVENT}")


class TemplateError(ValueError):
    """The task-parameter template is malformed or does not know a step type."""


@dataclass(frozen=True)
class TaskTemplate:
    """A parsed template: ``common`` keys, ``layout`` patterns and one table per step type."""

    common: dict[str, Any]
    layout: dict[str, Any]
    steps: dict[str, dict[str, Any]]

    def step(self, step: str) -> dict[str, Any]:
        try:
            return self.steps[step]
        except KeyError:
            raise TemplateError(f"the task template has no [steps.{step}] table") from None

    def kind(self, step: str) -> str:
        return str(self.step(step)["kind"])


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_template(override_file: str | Path | None = None) -> TaskTemplate:
    """The packaged SPD template, with an instance's override file merged over it (table by table)."""
    with DEFAULT_TEMPLATE_PATH.open("rb") as fh:
        data = tomllib.load(fh)
    if override_file:
        try:
            with Path(override_file).open("rb") as fh:
                data = _merge(data, tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise TemplateError(f"task template file {override_file}: {exc}") from exc
    return template_from_dict(data)


def template_from_dict(data: dict[str, Any]) -> TaskTemplate:
    unknown = set(data) - {"common", "layout", "steps"}
    if unknown:
        raise TemplateError(f"unknown tables in the task template: {', '.join(sorted(unknown))}")
    steps = data.get("steps") or {}
    if not steps:
        raise TemplateError("the task template defines no [steps.*] table")
    for name, table in steps.items():
        if table.get("kind") not in STEP_KINDS:
            raise TemplateError(f"[steps.{name}] kind must be one of {', '.join(STEP_KINDS)}")
        if not table.get("job_parameters"):
            raise TemplateError(f"[steps.{name}] needs a job_parameters line")
    return TaskTemplate(dict(data.get("common") or {}), dict(data.get("layout") or {}), dict(steps))


def _fill(text: str, values: dict[str, Any]) -> str:
    def repl(match: re.Match[str]) -> str:
        key = match[1]
        if key not in values or values[key] is None:
            raise TemplateError(f"placeholder {{{key}}} has no value for this task")
        return str(values[key])

    return _PANEL_PLACEHOLDER.sub(repl, text)


def job_parameter_items(
    line: str, values: dict[str, Any], *, output_dataset: str, input_dataset: str | None, destination: str
) -> list[dict[str, Any]]:
    """Split a job-parameter line into JEDI items (reference §3.3).

    Tokens with ``${RNDMSEED}``/``${FIRSTEVENT}`` become ``number`` items carrying the task's offset,
    the token with ``{output_file}`` the output item, a token with ``${IN`` the input item; each takes
    the option token just before it (``--seed ${RNDMSEED}``). Other tokens are joined into constants.
    """
    tokens = line.split()
    items: list[dict[str, Any]] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            items.append({"type": "constant", "value": _fill(" ".join(pending), values)})
            pending.clear()

    for token in tokens:
        special = None
        if any(marker in token for marker in _NUMBER_MARKERS):
            special = "number"
        elif "{output_file}" in token:
            special = "output"
        elif "${IN" in token:
            special = "input"
        if special is None:
            pending.append(token)
            continue
        option = ""
        if pending and pending[-1].startswith("-") and "=" not in pending[-1]:
            option = pending.pop() + " "
        flush()
        value = _fill(option + token, values)
        if special == "number":
            items.append(
                {"type": "template", "param_type": "number", "value": value, "offset": values["offset"]}
            )
        elif special == "output":
            items.append(
                {
                    "type": "template",
                    "param_type": "output",
                    "dataset": output_dataset,
                    "value": value,
                    "destination": destination,
                }
            )
        else:
            if not input_dataset:
                raise TemplateError("this step reads an input dataset but the task has none (no parent task)")
            items.append(
                {"type": "template", "param_type": "input", "dataset": input_dataset, "value": value}
            )
    flush()
    return items


def build_task_params(spec: TaskSpec, template: TaskTemplate) -> dict[str, Any]:
    """The exact taskParamMap to submit for ``spec`` (a new dict each call)."""
    step = template.step(spec.step)
    kind = template.kind(spec.step)
    layout = template.layout
    values: dict[str, Any] = {
        "task_name": spec.task_name,
        "output_dataset": spec.output_dataset,
        "input_dataset": spec.input_dataset,
        "exec_path": spec.exec_path.rstrip("/"),
        "container_path": spec.container_path,
        "events_per_job": spec.events_per_job,
        "total_events": spec.total_events,
        "files_per_job": spec.files_per_job,
        "data_disk": spec.data_disk,
        "cloud": spec.cloud,
        "offset": spec.offset,
    }
    values["log_dataset"] = _fill(layout.get("log_dataset", "{output_dataset}.log"), values)
    values["output_file"] = _fill(layout.get("output_file", "{output_dataset}.${SN/P}.root"), values)

    params: dict[str, Any] = {
        key: copy.deepcopy(value) for key, value in template.common.items() if not isinstance(value, dict)
    }
    params["taskName"] = spec.task_name
    params["processingType"] = step.get("processingType", params.get("processingType", ""))
    if not params.get("userName"):
        params["userName"] = spec.user_name
    if spec.working_group:
        params["workingGroup"] = spec.working_group
    if spec.priority is not None:
        params["taskPriority"] = spec.priority
    params["transPath"] = _fill(layout.get("trans_path", "{exec_path}"), values)
    params["container_name"] = spec.container_path
    params["cloud"] = spec.cloud
    if spec.site:
        params["site"] = spec.site
    if spec.memory_mb is not None:
        params["ramCount"] = spec.memory_mb
    else:
        params.pop("ramUnit", None)
    if spec.walltime_s is not None:
        params["walltime"] = spec.walltime_s
        if layout.get("walltime_unit"):
            params["walltimeUnit"] = layout["walltime_unit"]
    if spec.max_attempts is not None:
        params["maxAttempt"] = spec.max_attempts
    if spec.skip_scout:
        # JEDI tests for the key's presence, not its value: send it only when scouts are skipped.
        params["skipScout"] = True
    if spec.request_id is not None:
        params["reqID"] = spec.request_id

    if kind == "generation":
        if not spec.total_events or not spec.events_per_job:
            raise TemplateError("a generation step needs total events and events per job")
        params["noInput"] = True
        params["nEvents"] = spec.total_events
        params["nEventsPerJob"] = spec.events_per_job
    else:
        params["nFilesPerJob"] = spec.files_per_job or 1

    params["log"] = {
        "type": "template",
        "param_type": "log",
        "dataset": values["log_dataset"],
        "value": _fill(layout.get("log_file", "{log_dataset}.${SN}.tgz"), values),
        "destination": spec.data_disk,
    }
    params["jobParameters"] = job_parameter_items(
        step["job_parameters"],
        values,
        output_dataset=spec.output_dataset,
        input_dataset=spec.input_dataset if kind == "processing" else None,
        destination=spec.data_disk,
    )
    # Admin-only per-task overrides win over everything (they are shown in the preview and manifest).
    for key, value in spec.template_overrides.items():
        params[key] = copy.deepcopy(value)
    return params
