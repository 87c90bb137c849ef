"""The API as the `prodpanel` command line sees it: a remote panel over HTTP with a personal token,
or the local panel in-process (same instance folder, a named account). Both send the same requests
to /api/v1/, so the command line runs the same checks and services as the UI.

The remote panel is an outside system of its own, so this is the one place that calls it.
"""

from __future__ import annotations

import json as jsonlib
from typing import Any

import requests
from flask import Flask

PREFIX = "/api/v1"


class PanelError(Exception):
    """The panel refused or failed: the problem document's words, field by field; `status` 0 means
    the panel could not be reached."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status, self.problem = status, problem
        lines = [str(problem.get("detail") or problem.get("title") or f"HTTP {status}")]
        for error in problem.get("errors") or []:
            where = f"step {error['step']}, " if error.get("step") else ""
            lines.append(f"  {where}{error.get('field')}: {error.get('message')}")
        super().__init__("\n".join(lines))


def _parse(status: int, content_type: str, text: str) -> Any:
    if "json" in content_type:
        body = jsonlib.loads(text) if text else None
        if status >= 400:
            raise PanelError(status, body if isinstance(body, dict) else {"detail": text[:500]})
        return body
    if status >= 400:
        raise PanelError(status, {"detail": f"HTTP {status}: {text[:300]}"})
    return text


class Panel:
    """What the commands call: ``call(method, path, …)`` → the reply's JSON (or text)."""

    def call(self, method: str, path: str, *, json: Any = None, data: str | None = None,
             params: dict[str, Any] | None = None, content_type: str = "") -> Any:  # fmt: skip
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""


class RemotePanel(Panel):
    def __init__(self, url: str, token: str, timeout_s: float = 60.0) -> None:
        self.base = url.rstrip("/") + PREFIX
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self.session.trust_env = False  # *_PROXY variables do not redirect calls that carry the token
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, *, json: Any = None, data: str | None = None,
             params: dict[str, Any] | None = None, content_type: str = "") -> Any:  # fmt: skip
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            reply = self.session.request(method, self.base + path, json=json, data=data, params=params,
                                         headers=headers, timeout=self.timeout_s, allow_redirects=False)  # fmt: skip
        except requests.RequestException as exc:
            raise PanelError(
                0, {"detail": f"cannot reach the panel at {self.base}: {exc.__class__.__name__}"}
            ) from None
        return _parse(reply.status_code, reply.headers.get("Content-Type", ""), reply.text)

    def close(self) -> None:
        self.session.close()


class LocalPanel(Panel):
    """The panel of this instance folder, called in-process as the account `username` (whoever can
    run commands on the instance folder can read its database anyway)."""

    def __init__(self, app: Flask, username: str) -> None:
        from app.api.auth import LOCAL_USER_KEY  # here: `prodpanel --help` imports this module

        self.client = app.test_client()
        self.environ = {LOCAL_USER_KEY: username}

    def call(self, method: str, path: str, *, json: Any = None, data: str | None = None,
             params: dict[str, Any] | None = None, content_type: str = "") -> Any:  # fmt: skip
        kwargs: dict[str, Any] = {"json": json} if json is not None else {"data": data}
        if content_type:
            kwargs["content_type"] = content_type
        reply = self.client.open(
            PREFIX + path, method=method, query_string=params, environ_base=self.environ, **kwargs
        )
        return _parse(reply.status_code, reply.headers.get("Content-Type", ""), reply.get_data(as_text=True))
