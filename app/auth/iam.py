"""SPD-IAM login pages: start, callback, and logout (RP-initiated). The login itself is
`app.auth.services` (begin_iam_login, complete_iam_login)."""

from __future__ import annotations

from authlib.integrations.flask_client import OAuth
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from app.auth.iam_client import IamClient
from app.auth.services import (
    IAM_FAILURE_LIMITER,
    IAM_START_LIMITER,
    LoginRateLimiter,
    LoginRefused,
    begin_iam_login,
    complete_iam_login,
    iam_logout_redirect,
    iam_rate_limited,
    returned_from_iam_logout,
)
from app.config import Settings, get_settings
from app.tokens.oidc import discovery_url, join_scopes

bp = Blueprint("iam", __name__, url_prefix="/auth/iam")

_EXTENSION = "iam_oauth"


@bp.record_once
def _register_client(state) -> None:
    app = state.app
    settings: Settings = app.config["SETTINGS"]
    if not settings.iam.enabled:
        return
    oauth = OAuth(app)
    oauth.register(
        "iam",
        client_cls=IamClient,
        client_id=settings.iam.client_id,
        client_secret=settings.iam.client_secret,
        server_metadata_url=discovery_url(settings.iam.issuer),
        client_kwargs={
            "scope": join_scopes(settings.iam.scopes, settings.iam.extra_scopes),
            "code_challenge_method": "S256",
            "default_timeout": settings.iam.http_timeout_s,  # every call to IAM, discovery included
        },
    )
    app.extensions[_EXTENSION] = oauth
    window_s = settings.auth.login_window_s
    app.extensions[IAM_START_LIMITER] = LoginRateLimiter("iam-start", settings.iam.login_start_limit, window_s)
    app.extensions[IAM_FAILURE_LIMITER] = LoginRateLimiter("iam-failure", settings.iam.login_rate_limit, window_s)


def _client():
    oauth = current_app.extensions.get(_EXTENSION)
    if oauth is None:
        abort(404)
    return oauth.iam


def _refused(exc: LoginRefused):
    flash(f"SPD-IAM login failed: {exc}", "danger")
    return redirect(url_for("auth.login"))


_STEPS = {"iam.login": "start", "iam.callback": "callback"}


@bp.before_request
def _rate_limit():
    """Refuse (429, audited) a client address that started too many IAM logins, or whose callbacks
    failed too often (app.auth.services.iam_rate_limited)."""
    step = _STEPS.get(request.endpoint or "")
    if step is None or not iam_rate_limited(request.remote_addr or "-", step):
        return None
    window_s = get_settings().auth.login_window_s
    what = "SPD-IAM login attempts" if step == "start" else "failed SPD-IAM logins"
    message = f"Too many {what} from your address. Wait {max(1, window_s // 60)} minute(s), then try again."
    response = current_app.make_response(
        (render_template("errors/error.html", code=429, title="Too many requests", message=message), 429)
    )
    response.headers["Retry-After"] = str(window_s)
    return response


@bp.get("/login")
def login():
    """Send the browser to SPD-IAM (a GET link, so the page's form-action CSP does not apply)."""
    try:
        return begin_iam_login(_client(), request.args.get("next"))
    except LoginRefused as exc:
        return _refused(exc)


@bp.get("/callback")
def callback():
    """Finish the login: validate everything, then (iss, sub) → user, tokens → vault, new session."""
    try:
        return redirect(complete_iam_login(_client(), request.args, request.remote_addr or "-"))
    except LoginRefused as exc:
        return _refused(exc)


@bp.get("/logged-out")
def logged_out():
    """After the panel's logout: offer to end the SPD-IAM session too (RP-initiated logout)."""
    iam = get_settings().iam
    return render_template("auth/iam_logged_out.html", iam_logout=iam.enabled and iam.rp_logout, done=False)


@bp.get("/signed-out")
def signed_out():
    """Where SPD-IAM sends the browser back after its logout page (the registered post-logout URI).
    IAM's answer does not say whether the user chose to sign out there: the page says what it knows."""
    iam = get_settings().iam
    return render_template(
        "auth/iam_logged_out.html",
        iam_logout=iam.enabled and iam.rp_logout,
        done=True,
        returned=returned_from_iam_logout(request.args.get("state")),
    )


@bp.get("/end-session")
def end_session():
    """Redirect to IAM's end-session endpoint (no id_token_hint: tokens never go into URLs)."""
    target = iam_logout_redirect(_client())
    if target is None:
        flash("SPD-IAM offers no logout endpoint; close the browser to end the SPD-IAM session.", "warning")
        return redirect(url_for("auth.login"))
    return redirect(target)
