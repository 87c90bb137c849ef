"""The launch schedule fields (task form, chain form, reschedule), the Launches page's filter bar and
its action buttons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import NumberRange, Optional

from app.auth.models import User
from app.launches import schedule
from app.launches.listing import STATES
from app.launches.schedule import Schedule, ScheduleRefused
from app.web.forms import FilterForm, strip

WHEN_CHOICES = [
    SelectChoice("now", "now"),
    SelectChoice("at", "at a date and time"),
    SelectChoice("done", "when another task is done"),
    SelectChoice("percent", "when another task has N % of its jobs done"),
]


class ScheduleFields:
    """When the launches go (mixed into a FlaskForm): now, at a time entered in a time zone (the
    user's preference, else the browser's), or after another task."""

    if TYPE_CHECKING:  # what wtforms.Form provides once mixed in

        @property
        def _fields(self) -> dict[str, Any]: ...

    launch_when = RadioField("Launch", choices=WHEN_CHOICES, default="now")
    launch_at = DateTimeLocalField("Date and time", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    time_zone = SelectField("Time zone", validators=[Optional()], validate_choice=False)
    after_task = StringField(
        "Other task", filters=[strip], validators=[Optional()], description="its name or PanDA task id"
    )
    at_percent = IntegerField(
        "Jobs done (%)", validators=[Optional(), NumberRange(1, 100, "a percentage from 1 to 100")]
    )

    def configure_schedule(self, user: User | None) -> Any:
        """Offer every zone; preselect the user's (a user without one gets the browser's)."""
        self.time_zone.choices = [SelectChoice(zone) for zone in schedule.zone_names()]
        if not self.time_zone.data:
            self.time_zone.data = user.time_zone if user is not None and user.time_zone else "UTC"
        if user is None or not user.time_zone:
            self.time_zone.render_kw = {"data-browser-zone": ""}
        return self

    def prefill_schedule(self, launch: Any, zone: str) -> None:
        """Show a launch's current schedule (its time in `zone`)."""
        self.time_zone.data = zone
        self.launch_at.data = schedule.in_zone(launch.due_at, zone).replace(tzinfo=None)
        self.launch_when.data = "at"
        if launch.after_task is not None:
            self.launch_when.data = "percent" if launch.at_percent else "done"
            self.after_task.data = launch.after_task.name
            self.at_percent.data = launch.at_percent

    def schedule_value(self) -> Schedule | None:
        """The schedule the fields say, or None with the reasons on the fields (read once)."""
        if not hasattr(self, "_schedule"):
            self._schedule = self._read_schedule()
        return self._schedule

    def _read_schedule(self) -> Schedule | None:
        when = self.launch_when.data or "now"
        try:
            if when == "at":
                return self._at()
            if when in ("done", "percent"):
                return self._after(when == "percent")
        except ScheduleRefused as exc:
            self.schedule_errors(exc.errors)
            return None
        return schedule.NOW

    def schedule_errors(self, errors: dict[str, list[str]]) -> None:
        """Show a refused schedule's reasons on its fields (the launch_at field for the others)."""
        for name, messages in errors.items():
            field = self._fields.get(name, self._fields["launch_at"])
            field.errors = [*field.errors, *messages]

    def _at(self) -> Schedule:
        if self.launch_at.data is None:
            raise ScheduleRefused({"launch_at": ["enter the date and time of the launch"]})
        zone = self.time_zone.data or "UTC"
        return Schedule(at=schedule.to_utc(self.launch_at.data, zone), zone=zone)

    def _after(self, with_percent: bool) -> Schedule:
        if not self.after_task.data:
            raise ScheduleRefused({"after_task": ["name the task to wait for (its name or PanDA task id)"]})
        other = schedule.find_task(self.after_task.data)
        if other is None:
            raise ScheduleRefused({"after_task": [f"no task named {self.after_task.data!r} (or with that PanDA id)"]})
        if with_percent and not self.at_percent.data:
            raise ScheduleRefused({"at_percent": ["a percentage from 1 to 100"]})
        return Schedule(after_task=other, at_percent=self.at_percent.data if with_percent else None)


class RescheduleForm(ScheduleFields, FlaskForm):
    whole_bunch = BooleanField("Every pending launch of its bunch")
    next = HiddenField()


class LaunchActionForm(FlaskForm):
    """Cancel / launch now (a CSRF-protected button); `whole_bunch` applies it to the bunch's pending launches."""

    whole_bunch = BooleanField("Every pending launch of its bunch")
    next = HiddenField()


class LaunchFilterForm(FilterForm):
    state = SelectField(
        "State", choices=[SelectChoice("", "all"), *[SelectChoice(key) for key in STATES]], validators=[Optional()],
        description="one of " + ", ".join(STATES),
    )  # fmt: skip
    owner = StringField("Owner", filters=[strip], validators=[Optional()], description="a user name")
