#!/usr/bin/env bash
# Install the project with its test extras in a fresh virtualenv and run the suite.
# This is the README's test command; .ci/run runs exactly this.
#
# The browser test (tests/test_html_browser.py) needs Debian's chromium. It is installed
# with apt only when asked: FORENSICS_BROWSER=1, or CI set (a CI runner is disposable);
# never as a side effect of running the tests on an investigator's (maybe air-gapped) host.
# Without chromium that test skips and says how to run it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# The dask extra too: tests/test_fleet.py runs scan-many on a LocalCluster (it skips without it).
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test,dask]'
if [ "${FORENSICS_BROWSER:-}" = 1 ] || [ -n "${CI:-}" ]; then
  if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing chromium with apt-get for the browser test (FORENSICS_BROWSER=1 or CI is set)" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "note: chromium could not be installed" >&2
    else
      echo "note: the browser test needs chromium: install it (apt-get install chromium) as root" >&2
    fi
  fi
fi
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
