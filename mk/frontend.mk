# Front-end assets and the single-folder binary. Included from the top-level Makefile.
#
#   make vendor   re-create static/vendor/ from frontend/package-lock.json (npm ci + copy script);
#                 commit the result together with the lock. Only needed when bumping a library.
#   make binary   PyInstaller onedir build in build/dist/prodpanel/ plus a smoke test (slow, ~1-2 min;
#                 not part of `make test`).

FRONTEND_VENV ?= .venv

.PHONY: vendor vendor-check binary

vendor:
	cd frontend && npm ci --no-audit --no-fund --ignore-scripts && node copy-vendor.mjs

# The committed files still match the lock (also part of the normal test suite).
vendor-check:
	$(FRONTEND_VENV)/bin/pytest tests/foundation/test_vendor.py -q

binary:
	packaging/build.sh
