#!/usr/bin/env bash
# Runs a command with PostgreSQL and an S3 server up: a throwaway PostgreSQL 15 cluster and
# moto_server, both on free loopback ports, stopped and removed afterwards. The command sees
# OCLOUD_TEST_PG (server URL, no database), the AWS_* variables of the S3 endpoint and an
# empty bucket `ocloud-test`. Usage: tests/with-backends.sh CMD [ARGS...]
set -euo pipefail
PGBIN=/usr/lib/postgresql/15/bin
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PGPORT=$(port); S3PORT=$(port)
PGDATA=$(mktemp -d /tmp/ocloud-pg.XXXXXX)
S3LOG=$(mktemp /tmp/ocloud-moto.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$PGDATA"; runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
  [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null || true
  rm -rf "$PGDATA" "$S3LOG"
}
trap cleanup EXIT
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync >/dev/null
# fsync off: a throwaway cluster for tests; max_connections for many test servers at once.
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDATA -c fsync=off -c max_connections=500" start >/dev/null
python3 -m moto.server -H 127.0.0.1 -p "$S3PORT" >"$S3LOG" 2>&1 &
MOTO_PID=$!
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$S3PORT/moto-api/" 2>/dev/null && break; sleep 0.1; done
curl -fsS -X PUT -o /dev/null "http://127.0.0.1:$S3PORT/ocloud-test"
export OCLOUD_TEST_PG="postgres://postgres@127.0.0.1:$PGPORT"
export AWS_ENDPOINT_URL="http://127.0.0.1:$S3PORT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
"$@"
