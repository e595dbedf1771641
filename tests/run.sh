#!/usr/bin/env bash
# The test command of the README: installs what is missing (tests/setup.sh), then runs the
# Rust suites (unit tests and the end-to-end tests on the real binary) and schemathesis
# against a real service (tests/schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cargo test --workspace --locked
bash tests/schemathesis/run.sh
