"""Log-in and log-out pages for local accounts, one's own password, and the admins' users page."""

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from app import clock
from app.auth.current import current_user, logged_in_user
from app.auth.decorators import login_required, role_required
from app.auth.forms import (
    AdminPasswordForm,
    ButtonForm,
    LoginForm,
    PasswordChangeForm,
    RoleForm,
    UserAddForm,
    show_account_error,
)
from app.auth.models import User
from app.auth.services import (
    AccountError,
    admin_add_user,
    admin_set_active,
    admin_set_password,
    admin_set_role,
    change_own_password,
    log_in_locally,
    sign_out,
)
from app.auth.sessions import session_counts
from app.config import get_settings
from app.extensions import db
from app.tokens import services as token_services
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


# --- accounts: one's own password, the admins' users page ----------------------------------------


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password():
    """Change one's own password (also where a password someone else chose must be changed first)."""
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return render_template("auth/password.html", form=form), 400 if request.method == "POST" else 200
    try:
        change_own_password(logged_in_user(), form.current.data, form.new.data, form.repeat.data)
    except AccountError as exc:
        show_account_error(form, str(exc))
        return render_template("auth/password.html", form=form), 400
    flash("Your password is changed; your other sessions have ended.", "success")
    return redirect(url_for("web.index"))


def _users_page(add_form: UserAddForm | None = None, status: int = 200):
    return render_template(
        "auth/users.html", rows=token_services.all_health(), sessions=session_counts(), now=clock.now(),
        add_form=add_form or UserAddForm(formdata=None), role_form=RoleForm(formdata=None), password_form=AdminPasswordForm(formdata=None),
    ), status  # fmt: skip


@bp.get("/admin/users")
@role_required("admin")
def users():
    """Every user: role, source, last login, token health, sessions; local accounts are managed here."""
    return _users_page()


@bp.post("/admin/users")
@role_required("admin")
def add_user():
    form = UserAddForm()
    if not form.validate_on_submit():
        return _users_page(form, 400)
    try:
        user = admin_add_user(logged_in_user(), form.username.data, form.display_name.data or "", form.role.data, form.password.data)
    except AccountError as exc:
        show_account_error(form, str(exc))
        return _users_page(form, 400)
    flash(f"Created {user.username} ({user.role}); the first login must choose a new password.", "success")
    return redirect(url_for("auth.users"))


def _change(change, done: str):
    """Run an admin's change of one account; its refusal or outcome becomes the flash message."""
    try:
        change()
    except AccountError as exc:
        flash(f"Not changed: {exc}.", "danger")
    else:
        flash(done, "success")
    return redirect(url_for("auth.users"))


@bp.post("/admin/users/<int:user_id>/role")
@role_required("admin")
def set_role(user_id: int):
    target, form = db.get_or_404(User, user_id), RoleForm()
    if not form.validate_on_submit():
        abort(400)
    return _change(lambda: admin_set_role(logged_in_user(), target, form.role.data), f"{target.username} is now {form.role.data}.")


@bp.post("/admin/users/<int:user_id>/active")
@role_required("admin")
def set_active(user_id: int):
    """Disable (its sessions end at once) or enable an account."""
    target, active = db.get_or_404(User, user_id), request.form.get("active") == "1"
    if not ButtonForm().validate_on_submit():
        abort(400)
    done = f"{target.username} is {'enabled' if active else 'disabled; its sessions have ended'}."
    return _change(lambda: admin_set_active(logged_in_user(), target, active), done)


@bp.post("/admin/users/<int:user_id>/password")
@role_required("admin")
def set_user_password(user_id: int):
    target, form = db.get_or_404(User, user_id), AdminPasswordForm()
    if not form.validate_on_submit():
        abort(400)
    done = f"Password of {target.username} set; their next login must choose a new one."
    return _change(lambda: admin_set_password(logged_in_user(), target, form.password.data), done)
