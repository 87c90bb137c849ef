"""Token checks of panda-server, re-implemented after srvcore/panda_request.py (`decode_token`) and
srvcore/oidc_utils.py (`TokenDecoder.deserialize_token`).

The steps and the libraries are the real server's: PyJWT decodes the token unverified to find the
client id, the issuer's discovery document gives the JWKS URL, PyJWT checks the RS256 signature,
`aud` and `iss`; then VO and role from the `Origin` header are checked against the `groups` claim.
So the 403 texts are the real server's by construction: PyJWT's messages after "Invalid token.",
and for any other exception "Token decode failure." with the Python traceback appended.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import traceback
import urllib.request
from typing import Any

import jwt
from jwt import PyJWKClient
from jwt.exceptions import InvalidIssuerError, InvalidSignatureError, InvalidTokenError, PyJWKClientError

from .config import SimConfig

CACHE_SECONDS = 600  # TokenDecoder refreshes discovery documents and key sets every 10 minutes
DECISION_SECONDS = 60  # how long one (token, Origin) decision is reused
REFETCH_SECONDS = 30  # a bad signature re-reads the key set at most this often (issuer key rotation)


class TokenChecker:
    """Decides, per (token, Origin), what panda-server's PandaRequest decides."""

    def __init__(self, config: SimConfig, discovery_url: str, local_discovery_url: str = "") -> None:
        self.config = config
        self.discovery_url = discovery_url
        self.local_discovery_url = local_discovery_url  # the embedded issuer's, for local_client_ids
        self._refetched: dict[str, float] = {}  # jwks_uri -> when a bad signature last re-read it
        self._ssl = ssl.create_default_context(cafile=config.ca_bundle or None)
        self._discovery: dict[str, tuple[float, dict[str, Any]]] = {}
        self._key_sets: dict[str, PyJWKClient] = {}
        self._decisions: dict[tuple[str, str | None], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        # the <vo>[.<role>]_auth_config.json files of the server
        self.vo_files = [config.vo] + [f"{config.vo}.{role}" for role in config.roles]

    def auth_config_file(self) -> dict[str, Any]:
        """What `/auth/<vo>_auth_config.json` serves (the client secret is public by design)."""
        return {
            "client_id": self.config.client_ids[0],
            "client_secret": None,
            "audience": self.config.client_ids[0],
            "oidc_config_url": self.discovery_url,
            "vo": self.config.vo,
            "secondary_ids": list(self.config.secondary_ids),
            "auto_roles": list(self.config.auto_roles),
        }

    def known_client_ids(self) -> set[str]:
        return (
            set(self.config.client_ids) | set(self.config.secondary_ids) | set(self.config.local_client_ids)
        )

    def decide(self, serialized: str, origin: str | None) -> dict[str, Any]:
        """{"authenticated", "message", "env"} for this token and Origin (cached briefly)."""
        key = (serialized, origin)
        with self._lock:
            cached = self._decisions.get(key)
            if cached and time.monotonic() - cached[0] < DECISION_SECONDS:
                return cached[1]
        decision = self._decide(serialized, origin)
        with self._lock:
            if len(self._decisions) > 10000:
                self._decisions.clear()
            self._decisions[key] = (time.monotonic(), decision)
        return decision

    def _decide(self, serialized: str, origin: str | None) -> dict[str, Any]:
        env: dict[str, str] = {}
        authenticated = False
        message: str | None = None
        try:
            vo_role = origin.replace(":", ".")  # type: ignore[union-attr]  # no Origin: AttributeError, as on the server
            token = self.deserialize(serialized, origin)
            vo, role = split_vo(token["vo"])
            if vo != self.config.vo:
                message = f"Unknown vo : {vo}"
            else:
                groups = token["groups"]  # no groups claim: KeyError, a decode failure on the server too
                if not role and vo_role in self.vo_files:
                    for candidate in self.config.auto_roles:
                        if f"{vo}/{candidate}" in groups or f"/{vo}/{candidate}" in groups:
                            role = candidate
                            break
                if role:
                    if f"{vo}/{role}" not in groups and f"/{vo}/{role}" not in groups:
                        message = f"Not a member of the {vo}/{role} group"
                    else:
                        env.update(PANDA_OIDC_VO=vo, PANDA_OIDC_GROUP=role, PANDA_OIDC_ROLE=role)
                        authenticated = True
                elif vo in groups or f"/{vo}" in groups:
                    env.update(PANDA_OIDC_VO=vo, PANDA_OIDC_GROUP="user", PANDA_OIDC_ROLE="user")
                    authenticated = True
                else:
                    message = f"Not a member of the {vo} group"
            if "iss" not in token:
                message = "Issuer is undefined in the token"
            else:
                for claim, value in token.items():
                    env[f"PANDA_OIDC_CLAIM_{claim}"] = str(value)
                env["SSL_CLIENT_S_DN"] = token_dn(token)
                i = 0
                for scope in str(token.get("scope", "")).split():
                    if scope.startswith("role:"):
                        env[f"GRST_CRED_AUTH_TOKEN_{i}"] = "VOMS " + scope.split(":")[-1]
                        i += 1
                if role:
                    env[f"GRST_CRED_AUTH_TOKEN_{i}"] = f"VOMS /{vo}/Role={role}"
        except InvalidTokenError as exc:
            message = f"Invalid token. {exc}"
        except Exception as exc:  # the server appends the traceback to the 403 body
            message = f"Token decode failure. {exc} {traceback.format_exc()}"
        return {"authenticated": authenticated, "message": message, "env": env if authenticated else {}}

    def deserialize(self, serialized: str, origin: str | None) -> dict[str, Any]:
        """Verify like TokenDecoder.deserialize_token; raises PyJWT's errors with PyJWT's texts."""
        unverified = jwt.decode(serialized, options={"verify_signature": False})
        known = self.known_client_ids()
        client_id = audience = None
        if "aud" in unverified:
            audience = unverified["aud"]
            if audience in known:  # a list: TypeError (unhashable), as on the server
                client_id = audience
        if not client_id:
            client_id = unverified.get("client_id")
            if client_id and client_id not in known:
                client_id = None
        if not client_id:
            client_id = unverified["sub"]
            if client_id and client_id not in known:
                client_id = None
        if not client_id:
            raise InvalidTokenError("cannot extract client_id from token")
        headers = jwt.get_unverified_header(serialized)
        if "kid" not in headers:
            raise InvalidTokenError("cannot extract kid from headers")
        local = client_id in self.config.local_client_ids
        oidc_config = self._discovery_document(self.local_discovery_url if local else self.discovery_url)
        issuer = oidc_config["issuer"]
        iss = unverified.get("iss")
        if iss and iss != issuer and issuer.startswith(iss):
            issuer = iss  # iss without the trailing slash
        jwks_uri = oidc_config["jwks_uri"]
        try:
            key = self._signing_key(jwks_uri, headers["kid"])
            try:
                decoded = jwt.decode(serialized, key, algorithms=["RS256"], audience=audience, issuer=issuer)
            except InvalidSignatureError:
                if not self._may_refetch(jwks_uri):
                    raise
                # The issuer may have a new key under the same kid (a restart, a rotation).
                key = self._signing_key(jwks_uri, headers["kid"], refresh=True)
                decoded = jwt.decode(serialized, key, algorithms=["RS256"], audience=audience, issuer=issuer)
        except InvalidIssuerError as exc:
            raise InvalidTokenError(f"failed to decode: {exc}") from exc
        decoded["vo"] = origin if origin is not None else self.config.vo
        return decoded

    def _signing_key(self, jwks_uri: str, kid: str, refresh: bool = False) -> Any:
        key_set = self._key_set(jwks_uri)
        try:
            if refresh:
                key_set.get_signing_keys(refresh=True)
            return key_set.get_signing_key(kid).key
        except PyJWKClientError as exc:
            raise InvalidTokenError(f"JWK not found for kid={kid}") from exc

    def _may_refetch(self, jwks_uri: str) -> bool:
        with self._lock:
            last = self._refetched.get(jwks_uri)
            if last is not None and time.monotonic() - last < REFETCH_SECONDS:
                return False
            self._refetched[jwks_uri] = time.monotonic()
            return True

    def _discovery_document(self, url: str) -> dict[str, Any]:
        with self._lock:
            cached = self._discovery.get(url)
            if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
                return cached[1]
        with urllib.request.urlopen(url, timeout=10, context=self._ssl) as response:
            document = json.load(response)
        with self._lock:
            self._discovery[url] = (time.monotonic(), document)
        return document

    def _key_set(self, jwks_uri: str) -> PyJWKClient:
        with self._lock:
            client = self._key_sets.get(jwks_uri)
            if client is None:
                client = PyJWKClient(jwks_uri, lifespan=CACHE_SECONDS, timeout=10, ssl_context=self._ssl)
                self._key_sets[jwks_uri] = client
            return client


def token_dn(token: dict[str, Any]) -> str:
    """The DN the server synthesises: "<Capitalised Name>/CN=nickname:<preferred_username>", or the
    bare `sub` when the token has no `name` claim."""
    if "name" not in token:
        return str(token["sub"])
    dn = " ".join(w[:1].upper() + w[1:].lower() for w in str(token["name"]).split())
    if "preferred_username" in token:
        dn += f"/CN=nickname:{token['preferred_username']}"
    return dn


def split_vo(origin: str) -> tuple[str, str | None]:
    """`spd.production`, `spd:production` or `spd` -> (vo, role); a `vo.` prefix is part of the VO."""
    if ":" in origin:
        vo, role = origin.split(":", 1)
        return vo, role
    if "." in origin and not origin.startswith("vo."):
        vo, role = origin.rsplit(".", 1)
        return vo, role
    return origin, None
