"""The home page's dashboard: the user's and the team's active tasks by PanDA status, the running
bunches and chains with their progress, the user's alerts, the next scheduled launches, PanDA's and
IAM's reachability. Indexed queries over active rows only (a few hundred at most, whatever the
number of finished tasks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import TextClause, or_, select, text
from sqlalchemy.orm import selectinload

from app import clock
from app.actions.matrix import STATUSES
from app.auth.models import User
from app.chains.models import Chain, ChainStep
from app.config import get_settings
from app.extensions import capped_text, count_cap, db
from app.launches.models import Launch
from app.launches.states import LaunchStatus
from app.stats.models import Alert
from app.stats.progress import Progress, bunch_progresses, chain_progresses
from app.sync.services import FINAL, SyncStatus, sync_status
from app.tasks.models import Task, TaskBunch
from app.tokens import vault

# PanDA's statuses of a task that is not final: listed, so that the status index answers.
ACTIVE = tuple(s for s in STATUSES if s not in FINAL)
RUNNING_SHOWN = 5  # bunches and chains with progress bars
UPCOMING_SHOWN = 8


@dataclass(frozen=True)
class StatusCount:
    status: str
    count: int  # capped at COUNT_CAP + 1

    @property
    def text(self) -> str:
        return capped_text(self.count)


@dataclass(frozen=True)
class Reachability:
    panda: SyncStatus
    iam_configured: bool
    iam_unreachable_since: datetime | None


@dataclass(frozen=True)
class Dashboard:
    mine: list[StatusCount]
    team: list[StatusCount]
    bunches: list[tuple[TaskBunch, Progress]]
    chains: list[tuple[Chain, Progress]]
    alerts: list[Alert]
    upcoming: list[Launch]
    reachability: Reachability


def _counts_sql() -> TextClause:
    """One statement: per active status (a row each), the user's and the team's tasks, each counted up
    to COUNT_CAP + 1. One correlated count per column, not one subquery per status and column: 50
    subqueries took PostgreSQL longer to plan than to run (text, built once: cheaper to key)."""
    statuses = ", ".join(f"(:s{i}, {i})" for i in range(len(ACTIVE)))
    return text(
        f"WITH s(status, i) AS (VALUES {statuses}) SELECT "
        "(SELECT count(*) FROM (SELECT 1 FROM task WHERE panda_status = s.status AND created_by_id = :user_id"
        " LIMIT :cap) AS m), "
        "(SELECT count(*) FROM (SELECT 1 FROM task WHERE panda_status = s.status LIMIT :cap) AS t) "
        "FROM s ORDER BY s.i"
    )


_COUNTS = _counts_sql()


def _counts(user: User) -> tuple[list[StatusCount], list[StatusCount]]:
    """Active tasks per PanDA status, the user's (those of the bunches they created) and the team's,
    each counted up to COUNT_CAP only, in one statement: one index range per status and count
    ((created_by_id, panda_status), or (panda_status, id)), however many tasks run."""
    params = {f"s{i}": status for i, status in enumerate(ACTIVE)} | {"cap": count_cap() + 1, "user_id": user.id}
    rows = db.session.execute(_COUNTS, params).all()
    return (
        [StatusCount(status, mine) for status, (mine, _) in zip(ACTIVE, rows, strict=True) if mine],
        [StatusCount(status, team) for status, (_, team) in zip(ACTIVE, rows, strict=True) if team],
    )


def running_bunches(limit: int = RUNNING_SHOWN) -> list[TaskBunch]:
    """The newest bunches with a task PanDA is still running (newest first, each checked through the
    task's bunch index: stops after `limit`, however many tasks run)."""
    running = select(Task.id).where(Task.bunch_id == TaskBunch.id, Task.panda_status.in_(ACTIVE)).exists()
    return list(
        db.session.scalars(select(TaskBunch).where(running).order_by(TaskBunch.id.desc()).limit(limit))
    )


def user_alerts(user: User, limit: int = 20) -> list[Alert]:
    """Open alerts for the user: their own and the team's (PanDA unreachable)."""
    return list(
        db.session.scalars(
            select(Alert)
            .where(Alert.cleared_at.is_(None), or_(Alert.user_id == user.id, Alert.user_id.is_(None)))
            .order_by(Alert.raised_at.desc(), Alert.id.desc())
            .limit(limit)
        )
    )


def upcoming_launches(limit: int = UPCOMING_SHOWN) -> list[Launch]:
    """Launches scheduled for later, soonest first."""
    query = (
        select(Launch)
        .options(selectinload(Launch.task), selectinload(Launch.created_by))
        .where(Launch.status == LaunchStatus.PENDING, Launch.due_at > clock.now())
        .order_by(Launch.due_at)
        .limit(limit)
    )
    return list(db.session.scalars(query))


def reachability() -> Reachability:
    iam = get_settings().iam
    outage = vault.outage(iam.issuer) if iam.enabled else None
    return Reachability(sync_status(), iam.enabled, outage.since if outage else None)


def dashboard(user: User) -> Dashboard:
    """Everything the home page shows for `user`."""
    bunches = running_bunches()
    bunch_ids = [b.id for b in bunches]
    chain_ids = select(ChainStep.chain_id).where(ChainStep.bunch_id.in_(bunch_ids))
    chains = db.session.scalars(select(Chain).where(Chain.id.in_(chain_ids)).order_by(Chain.id.desc())).all()
    bunch_done = bunch_progresses(bunch_ids)
    chain_done = chain_progresses([c.id for c in chains])
    mine, team = _counts(user)
    return Dashboard(
        mine=mine,
        team=team,
        bunches=[(b, bunch_done[b.id]) for b in bunches],
        chains=[(c, chain_done[c.id]) for c in chains],
        alerts=user_alerts(user),
        upcoming=upcoming_launches(),
        reachability=reachability(),
    )
