"""A panel's dispatcher in a process of its own: a second panel instance, or a panel to SIGKILL.

    python -m tests.launches.panel_process INSTANCE_DIR SIM_URL [--interval S] [--deadline S]

Settings come from INSTANCE_DIR (config.toml and PRODPANEL_* variables, as `serve` reads them). The
simulator runs in the test's (or benchmark's) process: the process sends to it as the sandbox panel
does, and the sandbox tokens of local accounts are minted by the simulator's issuer over HTTP.
It runs dispatch cycles as the scheduler's dispatch job does (`dispatcher.dispatch_due`, which also
settles unanswered submits), until no launch is left pending, sending or unknown, then exits 0.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests
from sqlalchemy import func, select

from app import create_app
from app.config import load_settings
from app.extensions import db
from app.launches import dispatcher
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.panda.calllog import flush_call_log
from app.panda.sandbox import attach_sandbox

OPEN = (LaunchStatus.PENDING, LaunchStatus.SENDING, LaunchStatus.UNKNOWN)


class HttpIssuer:
    """The simulator's embedded issuer, reached over HTTP (`<sim>/oidc`): mints the sandbox tokens."""

    def __init__(self, sim_url: str) -> None:
        self.issuer_url = f"{sim_url}/oidc"
        self.kid = requests.get(f"{self.issuer_url}/jwk", timeout=5).json()["keys"][0]["kid"]

    def mint_id_token(self, sub: str, name: str | None, groups: Any, aud: str, lifetime_s: int = 3600,
                      **claims: Any) -> str:  # fmt: skip
        body = {"sub": sub, "name": name, "groups": list(groups or []), "aud": aud, "lifetime_s": lifetime_s,
                "preferred_username": claims.get("preferred_username"), "email": claims.get("email")}  # fmt: skip
        reply = requests.post(f"{self.issuer_url}/mint", json=body, timeout=5)
        reply.raise_for_status()
        return reply.json()["id_token"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("instance")
    parser.add_argument("sim_url")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between dispatch cycles")
    parser.add_argument("--deadline", type=float, default=120.0, help="give up after this many seconds")
    args = parser.parse_args()
    app = create_app(load_settings(Path(args.instance)))
    sim = SimpleNamespace(issuer=HttpIssuer(args.sim_url), config=SimpleNamespace(client_ids=("prodpanel",)))
    attach_sandbox(app, SimpleNamespace(url=args.sim_url, app=sim))  # type: ignore[arg-type]
    deadline = time.monotonic() + args.deadline
    with app.app_context():
        while time.monotonic() < deadline:
            dispatcher.dispatch_due(limit=1000)
            db.session.remove()
            if not db.session.scalar(select(func.count()).select_from(Launch).where(Launch.status.in_(OPEN))):
                break
            time.sleep(args.interval)  # the dispatch job's interval
        flush_call_log(10)
    raise SystemExit(0 if time.monotonic() < deadline else 1)


if __name__ == "__main__":
    main()
