"""Real panels for the launch proofs: `prodpanel serve` processes (the CLI entry, its scheduler and
jobs) on an instance folder the test prepared, talking to a PanDA simulator the test runs.

The simulator is the panel's configured PanDA (`[panda] url`), as a production panel's PanDA would
be; its embedded issuer plays SPD-IAM: the launches' owner gets a linked token it signed
(`link_token`), which the served panel's token vault hands to PanDA like any linked IAM token.
Used by tests/launches/test_proofs.py and benchmarks/kill_trials.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.auth.models import User
from app.extensions import db
from app.tokens import vault
from app.tokens.sandbox import sandbox_groups

PRODPANEL = Path(sys.executable).with_name("prodpanel")  # the console script of this environment
AUDIENCE = "prodpanel"  # the client id the simulators of the proofs trust


def write_config(instance: Path, sim_url: str, database_url: str = "", **sections: dict[str, Any]) -> None:
    """The served panels' config.toml: PanDA is the simulator at `sim_url`, background jobs run
    often (dispatch every second, look-ups every 5 s), the sync is off (no PanDA calls beyond the
    launches'); `sections` add or override keys, e.g. panda={"read_timeout_s": 1.0}."""
    wanted: dict[str, dict[str, Any]] = {
        "panda": {"url": sim_url, "transport": "v1"},
        "scheduler": {"dispatch_interval_s": 1.0, "reconcile_interval_s": 5.0},
        "sync": {"enabled": False},
    }
    for name, values in sections.items():
        wanted[name] = {**wanted.get(name, {}), **values}
    lines = [f"database_url = {_toml(database_url)}"]
    for name, values in wanted.items():
        lines += [f"[{name}]", *(f"{key} = {_toml(value)}" for key, value in values.items())]
    (instance / "config.toml").write_text("\n".join(lines) + "\n")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def link_token(user: User, sim: Any, lifetime_s: int = 4 * 3600) -> None:
    """Store, as `user`'s linked IAM grant, an ID token signed by the simulator's issuer (groups as
    IAM gives the user's role). Needs an app context on the served panels' database; commits."""
    issuer = sim.issuer
    token = issuer.mint_id_token(
        sub=user.sub or user.username, name=user.name, groups=sandbox_groups(user), aud=AUDIENCE,
        lifetime_s=lifetime_s, preferred_username=user.username, email=user.email or None,
    )  # fmt: skip
    vault.store_tokens(
        user, "device-link", {"id_token": token}, issuer=issuer.issuer_url + "/", client_id=AUDIENCE
    )
    db.session.commit()


def serve(instance: Path, name: str = "serve", port: int = 0) -> subprocess.Popen:
    """`prodpanel serve` on 127.0.0.1:`port` (0: a free one) for this instance folder; what it prints
    goes to `<instance>/<name>.log` (a pipe nobody reads while it runs could fill up and stall it)."""
    env = {**os.environ, "PRODPANEL_INSTANCE": str(instance)}
    env.pop("PRODPANEL_DATABASE_URL", None)  # the instance's config.toml decides
    with open(instance / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            [str(PRODPANEL), "--instance", str(instance), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    process.log_path = instance / f"{name}.log"  # type: ignore[attr-defined]
    return process


def stop(process: subprocess.Popen, *, kill: bool = False, timeout: float = 30) -> str:
    """SIGKILL (`kill`) or SIGTERM the served panel and wait for it; returns what it printed."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:  # never left running after the test: killed, and the test fails
        process.kill()
        process.wait(10)
        raise
    return Path(process.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
