"""The token vault: stores tokens sealed, keeps ID tokens fresh, and hands PanDA-capable tokens out.

`token_for(user)` is the only way the PanDA client obtains a token. Refreshes follow the ID token's
own `exp` (IAM's ID tokens live 10 minutes, its access tokens an hour), one at a time per user: a
per-user lock in this process plus `SELECT ... FOR UPDATE` on PostgreSQL, then a re-read, so a second
caller uses the first caller's result. The new refresh token is committed before the new ID token
is handed out. Token reads and writes happen in a separate database session, so `token_for` can be
called from a request or a scheduler job without committing the caller's work; call it outside an
open write transaction (on SQLite that would block the vault's own commit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session, scoped_session

from app import clock
from app.audit.services import record, record_now
from app.auth.models import User
from app.auth.roles import normalize_groups
from app.config import Settings, get_settings
from app.extensions import db
from app.tokens import crypto, oidc, vault
from app.tokens.crypto import VaultKeyError
from app.tokens.device import cancel_link
from app.tokens.errors import TokenUnavailable
from app.tokens.jwtutil import expiry, unverified_claims
from app.tokens.models import SEALED_KINDS, UserToken
from app.tokens.sandbox import sandbox_token_for

RELOGIN = "re-login needed"


def _user_id(user: User | int) -> int:
    return user if isinstance(user, int) else user.id


# ---- handing tokens out -------------------------------------------------------------------


def _candidate_rows(
    session: Session, user_id: int, settings: Settings, *, for_update: bool = False
) -> list[UserToken]:
    sources = ["device-link"] + (["login"] if settings.iam.login_tokens_for_panda else [])
    query = select(UserToken).where(UserToken.user_id == user_id, UserToken.source.in_(sources))
    if for_update:
        query = query.with_for_update()
    rows = {row.source: row for row in session.scalars(query)}
    return [rows[s] for s in sources if s in rows]


def _pick(rows: list[UserToken]) -> UserToken | None:
    """The grant to use: a healthy device link first, then the login's grant; else the first one."""
    for row in rows:
        if not row.needs_relogin:
            return row
    return rows[0] if rows else None


def _grant(session: Session, user_id: int, settings: Settings, *, for_update: bool = False) -> UserToken:
    """The grant `token_for` uses; raises TokenUnavailable when there is none or it needs a re-login."""
    row = _pick(_candidate_rows(session, user_id, settings, for_update=for_update))
    if row is None:
        raise TokenUnavailable(_unavailable_reason(user_id, settings), relogin=True)
    if row.needs_relogin:
        raise TokenUnavailable(
            _relogin_text(row, row.last_error or "the stored grant was refused"), relogin=True
        )
    return row


def _usable(row: UserToken, settings: Settings) -> str | None:
    if settings.iam.exchange_audience:
        return (
            vault.unseal(row, "exchanged_token")
            if vault.fresh(row.exchanged_token_expires_at, settings)
            else None
        )
    return vault.unseal(row, "id_token") if vault.fresh(row.id_token_expires_at, settings) else None


def _unavailable_reason(user_id: int, settings: Settings) -> str:
    user = db.session.get(User, user_id)
    if user is not None and user.is_local:
        return "no PanDA token: link one through SPD-IAM on the Tokens page (device code)"
    if not settings.iam.login_tokens_for_panda:
        return "no PanDA token: this panel's IAM client is not accepted by PanDA; link one on the Tokens page"
    return "no PanDA token stored: log in with SPD-IAM again"


def token_for(user: User | int) -> str:
    """A valid token for PanDA on behalf of `user` (the ID token, or the exchanged token when
    `iam.exchange_audience` is set); raises TokenUnavailable with the reason otherwise.

    In sandbox mode (no PanDA URL) the token comes from the built-in simulator's issuer.
    """
    settings = get_settings()
    user_id = _user_id(user)
    if settings.sandbox:
        return sandbox_token_for(user_id)
    try:
        with vault.vault_session() as session:
            token = _usable(_grant(session, user_id, settings), settings)
            if token:
                return token
        return _refresh_locked(user_id, settings, force=False)
    except VaultKeyError as exc:
        raise _undecryptable(user_id, exc) from None


