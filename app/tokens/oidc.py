"""The token vault's calls to the OpenID provider (IAM): discovery, refresh, exchange, device flow.

The one place in app/tokens/ that speaks HTTP. Token values never reach a log line or an exception
message from here: errors carry only the provider's `error` code and description.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
_DISCOVERY_TTL_S = 3600
# What a failed exchange with the provider raises (authlib's login flow uses requests too): the
# login views catch these without importing an HTTP library themselves.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (requests.RequestException, ValueError)


class OidcError(Exception):
    """The provider refused a request (`error` is its OAuth error code) or could not be reached."""

    def __init__(self, error: str, description: str = "", status: int | None = None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status = status

    @property
    def transient(self) -> bool:
        """The provider did not answer, or answered with a server error: it may work later."""
        return self.error == "unreachable" or (self.status is not None and self.status >= 500)


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str = ""  # "" = public client (client_id in the form body)


_discovery_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_discovery_lock = threading.Lock()


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def join_scopes(*scopes: str) -> str:
    """Space-separated scope lists joined into one, each scope once, in order."""
    return " ".join(dict.fromkeys(" ".join(scopes).split()))


def discovery(issuer: str, timeout: float) -> dict[str, Any]:
    """The provider's metadata; its `issuer` must equal the configured issuer exactly (mix-up defence)."""
    with _discovery_lock:
        cached = _discovery_cache.get(issuer)
        if cached and time.monotonic() - cached[0] < _DISCOVERY_TTL_S:
            return cached[1]
    try:
        resp = requests.get(discovery_url(issuer), timeout=timeout, headers={"Accept": "application/json"})
        resp.raise_for_status()
        meta = resp.json()
    except (requests.RequestException, ValueError) as exc:
        raise OidcError(
            "unreachable", f"cannot read the provider's discovery document: {type(exc).__name__}"
        ) from exc
    if meta.get("issuer") != issuer:
        raise OidcError(
            "issuer_mismatch", f"discovery says issuer {meta.get('issuer')!r}, configured {issuer!r}"
        )
    with _discovery_lock:
        _discovery_cache[issuer] = (time.monotonic(), meta)
    return meta


def _post(url: str, data: dict[str, str], client: ClientCredentials, timeout: float) -> dict[str, Any]:
    auth = None
    if client.client_secret:
        auth = (client.client_id, client.client_secret)
    else:
        data = {**data, "client_id": client.client_id}
    try:
        resp = requests.post(
            url, data=data, auth=auth, timeout=timeout, headers={"Accept": "application/json"}
        )
    except requests.RequestException as exc:
        raise OidcError("unreachable", f"the provider did not answer: {type(exc).__name__}") from exc
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code >= 400 or "error" in body:
        raise OidcError(
            str(body.get("error") or f"http_{resp.status_code}"),
            str(body.get("error_description", ""))[:300],
            resp.status_code,
        )
    return body


def refresh(
    meta: dict[str, Any], client: ClientCredentials, refresh_token: str, timeout: float
) -> dict[str, Any]:
    # No `scope`: re-sending the login scopes can make the provider answer invalid_scope.
    return _post(
        meta["token_endpoint"],
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        client,
        timeout,
    )


def exchange(
    meta: dict[str, Any],
    client: ClientCredentials,
    access_token: str,
    audience: str,
    scope: str,
    timeout: float,
) -> dict[str, Any]:
    """RFC 8693 token exchange (impersonation): a token for `audience` from the user's access token."""
    data = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": access_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": audience,
    }
    if scope:
        data["scope"] = scope
    return _post(meta["token_endpoint"], data, client, timeout)


def device_authorization(
    meta: dict[str, Any], client: ClientCredentials, scope: str, audience: str, timeout: float
) -> dict[str, Any]:
    endpoint = meta.get("device_authorization_endpoint")
    if not endpoint:
        raise OidcError("unsupported", "the provider offers no device authorization endpoint")
    data = {"scope": scope}
    if audience:
        data["audience"] = audience
    return _post(endpoint, data, client, timeout)


def device_token(
    meta: dict[str, Any], client: ClientCredentials, device_code: str, timeout: float
) -> dict[str, Any]:
    return _post(
        meta["token_endpoint"], {"grant_type": DEVICE_CODE, "device_code": device_code}, client, timeout
    )
