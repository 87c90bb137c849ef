"""The token vault: stores tokens sealed, keeps ID tokens fresh, and hands PanDA-capable tokens out.

`token_for(user)` is the only way the PanDA client obtains a token. Refreshes follow the ID token's
own `exp` (IAM's ID tokens live 10 minutes, its access tokens an hour), `iam.refresh_leeway_s`
before it but never earlier than half-way through the token's life, one at a time per user: a
per-user lock in this process plus `SELECT ... FOR UPDATE` on PostgreSQL, then a re-read, so a second
caller uses the first caller's result. The new refresh token is committed before the new ID token
is handed out. Token reads and writes happen in a separate database session, so `token_for` can be
called from a request or a scheduler job without committing the caller's work; call it outside an
open write transaction (on SQLite that would block the vault's own commit).

A refresh whose ID token carries the groups claim re-applies `iam.role_map` to the user
(`app.auth.services.follow_groups`): a changed role is audited, no role left ends the user's access.

When SPD-IAM does not answer, a token that is still valid is handed out all the same (the refresh
is tried again by a later call, at most every `vault.RETRY_AFTER_S` seconds); once none is left,
`token_for` raises `IamUnreachable`, a `TokenUnavailable` that is not the user's to fix: callers
wait (a launch stays pending) instead of failing or asking for a new login.

In sandbox mode (no PanDA URL) local accounts, and everyone while no SPD-IAM is configured, get
sandbox tokens from the built-in simulator's issuer; SPD-IAM users send their own IAM tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, scoped_session

from app import clock
from app.audit.services import record, record_now
from app.auth.models import User
from app.auth.roles import normalize_groups
from app.auth.services import follow_groups
from app.config import Settings, get_settings
from app.extensions import db
from app.tokens import crypto, oidc, vault
from app.tokens.crypto import VaultKeyError
from app.tokens.device import SEALED_AS as DEVICE_CODE_PURPOSE
from app.tokens.device import cancel_link
from app.tokens.errors import IamUnreachable, TokenUnavailable
from app.tokens.jwtutil import expiry, unverified_claims
from app.tokens.models import SEALED_KINDS, DeviceLink, UserToken
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


def _sent(row: UserToken, settings: Settings) -> tuple[str | None, datetime | None]:
    """The token sent to PanDA (the ID token, or the exchanged one) and its expiry."""
    if settings.iam.exchange_audience:
        return vault.unseal(row, "exchanged_token"), row.exchanged_token_expires_at
    return vault.unseal(row, "id_token"), row.id_token_expires_at


def _usable(row: UserToken, settings: Settings) -> str | None:
    """The token to send, while it needs no refresh yet."""
    token, expires_at = _sent(row, settings)
    return token if token and vault.fresh(expires_at, settings, vault.lifetime(token)) else None


def _unavailable_reason(user_id: int, settings: Settings) -> str:
    user = db.session.get(User, user_id)
    if user is not None and user.is_local:
        return "no PanDA token: link one through SPD-IAM on the Tokens page (device code)"
    if not settings.iam.login_tokens_for_panda:
        return "no PanDA token: this panel's IAM client is not accepted by PanDA; link one on the Tokens page"
    return "no PanDA token stored: log in with SPD-IAM again"


# While a dispatch cycle runs (`one_token_per_user`): user id -> the token handed out in it.
_cycle_tokens: ContextVar[dict[int, str] | None] = ContextVar("prodpanel_cycle_tokens", default=None)


@contextmanager
def one_token_per_user() -> Iterator[None]:
    """Within this block (one dispatch cycle, seconds long) `token_for` looks each user's token up
    and unseals it once, then hands the same token out again: it is valid far longer than the block
    (`vault.fresh` keeps a leeway of minutes). Threads that should share it run in a copy of this
    context (`contextvars.copy_context().run`). Failures are not kept: each caller sees its own."""
    if _cycle_tokens.get() is not None:  # nested: the outer block's tokens
        yield
        return
    marker = _cycle_tokens.set({})
    try:
        yield
    finally:
        _cycle_tokens.reset(marker)


def token_for(user: User | int) -> str:
    """`token_for_now`, or the token already handed out to `user` in this `one_token_per_user` block."""
    cache = _cycle_tokens.get()
    if cache is None:
        return token_for_now(user)
    user_id = _user_id(user)
    token = cache.get(user_id)
    if token is None:
        token = cache[user_id] = token_for_now(user)
    return token


def token_for_now(user: User | int) -> str:
    """A valid token for PanDA on behalf of `user` (the ID token, or the exchanged token when
    `iam.exchange_audience` is set); raises TokenUnavailable with the reason otherwise.

    In sandbox mode (no PanDA URL) local accounts get tokens from the built-in simulator's issuer
    (`uses_sandbox_tokens`). Raises IamUnreachable (a TokenUnavailable) when SPD-IAM does not answer
    and no valid token is left.
    """
    settings = get_settings()
    user_id = _user_id(user)
    if uses_sandbox_tokens(user_id, settings):
        return sandbox_token_for(user_id)
    try:
        with vault.vault_session() as session:
            token = _usable(_grant(session, user_id, settings), settings)
            if token:
                return token
        return _refresh_locked(user_id, settings, force=False)
    except VaultKeyError as exc:
        raise _undecryptable(user_id, exc) from None


def sandbox_user(user: User, settings: Settings) -> bool:
    """True when the user's PanDA tokens are sandbox tokens: in sandbox mode, for local accounts, and
    for everyone while no SPD-IAM is configured (the simulator then trusts only its own issuer)."""
    return settings.sandbox and (user.is_local or not settings.iam.enabled)


def uses_sandbox_tokens(user: User | int, settings: Settings) -> bool:
    """`sandbox_user` for a user given by id too (read in the vault's own session)."""
    if not settings.sandbox:
        return False
    if isinstance(user, User):
        return sandbox_user(user, settings)  # at hand: no second read
    with vault.vault_session() as session:
        found = session.get(User, _user_id(user))
        return found is None or sandbox_user(found, settings)


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
    if uses_sandbox_tokens(user, settings):
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
        try:
            # With token exchange, a still-valid access token is enough to exchange without a refresh.
            if (
                force
                or not settings.iam.exchange_audience
                or not vault.fresh(row.access_token_expires_at, settings)
            ):
                _refresh_row(session, row, settings, force=force)
            if settings.iam.exchange_audience:
                _exchange_row(session, row, settings)
        except IamUnreachable as exc:
            # Not fatal while the current token lasts: send it; a later call refreshes.
            token, expires_at = _sent(row, settings)
            if not token or not vault.still_valid(expires_at):
                raise
            if force:
                raise TokenUnavailable(
                    f"SPD-IAM unreachable since {exc.since:%Y-%m-%d %H:%M:%S} UTC; the current token "
                    f"stays in use until {expires_at:%H:%M:%S} UTC"
                ) from None
            return token
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


def _call_iam(row: UserToken, call: Callable[[], dict[str, Any]], *, force: bool = False) -> dict[str, Any]:
    """`call` SPD-IAM for this grant, keeping track of outages: while it was down moments ago, raise
    IamUnreachable without calling it (unless `force`, the user's button)."""
    outage = vault.outage(row.issuer)
    if outage is not None and not force and clock.now() < outage.retry_at:
        raise IamUnreachable(outage.since, (outage.retry_at - clock.now()).total_seconds())
    try:
        response = call()
    except oidc.OidcError as exc:
        vault.note_call(row.issuer, answered=not exc.transient)
        raise
    vault.note_call(row.issuer, answered=True)
    return response


def _unreachable(session: Session, row: UserToken, exc: oidc.OidcError, what: str) -> IamUnreachable:
    """SPD-IAM did not answer `what` (recorded like a failure; the grant itself is fine)."""
    outage = vault.outage(row.issuer)
    since = outage.since if outage else clock.now()
    _fail(session, row, f"SPD-IAM unreachable since {since:%Y-%m-%d %H:%M:%S} UTC ({what}: {exc})",
          relogin=False)  # fmt: skip
    return IamUnreachable(since, vault.RETRY_AFTER_S)


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


def _refresh_row(session: Session, row: UserToken, settings: Settings, *, force: bool = False) -> None:
    """Use the refresh token once; commit the rotated refresh token before anything else uses it.
    `force` (the user's button) calls SPD-IAM even while it was down moments ago."""
    refresh_token = vault.unseal(row, "refresh_token")
    if not refresh_token:
        raise _fail(session, row, "no refresh token stored (offline_access not granted?)", relogin=True)
    timeout = settings.iam.http_timeout_s

    def refresh() -> dict[str, Any]:
        meta = oidc.discovery(row.issuer, timeout)
        return oidc.refresh(meta, _client_for(row, settings), refresh_token, timeout)

    try:
        response = _call_iam(row, refresh, force=force)
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
        if exc.transient:
            raise _unreachable(session, row, exc, "token refresh failed") from None
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
    row.last_refresh_at = clock.now()
    row.refresh_count += 1
    row.last_error = ""
    row.exchanged_token_sealed, row.exchanged_token_expires_at = None, None
    if settings.iam.groups_claim in claims:  # what PanDA will now see, and what the role follows
        row.groups = normalize_groups(claims[settings.iam.groups_claim])
        if _follow_groups(session, row, settings) is None:
            session.commit()  # the refreshed tokens stay sealed; the grant is unusable now
            raise TokenUnavailable(_relogin_text(row, row.last_error), relogin=True)
    session.commit()


def _follow_groups(session: Session, row: UserToken, settings: Settings) -> str | None:
    """Re-apply the role map to the IAM user this grant belongs to (not to a local account's device
    link, whose IAM identity is not the user's); returns the user's role, None when access ended."""
    user = session.get_one(User, row.user_id)
    if user.is_local or (user.iss, user.sub) != (row.issuer, row.subject):
        return user.role
    return follow_groups(user, list(row.groups), settings, via="iam-refresh", store=session)


def _exchange_row(session: Session, row: UserToken, settings: Settings) -> None:
    access_token = vault.unseal(row, "access_token")
    if not access_token:
        raise _fail(session, row, "no access token to exchange", relogin=False)
    timeout = settings.iam.http_timeout_s

    def exchange() -> dict[str, Any]:
        meta = oidc.discovery(row.issuer, timeout)
        client = oidc.ClientCredentials(settings.iam.client_id, settings.iam.client_secret)
        return oidc.exchange(
            meta, client, access_token, settings.iam.exchange_audience, settings.iam.exchange_scopes, timeout
        )

    try:
        response = _call_iam(row, exchange)
    except oidc.OidcError as exc:
        if exc.transient:
            raise _unreachable(session, row, exc, "token exchange failed") from None
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
    if uses_sandbox_tokens(user, settings):
        return clock.now() + timedelta(days=365)  # minted on demand: no grant to run out
    with vault.vault_session() as session:
        row = _pick(_candidate_rows(session, user_id, settings))
        if row is None or row.needs_relogin:
            return None
        if row.refresh_token_sealed is not None:
            return row.refresh_token_expires_at
        return row.exchanged_token_expires_at if settings.iam.exchange_audience else row.id_token_expires_at


@dataclass(frozen=True)
class PandaTokenLine:
    """The home page's truthful line about the user's PanDA token.

    kind: "sandbox" (the simulator accepts tokens the panel mints), "accepted" (PanDA accepts the
    token the panel sends until `accepted_until`; after that the panel refreshes it until
    `refresh_until`, or, without a refresh token, the user logs in again), "refused" (PanDA refused
    it: `reason`; no date is shown then) or "missing" (no usable token: `reason`).
    """

    kind: str
    accepted_until: datetime | None = None
    has_refresh_token: bool = False
    refresh_until: datetime | None = None  # None with a refresh token: its end is not known
    reason: str = ""


def panda_token_line(user: User) -> PandaTokenLine:
    """What PanDA will accept from the panel for `user` and until when, and what happens after."""
    settings = get_settings()
    if sandbox_user(user, settings):  # the request's user at hand: no second read in the vault's session
        return PandaTokenLine("sandbox")
    with vault.vault_session() as session:
        row = _pick(_candidate_rows(session, user.id, settings))
        if row is None:
            return PandaTokenLine("missing", reason=_unavailable_reason(user.id, settings))
        if row.needs_relogin:
            return PandaTokenLine("missing", reason=_relogin_text(row, row.last_error or "the stored grant was refused"))
        if row.panda_checked_at is not None and row.panda_is_production is False:
            return PandaTokenLine("refused", reason=row.panda_check_message or "PanDA does not grant the production role")
        _, sent_until = _sent(row, settings)
        has_refresh = row.refresh_token_sealed is not None
        if not has_refresh and (sent_until is None or sent_until <= clock.now()):
            return PandaTokenLine("missing", reason=_relogin_text(row, "the token expired and no refresh token was granted"))
        return PandaTokenLine("accepted", sent_until, has_refresh, row.refresh_token_expires_at if has_refresh else None)


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
    retired: bool  # a sandbox grant the panel no longer uses (a real PanDA, or the user's IAM tokens)

    @property
    def status(self) -> str:
        """retired | relogin | expired | failing (the last refresh or PanDA check failed) | warning
        (refresh token ends within 3 days) | ok."""
        now = clock.now()
        if self.retired:
            return "retired"
        if self.needs_relogin:
            return "relogin"
        if self.has_refresh_token:
            end = self.refresh_token_expires_at
            if end is not None and end <= now:
                return "expired"
        elif self.id_token_expires_at is None or self.id_token_expires_at <= now:
            return "expired"
        if self.last_error or (self.panda_checked_at is not None and not self.panda_is_production):
            return "failing"
        end = self.refresh_token_expires_at if self.has_refresh_token else None
        if end is not None and end - now < timedelta(days=3):
            return "warning"
        return "ok"


def health(user: User) -> list[TokenHealth]:
    """The user's stored grants, for the token pages."""
    rows = db.session.scalars(
        select(UserToken).where(UserToken.user_id == user.id).order_by(UserToken.source)
    )
    return [_health(row, user, get_settings()) for row in rows]


def _health(row: UserToken, user: User, settings: Settings) -> TokenHealth:
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
        retired=row.source == "sandbox" and not sandbox_user(user, settings),
    )


