#!/usr/bin/env bash
# Install the project with its test extras in a fresh virtualenv and run the suite.
# This is the README's test command; .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# The dask extra too: tests/test_fleet.py runs scan-many on a LocalCluster (it skips without it).
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test,dask]'
# The browser test needs Debian's chromium; install it when we can (root, apt), else it skips.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: chromium could not be installed; the browser test will skip" >&2
fi
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
