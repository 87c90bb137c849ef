"""reqsim: a simulator of spd-requests, the SPD production-requests service, for the panel's tests,
demo and sandbox mode. A product of its own: it imports nothing from `app`.

sim = create_simulator(ReqSimConfig(token="s3cret"))
running = serve_in_thread(sim)              # running.url, running.stop()
sim.set_faults(Faults(http_status=500, times=1))
sim.put({"id": 99, "title": "...", ...})    # add or replace a request (the service's own format)
"""

from .app import ReqSimApp
from .config import Faults, ReqSimConfig
from .server import RunningServer, serve_in_thread


def create_simulator(config: ReqSimConfig | None = None) -> ReqSimApp:
    """Build the WSGI application, loaded with the sample SPD requests."""
    return ReqSimApp(config or ReqSimConfig())


__all__ = ["Faults", "ReqSimApp", "ReqSimConfig", "RunningServer", "create_simulator", "serve_in_thread"]