def all_health() -> list[tuple[User, list[TokenHealth]]]:
    """Every user with their grants (users without any included), for the admin page."""
    settings = get_settings()
    users = db.session.scalars(select(User).order_by(User.username)).all()
    rows = db.session.scalars(select(UserToken).order_by(UserToken.source)).all()
    by_id = {u.id: u for u in users}
    by_user: dict[int, list[TokenHealth]] = {}
    for row in rows:
        by_user.setdefault(row.user_id, []).append(_health(row, by_id[row.user_id], settings))
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
    for link in db.session.scalars(select(DeviceLink)):  # a link in progress: its sealed device code
        try:
            code = old.open(link.device_code_sealed, user_id=link.user_id, purpose=DEVICE_CODE_PURPOSE)
        except VaultKeyError:
            db.session.delete(link)  # unusable: the user starts the link again
        else:
            link.device_code_sealed = new.seal(code, user_id=link.user_id, purpose=DEVICE_CODE_PURPOSE)
    db.session.flush()
    vault.forget_keyring()  # the new one holds the old keys too, until they are pruned
    return count, dropped


def prune_unused_keys() -> int:
    """Remove the keys in instance/token_keys.json other than the current one (the base key stays);
    only once the rotation that stopped using them is committed. Returns how many went."""
    settings = get_settings()
    pruned = crypto.prune_keys(settings.instance_dir, keep={vault.keyring().current})
    if pruned:
        vault.forget_keyring()
    return pruned
