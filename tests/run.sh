#!/usr/bin/env bash
# The test command of the README: installs what is missing (tests/setup.sh), then runs the
# Rust suites (unit tests and the end-to-end tests on the real binary) on the embedded
# backends, the end-to-end suite again on PostgreSQL + S3 (started for the run by
# tests/with-backends.sh), the scale suite (two instances on one PostgreSQL and one S3,
# outages, migration), and schemathesis against a real service (tests/schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cargo test --workspace --locked
OCLOUD_TEST_BACKEND=pg-s3 bash tests/with-backends.sh cargo test --locked -p ocloud-cli --test e2e
bash tests/with-backends.sh cargo test --locked -p ocloud-cli --test scale
bash tests/schemathesis/run.sh
