"""`prodpanel panda-sim`: the simulator standalone, with its issuer and admin endpoints."""

from __future__ import annotations

import json
import signal
import ssl
import sys

import click

from .config import VERSIONS, Faults, SimConfig


@click.command("panda-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=25443, show_default=True, type=int, help="Port (0 = any free port).")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed for lifecycles, sizes and faults.")
@click.option(
    "--time-scale", default=60.0, show_default=True, type=float, help="Simulated seconds per real second."
)
@click.option(
    "--version", "version", default="1.0", show_default=True, type=click.Choice(VERSIONS),
    help="The panda-server emulated: 1.0 (API v1; legacy methods forbidden) or 0.8 (legacy API only).",
)  # fmt: skip
@click.option("--vo", default="spd", show_default=True)
@click.option(
    "--client-id",
    "client_ids",
    multiple=True,
    default=("prodpanel",),
    show_default=True,
    help="Accepted token audiences.",
)
@click.option(
    "--issuer-url", default="", help="External OIDC issuer (default: the embedded one under /oidc)."
)
@click.option("--tls-cert", default="", help="Serve HTTPS with this certificate chain (PEM; with --tls-key).")
@click.option("--tls-key", default="", help="The private key of --tls-cert (PEM).")
@click.option("--ca-bundle", default="", help="CA file trusted when fetching the OIDC issuer's keys.")
@click.option("--state", "state_path", default="", help="SQLite file for the state (default: memory).")
@click.option(
    "--faults", "faults_json", default="", help='Fault injection as JSON, e.g. {"error_rate": 0.1}.'
)
@click.option(
    "--mq-url",
    default="",
    help="Publish JEDI's task-status messages to this STOMP broker: stomp://user:password@host:port.",
)
@click.option(
    "--mq-destination", default="/topic/jedi_taskstatus", show_default=True, help="Where to publish them."
)
def panda_sim(
    host, port, seed, time_scale, version, vo, client_ids, issuer_url, tls_cert, tls_key, ca_bundle,
    state_path, faults_json, mq_url, mq_destination,
) -> None:  # fmt: skip
    """Run the PanDA simulator (one server version, JEDI lifecycle, OIDC issuer) until Ctrl-C."""
    from . import create_simulator, serve_in_thread

    faults = Faults.from_dict(json.loads(faults_json)) if faults_json else Faults()
    config = SimConfig(
        seed=seed, time_scale=time_scale, version=version, vo=vo, client_ids=tuple(client_ids),
        issuer_url=issuer_url, ca_bundle=ca_bundle, state_path=state_path, faults=faults, mq_url=mq_url,
        mq_destination=mq_destination,
    )  # fmt: skip
    tls = None
    if tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(tls_cert, tls_key or None)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)  # before the port opens: a caller may stop us at once
    running = serve_in_thread(create_simulator(config), host=host, port=port, ssl_context=tls)
    click.echo(f"PanDA simulator on {running.url}  (like panda-server {version}.x, seed {seed}, x{time_scale})")
    if not issuer_url:
        click.echo(f"OIDC issuer {running.url}/oidc ; mint tokens: POST {running.url}/oidc/mint")
        click.echo(
            '  {"sub": "alice", "name": "Alice", "groups": ["spd", "spd/production"], "aud": "'
            + client_ids[0]
            + '"}'
        )
    sys.stdout.flush()
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
        click.echo("PanDA simulator stopped.")
