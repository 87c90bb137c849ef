"""Log-in with SPD-IAM: OpenID Connect authorization code + PKCE through authlib's Flask client.

authlib checks the state (bound to the server-side session), PKCE, and the ID token (signature
through the JWKS, `iss` from discovery, `aud` = our client id, `exp`, `nonce`). On top of that the
discovery document's issuer must equal the configured issuer exactly, and so must the `iss`
parameter of the authorization response (RFC 9207) when the provider sends one. Users are the pair
(iss, sub); the groups claim decides the role through `iam.role_map` on every login.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from joserfc.errors import JoseError
from sqlalchemy import select

from app import clock
from app.audit.services import record
from app.auth.models import User
from app.auth.roles import ROLES, role_rank
from app.auth.services import LoginRateLimiter, log_in
from app.config import IamSettings, Settings, get_settings
from app.extensions import db
from app.tokens.oidc import TRANSPORT_ERRORS, discovery_url, join_scopes
from app.web.security import safe_next

log = logging.getLogger(__name__)

bp = Blueprint("iam", __name__, url_prefix="/auth/iam")

_EXTENSION = "iam_oauth"
_LIMITER = "iam_rate_limiter"


class LoginRefused(Exception):
    """The provider vouched for the user, but the panel does not let them in (the message says why)."""


def iam_enabled(settings: Settings | None = None) -> bool:
    return (settings or get_settings()).iam.enabled


def login_scopes(iam: IamSettings) -> str:
    return join_scopes(iam.scopes, iam.extra_scopes)


@bp.record_once
def _register_client(state) -> None:
    app = state.app
    settings: Settings = app.config["SETTINGS"]
    if not iam_enabled(settings):
        return
    oauth = OAuth(app)
    oauth.register(
        "iam",
        client_id=settings.iam.client_id,
        client_secret=settings.iam.client_secret,
        server_metadata_url=discovery_url(settings.iam.issuer),
        client_kwargs={
            "scope": login_scopes(settings.iam),
            "code_challenge_method": "S256",
            "timeout": settings.iam.http_timeout_s,
        },
    )
    app.extensions[_EXTENSION] = oauth
    app.extensions[_LIMITER] = LoginRateLimiter(settings.iam.login_rate_limit, settings.auth.login_window_s)


def _client():
    oauth = current_app.extensions.get(_EXTENSION)
    if oauth is None:
        abort(404)
    return oauth.iam


# ---- users and roles ------------------------------------------------------------------------


def normalize_groups(value: Any) -> list[str]:
    """Group names as plain paths: IAM's `groups` ("spd/production") and WLCG's ("/spd/production")."""
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list):
        return []
    return [str(g).strip().strip("/") for g in value if str(g).strip("/ ")]


def role_for_groups(groups: list[str], role_map: dict[str, str]) -> str | None:
    """The strongest role any of the groups maps to, or None when none does."""
    roles = [role_map[g] for g in groups if g in role_map and role_map[g] in ROLES]
    return max(roles, key=role_rank) if roles else None


def _unique_username(wanted: str) -> str:
    base = "".join(c for c in wanted if c.isalnum() or c in "._-")[:140] or "iam-user"
    candidate, n = base, 1
    while db.session.scalar(select(User.id).where(User.username == candidate)) is not None:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def provision_user(claims: dict[str, Any], settings: Settings) -> tuple[User, list[str]]:
    """Find or create the user (iss, sub) and apply name, email and role from the claims; flushes.

    Raises LoginRefused when no group maps to a role or the account is disabled.
    """
    iss, sub = str(claims["iss"]), str(claims["sub"])
    groups = normalize_groups(claims.get(settings.iam.groups_claim))
    role = role_for_groups(groups, settings.iam.role_map)
    user = db.session.scalar(select(User).where(User.iss == iss, User.sub == sub))
    if role is None:
        raise LoginRefused(
            f"your SPD-IAM account is in none of the groups this panel accepts ({', '.join(settings.iam.role_map)})"
        )
    if user is None:
        user = User(
            username=_unique_username(str(claims.get("preferred_username") or sub)),
            iss=iss,
            sub=sub,
            role=role,
            active=True,
        )
        db.session.add(user)
        db.session.flush()
        record(
            "user.created", target=user.username, details={"iss": iss, "role": role, "via": "iam"}, user=user
        )
    elif not user.active:
        raise LoginRefused("your panel account is disabled")
    elif user.role != role:
        record(
            "user.role_changed",
            target=user.username,
            details={"from": user.role, "to": role, "groups": groups[:20], "via": "iam-login"},
            user=user,
        )
        user.role = role
    user.display_name = str(claims.get("name") or user.display_name or user.username)[:200]
    user.email = str(claims.get("email") or user.email or "")[:254]
    db.session.flush()
    return user, groups


# ---- views --------------------------------------------------------------------------------


def _refuse(reason: str, *, target: str = "", details: dict | None = None):
    record(
        "login.failed",
        target=target or "iam",
        outcome="failed",
        details={"method": "iam", "reason": reason, **(details or {})},
        user=None,
    )
    db.session.commit()
    flash(f"SPD-IAM login failed: {reason}", "danger")
    return redirect(url_for("auth.login"))


@bp.before_request
def _rate_limit():
    """Refuse (429, audited) a client address that started too many IAM logins or callbacks.

    Every request counts, not only failures: each one costs a call to IAM (discovery or token
    endpoint) and a state entry in the session, whatever its outcome (ASVS 6.3.1).
    """
    limiter = current_app.extensions.get(_LIMITER)
    if limiter is None or request.endpoint not in ("iam.login", "iam.callback"):
        return None
    address = request.remote_addr or "-"
    if not limiter.blocked(address, "iam"):
        limiter.failed(address, "iam")  # counts the attempt
        return None
    record("login.failed", target="iam", outcome="rate-limited", details={"method": "iam"}, user=None)
    db.session.commit()
    window_s = get_settings().auth.login_window_s
    message = (
        "Too many SPD-IAM login attempts from your address. "
        f"Wait {max(1, window_s // 60)} minute(s), then try again."
    )
    response = current_app.make_response(
        (render_template("errors/error.html", code=429, title="Too many requests", message=message), 429)
    )
    response.headers["Retry-After"] = str(window_s)
    return response


@bp.get("/login")
def login():
    """Send the browser to SPD-IAM (a GET link, so the page's form-action CSP does not apply)."""
    settings = get_settings()
    client = _client()
    try:
        metadata = client.load_server_metadata()
    except TRANSPORT_ERRORS as exc:
        log.warning("SPD-IAM discovery failed: %s", type(exc).__name__)
        return _refuse("SPD-IAM cannot be reached; try again later")
    if metadata.get("issuer") != settings.iam.issuer:
        return _refuse(
            "the provider's issuer does not match the configured issuer",
            details={"issuer": str(metadata.get("issuer"))[:200]},
        )
    session["iam_next"] = safe_next(request.args.get("next"))
    redirect_uri = url_for("iam.callback", _external=True)
    extra = {"prompt": settings.iam.login_prompt} if settings.iam.login_prompt else {}
    return client.authorize_redirect(redirect_uri, **extra)


@bp.get("/callback")
def callback():
    """Finish the login: validate everything, then (iss, sub) → user, tokens → vault, new session."""
    from app.tokens.services import store_tokens

    settings = get_settings()
    client = _client()
    if request.args.get("error"):
        return _refuse(f"SPD-IAM answered {request.args.get('error')}"[:120])
    iss_param = request.args.get("iss")
    if iss_param is not None and iss_param != settings.iam.issuer:
        return _refuse(
            "the authorization response came from another issuer", details={"iss": iss_param[:200]}
        )
    try:
        # authlib checks `aud` only through `azp` by default (aud "x" + azp "<us>" would pass), and
        # `iss` only when discovery has one: spell both out (OIDC Core 3.1.3.7, ASVS 10.5.3/10.5.4).
        token = client.authorize_access_token(
            claims_options={
                "iss": {"essential": True, "values": [settings.iam.issuer]},
                "aud": {"essential": True, "values": [settings.iam.client_id]},
                "exp": {"essential": True},
                "sub": {"essential": True},
            }
        )
    except OAuthError as exc:
        return _refuse(f"{exc.error or 'oauth error'}".replace("_", " "))
    except JoseError as exc:
        return _refuse(f"the ID token was refused ({exc.error}: {exc.description or ''})".strip())
    except TRANSPORT_ERRORS as exc:
        return _refuse(f"the token request failed ({type(exc).__name__})")
    claims = dict(token.get("userinfo") or {})
    if not claims.get("sub") or claims.get("iss") != settings.iam.issuer:
        return _refuse("the ID token is missing or names another issuer")
    try:
        user, groups = provision_user(claims, settings)
    except LoginRefused as exc:
        db.session.rollback()
        return _refuse(str(exc), target=str(claims.get("preferred_username") or claims["sub"]))
    store_tokens(
        user, "login", token, issuer=settings.iam.issuer, client_id=settings.iam.client_id, groups=groups
    )
    next_url = session.get("iam_next") or url_for("web.index")
    log_in(user)
    session["login_method"] = "iam"
    record("login.ok", target=user.username, details={"method": "iam", "role": user.role}, user=user)
    user.last_login_at = clock.now()
    db.session.commit()
    return redirect(safe_next(next_url))


@bp.get("/logged-out")
def logged_out():
    """After the panel's logout: offer to end the SPD-IAM session too (RP-initiated logout)."""
    settings = get_settings()
    return render_template(
        "auth/iam_logged_out.html", iam_logout=iam_enabled(settings) and settings.iam.rp_logout, done=False
    )


@bp.get("/signed-out")
def signed_out():
    """Where SPD-IAM sends the browser back after its own logout (the registered post-logout URI)."""
    return render_template("auth/iam_logged_out.html", iam_logout=False, done=True)


@bp.get("/end-session")
def end_session():
    """Redirect to IAM's end-session endpoint. No id_token_hint: tokens never go into URLs."""
    settings = get_settings()
    client = _client()
    try:
        endpoint = client.load_server_metadata().get("end_session_endpoint")
    except TRANSPORT_ERRORS:
        endpoint = None
    if not endpoint:
        flash("SPD-IAM offers no logout endpoint; close the browser to end the SPD-IAM session.", "warning")
        return redirect(url_for("auth.login"))
    params = {
        "client_id": settings.iam.client_id,
        "post_logout_redirect_uri": url_for("iam.signed_out", _external=True),
    }
    return redirect(f"{endpoint}?{urlencode(params)}")
