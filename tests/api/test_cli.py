"""The command line (`prodpanel tasks|chain|launches|export|import`) against the local panel (in-process
as a named account) and a remote one over HTTP with a personal token: output, progress, exit codes."""

from __future__ import annotations

import json
import socket

import click
import pytest
import yaml

from app.api.remote import PanelError, RemotePanel
from app.cli import main
from tests.actions.conftest import new_task
from tests.e2e.conftest import LiveServer
from tests.helpers import free_port, run_cli


@pytest.fixture
def live(app):
    server = LiveServer(app)
    server.start()
    yield server.url
    server.stop()


def invoke(runner, *args: str):
    return runner.invoke(main, list(args))


def test_tasks_list_show_and_actions_on_the_local_panel(runner, make_user, fake_panda):
    owner = make_user("manager")
    running, done = new_task(owner, "running"), new_task(owner, "done")
    listed = invoke(runner, "tasks", "list", "--user", owner.username)
    assert listed.exit_code == 0, listed.output
    assert running.name in listed.output and done.name in listed.output and "STATUS" in listed.output
    shown = invoke(runner, "tasks", "show", str(running.id), "--user", owner.username, "--json")
    assert json.loads(shown.output)["params"]["taskName"] == running.name
    acted = invoke(runner, "tasks", "action", "kill", str(running.id), str(done.id), "--comment", "bad tune",
                   "--user", owner.username)  # fmt: skip
    assert acted.exit_code == 1  # one of two refused
    assert f"task {running.id}: accepted" in acted.output and f"task {done.id}: refused" in acted.output
    assert [c[0] for c in fake_panda.commands] == ["kill"]
    nothing = invoke(
        runner, "tasks", "action", "kill", str(done.id), "--comment", "x", "--user", owner.username
    )
    assert nothing.exit_code == 5


def test_usage_and_refusals_have_their_exit_codes(runner, make_user):
    viewer = make_user("viewer")
    assert invoke(runner, "tasks", "list").exit_code == 2  # neither --user nor --url
    unknown = invoke(runner, "tasks", "list", "--user", "nobody")
    assert unknown.exit_code == 3 and "no active account" in unknown.output
    missing = invoke(runner, "tasks", "show", "999", "--user", viewer.username)
    assert missing.exit_code == 4 and "no task 999" in missing.output
    forbidden = invoke(runner, "import", "examples/bunch.yaml", "--user", viewer.username)
    assert forbidden.exit_code == 5 and "needs the manager role" in forbidden.output  # every file refused


def test_remote_panel_over_http_with_a_token(live, make_token, make_user):
    _, token = make_token("manager")
    task = new_task(make_user("manager"), "running")
    listed = run_cli("tasks", "list", "--url", live, "--token", token)
    assert listed.exit_code == 0 and task.name in listed.output
    wrong = run_cli("tasks", "list", "--url", live, "--token", "ppt_0_nope")
    assert wrong.exit_code == 3 and "API token" in wrong.output
    no_token = run_cli("tasks", "list", "--url", live)
    assert no_token.exit_code == 2
    down = run_cli("tasks", "list", "--url", f"http://127.0.0.1:{free_port()}", "--token", token)
    assert down.exit_code == 6 and "cannot reach" in down.output
    preview = run_cli("chain", "submit", "examples/sim-reco-chain.yaml", "--preview", "--url", live, "--token", token)
    assert preview.exit_code == 0 and "step 2 RECO (processing): 3 task(s)" in preview.output, preview.output
    not_http = run_cli("tasks", "list", "--url", "ftp://panel", "--token", token)
    assert not_http.exit_code == 2 and "http:// or https://" in not_http.output


