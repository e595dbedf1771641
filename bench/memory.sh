#!/usr/bin/env bash
# Peak memory of `ocloud serve` and of the `ocloud` CLI (built on ocloud-client) while a
# multi-GB file goes up and comes back down: memory must stay flat whatever the size.
#   bash bench/memory.sh            # 4 GiB
#   SIZE_GB=8 bash bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GB=${SIZE_GB:-4}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
cargo build --release --quiet -p ocloud-cli
BIN=$PWD/target/release/ocloud
W=$(mktemp -d /tmp/ocloud-mem.XXXXXX)
trap 'kill $PID 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$W/data" --quota 1TiB --max-upload-size 1TiB --no-dev-account >/dev/null 2>&1 &
PID=$!
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break; sleep 0.05; done
export OCLOUD_API_URL=http://127.0.0.1:$PORT OCLOUD_CONFIG=$W/cli.toml
export OCLOUD_TOKEN=$("$BIN" admin token --data-dir "$W/data")
# A sparse source: reading it costs no disk, and its size is what matters here.
truncate -s "${SIZE_GB}G" "$W/big.bin"
/usr/bin/time -f "%M" -o "$W/up.rss" "$BIN" upload "$W/big.bin" /mem/ --quiet
/usr/bin/time -f "%M" -o "$W/down.rss" "$BIN" download /mem/big.bin "$W/back.bin" --quiet
cmp -s "$W/big.bin" "$W/back.bin" && same=identical || same=DIFFERENT
srv=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
python3 -c 'import sys; g, same, srv, up, down = sys.argv[1:]; print(f"| {g} GiB up and down ({same}) | service peak {int(srv)/1024:.1f} MiB | CLI peak {int(up)/1024:.1f} MiB up, {int(down)/1024:.1f} MiB down |")' \
  "$SIZE_GB" "$same" "$srv" "$(cat "$W/up.rss")" "$(cat "$W/down.rss")"
