"""The token page's form for a new personal API token."""

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import InputRequired, Length, NumberRange

from app.api.models import SCOPES


class ApiTokenForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=100)],
                       description="what uses it, e.g. 'nightly SIM submission on lxui'")  # fmt: skip
    scope = SelectField("Scope", choices=[SelectChoice(s) for s in SCOPES], default="read",
                        description="read: look only; write: everything your role allows")  # fmt: skip
    days = IntegerField("Valid for (days)", validators=[InputRequired(), NumberRange(min=1)])
