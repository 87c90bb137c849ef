"""Serving the simulator with werkzeug's threaded WSGI server in a daemon thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import ReqSimApp


class _Handler(WSGIRequestHandler):
    """One request per connection (`stop()` leaves no kept-alive connection answering), no access log."""

    protocol_version = "HTTP/1.0"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class RunningServer:
    """A simulator listening on `url`; `stop()` closes it."""

    url: str
    app: ReqSimApp
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout: float = 5.0) -> None:
        self._server.shutdown()
        self._thread.join(timeout)
        self._server.server_close()


def serve_in_thread(app: ReqSimApp, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve `app` on host:port (0 = a free port) in a daemon thread."""
    server = make_server(host, port, app, threaded=True, request_handler=_Handler)
    url = f"http://{host}:{server.server_port}"
    thread = threading.Thread(
        target=server.serve_forever, name=f"requests-sim:{server.server_port}", daemon=True
    )
    thread.start()
    return RunningServer(url=url, app=app, _server=server, _thread=thread)
