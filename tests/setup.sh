#!/usr/bin/env bash
# Installs what the build and the tests need, where it is missing: a C compiler (bundled
# SQLite), Debian's Chromium and Node.js with playwright-core (the browser test), Python with
# pip (schemathesis, moto), PostgreSQL 15 and moto_server (the pg-s3 run). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
{ command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; } || missing+=(python3 python3-pip)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
(cd tests/browser && { [ -d node_modules/playwright-core ] || npm ci --silent --no-audit --no-fund; })
python3 -c 'import moto.server' 2>/dev/null || python3 -m pip install -q "moto[server]" 2>/dev/null \
  || python3 -m pip install -q --break-system-packages "moto[server]"
