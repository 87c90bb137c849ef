"""Contract suite: the panel's PandaClient against the PanDA simulator over real HTTP on loopback,
for every call and every error class, on both transports (API v1 and legacy).

The simulator runs with time_scale=0: its clock moves only when a test advances it, so lifecycles
are driven explicitly (no sleeping).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from app.panda.client import CallRecord, ClientConfig, PandaClient
from app.panda.errors import (
    PandaAuthError,
    PandaNotFound,
    PandaOutcomeUnknown,
    PandaRejected,
    PandaRoleMissing,
    PandaUnavailable,
    PandaUnsupported,
)
from app.tokens.errors import TokenUnavailable
from pandasim import SimConfig, create_simulator, serve_in_thread
from tests.helpers import free_port
from tests.pandasim.conftest import reco

TRANSPORTS = ["v1", "legacy"]


@dataclass(frozen=True)
class User:
    id: int
    name: str


MANAGER = User(1, "alice")  # member of spd/production
PLAIN = User(2, "bob")  # member of spd only
NO_TOKEN = User(3, "carol")


class SimTokens:
    """TokenSource over the simulator's embedded issuer."""

    def __init__(self, sim) -> None:
        self.tokens = {
            MANAGER.id: sim.mint_token("alice", "Alice Manager", ["spd", "spd/production"]),
            PLAIN.id: sim.mint_token("bob", "Bob User", ["spd"]),
        }

    def token_for(self, user: User) -> str:
        if user.id not in self.tokens:
            raise TokenUnavailable("no IAM login on record", relogin=True)
        return self.tokens[user.id]


def task_params(name: str, n_events: int = 1000, per_job: int = 100, **extra) -> dict:
    """A production SIM task map shaped like reference §3.4 (example A)."""
    params = {
        "vo": "spd",
        "prodSourceLabel": "managed",
        "taskType": "prod",
        "processingType": "simul",
        "taskName": name,
        "userName": "spd_prod",
        "workingGroup": "spd_prod",
        "taskPriority": 900,
        "architecture": "",
        "transUses": "",
        "transHome": "",
        "transPath": "/cvmfs/spd.jinr.ru/scripts/run_evgen.sh",
        "container_name": "/cvmfs/spd.jinr.ru/images/spdroot.sif",
        "cloud": "JINR",
        "noInput": True,
        "nEvents": n_events,
        "nEventsPerJob": per_job,
        "skipScout": True,
        "pushStatusChanges": True,
        "log": {
            "type": "template",
            "param_type": "log",
            "dataset": f"{name}.log",
            "value": f"{name}.log.${{SN}}.tgz",
            "token": "local",
            "destination": "local",
        },
        "jobParameters": [
            {"type": "constant", "value": "--config gen.cfg"},
            {"type": "template", "param_type": "number", "value": "--seed ${RNDMSEED}", "offset": 1000},
            {
                "type": "template",
                "param_type": "output",
                "dataset": f"{name}.root",
                "value": f"--output {name}.${{SN/P}}.root",
            },
        ],
    }
    params.update(extra)
    return params


# The panda-server version each transport talks to: 1.0 offers API v1 only, 0.8 the legacy API only.
VERSION_OF = {"v1": "1.0", "legacy": "0.8"}


@pytest.fixture(scope="module")
def servers():
    """One simulator per server version, shared by the module."""
    running = {
        transport: serve_in_thread(
            create_simulator(SimConfig(seed=11, time_scale=0, version=version, job_failure_rate=0.0))
        )
        for transport, version in VERSION_OF.items()
    }
    yield running
    for server in running.values():
        server.stop()


@pytest.fixture
def sim(servers, request):
    """The simulator of the test's transport (API v1 when the test has none)."""
    transport = request.getfixturevalue("transport") if "transport" in request.fixturenames else "v1"
    return servers[transport]


def make_client(
    url: str, transport: str, tokens, records: list[CallRecord] | None = None, **config
) -> PandaClient:
    settings = dict(
        url=url,
        transport=transport,
        read_timeout_s=5.0,
        connect_timeout_s=2.0,
        retries=1,
        retry_backoff_s=0.01,
    )
    settings.update(config)
    recorder = records.append if records is not None else None
    return PandaClient(ClientConfig(**settings), tokens, recorder=recorder)


