"""Launch test fixtures: the fake PanDA of the task tests and their definitions."""

from tests.tasks.conftest import fake_panda, sim_definition  # noqa: F401 (fixtures)
