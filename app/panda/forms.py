"""The PanDA log's filter bar."""

from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.validators import Optional

from app.panda.models import OUTCOMES
from app.web.forms import FilterForm, strip


class CallFilterForm(FilterForm):
    method = StringField("method", filters=[strip])
    outcome = SelectField(
        "outcome",
        choices=["", *OUTCOMES],
        validators=[Optional()],
        description=f"one of {', '.join(OUTCOMES)}",
    )
    user = StringField("user", filters=[strip])
    task_id = IntegerField("task id", validators=[Optional()], description="a number")
    since = DateField("since", validators=[Optional()], description="use YYYY-MM-DD")
    until = DateField("until", validators=[Optional()], description="use YYYY-MM-DD")
