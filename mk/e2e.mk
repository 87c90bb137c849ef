# Browser tests: Playwright (from the test extras) drives Debian's Chromium. Playwright's own
# browser downloads are never used (`playwright install` needs the internet; we only reach the
# package registries). Included from the top-level Makefile; `make test` depends on e2e-deps.

CHROMIUM ?= /usr/bin/chromium
E2E_VENV ?= .venv
APT_LOG ?= /tmp/prodpanel-apt-chromium.log

.PHONY: e2e-deps test-e2e

# Idempotent and silent when Chromium is already there; CI runs as root.
e2e-deps:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  echo "e2e-deps: installing Debian chromium (log: $(APT_LOG))"; \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  { $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium; } \
	    >"$(APT_LOG)" 2>&1 || { tail -n 20 "$(APT_LOG)"; echo "e2e-deps: apt-get install chromium failed"; exit 1; }; \
	  test -x "$(CHROMIUM)" || { echo "e2e-deps: $(CHROMIUM) still missing after install"; exit 1; }; \
	fi

# Only the browser tests (the full suite runs them too).
test-e2e: e2e-deps
	$(E2E_VENV)/bin/pytest tests/e2e -q
