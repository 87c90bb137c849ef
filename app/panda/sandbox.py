"""Sandbox mode: with no PanDA URL configured, `serve` runs the PanDA simulator (`pandasim`) in-process."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization

from app.panda.services import SANDBOX_URL_KEY as URL_KEY  # read by panda_url
from app.tokens.sandbox import DEFAULT_AUDIENCE, EXTENSION, LOCAL_AUDIENCE  # read by the token minting
from pandasim import RunningServer, SimApp, SimConfig, serve_in_thread
from pandasim.issuer import SimIssuer

__all__ = ["EXTENSION", "URL_KEY", "attach_sandbox", "handover", "sandbox_config", "start_sandbox", "take_handover"]


def sandbox_config(settings: Any) -> SimConfig:
    """SimConfig from the panel's Settings (`panda.vo`, `panda.role`, `panda.sim_*`).

    With SPD-IAM configured the simulator trusts it as PanDA would (`iam.issuer`, `iam.client_id`,
    like `panda-sim --issuer-url --client-id`), so IAM users' own tokens reach it; its embedded
    issuer still signs the sandbox tokens of local accounts, for their own audience.
    """
    panda, iam = settings.panda, settings.iam
    trust = (
        {"issuer_url": iam.issuer, "client_ids": (iam.client_id,), "local_client_ids": (LOCAL_AUDIENCE,)}
        if iam.enabled
        else {"client_ids": (DEFAULT_AUDIENCE,)}
    )
    return SimConfig(
        seed=panda.sim_seed,
        time_scale=panda.sim_time_scale,
        version=panda.sim_version,
        state_path=_state_path(settings),
        vo=panda.vo,
        roles=(panda.role,) if panda.role else (),
        **trust,
        # With the task-status queue on, the simulated JEDI publishes where the panel listens.
        mq_url=_broker_url(settings.queue) if settings.queue.enabled else "",
        mq_destination=settings.queue.destination,
    )


def _broker_url(queue: Any) -> str:
    scheme = "stomp+ssl" if queue.use_ssl else "stomp"
    credentials = f"{quote(queue.user, safe='')}:{quote(queue.password, safe='')}"
    return f"{scheme}://{credentials}@{queue.host}:{queue.port}/{quote(queue.vhost.lstrip('/') or '', safe='')}"


def _state_path(settings: Any) -> str:
    """The simulator's SQLite file (relative paths are in the instance folder); "" keeps it in memory."""
    configured = settings.panda.sim_state_path
    if configured in ("", ":memory:"):
        return ""
    path = Path(configured)
    return str(path if path.is_absolute() else Path(settings.instance_dir) / path)


def start_sandbox(settings: Any, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start the simulator with its embedded issuer on a loopback port; returns the server
    (`.url`, `.app` the SimApp, `.stop()`)."""
    sim = SimApp(sandbox_config(settings))
    return serve_in_thread(sim, host=host, port=port)


def attach_sandbox(flask_app: Any, running: RunningServer) -> None:
    """Make the running simulator known to the panel (client URL and sandbox token minting)."""
    flask_app.extensions[EXTENSION] = running.app
    flask_app.config[URL_KEY] = running.url


def handover(flask_app: Any) -> dict[str, Any] | None:
    """What a worker process of `serve --processes N` (app/workers.py) needs of the simulator this
    process runs: its URL, and its embedded issuer's key, to mint sandbox tokens as this process
    does. A secret: it goes over the workers' channel only. None: no simulator runs here."""
    sim = flask_app.extensions.get(EXTENSION)
    if sim is None:
        return None
    issuer = sim.issuer
    key = None
    if issuer is not None:
        pem = issuer.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key = {"url": issuer.issuer_url, "kid": issuer.kid, "pem": pem.decode()}
    return {
        "url": flask_app.config[URL_KEY],
        "issuer": key,
        "client_ids": list(sim.config.client_ids),
        "local_client_ids": list(sim.config.local_client_ids),
    }


def take_handover(flask_app: Any, data: dict[str, Any]) -> None:
    """In a worker process: the main process's simulator, as `handover` described it, becomes this
    panel's PanDA (its URL) and sandbox issuer (the same key and key id)."""
    key = data["issuer"]
    issuer = None
    if key is not None:
        private_key = serialization.load_pem_private_key(key["pem"].encode(), password=None)
        issuer = SimIssuer(key["url"], private_key=private_key, kid=key["kid"])  # type: ignore[arg-type]
    audiences = SimpleNamespace(client_ids=tuple(data["client_ids"]), local_client_ids=tuple(data["local_client_ids"]))
    flask_app.extensions[EXTENSION] = SimpleNamespace(issuer=issuer, config=audiences)
    flask_app.config[URL_KEY] = data["url"]
