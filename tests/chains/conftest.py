"""Chain test helpers: a valid SIM → RECO chain definition, the chain form's POST data for it, and
the constraints' context with SPD's defaults (no app needed)."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import g

from app.chains.constraints import Context
from app.chains.specs import ChainDefinition
from app.tasks.naming import NamingRules
from app.tasks.specs import TaskDefinition
from tests.helpers import csrf_token
from tests.tasks.conftest import SIF, TAG, fake_panda, sim_definition  # noqa: F401 (fixtures)


def post(client, url, data, **kwargs):
    """POST with a valid CSRF token of the client's session (read from the chain list)."""
    g.pop("csrf_token", None)  # the app fixture's one app context would keep a stale token
    return client.post(url, data={"csrf_token": csrf_token(client, "/chains/"), **data}, **kwargs)


def reco_definition(number: int = 8, **changes: Any) -> TaskDefinition:
    values: dict[str, Any] = dict(
        step="RECO",
        task_name=f"PROD2025-{number:03d}.RECO",
        output_dataset=f"MC2025_S1.{TAG}.PROD2025-{number:03d}.RECO.1",
        total_events=None,
        events_per_job=None,
        files_per_job=1,
    )
    values.update(changes)
    return sim_definition(number, **values)


def chain_definition(number: int = 8, bunch_size: int = 3, **changes: Any) -> ChainDefinition:
    values: dict[str, Any] = dict(
        name=f"PROD2025-{number:03d}",
        processing_type="MC production",
        steps=(sim_definition(number, bunch_size=bunch_size), reco_definition(number, bunch_size=bunch_size)),
    )
    values.update(changes)
    return ChainDefinition(**values)


def ctx(**changes: Any) -> Context:
    values: dict[str, Any] = dict(
        rules=NamingRules(),
        kinds={"SIM": "generation", "RECO": "processing"},
        processing_types=("MC production", "reprocessing"),
        max_steps=10,
    )
    values.update(changes)
    return Context(**values)


def step(chain: ChainDefinition, position: int, **changes: Any) -> ChainDefinition:
    """`chain` with step `position` (1-based) changed."""
    steps = list(chain.steps)
    steps[position - 1] = dataclasses.replace(steps[position - 1], **changes)
    return chain.with_steps(steps)


def chain_form_data(
    chain: ChainDefinition, key: str = "", indexes: list[int] | None = None
) -> dict[str, str]:
    """The chain form's POST data for `chain`; step rows numbered by `indexes` (default 0, 1, …)."""
    data = {"name": chain.name, "processing_type": chain.processing_type}
    if chain.wait_for_parent_done:
        data["wait_for_parent_done"] = "y"
    if key:
        data["idempotency_key"] = key
    for index, d in zip(indexes or range(len(chain.steps)), chain.steps, strict=True):
        for name, value in dataclasses.asdict(d).items():
            if name in ("comment", "parent_task") or value is None or value == {} or value == "":
                continue
            if isinstance(value, bool):
                if value:
                    data[f"steps-{index}-{name}"] = "y"
                continue
            data[f"steps-{index}-{name}"] = str(value)
    return data


__all__ = ["SIF", "TAG", "chain_definition", "chain_form_data", "ctx", "post", "reco_definition", "step"]
