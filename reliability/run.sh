#!/usr/bin/env bash
# The reliability suite (README "Reliability"). Short by default, as CI runs it (a few
# minutes); `--long` for the long versions whose figures are in the README.
#   kill -9 loop and multi-client stress ... cargo test --test reliability
#   full disk on a tmpfs, idle and slow connections ... the `hardening` end-to-end tests
#   fuzzing: multipart, description JSON, legacy form, legacy XML, names, Range ... fuzz/
set -euo pipefail
cd "$(dirname "$0")/.."
mode=short
[ "${1:-}" = "--long" ] && mode=long
export RELIABILITY=$mode
fuzz_seconds=${FUZZ_SECONDS:-$([ $mode = long ] && echo 300 || echo 10)}
# The long idle-connection run opens 2,000+ sockets from this process.
ulimit -n 8192 2>/dev/null || true

bash tests/setup.sh
echo "== kill -9 loop and stress ($mode)"
log=$(mktemp)
status=0
cargo test --locked -p ocloud-cli --test reliability -- --nocapture --test-threads 1 >"$log" 2>&1 || status=$?
grep -E "^(crash loop|stress):|panicked|FAILED|^test result" "$log" || true
[ $status -eq 0 ] || { tail -60 "$log"; exit $status; }
rm -f "$log"
echo "== full disk, idle and slow connections ($mode)"
cargo test --locked -p ocloud-cli --test e2e hardening:: -- -q

echo "== fuzzing, $fuzz_seconds s per target"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked -q
cp Cargo.lock fuzz/Cargo.lock
if rustup toolchain list 2>/dev/null | grep -q nightly; then
  fuzz=(cargo +nightly fuzz)           # with AddressSanitizer
else
  fuzz=(cargo fuzz)
  fuzz_opts=(-s none)                  # stable: no sanitizer
fi
(
  cd fuzz
  for target in multipart description legacy_form legacy_xml names range; do
    out=$("${fuzz[@]}" run -O ${fuzz_opts[@]+"${fuzz_opts[@]}"} "$target" -- -max_total_time="$fuzz_seconds" 2>&1) || {
      echo "$out" | tail -40
      echo "fuzz target $target failed" >&2
      exit 1
    }
    echo "$target: $(echo "$out" | grep -E '^Done' | tail -1)"
  done
)
echo "reliability ($mode): all passed"
