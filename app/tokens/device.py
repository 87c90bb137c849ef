"""Linking a PanDA-capable token through the device flow (RFC 8628), as panda-client does.

For users whose login cannot give PanDA a token (local accounts, or a panel IAM client that PanDA
does not list): the panel asks IAM for a device code with the device client (e.g. PanDA's own IAM
client), the user approves it on IAM's page, and the resulting grant is stored as source
"device-link" and refreshed like the login's. A link in progress is a `device_link` row (the device
code sealed like the tokens), so that any `serve` process can poll what another one started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete

from app import clock
from app.audit.services import record
from app.auth.models import User
from app.auth.roles import normalize_groups
from app.config import get_settings
from app.extensions import db
from app.tokens import oidc
from app.tokens.crypto import VaultKeyError
from app.tokens.errors import TokenUnavailable
from app.tokens.jwtutil import unverified_claims
from app.tokens.models import DeviceLink, UserToken
from app.tokens.vault import keyring, store_tokens

DEVICE_SCOPES = "openid profile email offline_access"


@dataclass(frozen=True)
class PendingLink:
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_at: datetime
    interval_s: int
    device_code: str  # secret: stored sealed only, never rendered


SEALED_AS = "device-link:device_code"  # the sealed code's purpose (associated data)


def _client() -> oidc.ClientCredentials:
    iam = get_settings().iam
    if iam.device_client_id:
        return oidc.ClientCredentials(iam.device_client_id, iam.device_client_secret)
    return oidc.ClientCredentials(iam.client_id, iam.client_secret)


def start_link(user: User) -> PendingLink:
    """Ask IAM for a device code; the user then approves it at `verification_uri_complete`."""
    settings = get_settings()
    if not settings.iam.issuer:
        raise TokenUnavailable("SPD-IAM is not configured (iam.issuer), so no token can be linked")
    timeout = settings.iam.http_timeout_s
    scopes = oidc.join_scopes(DEVICE_SCOPES, settings.iam.extra_scopes)
    try:
        meta = oidc.discovery(settings.iam.issuer, timeout)
        answer = oidc.device_authorization(meta, _client(), scopes, settings.iam.device_audience, timeout)
    except oidc.OidcError as exc:
        raise TokenUnavailable(f"SPD-IAM refused the device-code request: {exc}") from None
    link = PendingLink(
        user_code=str(answer["user_code"]),
        verification_uri=str(answer["verification_uri"]),
        verification_uri_complete=str(answer.get("verification_uri_complete") or answer["verification_uri"]),
        expires_at=clock.now() + timedelta(seconds=int(answer.get("expires_in", 600))),
        interval_s=int(answer.get("interval", 5)),
        device_code=str(answer["device_code"]),
    )
    row = db.session.get(DeviceLink, user.id) or DeviceLink(user_id=user.id)
    row.user_code, row.verification_uri = link.user_code[:64], link.verification_uri[:500]
    row.verification_uri_complete, row.expires_at = link.verification_uri_complete[:500], link.expires_at
    row.interval_s = link.interval_s
    row.device_code_sealed = keyring().seal(link.device_code, user_id=user.id, purpose=SEALED_AS)
    db.session.add(row)
    db.session.flush()
    return link


def pending_link(user: User) -> PendingLink | None:
    """The user's link in progress; None when there is none or it expired (its row then stays until
    the next start or cancel: pages read it, and a GET writes nothing)."""
    row = db.session.get(DeviceLink, user.id)
    if row is None or row.expires_at <= clock.now():
        return None
    try:
        code = keyring().open(row.device_code_sealed, user_id=user.id, purpose=SEALED_AS)
    except VaultKeyError:  # sealed under a key pruned since: the link has to start again
        return None
    return PendingLink(
        row.user_code, row.verification_uri, row.verification_uri_complete, row.expires_at, row.interval_s, code
    )


def cancel_link(user: User | int) -> None:
    db.session.execute(delete(DeviceLink).where(DeviceLink.user_id == (user if isinstance(user, int) else user.id)))


def poll_link(user: User) -> UserToken | None:
    """Ask IAM once whether the user approved; the stored grant when done, None while pending.

    Raises TokenUnavailable when the code expired or was denied, or when an SPD-IAM user's code was
    approved by another SPD-IAM account. Audited (linked or failed); flushes.
    """
    try:
        grant = _poll(user)
    except TokenUnavailable as exc:
        details = {"reason": exc.reason[:200]}
        record("token.link_failed", target=user.username, outcome="failed", details=details)
        raise
    if grant is not None:
        details = {"client_id": grant.client_id, "subject": grant.subject}
        record("token.linked", target=user.username, details=details)
    return grant


def _poll(user: User) -> UserToken | None:
    settings = get_settings()
    link = pending_link(user)
    if link is None:
        raise TokenUnavailable("no device-code link is in progress (or it expired); start again")
    client = _client()
    timeout = settings.iam.http_timeout_s
    try:
        meta = oidc.discovery(settings.iam.issuer, timeout)
        answer = oidc.device_token(meta, client, link.device_code, timeout)
    except oidc.OidcError as exc:
        if exc.error in ("authorization_pending", "slow_down"):
            return None
        cancel_link(user)
        raise TokenUnavailable(f"linking failed: SPD-IAM answered {exc.error}") from None
    cancel_link(user)
    claims = unverified_claims(answer.get("id_token", ""))
    if not claims or claims.get("iss") != settings.iam.issuer:
        raise TokenUnavailable("linking failed: SPD-IAM returned no ID token from the expected issuer")
    if not user.is_local and (claims.get("iss"), claims.get("sub")) != (user.iss, user.sub):
        # A code someone else approved (device-code phishing) must not make PanDA calls in their name.
        raise TokenUnavailable(
            "linking failed: the code was approved by another SPD-IAM account; approve it with your own"
        )
    groups = normalize_groups(claims.get(settings.iam.groups_claim))
    return store_tokens(
        user, "device-link", answer, issuer=settings.iam.issuer, client_id=client.client_id, groups=groups
    )