@pytest.fixture(params=TRANSPORTS)
def transport(request) -> str:
    return request.param


@pytest.fixture
def env(sim, transport):
    """(client, simulator app, records) for one transport against its shared simulator."""
    records: list[CallRecord] = []
    client = make_client(sim.url, transport, SimTokens(sim.app), records)
    yield client, sim.app, records
    client.close()


_names = iter(range(1, 100_000))


def unique(prefix: str) -> str:
    return f"spd.mc.contract.{prefix}.{next(_names)}"


def submit_and_pick_up(client: PandaClient, app, name: str, **params) -> int:
    """Submit, check the 'not found' window, then advance until JEDI knows the task."""
    result = client.submit(MANAGER, task_params(name, **params))
    with pytest.raises(PandaNotFound):
        client.get_status(MANAGER, result.task_id)
    app.advance(app.config.timings.pickup_s + app.config.timings.refine_s + 1)
    return result.task_id


def advance_until(
    app, client, task_id: int, statuses: set[str], step_s: float = 600, limit: int = 200
) -> str:
    for _ in range(limit):
        status = client.get_status(MANAGER, task_id)
        if status in statuses:
            return status
        app.advance(step_s)
    raise AssertionError(f"task {task_id} never reached {statuses}; last {status}")


# ------------------------------------------------------------------ transport and identity


def test_detection_prefers_v1_then_falls_back_to_legacy(sim):
    client = make_client(sim.url, "auto", None)
    assert client.is_alive().transport == "v1"
    legacy_only = serve_in_thread(create_simulator(SimConfig(version="0.8")))
    try:
        records: list[CallRecord] = []
        client = make_client(legacy_only.url, "auto", None, records)
        alive = client.is_alive()
        assert alive.alive and alive.transport == "legacy"
        probes = [(r.transport, r.outcome) for r in records]
        assert probes[0] == ("v1", "unsupported") and ("legacy", "ok") in probes
    finally:
        legacy_only.stop()


def test_legacy_forced_against_a_1_0_server_says_to_use_auto_or_v1(sim):
    records: list[CallRecord] = []
    client = make_client(sim.url, "legacy", SimTokens(sim.app), records, retries=0)
    for call in (client.is_alive, lambda: client.get_status(MANAGER, 1)):
        with pytest.raises(PandaUnsupported) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"PanDA at {sim.url} forbids the legacy /server/panda/ API")
        assert message.endswith('set [panda] transport to "auto" or "v1".')
    assert [(r.transport, r.http_status, r.outcome) for r in records] == [("legacy", 403, "unsupported")] * 2


def test_is_alive(env):
    client, _, records = env
    alive = client.is_alive()
    assert alive.alive and alive.transport == client.config.transport
    assert records[-1].method == "is_alive" and records[-1].http_status == 200


def test_user_attributes_show_the_production_role(env):
    client, _, _ = env
    attrs = client.get_user_attributes(MANAGER)
    assert attrs.is_production_user is True
    assert any("Role=production" in f for f in attrs.fqans)


def test_submission_without_production_role_is_refused_before_sending(sim, transport):
    records: list[CallRecord] = []
    client = make_client(sim.url, transport, SimTokens(sim.app), records, role="")
    with pytest.raises(PandaRoleMissing) as info:
        client.submit(PLAIN, task_params(unique("norole")))
    assert "spd/production" in str(info.value) and "IAM admins" in str(info.value)
    assert [r.method for r in records] == ["get_user_attributes"]


def test_token_without_production_group_gets_403_with_reason(env):
    client, _, records = env
    with pytest.raises(PandaAuthError) as info:
        client.get_status(PLAIN, 1)
    assert "Not a member of the spd/production group" in info.value.reason
    assert records[-1].http_status == 403 and records[-1].outcome == "auth"


