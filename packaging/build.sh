#!/usr/bin/env bash
# Build the single-folder (onedir) binary build/dist/prodpanel/ with PyInstaller and smoke-test it.
#
#   packaging/build.sh            (or `make binary`)
#
# Uses its own virtualenv (build/venv, override with BUILD_VENV) so the build sees exactly the
# package's declared dependencies and never disturbs the development .venv.
# The result runs on Linux with a glibc at least as new as the build machine's: build on the
# oldest system you deploy to (see packaging/README.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
BUILD_VENV="${BUILD_VENV:-$ROOT/build/venv}"
DIST="$ROOT/build/dist"
WORK="$ROOT/build/pyinstaller"

if [ ! -x "$BUILD_VENV/bin/python" ]; then
  echo "build: creating $BUILD_VENV"
  "$PYTHON" -m venv "$BUILD_VENV"
fi
echo "build: installing the package with the [build] extra"
"$BUILD_VENV/bin/python" -m pip install --quiet --upgrade pip
"$BUILD_VENV/bin/python" -m pip install --quiet "$ROOT[build]"

echo "build: running PyInstaller"
"$BUILD_VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath "$DIST" --workpath "$WORK" packaging/prodpanel.spec

echo "build: smoke test"
"$BUILD_VENV/bin/python" packaging/smoke_test.py "$DIST/prodpanel/prodpanel"

echo "build: done -> $DIST/prodpanel/ ($(du -sh "$DIST/prodpanel" | cut -f1))"
echo "build: ship it with symlinks preserved, e.g. tar -C $DIST -czf prodpanel-linux-x86_64.tar.gz prodpanel"
