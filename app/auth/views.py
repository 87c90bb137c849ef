"""Log-in and log-out pages for local accounts."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from app.auth.current import current_user
from app.auth.forms import LoginForm
from app.auth.services import log_in_locally, sign_out
from app.config import get_settings
from app.web.security import safe_next

bp = Blueprint("auth", __name__)

REFUSALS = {
    "rate-limited": ("Too many failed attempts. Wait a few minutes, then try again.", 429),
    "failed": ("Wrong username or password.", 401),
}


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        if current_user() is not None:
            return redirect(safe_next(form.next.data))
    if not get_settings().auth.local_accounts:
        return render_template("auth/login.html", form=None), 200
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), 400 if request.method == "POST" else 200
    result = log_in_locally(form.username.data.strip(), form.password.data, request.remote_addr or "-")
    if result.user is None:
        message, status = REFUSALS[result.refusal]
        flash(message, "danger")
        return render_template("auth/login.html", form=form), status
    return redirect(safe_next(form.next.data))


@bp.post("/logout")
def logout():
    user = current_user()
    # IAM users land on a page offering IAM's RP-initiated logout (app/auth/iam.py).
    via_iam = user is not None and not user.is_local and "iam.logged_out" in current_app.view_functions
    if user is not None:
        sign_out(user)
    flash("You are logged out.", "info")
    return redirect(url_for("iam.logged_out") if via_iam else url_for("auth.login"))