def test_tampered_token_is_refused(sim, transport):
    class Tampered(SimTokens):
        def token_for(self, user):
            head, body, sig = super().token_for(user).split(".")
            return f"{head}.{body}.{sig[::-1]}"

    client = make_client(sim.url, transport, Tampered(sim.app))
    with pytest.raises(PandaAuthError) as info:
        client.get_status(MANAGER, 1)
    assert "Invalid token" in info.value.reason


def test_missing_token_never_reaches_panda(env):
    client, _, records = env
    with pytest.raises(PandaAuthError) as info:
        client.kill(NO_TOKEN, 1)
    assert "no IAM login" in info.value.reason
    assert records[-1].http_status is None and records[-1].outcome == "auth"


# ------------------------------------------------------------------ reads over a whole lifecycle


def test_submit_and_every_read_through_to_done(env):
    client, app, records = env
    name = unique("life")
    since = app.clock.now_dt().replace(tzinfo=UTC) - timedelta(minutes=1)
    task_id = submit_and_pick_up(client, app, name)
    submit_record = next(r for r in records if r.method == "submit")
    assert submit_record.task_id == task_id and submit_record.params["task_parameters"]["taskName"] == name

    assert client.get_status(MANAGER, task_id) in {"registered", "defined", "ready", "running", "scouting"}
    stored = client.get_task_parameters(MANAGER, task_id)
    assert stored["taskName"] == name and stored["nEvents"] == 1000

    details = client.get_details(MANAGER, task_id, include_parameters=True)
    assert details.task_id == task_id and details.status

    summaries = client.get_tasks_modified_since(MANAGER, since, dn="spd_prod", prod_source_label="managed")
    assert any(s.task_id == task_id and s.name == name for s in summaries)

    assert advance_until(app, client, task_id, {"done"}) == "done"

    if client.config.transport == "legacy":
        info = client.get_detailed_info(MANAGER, task_id)  # assembled from two legacy calls
        assert (info.task_id, info.name, info.status, info.task_priority) == (task_id, name, "done", 900)
        assert info.n_files == 10 and info.n_files_finished == 10 and info.raw["assembled"] is True
        with pytest.raises(PandaUnsupported):  # 0.8.x has nothing like it
            client.get_tasks_detailed_info_since(MANAGER, since)
        # getPandaIDsWithTaskID + getJobStatus: events and times, but no Files (no sizes) in 0.8.x
        jobs = client.get_job_descriptions(MANAGER, task_id)
        assert len(jobs) == 10 and {j.status for j in jobs} == {"finished"}
        assert sum(j.n_events or 0 for j in jobs) == 1000 and all(j.walltime_s > 0 for j in jobs)
        assert all(j.files == () for j in jobs)
        assert client.get_job_descriptions(MANAGER, task_id, unsuccessful_only=True) == []
        return

    info = client.get_detailed_info(MANAGER, task_id)
    assert info.task_id == task_id and info.name == name and info.status == "done"
    assert info.parent_tid is None and info.n_files == 10 and info.n_files_finished == 10
    assert isinstance(info.creation_date, datetime) and info.creation_date.tzinfo is not None

    infos = client.get_tasks_detailed_info_since(
        MANAGER, since, filters={"userName": "spd_prod", "taskName": name}
    )
    assert [i.task_id for i in infos] == [task_id]

    jobs = client.get_job_descriptions(MANAGER, task_id)
    finished = [j for j in jobs if j.status == "finished"]
    assert len(finished) == 10
    assert all(j.output_bytes > 0 and j.log_bytes > 0 and j.walltime_s > 0 for j in finished)
    assert sum(j.n_events or 0 for j in finished) == 1000


