"""`prodpanel tasks|chain|launches|export|import|api`: the API from the command line, against the local
panel (this instance folder, ``--user``) or a remote one (``--url`` and ``--token``, or
PRODPANEL_URL and PRODPANEL_TOKEN). Exit codes: 0 done, 1 failed, 2 usage, 3 not allowed (401/403),
4 not found, 5 refused or invalid (409/422), 6 the panel (or a service it needs, 424) could not be
reached or failed (5xx)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

import click
from flask.cli import ScriptInfo

from app.api.remote import LocalPanel, Panel, PanelError, RemotePanel

EXIT_CODES = {401: 3, 403: 3, 404: 4, 409: 5, 422: 5, 424: 6, 0: 6}
ACTION_OPTIONS = ("soft", "memory_mb", "walltime_s", "priority", "increase", "site", "cloud")


def _exit_code(status: int) -> int:
    return EXIT_CODES.get(status, 6 if status >= 500 else 1)


@contextmanager
def _panel(url: str | None, token: str | None, user: str | None) -> Iterator[Panel]:
    if url:
        if not token:
            raise click.UsageError(
                "--url needs --token (or PRODPANEL_TOKEN): a personal API token from the token page"
            )
        if not url.startswith(("http://", "https://")):
            raise click.UsageError(f"--url: the panel's address, http:// or https://, not {url[:60]!r}")
        panel: Panel = RemotePanel(url, token)
    else:
        if not user:
            raise click.UsageError(
                "name the account to act as with --user (or PRODPANEL_USER), or use --url/--token"
            )
        panel = LocalPanel(click.get_current_context().ensure_object(ScriptInfo).load_app(), user)
    try:
        yield panel
    finally:
        panel.close()


def panel_command(func: Callable[..., None]) -> Callable[..., None]:
    """The connection options, the panel as the first argument, problems as messages and exit codes."""

    @click.option("--url", envvar="PRODPANEL_URL", help="A remote panel, e.g. https://prodpanel.jinr.ru")
    @click.option("--token", envvar="PRODPANEL_TOKEN", help="Its personal API token (PRODPANEL_TOKEN).")
    @click.option(
        "--user", envvar="PRODPANEL_USER", help="Without --url: the local panel's account to act as."
    )
    @wraps(func)
    def wrapped(url: str | None, token: str | None, user: str | None, **kwargs: Any) -> None:
        try:
            with _panel(url, token, user) as panel:
                func(panel, **kwargs)
        except PanelError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(_exit_code(exc.status))

    return wrapped


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    shown = [[("" if row.get(key) is None else str(row.get(key))) for key, _ in columns] for row in rows]
    widths = [max([len(title), *(len(r[i]) for r in shown)]) for i, (_, title) in enumerate(columns)]
    click.echo("  ".join(title.ljust(w) for (_, title), w in zip(columns, widths, strict=True)).rstrip())
    for r in shown:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


TASK_COLUMNS = [("id", "ID"), ("name", "NAME"), ("panda_task_id", "PANDA"), ("panda_status", "STATUS"),
                ("launch_status", "LAUNCH"), ("jobs_done", "DONE"), ("jobs_total", "JOBS"), ("creator", "CREATOR")]  # fmt: skip
LAUNCH_COLUMNS = [("id", "ID"), ("task_id", "TASK"), ("attempt", "TRY"), ("status", "STATUS"), ("due_at", "DUE (UTC)"),
                  ("condition", "WAITS"), ("panda_task_id", "PANDA"), ("created_by", "BY"), ("error", "ERROR")]  # fmt: skip


def _listing(
    panel: Panel, path: str, params: dict[str, Any], columns: list[tuple[str, str]], as_json: bool
) -> dict[str, Any]:
    query = {k: _query_value(v) for k, v in params.items() if v not in (None, "", (), False)}
    page = panel.call("GET", path, params=query)
    if as_json:
        _print_json(page)
        return page
    _table(page["items"], columns)
    if page.get("next_after"):  # a list paged by keyset: as fast however deep
        click.echo(f"(more: --after {page['next_after']})", err=True)
    elif page.get("next_page"):
        click.echo(f"(more: --page {page['next_page']})", err=True)
    return page


# --- tasks ------------------------------------------------------------------------------------------


@click.group("tasks")
def tasks_group() -> None:
    """List and show tasks, take actions on them."""


class TaskFilterCommand(click.Command):
    """`tasks list`: besides its own options, one per key of the task tables' filter, made from the
    filter's declaration (app/monitoring/filters.py) when the command is used: it loads the database
    layer, which `prodpanel --help` does not."""

    filters_added = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self.filters_added:
            self.filters_added = True
            self.params[:0] = filter_options()
        return super().get_params(ctx)


def filter_options() -> list[click.Option]:
    from app.monitoring.filters import QUERY_PARAMETERS  # here: see TaskFilterCommand

    options = []
    for p in QUERY_PARAMETERS:
        flag = "--" + p.name.replace("_", "-")
        kind: Any = click.Choice(p.choices) if p.choices else int if p.type == "integer" else str
        if p.type == "boolean":
            options.append(click.Option([flag, p.name], is_flag=True, default=None, help=p.description + "."))
        else:
            names = ["--name", flag, p.name] if p.name == "q" else [flag, p.name]
            options.append(click.Option(names, type=kind, multiple=p.repeated, help=p.description + "."))
    return options


def _query_value(value: Any) -> Any:
    """An option's value as the API's query string takes it (several: the key repeated)."""
    return list(value) if isinstance(value, tuple) else "1" if value is True else value


@tasks_group.command("list", cls=TaskFilterCommand)
@click.option("--successful", is_flag=True, help="The successful (done, finished) tasks, with their totals.")
@click.option("--sort", help="The column to sort by (name, panda_id, status, created, ended_at …).")
@click.option("--order", type=click.Choice(["asc", "desc"]))
@click.option("--page", type=int)
@click.option("--per-page", type=int)
@click.option("--json", "as_json", is_flag=True, help="The API's JSON page.")
@panel_command
def tasks_list(panel: Panel, as_json: bool, successful: bool, per_page: int | None, **filters: Any) -> None:
    """The task list (or the successful tasks) with the task tables' filters; repeat an option
    (--status running --status scouting) for several values, negate one with --not NAME."""
    path = "/tasks/successful" if successful else "/tasks"
    page = _listing(panel, path, {**filters, "per_page": per_page}, TASK_COLUMNS, as_json)
    if successful and not as_json:
        totals = page["totals"]
        click.echo(f"total: tasks {totals.pop('tasks')}, " + ", ".join(f"{k} {v}" for k, v in totals.items() if v is not None))


@tasks_group.command("show")
@click.argument("task_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@panel_command
def tasks_show(panel: Panel, task_id: int, as_json: bool) -> None:
    """One task: its record, definition and launches."""
    task = panel.call("GET", f"/tasks/{task_id}")
    if as_json:
        _print_json(task)
        return
    for key in ("id", "name", "step", "bunch_id", "output_dataset", "panda_task_id", "panda_status", "jobs_done",
                "jobs_total", "events_processed", "creator", "created_at", "submitted_at", "ended_at"):  # fmt: skip
        click.echo(f"{key:16} {'' if task.get(key) is None else task[key]}")
    _table(task["launches"], LAUNCH_COLUMNS)


@tasks_group.command("action")
@click.argument("action", type=click.Choice(["kill", "finish", "retry", "priority", "pause", "resume", "reassign",
                                             "increase_attempts", "release", "avalanche"]))  # fmt: skip
@click.argument("task_ids", type=int, nargs=-1, required=True)
@click.option(
    "--comment", default="", help="Why (kill, finish and avalanche need one; kept in the PanDA log)."
)
@click.option("--soft", is_flag=True, default=None, help="finish: let running jobs end.")
@click.option("--memory-mb", type=int, help="retry: new memory per core.")
@click.option("--walltime-s", type=int, help="retry: new walltime per job.")
@click.option("--priority", type=int, help="priority: the new priority.")
@click.option("--increase", type=int, help="increase_attempts: how many more.")
@click.option("--site")
@click.option("--cloud")
@panel_command
def tasks_action(panel: Panel, action: str, task_ids: tuple[int, ...], comment: str, **options: Any) -> None:
    """Take ACTION on each task (the status × action × role matrix decides, as in the UI)."""
    body = {"comment": comment, **{k: v for k, v in options.items() if v is not None}}
    failed = 0
    with click.progressbar(task_ids, label=f"{action}", file=sys.stderr, show_pos=True) as bar:
        results = []
        for task_id in bar:
            try:
                command = panel.call("POST", f"/tasks/{task_id}/actions/{action}", json=body)
                results.append(f"task {task_id}: {command['outcome']}: {command['message']}")
                failed += command["outcome"] not in ("accepted",)
            except PanelError as exc:
                results.append(f"task {task_id}: refused: {exc}")
                failed += 1
    click.echo("\n".join(results))
    if failed:
        raise SystemExit(5 if failed == len(task_ids) else 1)


# --- chains, import, export ---------------------------------------------------------------------------


def _document(path: Path) -> tuple[str, str]:
    """The file's text and its content type (YAML unless it ends in .json)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.FileError(str(path), str(exc)) from None
    return text, "application/json" if path.suffix.lower() == ".json" else "application/yaml"


