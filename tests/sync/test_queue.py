"""The task-status queue against the real RabbitMQ on loopback (its STOMP plugin, which `make test`
enables): JEDI's messages, published by the simulator, update a task before the next poll would;
malformed messages are acknowledged and skipped; a lost connection is re-established."""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading

import pytest
import stomp

from app.config import QueueSettings
from app.extensions import db
from app.jobs import JOBS
from app.runtime import start_status_consumer
from app.scheduler import Scheduler, install
from app.sync.jobs import HINTS_JOB, QUEUE_JOB
from app.sync.queue import MalformedMessage, TaskStatusConsumer, parse_message
from app.tasks.models import Task
from pandasim import SimConfig, Timings, create_simulator, serve_in_thread
from tests.helpers import wait_until

BROKER = ("127.0.0.1", 61613)


@pytest.fixture(scope="module")
def broker():
    try:
        socket.create_connection(BROKER, timeout=3).close()
    except OSError as exc:
        pytest.fail(
            f"no STOMP broker on {BROKER[0]}:{BROKER[1]} ({exc}): RabbitMQ must run with its STOMP plugin; "
            "`make test` enables it (rabbitmq-plugins enable rabbitmq_stomp)",
            pytrace=False,
        )
    return BROKER


@pytest.fixture
def destination(broker) -> str:
    return f"/topic/prodpanel-test-{secrets.token_hex(4)}"


def publish(destination: str, *bodies: str) -> None:
    connection = stomp.Connection12([BROKER], vhost="/")
    connection.connect("guest", "guest", wait=True)
    for body in bodies:
        connection.send(destination, body)
    connection.disconnect()


def consumer_settings(destination: str, port: int = BROKER[1]) -> QueueSettings:
    return QueueSettings(
        enabled=True, host="127.0.0.1", port=port, user="guest", password="guest", destination=destination
    )


@pytest.mark.parametrize(
    "body",
    ["not json", "[1, 2]", '{"taskid": 5, "status": "running"}', '{"msg_type": "task_status", "status": "done"}',
     '{"msg_type": "task_status", "taskid": "x5", "status": "done"}',
     '{"msg_type": "task_status", "taskid": 5, "status": ""}'],
)  # fmt: skip
def test_malformed_messages_are_refused(body):
    with pytest.raises(MalformedMessage):
        parse_message(body)


def test_status_and_other_jedi_messages_are_told_apart():
    message = parse_message('{"msg_type": "task_status", "taskid": 12, "status": "running", "timestamp": 17}')
    assert (message.task_id, message.status, message.timestamp) == (12, "running", 17)
    assert parse_message('{"msg_type": "job_status", "jobid": 3, "taskid": 12, "status": "running"}') is None


def connected(consumer: TaskStatusConsumer) -> bool:
    """What the `task-status-queue` job does every second: (re)connect unless connected."""
    consumer.keep_connected()
    return consumer.connected.is_set()


def test_malformed_messages_are_acknowledged_and_the_consumer_goes_on(destination):
    hints: list[int] = []
    consumer = TaskStatusConsumer(consumer_settings(destination), hints.append)
    try:
        wait_until(lambda: connected(consumer), timeout=10, message="the consumer subscribed")
        good = json.dumps({"msg_type": "task_status", "taskid": 42, "status": "done", "timestamp": 1})
        job = json.dumps({"msg_type": "job_status", "jobid": 1, "taskid": 41, "status": "finished"})
        # One unacknowledged message at a time (prefetch 1): the good one arrives only if every
        # earlier one was acknowledged.
        publish(destination, "garbage", '{"msg_type": "task_status"}', job, good)
        wait_until(lambda: hints == [42], timeout=10, message="the good message after the bad ones")
        assert consumer.connects == 1 and consumer.connected.is_set()
    finally:
        consumer.stop()


class DroppingProxy:
    """A loopback TCP forwarder to the broker whose connections a test can cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop_connections(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.listener.close()
        self.drop_connections()


def test_a_lost_connection_is_reestablished(destination, broker):
    proxy = DroppingProxy(broker)
    hints: list[int] = []
    consumer = TaskStatusConsumer(consumer_settings(destination, proxy.port), hints.append)
    try:
        wait_until(lambda: connected(consumer), timeout=10, message="the consumer subscribed")
        proxy.drop_connections()
        wait_until(lambda: connected(consumer) and consumer.connects == 2, timeout=20,
                   message="the consumer reconnected")  # fmt: skip
        # Published until one arrives: the broker may still hand a message to the dropped subscription
        # (its side of the proxy closes later), which is lost with it; a hint, not a command.
        message = json.dumps({"msg_type": "task_status", "taskid": 7, "status": "running"})
        wait_until(lambda: publish(destination, message) or 7 in hints, timeout=20, interval=0.5,
                   message="a message after the reconnection")  # fmt: skip
        assert set(hints) == {7}
    finally:
        consumer.stop()
        proxy.close()


@pytest.fixture
def sim(destination):
    """The simulator publishing JEDI's status messages to the broker (its JEDI runs by itself)."""
    config = SimConfig(
        seed=5, time_scale=0.0, job_failure_rate=0.0, timings=Timings(pickup_s=60.0),
        mq_url="stomp://guest:guest@127.0.0.1:61613", mq_destination=destination, mq_tick_s=0.2,
    )  # fmt: skip
    running = serve_in_thread(create_simulator(config))
    yield running.app
    running.stop()


@pytest.fixture
def queue_settings(destination):
    return {"enabled": True, "user": "guest", "password": "guest", "destination": destination}


def test_a_status_message_updates_the_task_before_the_next_poll(app, sim, submit):
    task = submit(1).tasks[0]
    jobs = Scheduler(app, [job for job in JOBS if job.name in (QUEUE_JOB, HINTS_JOB)])  # no polling job
    install(jobs)
    stop = start_status_consumer(app)
    jobs.start()
    try:
        wait_until(lambda: sim.publisher is not None, timeout=5)
        listings = sim.calls["get_tasks_detailed_info_since"]
        sim.advance(150)  # JEDI: registered, defined, running -> three messages
        wait_until(lambda: sim.publisher.sent >= 3, timeout=10, message="the simulator published")

        def stored_status() -> str | None:
            db.session.expire_all()
            return db.session.get(Task, task.id).panda_status

        wait_until(
            lambda: stored_status() == "running", timeout=15, message="the task refreshed from a message"
        )
        assert sim.calls["get_tasks_detailed_info_since"] == listings  # no poll ran: the message did it
        assert sim.calls["get_detailed_info"] >= 1
    finally:
        stop()
        jobs.shutdown()
        install(None)