def test_child_waits_for_its_parent_and_avalanche_ends_scouting(env):
    client, app, _ = env
    parent_name = unique("parent")
    parent = submit_and_pick_up(client, app, parent_name, n_events=50_000, skipScout=None)
    advance_until(app, client, parent, {"scouting"}, step_s=30)
    child_params = reco(unique("child"), input_ds=f"{parent_name}.root")
    child = client.submit(MANAGER, child_params, parent_tid=parent).task_id
    app.advance(app.config.timings.pickup_s + app.config.timings.refine_s + 1)
    assert client.get_status(MANAGER, child) == "pending"
    if client.config.transport == "v1":
        assert client.get_detailed_info(MANAGER, child).parent_tid == parent
    assert client.avalanche(MANAGER, parent).code == 0
    app.advance(app.config.timings.command_delay_s + 1)
    assert client.get_status(MANAGER, parent) == "running"
    assert client.get_status(MANAGER, child) == "pending"
    assert advance_until(app, client, parent, {"done", "finished"}) in {"done", "finished"}
    assert advance_until(app, client, child, {"done", "finished"}) in {"done", "finished"}


def test_unknown_task_is_not_found(env):
    client, _, _ = env
    with pytest.raises(PandaNotFound):
        client.get_status(MANAGER, 987654)
    with pytest.raises(PandaNotFound):
        client.kill(MANAGER, 987654)
    with pytest.raises(PandaNotFound):
        client.get_details(MANAGER, 987654)
    with pytest.raises(PandaNotFound):
        client.get_task_parameters(MANAGER, 987654)


# ------------------------------------------------------------------ commands and changes


def test_commands_on_a_running_task(env):
    client, app, _ = env
    task_id = submit_and_pick_up(client, app, unique("cmd"), n_events=100_000, per_job=100)
    advance_until(app, client, task_id, {"running"}, step_s=30)
    delay = app.config.timings.command_delay_s + 1

    assert client.change_priority(MANAGER, task_id, 950).n_changed == 1
    assert client.change_attribute(MANAGER, task_id, "ramCount", 4000).n_changed == 1
    assert client.change_split_rule(MANAGER, task_id, "NF", "2").n_changed == 1
    with pytest.raises(PandaRejected) as info:
        client.change_split_rule(MANAGER, task_id, "XX", "1")
    assert "XX" in info.value.server_message and not isinstance(info.value, PandaNotFound)
    if client.config.transport == "v1":
        assert client.get_detailed_info(MANAGER, task_id).current_priority == 950

    # retry answers success=true with data=4 while running: a rejection
    with pytest.raises(PandaRejected) as info:
        client.retry(MANAGER, task_id)
    assert info.value.code == 4 and "running" in info.value.server_message
    with pytest.raises(PandaRejected) as info:
        client.avalanche(MANAGER, task_id)  # only from scouting
    assert info.value.code == 4

    assert client.release(MANAGER, task_id).code == 0
    assert client.pause(MANAGER, task_id).code == 0
    app.advance(delay)
    assert client.get_status(MANAGER, task_id) == "paused"
    assert client.resume(MANAGER, task_id).code == 0
    app.advance(delay)
    assert client.get_status(MANAGER, task_id) == "running"

    assert client.increase_attempts(MANAGER, task_id, 2).code == 0
    assert client.reassign(MANAGER, task_id, site="JINR_PROD_2", mode="soft").code == 0
    app.advance(delay)

    assert client.kill(MANAGER, task_id).code == 0
    status = advance_until(app, client, task_id, {"aborted"}, step_s=delay)
    assert status == "aborted"
    with pytest.raises(PandaRejected) as info:
        client.finish(MANAGER, task_id, soft=True)
    assert info.value.code == 4 and "current status" in info.value.human


def test_finish_retry_and_reload_input(env):
    client, app, _ = env
    delay = app.config.timings.command_delay_s + 1
    task_id = submit_and_pick_up(client, app, unique("fin"), n_events=100_000, per_job=100)
    advance_until(app, client, task_id, {"running"}, step_s=30)
    assert client.finish(MANAGER, task_id, soft=True).code == 0
    advance_until(app, client, task_id, {"finished", "done"}, step_s=delay)
    assert client.retry(MANAGER, task_id, no_child_retry=True).code == 0
    app.advance(delay)
    assert client.get_status(MANAGER, task_id) not in {"finished", "done"}
    advance_until(app, client, task_id, {"finished", "done"})
    assert client.reload_input(MANAGER, task_id).code == 0


