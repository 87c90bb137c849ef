"""JEDI's task-status messages: published to a STOMP broker when the simulator is given one.

As JEDI's `push_task_status_message`: `{"msg_type": "task_status", "taskid", "status", "timestamp"}`
as a JSON body without extra headers, for tasks whose splitRule has PC=1, sent after the status
change is committed; a broker failure is logged and swallowed (the task's status is not affected).
With a broker the simulated JEDI also runs by itself (`JediTicker`): statuses change, and messages
go out, without anyone calling the API.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)


class StatusPublisher:
    """Sends status messages to `destination` on the broker of `url` (stomp://user:password@host:port
    or stomp+ssl:// for TLS, with an optional /<virtual host>, default /); connects on first use."""

    def __init__(self, url: str, destination: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("stomp", "stomp+ssl") or not parts.hostname:
            raise ValueError(f"the broker URL must be stomp://user:password@host:port, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 61613
        self.user, self.password = unquote(parts.username or ""), unquote(parts.password or "")
        self.use_ssl = parts.scheme == "stomp+ssl"
        self.vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        self.destination = destination
        self.sent = 0
        self._connection: Any = None
        self._lock = threading.Lock()

    def publish(self, messages: list[dict[str, Any]]) -> None:
        import stomp
        from stomp.exception import StompException

        with self._lock:
            try:
                connection = self._connect(stomp)
                for message in messages:
                    connection.send(self.destination, json.dumps(message))
                    self.sent += 1
            except (StompException, OSError) as exc:
                log.warning("task-status messages not sent to %s:%s: %s", self.host, self.port, exc)
                self._connection = None

    def _connect(self, stomp: Any) -> Any:
        if self._connection is None or not self._connection.is_connected():
            connection = stomp.Connection12([(self.host, self.port)], vhost=self.vhost, reconnect_attempts_max=1)
            if self.use_ssl:
                connection.set_ssl([(self.host, self.port)])
            connection.connect(self.user, self.password, wait=True)
            self._connection = connection
        return self._connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection.is_connected():
                self._connection.disconnect()
            self._connection = None


class JediTicker:
    """Applies due transitions every `interval_s` real seconds, as JEDI's daemons would."""

    def __init__(self, tick: Callable[[], Any], interval_s: float) -> None:
        self._tick, self._interval = tick, interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="panda-sim-jedi", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self._tick()
            except Exception:  # a failed tick must not end the simulated JEDI
                log.exception("simulated JEDI tick failed")
