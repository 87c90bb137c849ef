"""SPD-IAM login pages: start, callback, and logout (RP-initiated). The login itself is
`app.auth.services` (begin_iam_login, complete_iam_login)."""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.integrations.flask_client import OAuth
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from app.auth.services import (
    IAM_RATE_LIMITER,
    LoginRateLimiter,
    LoginRefused,
    begin_iam_login,
    complete_iam_login,
    iam_rate_limited,
)
from app.config import Settings, get_settings
from app.tokens.oidc import TRANSPORT_ERRORS, discovery_url, join_scopes

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
        client_id=settings.iam.client_id,
        client_secret=settings.iam.client_secret,
        server_metadata_url=discovery_url(settings.iam.issuer),
        client_kwargs={
            "scope": join_scopes(settings.iam.scopes, settings.iam.extra_scopes),
            "code_challenge_method": "S256",
            "timeout": settings.iam.http_timeout_s,
        },
    )
    app.extensions[_EXTENSION] = oauth
    app.extensions[IAM_RATE_LIMITER] = LoginRateLimiter(
        settings.iam.login_rate_limit, settings.auth.login_window_s
    )


def _client():
    oauth = current_app.extensions.get(_EXTENSION)
    if oauth is None:
        abort(404)
    return oauth.iam


def _refused(exc: LoginRefused):
    flash(f"SPD-IAM login failed: {exc}", "danger")
    return redirect(url_for("auth.login"))


@bp.before_request
def _rate_limit():
    """Refuse (429, audited) a client address that started too many IAM logins or callbacks."""
    if request.endpoint not in ("iam.login", "iam.callback") or not iam_rate_limited(
        request.remote_addr or "-"
    ):
        return None
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
    try:
        return begin_iam_login(_client(), request.args.get("next"))
    except LoginRefused as exc:
        return _refused(exc)


@bp.get("/callback")
def callback():
    """Finish the login: validate everything, then (iss, sub) → user, tokens → vault, new session."""
    try:
        return redirect(complete_iam_login(_client(), request.args))
    except LoginRefused as exc:
        return _refused(exc)


@bp.get("/logged-out")
def logged_out():
    """After the panel's logout: offer to end the SPD-IAM session too (RP-initiated logout)."""
    iam = get_settings().iam
    return render_template("auth/iam_logged_out.html", iam_logout=iam.enabled and iam.rp_logout, done=False)


@bp.get("/signed-out")
def signed_out():
    """Where SPD-IAM sends the browser back after its own logout (the registered post-logout URI)."""
    return render_template("auth/iam_logged_out.html", iam_logout=False, done=True)


@bp.get("/end-session")
def end_session():
    """Redirect to IAM's end-session endpoint. No id_token_hint: tokens never go into URLs."""
    client = _client()
    try:
        endpoint = client.load_server_metadata().get("end_session_endpoint")
    except TRANSPORT_ERRORS:
        endpoint = None
    if not endpoint:
        flash("SPD-IAM offers no logout endpoint; close the browser to end the SPD-IAM session.", "warning")
        return redirect(url_for("auth.login"))
    params = {
        "client_id": get_settings().iam.client_id,
        "post_logout_redirect_uri": url_for("iam.signed_out", _external=True),
    }
    return redirect(f"{endpoint}?{urlencode(params)}")
