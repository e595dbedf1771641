#!/usr/bin/env bash
# ocloud on PostgreSQL + S3 side by side with the embedded default (SQLite + files), on the
# same machine and disk: one instance, then two behind haproxy. Prints one line per measure:
# embedded, PostgreSQL + S3, ratio (higher is better), goal. Never pass/fail.
#
#   bash bench/scale.sh                      # 1 GiB file, 2,000 small files
#   SIZE_MB=256 FILES=500 bash bench/scale.sh
#
# The S3 server is s3s-fs (a Rust S3 server on a local directory, installed with cargo on
# first use); PostgreSQL 15 runs a throwaway cluster with fsync on, like SQLite's FULL sync.
# Installs haproxy, wrk and time from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
FILES=${FILES:-2000}
need=()
for t in haproxy:haproxy wrk:wrk /usr/bin/time:time curl:curl; do
  command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v s3s-fs >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/s3s-fs" ] \
  || cargo install --quiet --locked s3s-fs@0.14.1 --features binary
S3S=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
cargo build --release --quiet -p ocloud-cli
BIN=$PWD/target/release/ocloud
PGBIN=/usr/lib/postgresql/15/bin

W=$(mktemp -d /tmp/ocloud-scale.XXXXXX); chmod 755 "$W" # the postgres user reaches its cluster dir
pids=()
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl" -D "$W/pg" -m immediate -w stop >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }
wait_http() { for _ in $(seq 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
RESULTS=$W/results.md
row() { printf '| %s | %s | %s | %s | %s |\n' "$@" | tee -a "$RESULTS"; }

# --- backends ---
mkdir -p "$W/pg" "$W/s3/ocloud" "$W/embedded"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$W/pg"
as_pg "$PGBIN/initdb" -D "$W/pg" -U postgres -A trust >/dev/null
P_PG=$(port)
as_pg "$PGBIN/pg_ctl" -D "$W/pg" -l "$W/pg/log" -w -o "-c listen_addresses=127.0.0.1 -p $P_PG -k $W/pg -c max_connections=200" start >/dev/null
psql -q "postgres://postgres@127.0.0.1:$P_PG/postgres" -c "CREATE DATABASE ocloud"
P_S3=$(port)
"$S3S" --host 127.0.0.1 --port "$P_S3" --access-key bench --secret-key bench-secret "$W/s3" >"$W/s3.log" 2>&1 &
pids+=($!)
export AWS_ENDPOINT_URL=http://127.0.0.1:$P_S3 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
export AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
REMOTE=(--database "postgres://postgres@127.0.0.1:$P_PG/ocloud" --blobs s3://ocloud/content)

serve() { # NAME PORT ARGS...: an instance in the background, its pid in $SPID
  local name=$1 p=$2; shift 2
  "$BIN" serve --listen "127.0.0.1:$p" --data-dir "$W/$name" --quota 1TiB --max-upload-size 1TiB --no-dev-account "$@" \
    >"$W/$name.log" 2>&1 &
  SPID=$!; pids+=($SPID)
  wait_http "http://127.0.0.1:$p/healthz"
}

head -c $((SIZE_MB * 1048576)) /dev/urandom > "$W/big.bin"
mkdir -p "$W/many"
for i in $(seq 1 "$FILES"); do d="$W/many/d$((i % 20))"; mkdir -p "$d"; head -c 4096 /dev/urandom > "$d/f$i.bin"; done
sync

# One run of every measure against URL, with a token of DATA's backends; prints
# "upload_s download_s many_s listing_rps".
measure() { # URL ADMIN-ARGS...
  local url=$1; shift
  local token; token=$("$BIN" admin token "$@" --user bench --app bench --expires-in 86400)
  export OCLOUD_API_URL=$url OCLOUD_TOKEN=$token OCLOUD_CONFIG=$W/cli.toml
  local t0 t1 up down many rps
  sync; t0=$(now); "$BIN" upload "$W/big.bin" /bench/ --quiet; t1=$(now); up=$(python3 -c "print($t1-$t0)")
  rm -f "$W/dl.bin"; sync
  t0=$(now); "$BIN" download /bench/big.bin "$W/dl.bin" --quiet; t1=$(now); down=$(python3 -c "print($t1-$t0)")
  cmp -s "$W/big.bin" "$W/dl.bin" || echo "WARNING: downloaded file differs" >&2
  sync; t0=$(now); "$BIN" upload "$W/many" /many --quiet; t1=$(now); many=$(python3 -c "print($t1-$t0)")
  local id; id=$(python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(sys.argv[1].encode()).decode().rstrip("="))' "mes dossiers partenaires/bench/many/d1/")
  rps=$(wrk -t2 -c32 -d"${WRK_SECONDS:-5}"s -H "Authorization: Bearer $token" "$url/cloud/v1/folders/$id" 2>/dev/null | awk '/Requests\/sec/ {print $2}')
  "$BIN" rm -r /bench --quiet; "$BIN" rm -r /many --quiet
  echo "$up $down $many $rps"
}

echo "# ocloud on PostgreSQL + S3 vs embedded, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${SIZE_MB} MiB file, $FILES × 4 KiB files" | tee "$RESULTS"
echo | tee -a "$RESULTS"
row "# measure" "embedded" "PostgreSQL + S3" "ratio" "goal"
row "---" "---" "---" "---" "---"

P_E=$(port); serve embedded "$P_E"; E_PID=$SPID
read -r e_up e_down e_many e_rps < <(measure "http://127.0.0.1:$P_E" --data-dir "$W/embedded")
kill $E_PID

P_R=$(port); serve r1 "$P_R" "${REMOTE[@]}"; R_PID=$SPID
echo 5 > "/proc/$R_PID/clear_refs" 2>/dev/null || true
read -r r_up r_down r_many r_rps < <(measure "http://127.0.0.1:$P_R" --data-dir "$W/r1" "${REMOTE[@]}")
r_rss=$(awk '/VmHWM/ {print $2}' "/proc/$R_PID/status")

# Two instances behind haproxy (round robin), the second started now on the same backends.
P_R2=$(port); serve r2 "$P_R2" "${REMOTE[@]}"
P_LB=$(port)
cat > "$W/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  option http-keep-alive
frontend ocloud
  bind 127.0.0.1:$P_LB
  default_backend instances
backend instances
  balance roundrobin
  option httpchk GET /healthz
  server a 127.0.0.1:$P_R check
  server b 127.0.0.1:$P_R2 check
CFG
haproxy -f "$W/haproxy.cfg" >"$W/haproxy.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$P_LB/healthz"
read -r l_up l_down l_many l_rps < <(measure "http://127.0.0.1:$P_LB" --data-dir "$W/r1" "${REMOTE[@]}")

mbps() { python3 -c "print(f'{$SIZE_MB/$1:.0f} MiB/s')"; }
fps() { python3 -c "print(f'{$FILES/$1:.0f} files/s')"; }
row "upload ${SIZE_MB} MiB, one instance" "$(mbps "$e_up")" "$(mbps "$r_up")" "$(ratio "$e_up" "$r_up")" "≥ 0.7"
row "download ${SIZE_MB} MiB, one instance" "$(mbps "$e_down")" "$(mbps "$r_down")" "$(ratio "$e_down" "$r_down")" "≥ 0.7"
row "upload $FILES × 4 KiB, one instance" "$(fps "$e_many")" "$(fps "$r_many")" "$(ratio "$e_many" "$r_many")" "≥ 0.5"
row "100-entry listing req/s, one instance" "$e_rps" "$r_rps" "$(ratio "$r_rps" "$e_rps")" "—"
row "upload ${SIZE_MB} MiB, two instances + haproxy" "$(mbps "$e_up")" "$(mbps "$l_up")" "$(ratio "$e_up" "$l_up")" "≥ 0.7"
row "download ${SIZE_MB} MiB, two instances + haproxy" "$(mbps "$e_down")" "$(mbps "$l_down")" "$(ratio "$e_down" "$l_down")" "≥ 0.7"
row "upload $FILES × 4 KiB, two instances + haproxy" "$(fps "$e_many")" "$(fps "$l_many")" "$(ratio "$e_many" "$l_many")" "≥ 0.5"
row "100-entry listing req/s, two instances + haproxy" "$e_rps" "$l_rps" "$(ratio "$l_rps" "$e_rps")" "—"
row "peak RSS of the service, ${SIZE_MB} MiB multipart upload to S3" "—" "$(python3 -c "print(f'{$r_rss/1024:.1f} MiB')")" "—" "≤ 64 MiB"
cp "$RESULTS" bench/last-scale-run.md
echo; echo "(table saved in bench/last-scale-run.md)"