def _when(at: str | None, after_task: str | None, at_percent: int | None) -> dict[str, Any]:
    return {
        k: v for k, v in (("at", at), ("after_task", after_task), ("at_percent", at_percent)) if v is not None
    }


def schedule_options(func: Callable[..., None]) -> Callable[..., None]:
    for option in reversed([
        click.option("--at", help="Launch at this time (ISO 8601, e.g. 2026-12-01T08:00; without an offset: your zone)."),
        click.option("--after-task", help="Launch when this task (name or PanDA id) is done …"),
        click.option("--at-percent", type=int, help="… or has this % of its jobs done."),
    ]):  # fmt: skip
        func = option(func)
    return func


@click.group("chain")
def chain_group() -> None:
    """Submit SIM→RECO chains from their YAML or JSON definition."""


def _wait_for_step_one(panel: Panel, chain: dict[str, Any], timeout_s: float) -> None:
    """A progress bar until the first step's tasks are in PanDA (or their launch failed)."""
    first = chain["steps"][0]
    total = len(first["task_ids"])
    deadline = time.monotonic() + timeout_s
    with click.progressbar(length=total, label="in PanDA", file=sys.stderr, show_pos=True) as bar:
        settled = 0
        while settled < total and time.monotonic() < deadline:
            detail = panel.call("GET", f"/chains/{chain['id']}")
            tasks = detail["steps"][0]["tasks"]
            now = sum(
                1
                for t in tasks
                if t["panda_task_id"] is not None or t["launch_status"] in ("failed", "cancelled")
            )
            bar.update(now - settled)
            settled = now
            if settled < total:
                time.sleep(1.0)  # polling the panel, not waiting for a state blindly
    if settled < total:
        raise PanelError(0, {"detail": f"{total - settled} task(s) of step 1 not in PanDA after {timeout_s:.0f} s; "
                                       "is `prodpanel serve` running?"})  # fmt: skip


