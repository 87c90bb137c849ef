"""Serving the simulator with werkzeug's threaded WSGI server in a daemon thread."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import SimApp


class _Handler(WSGIRequestHandler):
    """One request per connection (so `stop()` leaves no kept-alive connection still answering),
    and no access log line per request: the simulator answers thousands of calls in a test run."""

    protocol_version = "HTTP/1.0"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class RunningServer:
    """A simulator listening on `url`; `stop()` closes it."""

    url: str
    app: SimApp
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting connections and close the listening socket (replies in flight finish)."""
        self._server.shutdown()
        self._thread.join(timeout)
        self._server.server_close()
        self.app.stop_jedi()


def serve_in_thread(
    sim_app: SimApp, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
) -> RunningServer:
    """Serve `sim_app` on host:port (0 = a free port) in a daemon thread, over HTTPS when an
    `ssl_context` (server side, with its certificate chain) is given; the embedded issuer then lives
    at `<url>/oidc`."""
    server = make_server(host, port, sim_app, threaded=True, request_handler=_Handler, ssl_context=ssl_context)
    url = f"{'https' if ssl_context else 'http'}://{host}:{server.server_port}"
    sim_app.set_base_url(url)
    thread = threading.Thread(target=server.serve_forever, name=f"panda-sim:{server.server_port}", daemon=True)
    thread.start()
    sim_app.start_jedi()
    return RunningServer(url=url, app=sim_app, _server=server, _thread=thread)
