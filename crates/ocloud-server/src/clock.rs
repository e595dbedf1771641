//! The one source of wall-clock time of the service.
//!
//! Token, code, session and upload-URL expiry, dates in answers, the login throttle and the
//! timestamps the stores write all read this clock; the databases never stamp time by
//! themselves. It follows the system clock by default; the emulator control plane can move
//! it, or freeze it, so a test expires a token without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Marks "not frozen" in [`Clock`]'s frozen slot.
const RUNNING: i64 = i64::MIN;

/// A shared, settable clock. Cheap to clone: clones share one setting.
#[derive(Clone, Debug)]
pub struct Clock(Arc<State>);

#[derive(Debug)]
struct State {
    /// Added to the system time while running.
    offset_ms: AtomicI64,
    /// The time it stands at while frozen, else [`RUNNING`].
    frozen_ms: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock(Arc::new(State { offset_ms: AtomicI64::new(0), frozen_ms: AtomicI64::new(RUNNING) }))
    }
}

fn system_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Unix milliseconds now.
    pub fn now_ms(&self) -> i64 {
        match self.0.frozen_ms.load(Ordering::Acquire) {
            RUNNING => system_ms() + self.0.offset_ms.load(Ordering::Acquire),
            frozen => frozen,
        }
    }

    /// Unix seconds now.
    pub fn now_s(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Now as a `SystemTime`.
    pub fn now(&self) -> std::time::SystemTime {
        let ms = self.now_ms();
        if ms >= 0 {
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)
        } else {
            std::time::UNIX_EPOCH
        }
    }

    /// Whether the clock stands still.
    pub fn is_frozen(&self) -> bool {
        self.0.frozen_ms.load(Ordering::Acquire) != RUNNING
    }

    /// Sets the time to `now_ms`, standing still there if `frozen`, else running on from it.
    pub fn set(&self, now_ms: i64, frozen: bool) {
        if frozen {
            self.0.frozen_ms.store(now_ms, Ordering::Release);
        } else {
            self.0.offset_ms.store(now_ms - system_ms(), Ordering::Release);
            self.0.frozen_ms.store(RUNNING, Ordering::Release);
        }
    }

    /// Moves the clock forward (or back, if negative) by `ms`, frozen or not.
    pub fn advance(&self, ms: i64) {
        if self.is_frozen() {
            self.0.frozen_ms.fetch_add(ms, Ordering::AcqRel);
        } else {
            self.0.offset_ms.fetch_add(ms, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clocks_stand_still_and_advance_exactly() {
        let c = Clock::system();
        assert!((c.now_ms() - system_ms()).abs() < 5_000);
        c.set(1_000_000, true);
        assert_eq!(c.now_ms(), 1_000_000);
        c.advance(3_601_000);
        assert_eq!(c.now_s(), 4_601);
        let shared = c.clone();
        shared.advance(-1_000);
        assert_eq!(c.now_ms(), 4_600_000);
        c.set(2_000_000_000_000, false);
        assert!(!c.is_frozen());
        assert!((c.now_ms() - 2_000_000_000_000).abs() < 5_000, "runs on from the time set");
    }
}