def _undecryptable(user_id: int, exc: VaultKeyError) -> TokenUnavailable:
    """The stored tokens cannot be opened with this instance's keys (lost or replaced key): the
    grant is useless, so the user must log in (or link) again."""
    message = f"stored tokens cannot be decrypted with this instance's keys ({exc})"
    with vault.vault_session() as session:
        for row in session.scalars(select(UserToken).where(UserToken.user_id == user_id)):
            row.needs_relogin = True
            row.last_error = message[:500]
            _audit_failure(session, row, message, relogin=True)
        session.commit()
    return TokenUnavailable(f"{RELOGIN}: the stored tokens cannot be decrypted ({exc})", relogin=True)


def refresh_now(user: User) -> None:
    """Refresh the user's PanDA grant now, whatever its expiry (the token page's button). Like the
    refresh, its audit event is committed at once; a failure raises TokenUnavailable (audited too)."""
    settings = get_settings()
    if settings.sandbox:
        sandbox_token_for(user.id, force=True)
    else:
        try:
            _refresh_locked(user.id, settings, force=True)
        except VaultKeyError as exc:
            raise _undecryptable(user.id, exc) from None
    record_now("token.refreshed", target=user.username, details={"trigger": "button"}, user=user)


def _refresh_locked(user_id: int, settings: Settings, *, force: bool) -> str:
    with vault.lock_for(user_id), vault.vault_session() as session:
        # Re-read under the lock: another thread (or process, via FOR UPDATE) may have refreshed.
        row = _grant(session, user_id, settings, for_update=True)
        if not force:
            token = _usable(row, settings)
            if token:
                return token
        # With token exchange, a still-valid access token is enough to exchange without a refresh.
        if (
            force
            or not settings.iam.exchange_audience
            or not vault.fresh(row.access_token_expires_at, settings)
        ):
            _refresh_row(session, row, settings)
        if settings.iam.exchange_audience:
            _exchange_row(session, row, settings)
        token = vault.unseal(row, "exchanged_token" if settings.iam.exchange_audience else "id_token")
        assert token is not None, "the refresh or the exchange above stored it"
        return token


def _client_for(row: UserToken, settings: Settings) -> oidc.ClientCredentials:
    iam = settings.iam
    if row.client_id == iam.client_id:
        return oidc.ClientCredentials(iam.client_id, iam.client_secret)
    if row.client_id == iam.device_client_id:
        return oidc.ClientCredentials(iam.device_client_id, iam.device_client_secret)
    return oidc.ClientCredentials(row.client_id)


def _fail(session: Session, row: UserToken, message: str, *, relogin: bool) -> TokenUnavailable:
    """Record the failure on the row and in the audit trail, committed together in the vault's session
    (a caller that rolls back, or never commits, must not lose them)."""
    row.last_error = message[:500]
    if relogin:
        row.needs_relogin = True
    _audit_failure(session, row, message, relogin)
    session.commit()
    return TokenUnavailable(_relogin_text(row, message) if relogin else message, relogin=relogin)


def _relogin_text(row: UserToken, message: str) -> str:
    action = (
        "link a token again on the Tokens page"
        if row.source == "device-link"
        else "log in with SPD-IAM again"
    )
    return f"{RELOGIN} ({action}): {message}"


def _audit_failure(
    session: Session | scoped_session[Any], row: UserToken, message: str, relogin: bool
) -> None:
    user = session.get(User, row.user_id)
    record(
        "token.refresh_failed",
        target=user.username if user else str(row.user_id),
        outcome="relogin-needed" if relogin else "failed",
        details={"source": row.source, "error": message[:200]},
        user=user,
        session=session,
    )


