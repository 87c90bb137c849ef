"""Token pages: each user's own tokens (/tokens) and every user's token health for admins (/tokens/all).

Token values are never rendered: only where they come from, their expiries and their health.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from app import clock
from app.api import tokens as api_tokens
from app.api.forms import ApiTokenForm
from app.auth.current import logged_in_user
from app.auth.decorators import login_required, role_required
from app.auth.models import User
from app.auth.services import end_user_sessions
from app.auth.sessions import active_sessions, session_counts
from app.config import get_settings
from app.extensions import db
from app.panda.services import check_production_role
from app.tokens import device, services
from app.tokens.errors import TokenUnavailable

bp = Blueprint("tokens", __name__, url_prefix="/tokens")


def _page(
    api_form: ApiTokenForm | None = None, new_token: str | None = None, status: int = 200
) -> ResponseReturnValue:
    user = logged_in_user()
    settings = get_settings()
    grants = services.health(user)
    if api_form is None:
        api_form = ApiTokenForm(days=settings.api.token_days)
    return render_template(
        "tokens/index.html",
        user=user,
        grants=grants,
        groups=sorted({g for grant in grants if not grant.retired for g in grant.groups}),
        valid_until=services.valid_until(user),
        pending=device.pending_link(user),
        sessions=active_sessions(user.id),
        sandbox=services.sandbox_user(user, settings),
        iam_configured=bool(settings.iam.issuer),
        now=clock.now(),
        api_tokens=api_tokens.tokens_of(user),
        api_form=api_form,
        new_api_token=new_token,
    ), status


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    return _page()


@bp.post("/api")
@login_required
def api_create() -> ResponseReturnValue:
    """A new personal API token, shown on this response only (never stored, never shown again)."""
    form = ApiTokenForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    try:
        created = api_tokens.create_token(logged_in_user(), form.name.data, form.scope.data, form.days.data)
    except api_tokens.TokenInputError as exc:
        for name, message in exc.errors.items():
            form[name].errors = [message]
        return _page(form, status=400)
    return _page(new_token=created.secret)


@bp.post("/api/<int:token_id>/revoke")
@login_required
def api_revoke(token_id: int) -> ResponseReturnValue:
    if api_tokens.revoke_token(logged_in_user(), token_id) is None:  # CSRF: checked for every POST
        abort(404)
    flash("API token revoked: requests with it are refused from now on.", "info")
    return redirect(url_for("tokens.index"))


@bp.post("/refresh")
@login_required
def refresh() -> ResponseReturnValue:
    try:
        services.refresh_now(logged_in_user())
    except TokenUnavailable as exc:
        flash(f"Refresh failed: {exc.reason}", "danger")
    else:
        flash("Tokens refreshed.", "success")
    return redirect(url_for("tokens.index"))


@bp.post("/delete")
@login_required
def delete() -> ResponseReturnValue:
    services.delete_tokens(logged_in_user())
    flash("Your stored tokens are deleted. PanDA calls on your behalf need a new login or link.", "info")
    return redirect(url_for("tokens.index"))


@bp.post("/link")
@login_required
def link() -> ResponseReturnValue:
    try:
        device.start_link(logged_in_user())
    except TokenUnavailable as exc:
        flash(exc.reason, "danger")
    return redirect(url_for("tokens.index"))


@bp.post("/link/poll")
@login_required
def link_poll() -> ResponseReturnValue:
    try:
        grant = device.poll_link(logged_in_user())
    except TokenUnavailable as exc:
        flash(exc.reason, "danger")
    else:
        if grant is None:
            flash("Not approved yet: approve the code at SPD-IAM, then press the button again.", "warning")
        else:
            flash("PanDA token linked.", "success")
    return redirect(url_for("tokens.index"))


@bp.post("/link/cancel")
@login_required
def link_cancel() -> ResponseReturnValue:
    device.cancel_link(logged_in_user())
    return redirect(url_for("tokens.index"))


@bp.post("/check")
@login_required
def check() -> ResponseReturnValue:
    """Ask PanDA what it makes of the user's token (get_user_attributes → production role)."""
    result = check_production_role(logged_in_user())
    flash(result.notice, result.category)
    return redirect(url_for("tokens.index"))


@bp.get("/all")
@role_required("admin")
def all_users() -> ResponseReturnValue:
    return render_template(
        "tokens/all.html", rows=services.all_health(), now=clock.now(), session_counts=session_counts()
    )


@bp.post("/all/<int:user_id>/end-sessions")
@role_required("admin")
def end_sessions(user_id: int) -> ResponseReturnValue:
    target = db.get_or_404(User, user_id)
    count = end_user_sessions(target)
    flash(f"Ended {count} session(s) of {target.username}.", "info")
    return redirect(url_for("tokens.all_users"))


@bp.post("/all/<int:user_id>/delete")
@role_required("admin")
def admin_delete(user_id: int) -> ResponseReturnValue:
    target = db.get_or_404(User, user_id)
    services.delete_tokens(target, by_admin=True)
    flash(f"Deleted the stored tokens of {target.username}.", "info")
    return redirect(url_for("tokens.all_users"))
