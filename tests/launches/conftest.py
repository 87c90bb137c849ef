"""The launches tests use the tasks tests' fixtures: definitions, the fake PanDA, the dispatcher join."""

from tests.tasks.conftest import _join_dispatchers, fake_panda  # noqa: F401 (fixtures)
