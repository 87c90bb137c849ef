"""The audit page's filter bar."""

from wtforms import DateField, StringField
from wtforms.validators import Optional

from app.web.forms import FilterForm, strip


class AuditFilterForm(FilterForm):
    action = StringField("action", filters=[strip])
    user = StringField("user", filters=[strip])
    target = StringField("target", filters=[strip])
    since = DateField("since", validators=[Optional()], description="use YYYY-MM-DD")
    until = DateField("until", validators=[Optional()], description="use YYYY-MM-DD")
    outcome = StringField("outcome", filters=[strip])
