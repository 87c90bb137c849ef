"""The statistics page: totals, evolution per week and per month, splits by step, status, request
and creator, and "since a date", all read from the summary's splits (`stat_split`), never from tasks:
the totals and the splits over every day from one row per key, the rest from a row per day and key."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select

from app.auth.models import User
from app.extensions import db
from app.stats.models import ALL_DAYS, StatSplit


class BadParameter(ValueError):
    """A query parameter the page cannot use (answered 400 with this message)."""


@dataclass(frozen=True)
class Totals:
    tasks: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    events: int = 0
    output_bytes: int = 0
    walltime_s: int = 0

    @property
    def output_tb(self) -> float:
        return self.output_bytes / 1e12

    @property
    def walltime_h(self) -> float:
        return self.walltime_s / 3600

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.tasks + other.tasks, self.jobs_done + other.jobs_done, self.jobs_failed + other.jobs_failed,
            self.events + other.events, self.output_bytes + other.output_bytes, self.walltime_s + other.walltime_s,
        )  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One labelled line of an evolution or a split (`link`: the task table filtered to it)."""

    label: str
    totals: Totals
    link: dict[str, str] | None = None


@dataclass(frozen=True)
class StatisticsPage:
    since: date | None
    total: Totals
    since_total: Totals | None
    weeks: list[Row]
    months: list[Row]
    splits: dict[str, list[Row]]  # title -> rows, largest first


@functools.cache
def _sums() -> tuple[ColumnElement[Any], ...]:
    """The summed values (built once: building the expressions cost more than running the statement)."""
    return tuple(func.coalesce(func.sum(getattr(StatSplit, f.name)), 0) for f in fields(Totals))


def _days(dimension: str, since: date | None) -> list[ColumnElement[bool]]:
    """The rows of one dimension: its all-time ones (since None), else its days from `since`."""
    if since is None:
        return [StatSplit.dimension == dimension, StatSplit.day == ALL_DAYS]
    return [StatSplit.dimension == dimension, StatSplit.day >= since, StatSplit.day > ALL_DAYS]


def _totals(values: Iterable[Any]) -> Totals:
    return Totals(*(int(v or 0) for v in values))


def parse_since(value: str | None) -> date | None:
    """The "since" query parameter: empty or YYYY-MM-DD."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadParameter(f"since: {value[:40]!r} is not a date (YYYY-MM-DD)") from None


def _bucketed(days: list[tuple[date, Totals]], start_of: Any, label: Any) -> list[Row]:
    buckets: dict[date, Totals] = defaultdict(Totals)
    for day, totals in days:
        buckets[start_of(day)] += totals
    return [Row(label(start), buckets[start]) for start in sorted(buckets)]


SPLIT_ROWS = 50  # a split lists the keys with most tasks (there is a request per few dozen bunches)


def _split(dimension: str, since: date | None) -> list[tuple[str, Totals]]:
    """The summary along one dimension, most tasks first, the first SPLIT_ROWS keys: one row per key
    over every day, or the sum of its days from `since`."""
    tasks = func.sum(StatSplit.tasks)
    query = (
        select(StatSplit.key, *_sums()).where(*_days(dimension, since)).group_by(StatSplit.key)
        .having(tasks > 0).order_by(tasks.desc(), StatSplit.key).limit(SPLIT_ROWS)
    )  # fmt: skip
    rows = [(key, _totals(values)) for key, *values in db.session.execute(query)]
    return sorted(rows, key=lambda item: (-item[1].tasks, item[0]))


def _user_names(ids: Iterable[int]) -> dict[int, str]:
    wanted = [i for i in ids if i]
    if not wanted:
        return {}
    return {
        i: name for i, name in db.session.execute(select(User.id, User.username).where(User.id.in_(wanted)))
    }


def statistics(since: date | None) -> StatisticsPage:
    """Everything the statistics page shows; the evolution and splits cover the days from `since`."""
    daily = (
        select(StatSplit.day, *_sums())
        .where(StatSplit.dimension == "all", StatSplit.day > ALL_DAYS)
        .group_by(StatSplit.day)
        .order_by(StatSplit.day)
    )
    if since is not None:
        daily = daily.where(StatSplit.day >= since)
    days = [(day, _totals(values)) for day, *values in db.session.execute(daily)]
    period = sum((t for _, t in days), Totals())
    # Every day's rows sum to the all-time row (a test checks it): read that only for a period.
    total = period if since is None else _totals(db.session.execute(select(*_sums()).where(*_days("all", None))).one())
    since_total = period if since is not None else None
    weeks = _bucketed(days, lambda d: d - timedelta(days=d.weekday()), lambda d: f"{d:%G-W%V}")
    months = _bucketed(days, lambda d: d.replace(day=1), lambda d: f"{d:%Y-%m}")
    users = [(int(key), t) for key, t in _split("user", since)]
    names = _user_names(key for key, _ in users)
    splits = {
        "Step": [Row(key, t, {"step": key}) for key, t in _split("step", since)],
        "PanDA status": [Row(key, t, {"status": key}) for key, t in _split("status", since)],
        "Request": [
            Row(f"#{key}", t, {"request": key}) if key != "0" else Row("no request", t)
            for key, t in _split("request", since)
        ],
        "Creator": [
            Row(names[key], t, {"creator": names[key]}) if key in names else Row("unknown", t)
            for key, t in users
        ],
    }
    return StatisticsPage(since, total, since_total, weeks, months, splits)
