#!/usr/bin/env bash
# Install (when missing) and start a local PostgreSQL from Debian's packages, create the test
# database and user, and print the URL for the distributed-search tests. Idempotent; CI runs as root.
# Usage: eval "$(.ci/postgres.sh)"   -> exports TUNEPROOF_TEST_POSTGRES_URL
set -euo pipefail

DB=tuneproof_test
USER_NAME=tuneproof
PASSWORD=tuneproof-ci

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "== installing postgresql from Debian packages ==" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi

# The newest installed cluster; create one if the package did not.
if ! pg_lsclusters -h | grep -q .; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    pg_createcluster "$version" main >&2
fi
read -r version cluster port status _ < <(pg_lsclusters -h | head -1)
if [ "$status" != "online" ]; then
    echo "== starting PostgreSQL $version/$cluster on port $port ==" >&2
    pg_ctlcluster "$version" "$cluster" start >&2
fi
for _ in $(seq 1 30); do
    runuser -u postgres -- pg_isready -q -p "$port" && break
    sleep 1
done
runuser -u postgres -- pg_isready -p "$port" >&2

psql_admin() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname='$USER_NAME'")" != "1" ]; then
    psql_admin -c "CREATE ROLE $USER_NAME LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname='$DB'")" != "1" ]; then
    psql_admin -c "CREATE DATABASE $DB OWNER $USER_NAME" >&2
fi
echo "export TUNEPROOF_TEST_POSTGRES_URL=postgresql+psycopg://$USER_NAME:$PASSWORD@127.0.0.1:$port/$DB"
