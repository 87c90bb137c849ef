"""Serving the simulator with waitress in a daemon thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from waitress import wasyncore
from waitress.server import create_server

from .app import SimApp


@dataclass
class RunningServer:
    """A simulator listening on `url`; `stop()` closes it."""

    url: str
    app: SimApp
    _server: object = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout: float = 5.0) -> None:
        server = self._server
        trigger = server.trigger

        def close_all() -> None:  # runs inside the server loop, so select() never sees a closed fd
            for channel in list(server._map.values()):
                if channel is trigger:
                    trigger.del_channel()  # out of the loop, but its pipe stays open (see below)
                elif channel is server:
                    wasyncore.dispatcher.close(server)  # the server's own close() also closes the trigger
                else:
                    channel.close()

        # This thunk may run before pull_trigger has written to the pipe, and workers still pull the
        # trigger after their last reply: closing the pipe in the thunk made those writes hit a closed
        # (or reused) file descriptor. It is closed once the loop and the workers are done.
        trigger.pull_trigger(close_all)
        self._thread.join(timeout)
        server.task_dispatcher.shutdown()
        trigger.close()


def serve_in_thread(
    sim_app: SimApp, host: str = "127.0.0.1", port: int = 0, threads: int = 8
) -> RunningServer:
    """Serve `sim_app` on host:port (0 = a free port) in a daemon thread; the embedded issuer
    then lives at `<url>/oidc`."""
    server = create_server(
        sim_app, host=host, port=port, threads=threads, ident="panda-sim", clear_untrusted_proxy_headers=True
    )
    url = f"http://{host}:{server.effective_port}"
    sim_app.set_base_url(url)
    thread = threading.Thread(target=server.run, name=f"panda-sim:{server.effective_port}", daemon=True)
    thread.start()
    return RunningServer(url=url, app=sim_app, _server=server, _thread=thread)
