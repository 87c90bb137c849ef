"""Fixtures shared by the PanDA client tests."""

import pytest

from app.panda.client import forget_transport


@pytest.fixture(autouse=True)
def _fresh_detection():
    """Every test probes the server's protocol afresh (detection is cached per URL for the process)."""
    forget_transport()
    yield
    forget_transport()
