"""The audit trail's outcomes, read by a loose index scan, again on PostgreSQL (a team's shared instance)."""

from __future__ import annotations

import pytest

from tests.speed.test_capped_lists import (  # noqa: F401 (collected here too, on PostgreSQL)
    test_the_audit_filter_offers_each_recorded_outcome_once_in_order,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(pg_app):
    return pg_app
