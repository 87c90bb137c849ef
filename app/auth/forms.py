from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from app.auth.roles import ROLES


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=150)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])
    new = PasswordField("New password", validators=[DataRequired(), Length(max=1024)], description="at least 10 characters")
    repeat = PasswordField("Repeat the new password", validators=[DataRequired(), Length(max=1024)])


class UserAddForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=150)],
                           description="letters, digits, '.', '-' or '_'")  # fmt: skip
    display_name = StringField("Display name", validators=[Length(max=200)])
    role = SelectField("Role", choices=[SelectChoice(r) for r in ROLES], default="viewer")
    password = PasswordField("Initial password", validators=[DataRequired(), Length(max=1024)],
                             description="at least 10 characters; the user must change it at the first login")  # fmt: skip


class ButtonForm(FlaskForm):
    """A CSRF-protected button (disable or enable an account)."""


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(r) for r in ROLES])


class AdminPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])


def show_account_error(form: FlaskForm, message: str) -> None:
    """An AccountError ("field: what is wrong") next to its field, else above the form."""
    label, _, text = message.partition(": ")
    for field in form:
        if field.label.text.lower() == label or field.name == label:
            field.errors = [text or message]
            return
    form.form_errors.append(message)
