#!/usr/bin/env bash
# Start the Debian/Ubuntu PostgreSQL cluster and create the Consentry test role and database (idempotent).
# Prints the DSN on stdout; everything else goes to stderr.
# Usage: export CONSENTRY_TEST_PG_DSN="$(bash scripts/start-postgres.sh)"

set -euo pipefail

# The newest installed server (15 on Debian 12, 16 on Ubuntu 24.04) unless PG_VERSION says otherwise.
PG_VERSION="${PG_VERSION:-$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)}"
PG_VERSION="${PG_VERSION:-15}"
PG_CLUSTER="${PG_CLUSTER:-main}"
DB_USER="${CONSENTRY_PG_USER:-consentry}"
DB_PASS="${CONSENTRY_PG_PASSWORD:-consentry}"
DB_NAME="${CONSENTRY_PG_DB:-consentry_test}"
PORT="${CONSENTRY_PG_PORT:-5432}"

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "pg_ctlcluster not found: apt-get install -y postgresql-${PG_VERSION}" >&2
    exit 1
fi
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "${PG_VERSION} ${PG_CLUSTER}"; then
    pg_createcluster "${PG_VERSION}" "${PG_CLUSTER}" --port "${PORT}" >&2
fi
if ! pg_lsclusters -h | awk -v v="${PG_VERSION}" -v c="${PG_CLUSTER}" '$1==v && $2==c {print $4}' | grep -q online; then
    pg_ctlcluster "${PG_VERSION}" "${PG_CLUSTER}" start >&2
fi
for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p "${PORT}" && break
    sleep 0.2
done
pg_isready -q -h 127.0.0.1 -p "${PORT}" || { echo "PostgreSQL did not become ready" >&2; exit 1; }

psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -qtA -p ${PORT} $*"; }
if [ "$(psql_admin "-c \"SELECT 1 FROM pg_roles WHERE rolname='${DB_USER}'\"")" != "1" ]; then
    psql_admin "-c \"CREATE ROLE ${DB_USER} LOGIN PASSWORD '${DB_PASS}'\"" >&2
fi
# CREATEDB: a parallel test run (pytest -n) gives each of its processes a database of its own (tests/conftest.py).
if [ "$(psql_admin "-c \"SELECT rolcreatedb FROM pg_roles WHERE rolname='${DB_USER}'\"")" != "t" ]; then
    psql_admin "-c \"ALTER ROLE ${DB_USER} CREATEDB\"" >&2
fi
if [ "$(psql_admin "-c \"SELECT 1 FROM pg_database WHERE datname='${DB_NAME}'\"")" != "1" ]; then
    psql_admin "-c \"CREATE DATABASE ${DB_NAME} OWNER ${DB_USER}\"" >&2
fi
echo "postgresql://${DB_USER}:${DB_PASS}@127.0.0.1:${PORT}/${DB_NAME}"
