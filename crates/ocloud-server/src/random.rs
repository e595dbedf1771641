//! Where the service's random values come from: the operating system's generator, or, after
//! `--seed N` (or the emulator's settings), a generator seeded from N, so that tokens, client
//! ids and secrets, session ids, codes, upload keys and content keys repeat run after run.
//! Two runs with the same seed that get the same requests one after the other give the same
//! answers (with the clock set as well); concurrent requests draw in whatever order they run.
//!
//! The seed is the process's: in-process test servers share it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::SeedableRng as _;

static SEEDED: AtomicBool = AtomicBool::new(false);
static RNG: Mutex<Option<(u64, rand::rngs::StdRng)>> = Mutex::new(None);

/// Draws from a generator seeded with `seed` from now on (restarting its sequence), or from
/// the operating system's again with `None`.
pub fn seed(seed: Option<u64>) {
    let mut rng = RNG.lock().unwrap_or_else(|p| p.into_inner());
    *rng = seed.map(|s| (s, rand::rngs::StdRng::seed_from_u64(s)));
    SEEDED.store(seed.is_some(), Ordering::Release);
}

/// The seed in use, if any.
pub fn current_seed() -> Option<u64> {
    RNG.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(s, _)| *s)
}

/// Runs `f` on the generator in use.
fn with<T>(f: impl FnOnce(&mut dyn rand::RngCore) -> T) -> T {
    if SEEDED.load(Ordering::Acquire) {
        let mut rng = RNG.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, r)) = rng.as_mut() {
            return f(r);
        }
    }
    f(&mut rand::rng())
}

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) {
    with(|r| r.fill_bytes(buf));
}

/// `n` random characters of [A-Za-z0-9].
pub fn alphanumeric(n: usize) -> String {
    with(|r| rand::distr::SampleString::sample_string(&rand::distr::Alphanumeric, r, n))
}

/// 32 random lower-case hex characters (128 bits): content keys, temp names.
pub fn hex_id() -> String {
    let mut b = [0u8; 16];
    fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
