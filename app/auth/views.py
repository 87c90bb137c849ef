"""Log-in and log-out pages for local accounts."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from app.audit.services import record
from app.auth.current import current_user
from app.auth.forms import LoginForm
from app.auth.services import authenticate, log_in, log_out
from app.config import get_settings
from app.extensions import db
from app.web.security import safe_next

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    settings = get_settings()
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if current_user() is not None and request.method == "GET":
        return redirect(safe_next(form.next.data))
    if not settings.auth.local_accounts:
        return render_template("auth/login.html", form=None), 200
    limiter = current_app.extensions["login_limiter"]
    if form.validate_on_submit():
        username = form.username.data.strip()
        address = request.remote_addr or "-"
        if limiter.blocked(address, username):
            record("login.failed", target=username, outcome="rate-limited", user=None)
            db.session.commit()
            flash("Too many failed attempts. Wait a few minutes, then try again.", "danger")
            return render_template("auth/login.html", form=form), 429
        user = authenticate(username, form.password.data)
        if user is None:
            limiter.failed(address, username)
            record("login.failed", target=username, outcome="failed", user=None)
            db.session.commit()
            flash("Wrong username or password.", "danger")
            return render_template("auth/login.html", form=form), 401
        limiter.succeeded(address, username)
        log_in(user)
        record("login.ok", target=user.username, details={"method": "local"}, user=user)
        db.session.commit()
        return redirect(safe_next(form.next.data))
    return render_template("auth/login.html", form=form), 400 if request.method == "POST" else 200


@bp.post("/logout")
def logout():
    user = current_user()
    # IAM users land on a page offering IAM's RP-initiated logout (app/auth/iam.py).
    via_iam = user is not None and not user.is_local and "iam.logged_out" in current_app.view_functions
    if user is not None:
        record("logout", target=user.username, user=user)
        log_out()
        db.session.commit()
    flash("You are logged out.", "info")
    return redirect(url_for("iam.logged_out") if via_iam else url_for("auth.login"))