@chain_group.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--preview", is_flag=True, help="Only check it and show the tasks it would create.")
@schedule_options
@click.option("--wait", is_flag=True, help="Show a progress bar until step 1's tasks are in PanDA.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds --wait waits.")
@panel_command
def chain_submit(panel: Panel, file: Path, preview: bool, wait: bool, timeout: float, **when: Any) -> None:
    """Check, create and launch the chain FILE defines (prodpanel.chain/1, YAML or JSON)."""
    text, content_type = _document(file)
    if preview:
        plan = panel.call("POST", "/chains/preview", data=text, content_type=content_type)
        for step in plan["steps"]:
            click.echo(
                f"step {step['position']} {step['step']} ({step['kind']}): {len(step['tasks'])} task(s)"
            )
            for task in step["tasks"]:
                click.echo(
                    f"  {task['name']} -> {task['output_dataset']}"
                    + (f" (reads {task['parent']})" if task["parent"] else "")
                )
        for warning in plan["warnings"]:
            click.echo(f"warning: {warning}", err=True)
        return
    chain = panel.call("POST", "/chains", data=text, content_type=content_type, params=_when(**when))
    click.echo(
        f"chain {chain['id']} {chain['name']}: {sum(len(s['task_ids']) for s in chain['steps'])} task(s) saved"
    )
    for warning in chain["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if wait:
        _wait_for_step_one(panel, chain, timeout)


@click.command("export")
@click.option("--chain", "chain_id", type=int, help="A chain's document (prodpanel.chain/1).")
@click.option("--bunch", "bunch_id", type=int, help="A bunch's task definition.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout)."
)
@panel_command
def export_command(
    panel: Panel, chain_id: int | None, bunch_id: int | None, fmt: str, output: Path | None
) -> None:
    """Write a chain's or a bunch's definition, ready for `prodpanel import`."""
    if (chain_id is None) == (bunch_id is None):
        raise click.UsageError("give either --chain or --bunch")
    if chain_id is not None:
        text = panel.call("GET", f"/chains/{chain_id}/definition", params={"format": fmt})
    else:
        definition = panel.call("GET", f"/bunches/{bunch_id}")["definition"]
        text = json.dumps(definition, indent=2) + "\n" if fmt == "json" else _yaml(definition)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


def _yaml(value: Any) -> str:
    import yaml  # only for this format

    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


@click.command("import")
@click.argument(
    "files", type=click.Path(exists=True, dir_okay=False, path_type=Path), nargs=-1, required=True
)
@click.option("--preview", is_flag=True, help="Only check them.")
@schedule_options
@panel_command
def import_command(panel: Panel, files: tuple[Path, ...], preview: bool, **when: Any) -> None:
    """Create and launch what each file defines: a chain (prodpanel.chain/1) or a task / bunch
    definition (the task form's fields)."""
    failed = 0
    with click.progressbar(files, label="import", file=sys.stderr, show_pos=True) as bar:
        lines = []
        for path in bar:
            try:
                lines.append(f"{path}: {_import_one(panel, path, preview, _when(**when))}")
            except PanelError as exc:
                lines.append(f"{path}: refused: {exc}")
                failed += 1
    click.echo("\n".join(lines))
    if failed:
        raise SystemExit(5 if failed == len(files) else 1)


def _import_one(panel: Panel, path: Path, preview: bool, when: dict[str, Any]) -> str:
    from app.chains.schema import SCHEMA_ID  # here: `prodpanel --help` imports this module

    text, content_type = _document(path)
    is_chain = SCHEMA_ID in text
    if is_chain:
        route = "/chains/preview" if preview else "/chains"
        result = panel.call(
            "POST", route, data=text, content_type=content_type, params=None if preview else when
        )
        return (
            f"chain checked, {result['task_count']} task(s)"
            if preview
            else f"chain {result['id']} {result['name']} saved"
        )
    import yaml  # a task definition is YAML or JSON too

    try:
        definition = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PanelError(422, {"detail": f"not valid YAML or JSON: {str(exc).splitlines()[0]}"}) from None
    if preview:
        result = panel.call("POST", "/tasks/preview", json=definition)
        return f"definition checked, {len(result['tasks'])} task(s)"
    result = panel.call("POST", "/tasks", json=definition, params=when)
    return f"bunch {result['id']} {result['base_name']} saved ({result['size']} task(s))"


# --- launches -----------------------------------------------------------------------------------------


@click.group("launches")
def launches_group() -> None:
    """List and cancel launches."""


@launches_group.command("list")
@click.option("--state", type=click.Choice(["upcoming", "running", "done", "failed", "cancelled"]))
@click.option("--owner", help="Who launched them (username).")
@click.option("--status", help="pending, sending, submitted, failed, unknown, needs_decision or cancelled")
@click.option("--task-id", type=int)
@click.option("--bunch-id", type=int)
@click.option("--page", type=int)
@click.option("--after", type=int, help="The launches after this one (what the previous page said), instead of --page.")
@click.option("--per-page", type=int)
@click.option("--json", "as_json", is_flag=True)
@panel_command
def launches_list(panel: Panel, as_json: bool, **params: Any) -> None:
    """Launches, newest first (upcoming ones: soonest first)."""
    _listing(panel, "/launches", params, LAUNCH_COLUMNS, as_json)


@launches_group.command("cancel")
@click.argument("launch_ids", type=int, nargs=-1, required=True)
@click.option("--whole-bunch", is_flag=True, help="Every pending launch of each one's bunch.")
@panel_command
def launches_cancel(panel: Panel, launch_ids: tuple[int, ...], whole_bunch: bool) -> None:
    """Cancel pending launches (yours; an admin's: anyone's): they never run."""
    for launch_id in launch_ids:
        result = panel.call("POST", f"/launches/{launch_id}/cancel", json={"whole_bunch": whole_bunch})
        click.echo(f"launch {launch_id}: {result['changed']} cancelled")


# --- any operation ----------------------------------------------------------------------------------


@click.command("api")
@click.argument("method", type=click.Choice(["GET", "POST"], case_sensitive=False))
@click.argument("path")
@click.option("-q", "--query", "pairs", multiple=True, metavar="KEY=VALUE", help="A query parameter (repeat a key for several values).")
@click.option("-d", "--data", help="The JSON body, or @FILE to read it from a file.")
@panel_command
def api_command(panel: Panel, method: str, path: str, pairs: tuple[str, ...], data: str | None) -> None:
    """Call any operation of the API (PATH as in /api/v1/docs, e.g. /tasks/counts or
    /bunches/7/resend) with this command's connection; prints the JSON answer."""
    params: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--query")
        params.setdefault(key, []).append(value)
    body = None
    if data is not None:
        text = _document(Path(data[1:]))[0] if data.startswith("@") else data
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    route = "/" + path.strip().removeprefix("/api/v1").lstrip("/")
    answer = panel.call(method.upper(), route, params=params or None, json=body)
    if isinstance(answer, str):
        click.echo(answer, nl=False)
    else:
        _print_json(answer)


COMMANDS = (tasks_group, chain_group, launches_group, export_command, import_command, api_command)
