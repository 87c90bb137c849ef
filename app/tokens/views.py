"""Token pages: each user's own tokens (/tokens) and every user's token health for admins (/tokens/all).

Token values are never rendered: only where they come from, their expiries and their health.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for

from app import clock
from app.audit.services import record
from app.auth.current import current_user
from app.auth.decorators import login_required, role_required
from app.auth.models import User
from app.auth.sessions import active_sessions, end_sessions_of, session_counts
from app.config import get_settings
from app.extensions import db
from app.tokens import device, services
from app.tokens.errors import TokenUnavailable

bp = Blueprint("tokens", __name__, url_prefix="/tokens")


@bp.get("/")
@login_required
def index():
    user = current_user()
    settings = get_settings()
    grants = services.health(user)
    return render_template(
        "tokens/index.html",
        user=user,
        grants=grants,
        groups=sorted({g for grant in grants for g in grant.groups}),
        valid_until=services.valid_until(user),
        pending=device.pending_link(user),
        sessions=active_sessions(user.id),
        sandbox=settings.sandbox,
        iam_configured=bool(settings.iam.issuer),
        now=clock.now(),
    )


@bp.post("/refresh")
@login_required
def refresh():
    user = current_user()
    try:
        services.refresh_now(user)
    except TokenUnavailable as exc:
        flash(f"Refresh failed: {exc.reason}", "danger")
    else:
        record("token.refreshed", target=user.username, details={"trigger": "button"})
        db.session.commit()
        flash("Tokens refreshed.", "success")
    return redirect(url_for("tokens.index"))


@bp.post("/delete")
@login_required
def delete():
    user = current_user()
    count = services.delete_tokens(user)
    record("token.deleted", target=user.username, details={"grants": count})
    db.session.commit()
    flash("Your stored tokens are deleted. PanDA calls on your behalf need a new login or link.", "info")
    return redirect(url_for("tokens.index"))


@bp.post("/link")
@login_required
def link():
    user = current_user()
    try:
        device.start_link(user)
    except TokenUnavailable as exc:
        flash(exc.reason, "danger")
    return redirect(url_for("tokens.index"))


@bp.post("/link/poll")
@login_required
def link_poll():
    user = current_user()
    try:
        grant = device.poll_link(user)
    except TokenUnavailable as exc:
        record(
            "token.link_failed", target=user.username, outcome="failed", details={"reason": exc.reason[:200]}
        )
        db.session.commit()
        flash(exc.reason, "danger")
        return redirect(url_for("tokens.index"))
    if grant is None:
        flash("Not approved yet: approve the code at SPD-IAM, then press the button again.", "warning")
        return redirect(url_for("tokens.index"))
    record(
        "token.linked", target=user.username, details={"client_id": grant.client_id, "subject": grant.subject}
    )
    db.session.commit()
    flash("PanDA token linked.", "success")
    return redirect(url_for("tokens.index"))


@bp.post("/link/cancel")
@login_required
def link_cancel():
    device.cancel_link(current_user())
    return redirect(url_for("tokens.index"))


@bp.post("/check")
@login_required
def check():
    """Ask PanDA what it makes of the user's token (get_user_attributes → production role)."""
    user = current_user()
    import app.tokens as vault
    from app.panda.errors import PandaError
    from app.panda.services import panda_client_for

    settings = get_settings()
    client = panda_client_for(settings, tokens=vault)
    try:
        attrs = client.get_user_attributes(user)
    except TokenUnavailable as exc:
        services.record_panda_check(user, None, f"no token: {exc.reason}")
        flash(f"No token for PanDA: {exc.reason}", "danger")
    except PandaError as exc:
        services.record_panda_check(user, None, str(exc)[:300])
        flash(f"PanDA check failed: {exc}", "danger")
    else:
        ok = bool(attrs.is_production_user)
        message = "PanDA grants the production role" if ok else "PanDA does NOT grant the production role"
        services.record_panda_check(user, ok, message)
        flash(message + ".", "success" if ok else "warning")
    finally:
        client.close()
    db.session.commit()
    return redirect(url_for("tokens.index"))


@bp.get("/all")
@role_required("admin")
def all_users():
    return render_template(
        "tokens/all.html", rows=services.all_health(), now=clock.now(), session_counts=session_counts()
    )


@bp.post("/all/<int:user_id>/end-sessions")
@role_required("admin")
def end_sessions(user_id: int):
    target = db.session.get(User, user_id) or abort(404)
    count = end_sessions_of(target.id)
    record("session.ended_by_admin", target=target.username, details={"sessions": count})
    db.session.commit()
    flash(f"Ended {count} session(s) of {target.username}.", "info")
    return redirect(url_for("tokens.all_users"))


@bp.post("/all/<int:user_id>/delete")
@role_required("admin")
def admin_delete(user_id: int):
    target = db.session.get(User, user_id) or abort(404)
    count = services.delete_tokens(target)
    record("token.deleted", target=target.username, details={"grants": count, "by": "admin"})
    db.session.commit()
    flash(f"Deleted the stored tokens of {target.username}.", "info")
    return redirect(url_for("tokens.all_users"))
