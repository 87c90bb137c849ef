"""`prodpanel requests-sim`: the requests-service simulator standalone."""

from __future__ import annotations

import json
import signal
import sys

import click

from .config import Faults, ReqSimConfig


@click.command("requests-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0 = any free port).")
@click.option("--token", default="", help='Token callers must send as "Authorization: Token <token>".')
@click.option("--page-size", default=20, show_default=True, type=int, help="Requests per page of the list.")
@click.option(
    "--faults", "faults_json", default="", help='Fault injection as JSON, e.g. {"latency_ms": 500}.'
)
def requests_sim(host: str, port: int, token: str, page_size: int, faults_json: str) -> None:
    """Run the spd-requests simulator (sample SPD production requests) until Ctrl-C."""
    from . import create_simulator, serve_in_thread

    try:
        faults = Faults.from_dict(json.loads(faults_json)) if faults_json else Faults()
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from exc

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)  # before the port opens: a caller may stop us at once
    sim = create_simulator(ReqSimConfig(token=token, page_size=page_size, faults=faults))
    running = serve_in_thread(sim, host=host, port=port)
    try:
        click.echo(f"requests simulator on {running.url}  ({len(sim.requests)} sample requests)")
        click.echo(
            f'  configure the panel: [requests] url = "{running.url}"' + (' token = "…"' if token else "")
        )
        click.echo(
            f'  faults: curl -X POST {running.url}/_sim/faults -d \'{{"http_status": 500, "times": 1}}\''
        )
        sys.stdout.flush()
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
        click.echo("requests simulator stopped.")