def _refresh_row(session: Session, row: UserToken, settings: Settings) -> None:
    """Use the refresh token once; commit the rotated refresh token before anything else uses it."""
    refresh_token = vault.unseal(row, "refresh_token")
    if not refresh_token:
        raise _fail(session, row, "no refresh token stored (offline_access not granted?)", relogin=True)
    timeout = settings.iam.http_timeout_s
    try:
        meta = oidc.discovery(row.issuer, timeout)
        response = oidc.refresh(meta, _client_for(row, settings), refresh_token, timeout)
    except oidc.OidcError as exc:
        if exc.error == "invalid_grant":
            # Another process may have rotated the token meanwhile: re-read once before giving up.
            session.refresh(row)
            if vault.unseal(row, "refresh_token") != refresh_token and not row.needs_relogin:
                return
            raise _fail(
                session,
                row,
                f"IAM refused the refresh token ({exc.description or 'invalid_grant'})",
                relogin=True,
            ) from None
        raise _fail(session, row, f"token refresh failed: {exc}", relogin=False) from None
    if not response.get("id_token"):
        raise _fail(session, row, "IAM returned no ID token on refresh", relogin=False)
    claims = unverified_claims(response["id_token"])
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if (
        claims.get("iss") != row.issuer
        or row.client_id not in auds
        or (row.subject and claims.get("sub") != row.subject)
    ):
        raise _fail(session, row, "the refreshed ID token does not match the stored identity", relogin=True)
    vault.apply_response(row, response, clock.now())
    if settings.iam.groups_claim in claims:  # what PanDA will now see
        row.groups = normalize_groups(claims[settings.iam.groups_claim])
    row.last_refresh_at = clock.now()
    row.refresh_count += 1
    row.last_error = ""
    row.exchanged_token_sealed, row.exchanged_token_expires_at = None, None
    session.commit()


def _exchange_row(session: Session, row: UserToken, settings: Settings) -> None:
    access_token = vault.unseal(row, "access_token")
    if not access_token:
        raise _fail(session, row, "no access token to exchange", relogin=False)
    timeout = settings.iam.http_timeout_s
    try:
        meta = oidc.discovery(row.issuer, timeout)
        client = oidc.ClientCredentials(settings.iam.client_id, settings.iam.client_secret)
        response = oidc.exchange(
            meta, client, access_token, settings.iam.exchange_audience, settings.iam.exchange_scopes, timeout
        )
    except oidc.OidcError as exc:
        raise _fail(session, row, f"token exchange failed: {exc}", relogin=False) from None
    token = response.get("access_token", "")
    if not token:
        raise _fail(session, row, "token exchange returned no access token", relogin=False)
    vault.seal(row, "exchanged_token", token)
    expires_in = response.get("expires_in")
    row.exchanged_token_expires_at = expiry(token) or (
        clock.now() + timedelta(seconds=int(expires_in)) if isinstance(expires_in, int | float) else None
    )
    session.commit()


# ---- health and management ----------------------------------------------------------------


def valid_until(user: User | int) -> datetime | None:
    """Until when the stored grant can keep producing PanDA tokens (None: it cannot now).

    The refresh token's expiry when known (JWT refresh tokens, like IAM's), else the login time plus
    `iam.refresh_token_days`; without a refresh token, the current token's own expiry.
    """
    settings = get_settings()
    user_id = _user_id(user)
    if settings.sandbox:
        return clock.now() + timedelta(days=365)
    with vault.vault_session() as session:
        row = _pick(_candidate_rows(session, user_id, settings))
        if row is None or row.needs_relogin:
            return None
        if row.refresh_token_sealed is not None:
            return row.refresh_token_expires_at
        return row.exchanged_token_expires_at if settings.iam.exchange_audience else row.id_token_expires_at


@dataclass(frozen=True)
class TokenHealth:
    """What the token pages show about one stored grant (never a token value)."""

    source: str
    issuer: str
    client_id: str
    subject: str
    scope: str
    groups: list[str]
    id_token_expires_at: datetime | None
    access_token_expires_at: datetime | None
    refresh_token_expires_at: datetime | None
    has_refresh_token: bool
    exchanged_token_expires_at: datetime | None
    obtained_at: datetime
    last_refresh_at: datetime | None
    refresh_count: int
    needs_relogin: bool
    last_error: str
    panda_checked_at: datetime | None
    panda_is_production: bool | None
    panda_check_message: str

    @property
    def status(self) -> str:
        """ok | warning (refresh token ends within 3 days) | expired | relogin."""
        now = clock.now()
        if self.needs_relogin:
            return "relogin"
        if self.has_refresh_token:
            end = self.refresh_token_expires_at
            if end is not None and end <= now:
                return "expired"
            if end is not None and end - now < timedelta(days=3):
                return "warning"
            return "ok"
        if self.id_token_expires_at is None or self.id_token_expires_at <= now:
            return "expired"
        return "ok"


def health(user: User | int) -> list[TokenHealth]:
    """The user's stored grants, for the token pages."""
    rows = db.session.scalars(
        select(UserToken).where(UserToken.user_id == _user_id(user)).order_by(UserToken.source)
    )
    return [_health(row) for row in rows]


