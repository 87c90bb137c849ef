"""A small OpenID issuer for the simulator: discovery, JWKS and RS256 ID tokens.

It plays the role of INDIGO IAM towards the simulated PanDA server: the server fetches the
discovery document and the JWKS over HTTP exactly as panda-server does with IAM, and scripts
or the sandbox panel mint ID tokens with `mint_id_token` (or `POST <issuer>/mint`).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


class SimIssuer:
    """An RS256 token issuer with a discovery document and a JWKS.

    `issuer_url` may be set later (``set_url``) because the embedded issuer only knows its
    address once the simulator listens on a port. `private_key` and `kid` default to a new RSA key
    and a random key id (tests pass them to forge tokens: same kid with another key, same key
    under another issuer URL).
    """

    def __init__(
        self,
        issuer_url: str = "",
        *,
        private_key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        key_size: int = 2048,
    ) -> None:
        self.issuer_url = issuer_url.rstrip("/")
        self.kid = kid or uuid.uuid4().hex[:16]
        self.private_key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=key_size)

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
        public = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def mint_id_token(
        self,
        sub: str,
        name: str | None,
        groups: list[str] | tuple[str, ...] | None,
        aud: str,
        lifetime_s: int = 3600,
        *,
        preferred_username: str | None = None,
        email: str | None = None,
        extra_claims: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """Mint a signed ID token like IAM's (iss with trailing slash, `groups` claim); no `name`
        claim when `name` is None, no `groups` claim when `groups` is None."""
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer_url + "/",
            "sub": sub,
            "aud": aud,
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(lifetime_s),
            "jti": uuid.uuid4().hex,
            "preferred_username": preferred_username or sub,
        }
        if name is not None:
            claims["name"] = name
        if groups is not None:
            claims["groups"] = list(groups)
        if email:
            claims["email"] = email
        if extra_claims:
            claims.update(extra_claims)
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})

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
                name = req.get("name", req["sub"])  # null: a token without a name claim
                token = self.mint_id_token(
                    sub=str(req["sub"]),
                    name=None if name is None else str(name),
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
