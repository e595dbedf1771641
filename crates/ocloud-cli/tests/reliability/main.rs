//! The reliability suite: the real `ocloud` under `kill -9` and under many clients, each run
//! followed by a check of every invariant the service promises. Short by default (part of
//! `cargo test`, seconds); `RELIABILITY=long` (see `reliability/run.sh`) runs the long
//! versions, whose last figures are in the README.
//!
//! The full-disk and slow-connection runs live in the end-to-end suite (`hardening`), which
//! `reliability/run.sh` runs too, with their long settings.

#[path = "../e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

mod crash_loop;
mod invariants;
mod stress;

/// Whether the long versions were asked for.
pub fn long() -> bool {
    std::env::var("RELIABILITY").is_ok_and(|v| v == "long")
}