def test_retry_with_new_parameters_registers_the_task_again(env):
    client, app, _ = env
    name = unique("renew")
    task_id = submit_and_pick_up(client, app, name)
    advance_until(app, client, task_id, {"done"})
    result = client.retry(MANAGER, task_id, new_parameters={"nEvents": 2000})
    # A production task with new parameters is registered again under a new id (code 0).
    assert result.code == 0 and result.new_task_id not in (None, task_id)
    app.advance(app.config.timings.pickup_s + app.config.timings.refine_s + 1)
    renewed = client.get_task_parameters(MANAGER, result.new_task_id)
    assert (renewed["taskName"], renewed["nEvents"]) == (name, 2000)


def test_retry_with_new_parameters_checks_the_role_first(sim, transport):
    records: list[CallRecord] = []
    client = make_client(sim.url, transport, SimTokens(sim.app), records, role="")
    with pytest.raises(PandaRoleMissing):
        client.retry(PLAIN, 1, new_parameters={"ramCount": 4000})
    assert [r.method for r in records] == ["get_user_attributes"]


def test_increase_attempts_codes(env):
    client, app, _ = env
    with pytest.raises(PandaNotFound):
        client.increase_attempts(MANAGER, 987654, 1)  # code 1 here means "not found"
    task_id = submit_and_pick_up(client, app, unique("inc"))
    assert client.get_status(MANAGER, task_id) not in {"running", "scouting", "ready"}
    with pytest.raises(PandaRejected) as info:
        client.increase_attempts(MANAGER, task_id, 1)  # code 2 here means "wrong status"
    assert info.value.code == 2 and not isinstance(info.value, PandaNotFound)


# ------------------------------------------------------------------ error classes from the server side


def test_submit_code_10_too_many_active_tasks(transport):
    limited = serve_in_thread(
        create_simulator(SimConfig(time_scale=0, max_active_tasks_per_user=0, version=VERSION_OF[transport]))
    )
    try:
        client = make_client(limited.url, transport, SimTokens(limited.app))
        client.submit(MANAGER, task_params(unique("lim")))
        limited.app.advance(200)
        with pytest.raises(PandaRejected) as info:
            client.submit(MANAGER, task_params(unique("lim")))
        assert info.value.code == 10 and "too many active tasks" in info.value.human
    finally:
        limited.stop()


def test_requests_go_through_the_configured_proxy(sim):
    # A forward proxy receives absolute-URI request lines; the simulator's server answers those itself.
    client = make_client("http://panda.invalid:25443", "v1", SimTokens(sim.app), proxy=sim.url)
    assert client.get_user_attributes(MANAGER).is_production_user
    direct = make_client("http://panda.invalid:25443", "v1", None, retries=0)
    with pytest.raises(PandaUnavailable):
        direct.is_alive()


def test_unreachable_server_is_unavailable_after_retries(transport):
    records: list[CallRecord] = []
    client = make_client(f"http://127.0.0.1:{free_port()}", transport, None, records, retries=2)
    with pytest.raises(PandaUnavailable):
        client.is_alive()
    client = make_client(f"http://127.0.0.1:{free_port()}", transport, SimTokens_stub(), records, retries=2)
    with pytest.raises(PandaUnavailable) as refused:
        client.get_status(MANAGER, 1)
    assert "cannot be reached: it refused the connection" in str(refused.value)
    assert "HTTPConnectionPool" not in str(refused.value)
    assert [r.attempt for r in records if r.method == "get_status"] == [1, 2, 3]
    with pytest.raises(PandaUnavailable):
        client.kill(MANAGER, 1)  # nothing was sent: a write may be retried too


class SimTokens_stub:
    def token_for(self, user):
        return "not-a-real-token"


@pytest.fixture
def faulty(transport):
    """A private simulator whose faults each test sets (a 1.5 s read timeout: room for a loaded machine,
    below the 2.5 s stall of the time-out tests)."""
    running = serve_in_thread(create_simulator(SimConfig(seed=3, time_scale=0, version=VERSION_OF[transport])))
    records: list[CallRecord] = []
    client = make_client(running.url, transport, SimTokens(running.app), records, read_timeout_s=1.5)
    yield client, running.app, records
    client.close()
    running.stop()