def test_a_panel_that_does_not_answer_is_a_clear_error():
    """A server that takes the connection and never answers: the client gives up at its timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        panel = RemotePanel(f"http://127.0.0.1:{silent.getsockname()[1]}", "ppt_0_x", timeout_s=0.3)
        with pytest.raises(PanelError) as caught:
            panel.call("GET", "/me")
    assert caught.value.status == 0 and "did not answer within" in str(caught.value)


def test_export_then_import_and_launches(runner, make_user, fake_panda, tmp_path):
    owner = make_user("manager")
    created = invoke(runner, "import", "examples/bunch.yaml", "--user", owner.username)
    assert created.exit_code == 0, created.output
    bunch_id = int(created.output.split("bunch ")[1].split()[0])
    exported = tmp_path / "bunch.json"
    result = invoke(runner, "export", "--bunch", str(bunch_id), "--format", "json", "-o", str(exported),
                    "--user", owner.username)  # fmt: skip
    assert result.exit_code == 0 and json.loads(exported.read_text())["task_name"] == "PROD2026-102.SIM"
    taken = invoke(runner, "import", str(exported), "--user", owner.username)
    assert taken.exit_code == 5 and "task_name" in taken.output  # its names are taken now
    launches = invoke(
        runner, "launches", "list", "--bunch-id", str(bunch_id), "--json", "--user", owner.username
    )
    assert len(json.loads(launches.output)["items"]) == 5
    first = invoke(runner, "launches", "list", "--bunch-id", str(bunch_id), "--per-page", "3", "--user", owner.username)
    following = json.loads(launches.output)["items"][2]["id"]
    assert first.exit_code == 0 and f"(more: --after {following})" in first.output
    rest = invoke(runner, "launches", "list", "--bunch-id", str(bunch_id), "--per-page", "3", "--after",
                  str(following), "--json", "--user", owner.username)  # fmt: skip
    assert [e["id"] for e in json.loads(rest.output)["items"]] == [e["id"] for e in json.loads(launches.output)["items"][3:]]


def test_chain_export_round_trip(runner, make_user, fake_panda):
    owner = make_user("manager")
    submitted = invoke(runner, "chain", "submit", "examples/sim-reco-chain.yaml", "--user", owner.username)
    assert submitted.exit_code == 0, submitted.output
    chain_id = submitted.output.split()[1]
    exported = invoke(runner, "export", "--chain", chain_id, "--user", owner.username)
    document = yaml.safe_load(exported.output)
    assert document["schema"] == "prodpanel.chain/1" and len(document["steps"]) == 2


def test_tasks_list_takes_every_filter_of_the_task_tables(runner, live, make_token, make_user):
    """`tasks list` has an option for each key of the task filter (made from its declaration), and they
    filter the same locally and remotely: repeated statuses, a negation, several PanDA ids,
    --mine, the successful tasks with their totals."""
    from app.api.cli import tasks_list
    from app.monitoring.filters import QUERY_KEYS

    with click.Context(tasks_list) as ctx:
        assert set(QUERY_KEYS) <= {p.name for p in tasks_list.get_params(ctx)}
    owner, token = make_token("manager")
    running, done, failed = (new_task(owner, status) for status in ("running", "done", "failed"))
    other = new_task(make_user("manager"), "running")

    def names(*args: str, remote: bool = False) -> set[str]:
        where = ("--url", live, "--token", token) if remote else ("--user", owner.username)
        result = run_cli("tasks", "list", "--json", *args, *where) if remote else invoke(runner, "tasks", "list", "--json", *args, *where)
        assert result.exit_code == 0, result.output
        return {t["name"] for t in json.loads(result.output)["items"]}

    for remote in (False, True):
        assert names("--status", "running", "--status", "failed", remote=remote) == {running.name, failed.name, other.name}
        assert names("--status", "running", "--not", "status", "--mine", remote=remote) == {done.name, failed.name}
        assert names("--panda-id", str(running.panda_task_id), "--panda-id", str(done.panda_task_id), remote=remote) == {running.name, done.name}
        assert names("--creator", owner.username, "--name", running.name[:-2] + "*", remote=remote) >= {running.name}
    successful = invoke(runner, "tasks", "list", "--successful", "--creator", owner.username, "--user", owner.username)
    assert successful.exit_code == 0 and done.name in successful.output and running.name not in successful.output
    assert "total: tasks 1" in successful.output
    wrong = run_cli("tasks", "list", "--submitted-from", "yesterday", "--url", live, "--token", token)
    assert wrong.exit_code == 5 and "submitted_from: 'yesterday' is not a date" in wrong.output


def test_any_operation_through_the_api_command(runner, live, make_token, make_user):
    """`prodpanel api METHOD PATH` reaches every operation the CLI has no command of its own for, with
    the same connection, messages and exit codes."""
    owner, token = make_token("manager")
    task = new_task(owner, "running")
    counts = invoke(runner, "api", "get", "/tasks/counts", "-q", f"creator={owner.username}", "--user", owner.username)
    assert counts.exit_code == 0 and json.loads(counts.output)["counts"] == [{"status": "running", "count": 1}]
    remote = run_cli("api", "GET", f"/api/v1/tasks/{task.id}", "--url", live, "--token", token)
    assert remote.exit_code == 0 and json.loads(remote.output)["name"] == task.name
    resent = run_cli("api", "POST", f"/bunches/{task.bunch_id}/resend", "--url", live, "--token", token)
    assert resent.exit_code == 0 and json.loads(resent.output) == {"changed": 0}
    missing = invoke(runner, "api", "POST", "/tasks/999999/adopt", "-d", '{"panda_task_id": 5}', "--user", owner.username)
    assert missing.exit_code == 4 and "no task 999999" in missing.output
    bad = invoke(runner, "api", "GET", "/tasks", "-q", "status", "--user", owner.username)
    assert bad.exit_code == 2
