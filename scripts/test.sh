#!/usr/bin/env bash
# Install Consentry, start the real components the tests use (PostgreSQL; the tests start Xvfb
# themselves), and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if command -v pg_ctlcluster >/dev/null 2>&1; then
    CONSENTRY_TEST_PG_DSN="$(bash scripts/start-postgres.sh)"
    export CONSENTRY_TEST_PG_DSN
fi
exec .venv/bin/python -m pytest tests "$@"
