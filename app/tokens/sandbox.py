"""Sandbox tokens: with no PanDA URL configured the panel talks to its built-in PanDA simulator,
whose embedded issuer (`SimIssuer`) mints ID tokens. Groups follow the panel role, so a manager
gets the production group and a viewer only the VO group.

The running simulator is found in `current_app.extensions["panda_sandbox"]` (set by `serve` and by
tests): either the simulator object with an `issuer` attribute (and optionally a `config` with
`client_ids` and `local_client_ids`), or a `SimIssuer` itself.

With SPD-IAM configured only local accounts get sandbox tokens (IAM users send their own IAM
tokens); the simulator then trusts SPD-IAM for the panel's client id and its embedded issuer for
`LOCAL_AUDIENCE`, so the two kinds of tokens never share an audience.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from app import clock
from app.auth.models import User
from app.auth.roles import role_at_least
from app.config import get_settings
from app.tokens import vault
from app.tokens.crypto import VaultKeyError
from app.tokens.errors import TokenUnavailable
from app.tokens.jwtutil import unverified_header
from app.tokens.models import UserToken

EXTENSION = "panda_sandbox"
DEFAULT_AUDIENCE = "prodpanel"
LOCAL_AUDIENCE = "prodpanel-local-accounts"


def _issuer_and_audience() -> tuple[Any, str]:
    sandbox = current_app.extensions.get(EXTENSION)
    if sandbox is None:
        raise TokenUnavailable("sandbox mode, but the built-in PanDA simulator is not running")
    issuer = getattr(sandbox, "issuer", None) or (sandbox if hasattr(sandbox, "mint_id_token") else None)
    if issuer is None or not hasattr(issuer, "mint_id_token"):
        raise TokenUnavailable(
            "sandbox mode, but the simulator uses an external issuer (log in with SPD-IAM)"
        )
    config = getattr(sandbox, "config", None)
    audiences = (
        getattr(config, "local_client_ids", None)
        or getattr(config, "client_ids", None)
        or (DEFAULT_AUDIENCE,)
    )
    return issuer, audiences[0]


def _minted_by(issuer: Any, token: str) -> bool:
    """True when `token` was signed by this issuer instance (same key id in the JWT header)."""
    return unverified_header(token).get("kid") == getattr(issuer, "kid", None)


def sandbox_groups(user: User) -> list[str]:
    """IAM-like groups for a sandbox user, from the panel role."""
    panda = get_settings().panda
    groups = [panda.vo]
    if role_at_least(user, "manager"):
        groups.append(panda.production_group)
    if role_at_least(user, "admin"):
        groups.append(f"{panda.production_group}/admin")
    return groups


def sandbox_token_for(user_id: int, *, force: bool = False) -> str:
    """A sandbox ID token for the user, minted anew when the stored one is about to expire."""
    settings = get_settings()
    with vault.lock_for(user_id), vault.vault_session() as session:
        user = session.get(User, user_id)
        if user is None or not user.active:
            raise TokenUnavailable("unknown or disabled user")
        row = session.scalar(
            select(UserToken).where(UserToken.user_id == user_id, UserToken.source == "sandbox")
        )
        groups = sandbox_groups(user)
        issuer, audience = _issuer_and_audience()
        if (
            row is not None
            and not force
            and row.groups == groups
            and vault.fresh(
                row.id_token_expires_at, settings, timedelta(seconds=settings.iam.sandbox_token_lifetime_s)
            )
        ):
            try:
                token = vault.unseal(row, "id_token")
            except VaultKeyError:
                token = None  # sealed under a lost key: mint a new one
            # A simulator started anew (serve restarted) has a new key and address: its JWKS
            # would refuse tokens of the previous one.
            if token and _minted_by(issuer, token):
                return token
        lifetime = settings.iam.sandbox_token_lifetime_s
        token = issuer.mint_id_token(
            sub=user.sub or user.username,
            name=user.name,
            groups=groups,
            aud=audience,
            lifetime_s=lifetime,
            preferred_username=user.username,
            email=user.email or None,
            now=clock.now().timestamp(),
        )
        now = clock.now()
        if row is None:
            row = UserToken(user_id=user_id, source="sandbox", obtained_at=now)
            session.add(row)
            row.refresh_count = 0
        else:
            row.last_refresh_at = now
            row.refresh_count = (row.refresh_count or 0) + 1
        row.issuer = getattr(issuer, "issuer_url", "") + "/"
        row.client_id, row.subject, row.groups = audience, user.sub or user.username, groups
        row.needs_relogin, row.last_error = False, ""
        vault.seal(row, "id_token", token)
        row.id_token_expires_at = now + timedelta(seconds=lifetime)
        session.commit()
        return token
