"""The optional task-status consumer: JEDI's `task_status` messages, read from a STOMP broker.

JEDI publishes `{"msg_type": "task_status", "taskid": N, "status": "...", "timestamp": T}` on status
changes of tasks whose splitRule has PC=1 (the panel's tasks have it). A message is only a hint: it
names a task whose PanDA state is then read again (`jobs.refresh_hinted`), because messages can be
lost or arrive out of order. Polling (`jobs.sync_cycle`) stays the baseline.

`serve` starts the consumer when `[queue] enabled` (app/runtime.py) and a job keeps it connected
(reconnecting with backoff after a lost connection); it acknowledges every message, malformed ones
included (logged), so a bad message never blocks the destination. Nothing here touches the database.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stomp
from stomp.exception import StompException

from app.config import QueueSettings

log = logging.getLogger(__name__)

SUBSCRIPTION_ID = "prodpanel-task-status"


class MalformedMessage(ValueError):
    """A message on the destination that is not a JEDI status message the panel can use."""


@dataclass(frozen=True)
class StatusMessage:
    task_id: int
    status: str
    timestamp: float | None


def parse_message(body: str | bytes) -> StatusMessage | None:
    """A `task_status` message; None for JEDI's other messages (job_status); MalformedMessage else."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedMessage("not a JSON object")
    kind = data.get("msg_type")
    if kind != "task_status":
        if isinstance(kind, str) and kind:
            return None  # another kind of JEDI message on the same destination
        raise MalformedMessage("no msg_type")
    task_id, status, timestamp = data.get("taskid"), data.get("status"), data.get("timestamp")
    if isinstance(task_id, str) and task_id.isdigit():
        task_id = int(task_id)
    if not isinstance(task_id, int) or isinstance(task_id, bool) or task_id <= 0:
        raise MalformedMessage(f"taskid is not a task id: {task_id!r}")
    if not isinstance(status, str) or not status:
        raise MalformedMessage(f"status is not a status: {status!r}")
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        timestamp = None
    return StatusMessage(task_id, status, timestamp)


class Hints:
    """PanDA task ids named by messages, waiting for their refresh (drained by one job)."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._lock = threading.Lock()

    def add(self, task_id: int) -> None:
        with self._lock:
            self._ids.add(task_id)

    def drain(self) -> set[int]:
        with self._lock:
            ids, self._ids = self._ids, set()
        return ids


class _Listener(stomp.ConnectionListener):
    def __init__(self, consumer: TaskStatusConsumer) -> None:
        self.consumer = consumer

    def on_message(self, frame: Any) -> None:
        try:
            message = parse_message(frame.body)
        except MalformedMessage as exc:
            log.warning(
                "task-status queue: malformed message acknowledged and dropped (%s): %.200r", exc, frame.body
            )
            message = None
        try:
            if message is not None:
                self.consumer.on_hint(message.task_id)
        finally:  # acknowledged whatever happened: a message must never block the destination
            self.consumer.ack(frame)

    def on_error(self, frame: Any) -> None:
        log.warning(
            "task-status queue: the broker reports an error: %.300s", frame.headers.get("message", frame.body)
        )

    def on_disconnected(self) -> None:
        self.consumer.connected.clear()


class TaskStatusConsumer:
    """Subscribes to `settings.destination` and calls `on_hint(panda task id)` per status message.

    Starts no thread of its own: the `task-status-queue` job calls `keep_connected` every second,
    which (re)connects after 1, 2, 4 … s, at most `reconnect_max_s`; stomp.py's receiver thread
    delivers the messages. `connected` is set while subscribed.
    """

    def __init__(self, settings: QueueSettings, on_hint: Callable[[int], None]) -> None:
        self.settings = settings
        self.on_hint = on_hint
        self.connected = threading.Event()
        self._stopping = threading.Event()
        self._connection: stomp.Connection12 | None = None
        self._delay = 1.0
        self._next_attempt = 0.0  # time.monotonic() of the next connection attempt
        self.connects = 0  # successful connections so far (the first one and every reconnection)

    def keep_connected(self) -> None:
        """Connect unless connected, stopped or backing off after a failed attempt."""
        if self._stopping.is_set() or self.connected.is_set() or time.monotonic() < self._next_attempt:
            return
        if self._connection is not None:  # the broker or the network dropped us
            log.warning("task-status queue: connection lost; reconnecting")
            self._close()
        try:
            self._connect()
        except (StompException, OSError) as exc:
            log.warning("task-status queue: cannot connect to %s:%s (%s); again in %.0f s",
                        self.settings.host, self.settings.port, exc, self._delay)  # fmt: skip
            self._next_attempt = time.monotonic() + self._delay
            self._delay = min(self._delay * 2, self.settings.reconnect_max_s)
        else:
            self._delay = 1.0

    def stop(self) -> None:
        self._stopping.set()
        self._close()

    def ack(self, frame: Any) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            connection.ack(frame.headers["ack"])
        except (StompException, OSError, KeyError) as exc:  # the broker redelivers it after a reconnection
            log.warning("task-status queue: could not acknowledge a message: %s", exc)

    def _connect(self) -> None:
        s = self.settings
        connection = stomp.Connection12(
            [(s.host, s.port)], heartbeats=(10_000, 10_000), vhost=s.vhost, reconnect_attempts_max=1
        )
        if s.use_ssl:
            connection.set_ssl([(s.host, s.port)])
        connection.set_listener("panel", _Listener(self))
        self._connection = connection
        try:
            connection.connect(s.user, s.password, wait=True)
            # One unacknowledged message at a time (RabbitMQ's prefetch-count; other brokers ignore it).
            connection.subscribe(
                s.destination, id=SUBSCRIPTION_ID, ack="client-individual", headers={"prefetch-count": "1"}
            )
        except BaseException:
            self._close()
            raise
        self.connects += 1
        self.connected.set()
        log.info("task-status queue: subscribed to %s on %s:%s", s.destination, s.host, s.port)

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_connected():
            with contextlib.suppress(StompException, OSError):  # it is going away anyway
                connection.disconnect()
