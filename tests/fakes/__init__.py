"""Fakes of the outside systems for unit tests, type-checked against the panel's protocols (mypy runs
on this package in `make test`). Integration tests use the real thing (the PanDA simulator over HTTP)."""
