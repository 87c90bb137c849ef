# The two commands: `make run` (the panel on its embedded defaults) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck services clean-venv
.DEFAULT_GOAL := run

include mk/frontend.mk mk/e2e.mk mk/oidc.mk mk/broker.mk

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall when pyproject.toml changes; the stamp files record what is installed.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed-run

# Starts the panel on http://127.0.0.1:5000/ (SQLite in ./instance, built-in PanDA simulator).
run: $(VENV)/.installed-run
	$(BIN)/prodpanel serve

# Services the suite talks to: PostgreSQL runs on the machine; start it if it is down.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  echo "starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; }
	@pg_isready -h 127.0.0.1 -p 5432 -t 30 >/dev/null || { echo "PostgreSQL is not reachable on 127.0.0.1:5432"; exit 1; }

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

# mypy on the services, the PanDA and token code, the settings and the test fakes ([tool.mypy]).
typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# Two workers, whole files each (module fixtures stay in one process): the suite mostly waits on
# servers, browsers and PanDA replies, so two workers halve it on two cores. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: $(VENV)/.installed-test e2e-deps oidc-deps services broker lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

clean-venv:
	rm -rf $(VENV)