def _health(row: UserToken) -> TokenHealth:
    return TokenHealth(
        source=row.source,
        issuer=row.issuer,
        client_id=row.client_id,
        subject=row.subject,
        scope=row.scope,
        groups=list(row.groups or []),
        id_token_expires_at=row.id_token_expires_at,
        access_token_expires_at=row.access_token_expires_at,
        refresh_token_expires_at=row.refresh_token_expires_at,
        has_refresh_token=row.refresh_token_sealed is not None,
        exchanged_token_expires_at=row.exchanged_token_expires_at,
        obtained_at=row.obtained_at,
        last_refresh_at=row.last_refresh_at,
        refresh_count=row.refresh_count,
        needs_relogin=row.needs_relogin,
        last_error=row.last_error,
        panda_checked_at=row.panda_checked_at,
        panda_is_production=row.panda_is_production,
        panda_check_message=row.panda_check_message,
    )


def all_health() -> list[tuple[User, list[TokenHealth]]]:
    """Every user with their grants (users without any included), for the admin page."""
    users = db.session.scalars(select(User).order_by(User.username)).all()
    rows = db.session.scalars(select(UserToken).order_by(UserToken.source)).all()
    by_user: dict[int, list[TokenHealth]] = {}
    for row in rows:
        by_user.setdefault(row.user_id, []).append(_health(row))
    return [(u, by_user.get(u.id, [])) for u in users]


def delete_tokens(user: User, *, by_admin: bool = False) -> int:
    """Forget the user's stored tokens and any device-code link in progress (it would store new
    ones); audited, flushes. Returns how many grants went."""
    cancel_link(user)
    rows = db.session.scalars(select(UserToken).where(UserToken.user_id == user.id)).all()
    for row in rows:
        db.session.delete(row)
    db.session.flush()
    details = {"grants": len(rows), **({"by": "admin"} if by_admin else {})}
    record("token.deleted", target=user.username, details=details)
    return len(rows)


def record_panda_check(user: User | int, is_production: bool | None, message: str) -> None:
    """Remember PanDA's production-role answer on the user's grants; flushes."""
    for row in db.session.scalars(select(UserToken).where(UserToken.user_id == _user_id(user))):
        row.panda_checked_at = clock.now()
        row.panda_is_production = is_production
        row.panda_check_message = message[:500]
    db.session.flush()


def rotate_keys() -> tuple[int, int]:
    """Re-encrypt every stored token under a newly generated current key; flushes.

    Returns (tokens re-encrypted, grants dropped). A grant that cannot be opened (sealed under a
    lost key) is useless: it is dropped and its user marked "re-login needed", so one such row
    cannot stop the rotation. Old keys stay until `prune_unused_keys`, called once this is committed.
    """
    settings = get_settings()
    old = vault.keyring()
    crypto.add_new_key(settings.instance_dir)
    new = crypto.load_keyring(settings.token_key, settings.instance_dir)
    count = dropped = 0
    for row in db.session.scalars(select(UserToken)):
        kinds = [kind for kind in SEALED_KINDS if getattr(row, f"{kind}_sealed") is not None]
        try:
            plain = {
                k: old.open(getattr(row, f"{k}_sealed"), user_id=row.user_id, purpose=vault.purpose(row, k))
                for k in kinds
            }
        except VaultKeyError as exc:
            for kind in kinds:
                setattr(row, f"{kind}_sealed", None)
            row.needs_relogin = True
            row.last_error = f"stored tokens were sealed under a lost key ({exc}); dropped at key rotation"[
                :500
            ]
            _audit_failure(db.session, row, row.last_error, relogin=True)
            dropped += 1
            continue
        for kind, value in plain.items():
            setattr(
                row, f"{kind}_sealed", new.seal(value, user_id=row.user_id, purpose=vault.purpose(row, kind))
            )
            count += 1
    db.session.flush()
    current_app.extensions["token_keyring"] = new  # holds the old keys too, until they are pruned
    return count, dropped


def prune_unused_keys() -> int:
    """Remove the keys in instance/token_keys.json other than the current one (the base key stays);
    only once the rotation that stopped using them is committed. Returns how many went."""
    settings = get_settings()
    pruned = crypto.prune_keys(settings.instance_dir, keep={vault.keyring().current})
    if pruned:
        current_app.extensions["token_keyring"] = crypto.load_keyring(
            settings.token_key, settings.instance_dir
        )
    return pruned
