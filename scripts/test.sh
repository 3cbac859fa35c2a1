#!/usr/bin/env bash
# Install Consentry, start the real components the tests use (PostgreSQL; the tests start Xvfb
# themselves), and run the whole test suite. Extra arguments go to pytest (to both phases).
# Phase 1: the tests that change the machine itself (dpkg installs, systemd units; marked
# machine_global), one at a time with nothing beside them. Phase 2: every other test, on
# CONSENTRY_TEST_WORKERS processes at once (pytest-xdist; default 4: most tests wait on timers,
# agents and servers rather than the CPU). Each worker has its own PostgreSQL database, X displays and
# ports (tests/conftest.py, devkit/ports.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if command -v pg_ctlcluster >/dev/null 2>&1; then
    CONSENTRY_TEST_PG_DSN="$(bash scripts/start-postgres.sh)"
    export CONSENTRY_TEST_PG_DSN
fi
workers="${CONSENTRY_TEST_WORKERS:-4}"

status=()
for phase in alone parallel; do
    if [ "$phase" = alone ]; then
        args=(-m machine_global)
    else
        args=(-m "not machine_global" -n "$workers")
    fi
    echo "==> pytest tests ${args[*]} $*" >&2
    code=0
    .venv/bin/python -m pytest tests "${args[@]}" "$@" || code=$?
    status+=("$code")
done

# pytest's 5 is "no tests collected": right for one phase when the arguments select only the other's tests.
if [ "${status[0]}" -eq 5 ] && [ "${status[1]}" -eq 5 ]; then
    exit 5
fi
for code in "${status[@]}"; do
    if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then
        echo "==> failed: machine_global phase exited ${status[0]}, parallel phase ${status[1]}" >&2
        exit "$code"
    fi
done
