"""The API as the `prodpanel` command line sees it: a remote panel over HTTP with a personal token,
or the local panel in-process (same instance folder, a named account). Both send the same requests
to /api/v1/, so the command line runs the same checks and services as the UI.

The remote panel is an outside system of its own, so this is the one place that calls it.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        try:
            body = jsonlib.loads(text) if text else None
        except ValueError:
            raise PanelError(status if status >= 400 else 0, {"detail": f"HTTP {status}: not JSON: {text[:200]}"}) from None
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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as an error: the token is never sent on to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class RemotePanel(Panel):
    """A panel over HTTP(S) with a personal token, through the standard library's client (the design
    keeps `requests` to the PanDA, IAM and requests-service clients)."""

    def __init__(self, url: str, token: str, timeout_s: float = 60.0) -> None:
        self.base = url.rstrip("/") + PREFIX
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        # No proxy: *_PROXY variables do not redirect calls that carry the token.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, *, json: Any = None, data: str | None = None,
             params: dict[str, Any] | None = None, content_type: str = "") -> Any:  # fmt: skip
        url = self.base + path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
        headers = dict(self.headers)
        body = None
        if json is not None:
            body, headers["Content-Type"] = jsonlib.dumps(json).encode(), "application/json"
        elif data is not None:
            body = data.encode()
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with self.opener.open(request, timeout=self.timeout_s) as reply:
                status, kind, raw = reply.status, reply.headers.get("Content-Type", ""), reply.read()
        except urllib.error.HTTPError as exc:  # an answer all the same: 3xx (not followed), 4xx, 5xx
            with exc:
                status, kind, raw = exc.code, exc.headers.get("Content-Type", ""), exc.read()
            if 300 <= status < 400:
                raise PanelError(status, {"detail": f"the panel redirected to {exc.headers.get('Location')}; "
                                                    "give the panel's own URL (https://…)"}) from None  # fmt: skip
        except TimeoutError:
            raise PanelError(0, {"detail": f"the panel at {self.base} did not answer within {self.timeout_s:.0f} s"}) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            reason = getattr(exc, "reason", None) or exc.__class__.__name__
            raise PanelError(0, {"detail": f"cannot reach the panel at {self.base}: {reason}"}) from None
        return _parse(status, kind, raw.decode("utf-8", "replace"))


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
