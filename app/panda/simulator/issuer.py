"""A small OpenID issuer for the simulator: discovery, JWKS and RS256 ID tokens.

It plays the role of INDIGO IAM towards the simulated PanDA server: the server fetches the
discovery document and the JWKS over HTTP exactly as panda-server does with IAM, and scripts
or the sandbox panel mint ID tokens with `mint_id_token` (or `POST <issuer>/mint`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey


class SimIssuer:
    """An RS256 token issuer with a discovery document and a JWKS.

    `issuer_url` may be set later (``set_url``) because the embedded issuer only knows its
    address once the simulator listens on a port.
    """

    def __init__(self, issuer_url: str = "", key_size: int = 2048) -> None:
        self.issuer_url = issuer_url.rstrip("/")
        self.kid = uuid.uuid4().hex[:16]
        self._key = RSAKey.generate_key(
            key_size, parameters={"kid": self.kid, "use": "sig", "alg": "RS256"}, private=True
        )
        self._lock = threading.Lock()

    def set_url(self, issuer_url: str) -> None:
        """Set the public URL (the `iss` claim and the base of discovery/JWKS URLs)."""
        self.issuer_url = issuer_url.rstrip("/")

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer_url}/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        """The OpenID discovery document, shaped like IAM's (fields PanDA and authlib read)."""
        return {
            "issuer": self.issuer_url + "/",
            "jwks_uri": f"{self.issuer_url}/jwk",
            "authorization_endpoint": f"{self.issuer_url}/authorize",
            "token_endpoint": f"{self.issuer_url}/token",
            "device_authorization_endpoint": f"{self.issuer_url}/devicecode",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
        }

    def jwks(self) -> dict[str, Any]:
        """The public key set."""
        return {"keys": [self._key.as_dict(private=False)]}

    def mint_id_token(
        self,
        sub: str,
        name: str,
        groups: list[str] | tuple[str, ...],
        aud: str,
        lifetime_s: int = 3600,
        *,
        preferred_username: str | None = None,
        email: str | None = None,
        extra_claims: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """Mint a signed ID token like IAM's (iss with trailing slash, `groups` claim)."""
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer_url + "/",
            "sub": sub,
            "aud": aud,
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(lifetime_s),
            "jti": uuid.uuid4().hex,
            "name": name,
            "preferred_username": preferred_username or sub,
            "groups": list(groups),
        }
        if email:
            claims["email"] = email
        if extra_claims:
            claims.update(extra_claims)
        with self._lock:
            return jwt.encode({"alg": "RS256", "kid": self.kid, "typ": "JWT"}, claims, self._key)

    def handle(self, path: str, method: str, body: bytes) -> tuple[str, dict[str, Any]] | None:
        """Serve issuer paths (relative to the issuer URL); None when the path is not ours.

        Returns (HTTP status line, JSON body).
        """
        if path in ("/.well-known/openid-configuration", "/.well-known/openid-configuration/"):
            return "200 OK", self.discovery()
        if path == "/jwk":
            return "200 OK", self.jwks()
        if path == "/mint":
            if method != "POST":
                return "405 Method Not Allowed", {"error": "use POST"}
            try:
                req = json.loads(body or b"{}")
                token = self.mint_id_token(
                    sub=str(req["sub"]),
                    name=str(req.get("name", req["sub"])),
                    groups=list(req.get("groups", [])),
                    aud=str(req["aud"]),
                    lifetime_s=int(req.get("lifetime_s", 3600)),
                    preferred_username=req.get("preferred_username"),
                    email=req.get("email"),
                )
            except (KeyError, ValueError, TypeError) as exc:
                return "400 Bad Request", {"error": f"bad mint request: {exc}"}
            return "200 OK", {"id_token": token, "token_type": "Bearer"}
        return None
