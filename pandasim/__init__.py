"""pandasim: a faithful PanDA server + JEDI simulator (API v1 and legacy, JEDI lifecycle, OIDC issuer)
for the panel's tests, demo and benchmarks. A product of its own: it imports nothing from `app`.

sim = create_simulator(SimConfig(seed=7, time_scale=0))
running = serve_in_thread(sim)            # running.url, running.stop()
token = sim.mint_token("alice", "Alice Manager", ["spd", "spd/production"])
sim.advance(600)                          # move the simulated clock
"""

from .app import SimApp
from .config import Faults, SimConfig, Timings
from .issuer import SimIssuer
from .jedi import StateError
from .server import RunningServer, serve_in_thread


def create_simulator(config: SimConfig | None = None) -> SimApp:
    """Build the WSGI application (state in memory or in `config.state_path`)."""
    return SimApp(config or SimConfig())


__all__ = [
    "Faults",
    "RunningServer",
    "SimApp",
    "SimConfig",
    "SimIssuer",
    "StateError",
    "Timings",
    "create_simulator",
    "serve_in_thread",
]