def test_every_call_is_recorded_with_all_its_fields(faulty):
    client, app, records = faulty
    app.set_faults({"latency_ms": 60, "methods": ["kill", "killTask"]})
    with pytest.raises(PandaNotFound):
        client.kill(MANAGER, 987654)
    record = records[-1]
    assert (record.user_id, record.server, record.method, record.task_id) == (
        MANAGER.id,
        client.server,
        "kill",
        987654,
    )
    assert record.params == {"task_id": 987654, "broadcast": False}
    assert (record.http_status, record.return_code, record.outcome) == (200, 2, "not_found")
    assert "not found" in record.message and record.duration_ms >= 60


def test_http_500_on_reads_is_retried_and_on_writes_is_unknown(faulty):
    client, app, records = faulty
    task_id = client.submit(MANAGER, task_params(unique("f500"))).task_id
    app.set_faults({"error_rate": 1.0, "methods": ["get_status", "getTaskStatus", "kill", "killTask"]})
    with pytest.raises((PandaUnavailable, PandaOutcomeUnknown)):
        client.get_status(MANAGER, task_id)
    assert {r.attempt for r in records if r.method == "get_status"} == {1, 2}
    outcomes = set()
    for _ in range(12):
        try:
            client.kill(MANAGER, task_id)
        except PandaOutcomeUnknown:
            outcomes.add("unknown")  # HTTP 500: the server may have acted
        except PandaUnavailable:
            outcomes.add("unavailable")  # success:false "database error": nothing stored
    assert outcomes == {"unknown", "unavailable"}
    kill_attempts = [r for r in records if r.method == "kill"]
    assert all(r.outcome in ("unknown", "unavailable") for r in kill_attempts)


def test_submit_that_times_out_after_commit_is_unknown_and_not_resent(faulty):
    client, app, records = faulty
    app.set_faults({"submit_timeout_rate": 1.0, "stall_s": 2.5})
    name = unique("stall")
    with pytest.raises(PandaOutcomeUnknown):
        client.submit(MANAGER, task_params(name))
    assert [r.method for r in records].count("submit") == 1
    app.set_faults({})
    app.advance(200)
    # the task exists: the caller reconciles by name instead of resubmitting
    infos = client.get_tasks_modified_since(
        MANAGER, datetime(2000, 1, 1, tzinfo=UTC), dn="spd_prod", prod_source_label="managed"
    )
    assert any(s.name == name for s in infos)


def test_connection_reset_on_a_write_is_unknown_on_a_read_retried(faulty):
    client, app, records = faulty
    task_id = client.submit(MANAGER, task_params(unique("reset"))).task_id
    app.set_faults(
        {"reset_rate": 1.0, "methods": ["pause", "pauseTask", "get_details", "getJediTaskDetails"]}
    )
    with pytest.raises(PandaOutcomeUnknown):
        client.pause(MANAGER, task_id)
    with pytest.raises(PandaUnavailable):
        client.get_details(MANAGER, task_id)
    assert [r.attempt for r in records if r.method == "get_details"] == [1, 2]


def test_a_failing_v1_server_is_not_taken_for_a_legacy_one():
    """A transient HTTP 500 on the v1 probe must not make `auto` fall back to legacy for good."""
    simulator = create_simulator(SimConfig(seed=5))
    running = serve_in_thread(simulator)
    try:
        simulator.set_faults({"error_rate": 1.0, "methods": ["is_alive"]})
        records: list[CallRecord] = []
        client = make_client(running.url, "auto", None, records, retries=0)
        for _ in range(40):  # until both kinds of failure were seen: HTTP 500 and success:false
            with pytest.raises(PandaUnavailable):
                _ = client.transport
            if {r.http_status for r in records} == {200, 500}:
                break
        assert {r.http_status for r in records} == {200, 500}
        assert [r.transport for r in records] == ["v1"] * len(records)  # legacy was never tried
        simulator.set_faults({})
        assert client.transport == "v1"
        client.close()
    finally:
        running.stop()
