"""Token checks of panda-server (srvcore/panda_request.py + oidc_utils.py), re-implemented.

RS256 signature against the JWKS found through the issuer's discovery document (fetched over
HTTP and cached 10 minutes), `aud` among the known client ids and secondary ids, VO/role from
the `Origin` header against the `groups` claim. Messages are those of the real server (PyJWT's
texts for token errors), so the 403 bodies read the same.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet

from .config import SimConfig

CACHE_SECONDS = 600


class InvalidToken(Exception):
    """Maps to 'Invalid token. <message>' like jwt.exceptions.InvalidTokenError."""


def _b64json(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode()))


class TokenChecker:
    """Decides, per (token, Origin), what panda-server's PandaRequest decides."""

    def __init__(self, config: SimConfig, discovery_url: str) -> None:
        self.config = config
        self.discovery_url = discovery_url
        self._docs: dict[str, tuple[float, dict[str, Any]]] = {}
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
        return set(self.config.client_ids) | set(self.config.secondary_ids)

    def _get_json(self, url: str) -> dict[str, Any]:
        with self._lock:
            cached = self._docs.get(url)
            if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
                return cached[1]
        data = requests.get(url, timeout=10).json()
        with self._lock:
            self._docs[url] = (time.monotonic(), data)
        return data

    def decide(self, serialized: str, origin: str | None) -> dict[str, Any]:
        """{"authenticated", "message", "env"} for this token and Origin (cached briefly)."""
        key = (serialized, origin)
        with self._lock:
            cached = self._decisions.get(key)
            if cached and time.monotonic() - cached[0] < 60:
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
            if origin is None:
                # panda-server calls vo.replace(...) on a missing Origin
                raise AttributeError("'NoneType' object has no attribute 'replace'")
            vo_role = origin.replace(":", ".")
            token = self.deserialize(serialized)
            vo, role = _split_vo(origin)
            if vo != self.config.vo:
                message = f"Unknown vo : {vo}"
            else:
                groups = token.get("groups", [])
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
                else:
                    if vo in groups or f"/{vo}" in groups:
                        env.update(PANDA_OIDC_VO=vo, PANDA_OIDC_GROUP="user", PANDA_OIDC_ROLE="user")
                        authenticated = True
                    else:
                        message = f"Not a member of the {vo} group"
            if "iss" not in token:
                message = "Issuer is undefined in the token"
            else:
                for claim, value in token.items():
                    env[f"PANDA_OIDC_CLAIM_{claim}"] = str(value)
                if "name" in token:
                    dn = " ".join(w[:1].upper() + w[1:].lower() for w in str(token["name"]).split())
                    if "preferred_username" in token:
                        dn += f"/CN=nickname:{token['preferred_username']}"
                else:
                    dn = str(token["sub"])
                env["SSL_CLIENT_S_DN"] = dn
                i = 0
                for scope in str(token.get("scope", "")).split():
                    if scope.startswith("role:"):
                        env[f"GRST_CRED_AUTH_TOKEN_{i}"] = "VOMS " + scope.split(":")[-1]
                        i += 1
                if role:
                    env[f"GRST_CRED_AUTH_TOKEN_{i}"] = f"VOMS /{vo}/Role={role}"
        except InvalidToken as exc:
            message = f"Invalid token. {exc}"
        except Exception as exc:  # what the server reports as a decode failure
            message = f"Token decode failure. {exc}"
        return {"authenticated": authenticated, "message": message, "env": env if authenticated else {}}

    def deserialize(self, serialized: str) -> dict[str, Any]:
        """Verify like TokenDecoder.deserialize_token; raise InvalidToken with PyJWT's texts."""
        parts = serialized.split(".")
        if len(parts) != 3:
            raise InvalidToken("Not enough segments" if len(parts) < 3 else "Invalid header padding")
        try:
            header = _b64json(parts[0])
        except Exception as exc:
            raise InvalidToken("Invalid header padding") from exc
        try:
            unverified = _b64json(parts[1])
        except Exception as exc:
            raise InvalidToken("Invalid payload padding") from exc
        audience = unverified.get("aud")
        known = self.known_client_ids()
        client_id = audience if isinstance(audience, str) and audience in known else None
        if not client_id:
            client_id = unverified.get("client_id") if unverified.get("client_id") in known else None
        if not client_id:
            client_id = unverified.get("sub") if unverified.get("sub") in known else None
        if not client_id:
            raise InvalidToken("cannot extract client_id from token")
        kid = header.get("kid")
        if kid is None:
            raise InvalidToken("cannot extract kid from headers")
        oidc_config = self._get_json(self.discovery_url)
        jwks = self._get_json(oidc_config["jwks_uri"])
        keys = [k for k in jwks.get("keys", []) if k.get("kid") == kid]
        if not keys:
            raise InvalidToken(f"JWK not found for kid={kid}")
        if header.get("alg") != "RS256":
            raise InvalidToken("The specified alg value is not allowed")
        try:
            decoded = jwt.decode(serialized, KeySet.import_key_set({"keys": keys}), algorithms=["RS256"])
        except BadSignatureError as exc:
            raise InvalidToken("Signature verification failed") from exc
        except JoseError as exc:
            raise InvalidToken(str(exc)) from exc
        claims = dict(decoded.claims)
        now = time.time()
        if "exp" in claims and float(claims["exp"]) <= now:
            raise InvalidToken("Signature has expired")
        if "nbf" in claims and float(claims["nbf"]) > now + 0:
            raise InvalidToken("The token is not yet valid (nbf)")
        if "iat" in claims and float(claims["iat"]) > now + 0:
            raise InvalidToken("The token is not yet valid (iat)")
        issuer = oidc_config["issuer"]
        iss = unverified.get("iss")
        if iss and iss != issuer and issuer.startswith(iss):
            issuer = iss  # iss without the trailing slash
        if claims.get("iss") != issuer:
            raise InvalidToken("failed to decode: Invalid issuer")
        return claims


def _split_vo(origin: str) -> tuple[str, str | None]:
    """`spd.production`, `spd:production` or `spd` -> (vo, role)."""
    if ":" in origin:
        vo, role = origin.split(":", 1)
        return vo, role
    if "." in origin and not origin.startswith("vo."):
        vo, role = origin.rsplit(".", 1)
        return vo, role
    return origin, None
