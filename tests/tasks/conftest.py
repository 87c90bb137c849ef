"""Fixtures for the tasks tests: a valid SIM definition, the fake PanDA client for unit tests and a
panel bound to a served simulator (sandbox_app)."""

from __future__ import annotations

import dataclasses
import shutil
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, g

from app import create_app
from app.config import Settings
from app.panda.sandbox import attach_sandbox
from app.tasks.specs import TaskDefinition
from tests.fakes.panda import FakePanda, install
from tests.helpers import csrf_token

EXEC = "/cvmfs/spd.jinr.ru/production/MC/minbias-P8-spdroot417-dev.10GeV.V01"
SIF = "/cvmfs/spd.jinr.ru/images/spdroot-dev-4.1.7.sif"
TAG = "minbias-P8-spdroot417-dev.10GeV"


def sim_definition(number: int = 8, **changes: Any) -> TaskDefinition:
    values: dict[str, Any] = dict(
        step="SIM",
        task_name=f"PROD2025-{number:03d}.SIM",
        bunch_size=1,
        output_dataset=f"MC2025_S1.{TAG}.PROD2025-{number:03d}.SIM.1",
        total_events=10000,
        events_per_job=1000,
        cloud="JINR",
        data_disk="JINR_DATADISK",
        request_id=42,
        skip_scout=True,
        initial_offset=0,
        exec_path=EXEC,
        container_path=SIF,
    )
    values.update(changes)
    return TaskDefinition(**values)


def sandbox_app(settings: Settings, migrated_sqlite: Path, sim) -> Flask:
    """The panel on a copy of the migrated SQLite database, in sandbox mode bound to the served
    simulator `sim` (its SimApp, as the `sim` fixtures yield)."""
    shutil.copy(migrated_sqlite, settings.instance_dir / "prodpanel.sqlite3")
    application = create_app(settings)
    attach_sandbox(application, SimpleNamespace(url=sim.url, app=sim))
    return application


def post(client, url, data, **kwargs):
    """POST a task form with a valid CSRF token, read from the task list."""
    # The app fixture keeps one app context across requests, so Flask-WTF's per-context token cache
    # (g.csrf_token) would outlive the session that login regenerated: drop it before reading a token.
    g.pop("csrf_token", None)
    return client.post(url, data={"csrf_token": csrf_token(client, "/tasks/"), **data}, **kwargs)


def form_data(definition: TaskDefinition, key: str = "") -> dict[str, str]:
    data: dict[str, str] = {}
    for name, value in dataclasses.asdict(definition).items():
        if value is None or value == {} or value == "":
            continue
        if isinstance(value, bool):
            if value:
                data[name] = "y"
            continue
        data[name] = str(value)
    if key:
        data["idempotency_key"] = key
    return data


@pytest.fixture
def fake_panda(app) -> FakePanda:
    """The app's PanDA clients are this scripted fake (tests/fakes/panda.py)."""
    return install(app, FakePanda())


class _FormValues(HTMLParser):
    """The values a browser would submit from one <form> (inputs, checked boxes, selects, textareas)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.values = form_id, False, {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or "name" not in a and tag != "option":
            return
        if tag == "input" and (a.get("type") not in ("checkbox", "radio") or "checked" in a):
            self.values[a["name"]] = a.get("value") or ""
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select and ("selected" in a or self._select not in self.values):
            self.values[self._select] = a.get("value") or ""
        elif tag == "textarea":
            self._textarea = a["name"]
            self.values[a["name"]] = ""

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_values(html: str, form_id: str = "task-form") -> dict[str, str]:
    """Submit a prefilled form as it is: the name → value pairs of ``<form id=form_id>``."""
    parser = _FormValues(form_id)
    parser.feed(html)
    values = {k: unescape(v).lstrip("\r\n") for k, v in parser.values.items()}
    values.pop("csrf_token", None)
    return values
