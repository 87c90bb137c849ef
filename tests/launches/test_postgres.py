"""The schedule proofs and dependent launches again on PostgreSQL (a team's shared instance): the
conditional UPDATEs of cancel / reschedule and the gate's reads, and the Launches page's capped
state counts, on the other database."""

from __future__ import annotations

import pytest

from tests.launches.test_schedule import (  # noqa: F401 (collected here too, on PostgreSQL)
    test_a_cancelled_launch_never_runs,
    test_a_claimed_launch_is_neither_cancelled_nor_rescheduled,
    test_a_launch_due_during_downtime_runs_once_at_start,
    test_a_rescheduled_launch_runs_at_its_new_time,
    test_when_another_task_has_n_percent_of_its_jobs_done,
)
from tests.launches.test_views import (  # noqa: F401
    test_the_state_tabs_count_each_state_up_to_the_cap_and_follow_the_moves,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(pg_app):
    return pg_app
