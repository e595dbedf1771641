#!/usr/bin/env bash
# Schemathesis (PyPI) against the OpenAPI document of a real `ocloud serve`, with a token of
# full scopes. Fails on any finding that is not one of the documented exceptions of
# baseline.json (see README.md beside this script), and on any panic in the service's log.
# Deterministic (fixed seed, a fixed number of examples, one worker), so a run here and in CI
# see the same requests. Extra arguments go to `schemathesis run`, e.g. --baseline-update.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/schemathesis
BIN=${OCLOUD_BIN:-target/debug/ocloud}
[ -x "$BIN" ] || cargo build --locked -p ocloud-cli
python3 -m pip install -q --disable-pip-version-check "schemathesis==4.32.5"

DATA=$(mktemp -d)
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA/data" --no-dev-account >"$DATA/serve.out" 2>"$DATA/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
URL=
for _ in $(seq 200); do
  URL=$(grep -o 'http://[0-9.:]*' "$DATA/serve.out" | head -1 || true)
  [ -n "$URL" ] && break
  sleep 0.05
done
[ -n "$URL" ] || { echo "ocloud serve did not start" >&2; cat "$DATA/serve.log" >&2; exit 1; }
TOKEN=$("$BIN" admin token --data-dir "$DATA/data" --scope "openid cloud cloudfullread cloudfullwrite")

status=0
schemathesis run "$URL/cloud/v1/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --checks all \
  --max-examples "${ST_EXAMPLES:-50}" \
  --seed 20261201 --generation-deterministic --workers 1 --phases examples,coverage,fuzzing \
  --baseline "${ST_BASELINE:-$here/baseline.json}" \
  "$@" || status=$?
if grep -q panicked "$DATA/serve.log"; then
  echo "the service panicked:" >&2
  grep -A5 panicked "$DATA/serve.log" >&2
  status=1
fi
exit $status
