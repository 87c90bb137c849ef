"""`prodpanel serve --processes N`: the main process and N-1 worker processes serve one listening socket.

The main process binds the socket, migrates, runs the background services (app/runtime.py) and serves
requests too. A worker is a fresh interpreter of the same program (`prodpanel serve-worker`: Python,
or the PyInstaller binary, whose sys.executable is the binary itself), not a fork of a process that
already runs threads; it inherits the socket, serves it with waitress and starts no background service.

Each worker has a channel to the main process, a socketpair:
- at start the main process sends one JSON line: what the worker cannot read from the instance folder
  (the sandbox simulators' URLs, and the sandbox issuer's key to mint sandbox tokens as the main does);
- then the worker sends a line per `app.scheduler.wake(job)` its requests ask for (a launch now, a bulk
  action): the main process's scheduler runs the job at once, as for its own requests;
- end of file says that the other side ended. A worker whose main process ended (stopped or killed)
  stops. The main process logs a worker that ended and starts another in its place, unless the workers
  of that place ended within MIN_LIFE_S of their start QUICK_DEATHS times in a row (they cannot start:
  a broken install or configuration): `serve` then stops with an error, for the operator or the
  service manager to see.
Both sides watch their end in waitress's own loop (a dispatcher in its socket map): no thread is added.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from waitress import wasyncore
from waitress.server import BaseWSGIServer

from app import scheduler
from app.panda import sandbox as panda_sandbox
from app.paths import is_frozen
from app.prodrequests.current import SANDBOX_URL_KEY as REQUESTS_SANDBOX_URL_KEY

log = logging.getLogger(__name__)

MIN_LIFE_S = 10.0  # a worker that ends sooner after its start counts as one that could not start
QUICK_DEATHS = 3  # so many in a row in one place: serve stops
STOP_WAIT_S = 5.0  # how long the main process waits for its workers to end before killing them
SocketMap = dict[int, Any]


class Channel(wasyncore.dispatcher):
    """One end of a main–worker channel, in a waitress socket map: each line received goes to
    `on_line`, the end of file to `on_end`."""

    def __init__(
        self, sock: socket.socket, socket_map: SocketMap, on_line: Callable[[str], None], on_end: Callable[[], None]
    ) -> None:
        super().__init__(sock, socket_map)
        self._received = b""
        self._on_line, self._on_end = on_line, on_end
        self._send_lock = threading.Lock()

    def writable(self) -> bool:
        return False

    def handle_read(self) -> None:
        *lines, self._received = (self._received + self.recv(4096)).split(b"\n")  # b"": handle_close ran
        for line in lines:
            self._on_line(line.decode())

    def handle_close(self) -> None:
        self.close()
        self._on_end()

    def send_line(self, line: str) -> None:
        """Send one line (from any thread)."""
        with self._send_lock:
            self.socket.sendall(line.encode() + b"\n")


# ---- the main process ------------------------------------------------------------------------


@dataclass
class _Worker:
    process: subprocess.Popen
    channel: Channel
    started: float  # time.monotonic()
    quick_deaths: int  # of the workers before it in its place, in a row


class Workers:
    """The main process's workers: `start()` them once the background services run (their handover
    names the sandbox simulators), `stop()` them before the background services stop. `failed` once a
    worker could not start (serve then exits with an error)."""

    def __init__(self, app: Flask, count: int, threads: int, socket_map: SocketMap) -> None:
        self.app, self.count, self.threads, self.socket_map = app, count, threads, socket_map
        self.failed = False
        self._stopping = False
        self._workers: dict[int, _Worker] = {}  # slot (1..count) -> its current worker

    def start(self) -> None:
        for slot in range(1, self.count + 1):
            self._start(slot)

    def _listening(self) -> list[int]:
        """The descriptors of the listening sockets (one per address of [server] host)."""
        return [d.socket.fileno() for d in list(self.socket_map.values()) if isinstance(d, BaseWSGIServer)]

    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self._workers.values()]

    def _command(self, listening: list[int], channel_fd: int) -> list[str]:
        program = [sys.executable] if is_frozen() else [sys.executable, "-c", "from app.cli import main; main()"]
        instance = str(self.app.config["SETTINGS"].instance_dir)
        listen = [arg for fd in listening for arg in ("--listen-fd", str(fd))]
        return [*program, "--instance", instance, "serve-worker", "--threads", str(self.threads), *listen,
                "--channel-fd", str(channel_fd)]  # fmt: skip

    def _start(self, slot: int, quick_deaths: int = 0) -> None:
        ours, theirs = socket.socketpair()
        listening = self._listening()
        try:
            process = subprocess.Popen(self._command(listening, theirs.fileno()), pass_fds=(*listening, theirs.fileno()))
        finally:
            theirs.close()
        ours.sendall(json.dumps(handover(self.app)).encode() + b"\n")  # still blocking: before the dispatcher
        channel = Channel(ours, self.socket_map, on_line=scheduler.wake, on_end=lambda: self._ended(slot))
        self._workers[slot] = _Worker(process, channel, time.monotonic(), quick_deaths)
        log.info("worker process %d of %d started (pid %d)", slot, self.count, process.pid)

    def _ended(self, slot: int) -> None:
        worker = self._workers.pop(slot)
        if self._stopping:
            return
        code = _reap(worker.process, STOP_WAIT_S)
        lived = time.monotonic() - worker.started
        quick_deaths = worker.quick_deaths + 1 if lived < MIN_LIFE_S else 0
        if quick_deaths >= QUICK_DEATHS:
            log.error("worker process pid %d ended %.1f s after its start (exit code %s), the %d-th in a row "
                      "to end that soon: serve stops", worker.process.pid, lived, code, quick_deaths)  # fmt: skip
            self.failed = True
            raise SystemExit(1)  # ends waitress's loop in the main process, as SIGTERM does
        log.warning("worker process pid %d ended (exit code %s); starting another", worker.process.pid, code)
        self._start(slot, quick_deaths)

    def stop(self) -> None:
        """End the workers: their channel closes and they get SIGTERM (each finishes the requests in
        hand, as waitress does); one still running after STOP_WAIT_S is killed."""
        self._stopping = True
        workers = list(self._workers.values())
        for worker in workers:
            worker.channel.close()
            worker.process.terminate()
        deadline = time.monotonic() + STOP_WAIT_S
        for worker in workers:
            _reap(worker.process, max(0.0, deadline - time.monotonic()))


def _reap(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("worker process pid %d did not end; killed", process.pid)
        process.kill()
        return process.wait()


def handover(app: Flask) -> dict[str, Any]:
    """What the main process tells a worker at its start (a secret: the sandbox issuer's key)."""
    return {
        "panda_sandbox": panda_sandbox.handover(app),
        "requests_sandbox_url": app.config.get(REQUESTS_SANDBOX_URL_KEY),
    }


# ---- a worker process ------------------------------------------------------------------------


def serve_as_worker(
    app: Flask, listen_fds: list[int], channel_fd: int, make_server: Callable[[list[socket.socket], SocketMap], Any]
) -> None:
    """Serve the main process's sockets until SIGTERM or the main process's end. `make_server` builds
    the waitress server on the sockets, in the socket map given."""
    channel_socket = socket.socket(fileno=channel_fd)
    line = _read_line(channel_socket)
    if not line:  # the main process ended before it said anything
        return
    _take_handover(app, json.loads(line))
    socket_map: SocketMap = {}
    server = make_server([socket.socket(fileno=fd) for fd in listen_fds], socket_map)

    def main_ended() -> None:
        log.info("worker process: the main serve process ended; stopping")
        raise SystemExit(0)

    channel = Channel(channel_socket, socket_map, on_line=lambda line: None, on_end=main_ended)
    scheduler.forward_wakes(lambda name: _send_wake(channel, name))

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    # Ctrl-C on a terminal reaches every process of the group: the main process stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server.run()  # returns after SIGTERM or the main process's end
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        scheduler.forward_wakes(None)
        server.close()


def _send_wake(channel: Channel, name: str) -> None:
    try:
        channel.send_line(name)
    except OSError as exc:  # the main process is stopping: its periodic run, or the next start, sends it
        log.warning("worker process: could not wake background job %s in the main process: %s", name, exc)


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data


def _take_handover(app: Flask, data: dict[str, Any]) -> None:
    if data["panda_sandbox"] is not None:
        panda_sandbox.take_handover(app, data["panda_sandbox"])
    if data["requests_sandbox_url"]:
        app.config[REQUESTS_SANDBOX_URL_KEY] = data["requests_sandbox_url"]

