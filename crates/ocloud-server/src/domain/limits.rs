//! Rate limits per (application, user): N requests per minute, N from the app's own setting
//! or the service default; 0 means unlimited.
//!
//! The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept as one
//! "theoretical arrival time" per caller): a burst of N, then one request every 60/N s. Time
//! comes from the injected clock, so the emulator's clock also refills buckets.
//!
//! Where the metadata backend is shared by several instances (PostgreSQL), the bucket is a
//! row there, updated in one statement, so the limit is counted across instances. Otherwise
//! (SQLite: one process) it lives in memory; a bucket that has refilled is the same as none,
//! so [`Service::trim_rate_limits`] drops those and the memory stays bounded by the callers
//! active in the last minute.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Access, Error, Result, Service};

/// Callers held in memory before the refilled buckets are dropped inline.
pub const TRIM_ABOVE: usize = 10_000;

/// In-memory buckets: (app id, user id) → theoretical arrival time, unix ms.
#[derive(Default)]
pub struct RateLimits {
    tat: Mutex<HashMap<(i64, i64), i64>>,
}

/// One GCRA step: the new arrival time if the request is allowed, else the ms to wait.
pub fn gcra(tat: Option<i64>, now: i64, interval: i64, burst: i64) -> std::result::Result<i64, i64> {
    let next = tat.unwrap_or(now).max(now) + interval;
    if next - now > burst { Err(next - now - burst) } else { Ok(next) }
}

impl Service {
    /// The one authorization step of every API surface (Cloud API, upload, content URLs,
    /// legacy Personal APIs): the bearer token, then the caller's rate limit.
    pub async fn authorize(&self, token: Option<&str>) -> Result<Access> {
        let access = self.authenticate(token).await?;
        super::caller::note(&access.user.name, &access.app.name);
        self.check_rate(&access).await?;
        Ok(access)
    }

    /// Spends one request of the caller's bucket; `RateLimited` with the seconds to wait when
    /// it is empty.
    async fn check_rate(&self, a: &Access) -> Result<()> {
        let per_minute = a.app.rate_limit.unwrap_or_else(|| self.settings.rate_limit());
        if per_minute == 0 {
            return Ok(());
        }
        let (burst, now) = (60_000, self.clock.now_ms());
        let interval = burst / i64::from(per_minute);
        let shared = self.meta.take_rate(a.app.id, a.user.id, interval, burst, now).await?;
        let wait = match shared {
            Some(wait) => wait,
            None => {
                let mut map = self.limits.tat.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() > TRIM_ABOVE {
                    map.retain(|_, tat| *tat > now);
                }
                let key = (a.app.id, a.user.id);
                match gcra(map.get(&key).copied(), now, interval, burst) {
                    Ok(tat) => {
                        map.insert(key, tat);
                        0
                    }
                    Err(wait) => wait as u64,
                }
            }
        };
        if wait > 0 {
            return Err(Error::RateLimited(wait.div_ceil(1000)));
        }
        Ok(())
    }

    /// Forgets every in-memory bucket (the emulator's reset).
    pub(crate) fn forget_rate_limits(&self) {
        self.limits.tat.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Drops the in-memory buckets that have refilled; returns how many callers are still
    /// tracked.
    pub fn trim_rate_limits(&self) -> usize {
        let now = self.clock.now_ms();
        let mut map = self.limits.tat.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, tat| *tat > now);
        map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::gcra;

    #[test]
    fn a_burst_of_n_then_one_per_interval() {
        let (interval, burst) = (20_000, 60_000); // 3 a minute
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra(tat, 0, interval, burst).unwrap());
        }
        assert_eq!(gcra(tat, 0, interval, burst), Err(20_000), "the fourth waits one interval");
        assert_eq!(gcra(tat, 19_999, interval, burst), Err(1));
        assert!(gcra(tat, 20_000, interval, burst).is_ok());
        assert!(gcra(tat, 10 * 60_000, interval, burst).is_ok(), "a refilled bucket is as none");
    }
}
