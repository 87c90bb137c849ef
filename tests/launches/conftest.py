"""Launch test fixtures: the fake PanDA of the task tests and their definitions."""

import dataclasses

import pytest

from tests.tasks.conftest import fake_panda, sim_definition  # noqa: F401 (fixtures)


@pytest.fixture
def short_dispatch(app):
    """A bunch's background dispatch gives up after 2 s (its launches wait for another task)."""
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = dataclasses.replace(
        settings, tasks=dataclasses.replace(settings.tasks, dispatch_deadline_s=2.0)
    )
    return app
