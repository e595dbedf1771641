#!/usr/bin/env bash
# What `--emulator` costs on the request path with no fault rule (its journal records every
# request): 100-entry listing req/s with wrk and a 256 MiB upload and download, side by side
# with and without --emulator, in alternating rounds. Prints ratios, never pass/fail.
#
#   bash bench/emulator.sh            # 3 rounds
#   ROUNDS=5 SIZE_MB=512 bash bench/emulator.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SIZE_MB=${SIZE_MB:-256}
command -v wrk >/dev/null 2>&1 || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet -p ocloud-cli
BIN=$PWD/target/release/ocloud
W=$(mktemp -d /tmp/ocloud-emu-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
head -c $((SIZE_MB * 1048576)) /dev/urandom > "$W/big.bin"
declare -A rps up down
for mode in plain emulator; do rps[$mode]=""; up[$mode]=""; down[$mode]=""; done
for r in $(seq 1 "$ROUNDS"); do
  for mode in plain emulator; do
    P=$(port); D="$W/$mode-$r"
    extra=(); [ $mode = emulator ] && extra=(--emulator --emulator-token bench)
    "$BIN" serve --listen 127.0.0.1:$P --data-dir "$D" --quota 1TiB --no-dev-account "${extra[@]}" >"$D.log" 2>&1 &
    pid=$!; pids+=($pid)
    wait_http "http://127.0.0.1:$P/healthz"
    "$BIN" admin fill --data-dir "$D" --user bench --app bench --folder "mes dossiers partenaires/bench/list100" --count 100 >/dev/null
    TOKEN=$("$BIN" admin token --data-dir "$D" --user bench --app bench)
    ID=$(python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(sys.argv[1].encode()).decode().rstrip("="))' "mes dossiers partenaires/bench/list100/")
    rps[$mode]+="$(wrk -t2 -c32 -d5s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P/cloud/v1/folders/$ID" | awk '/Requests\/sec/ {print $2}') "
    export OCLOUD_API_URL=http://127.0.0.1:$P OCLOUD_TOKEN=$TOKEN OCLOUD_CONFIG=$W/cli.toml
    sync; t0=$(date +%s.%N); "$BIN" upload "$W/big.bin" /b/ --quiet; t1=$(date +%s.%N); up[$mode]+="$(python3 -c "print($t1-$t0)") "
    t0=$(date +%s.%N); "$BIN" download /b/big.bin "$W/dl.bin" --quiet; t1=$(date +%s.%N); down[$mode]+="$(python3 -c "print($t1-$t0)") "
    rm -f "$W/dl.bin"; kill $pid; wait $pid 2>/dev/null || true
  done
done
median() { python3 -c "import statistics,sys; print(statistics.median(map(float,sys.argv[1:])))" "$@"; }
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.3f}')" "$1" "$2"; }
echo "| measure | without --emulator | with --emulator | ratio | goal |"
echo "| --- | --- | --- | --- | --- |"
a=$(median ${rps[plain]}); b=$(median ${rps[emulator]})
echo "| 100-entry listing req/s (median of $ROUNDS) | $a | $b | $(ratio "$b" "$a") | ≥ 0.95 |"
a=$(median ${up[plain]}); b=$(median ${up[emulator]})
echo "| upload ${SIZE_MB} MiB, s | $a | $b | $(ratio "$a" "$b") | ≥ 0.95 |"
a=$(median ${down[plain]}); b=$(median ${down[emulator]})
echo "| download ${SIZE_MB} MiB, s | $a | $b | $(ratio "$a" "$b") | ≥ 0.95 |"
