//! Rate limits per (application, user): a token bucket of N requests per minute (governor),
//! N from the app's own setting or the service default; 0 means unlimited.
//!
//! One keyed limiter per distinct N (there are few), so the buckets of idle callers can be
//! dropped: a bucket that has refilled is the same as none, and [`Service::trim_rate_limits`]
//! removes those (hourly, and whenever a limiter holds over [`TRIM_ABOVE`] callers), so the
//! memory stays bounded by the callers active in the last minute.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Access, Error, Result, Service};

/// Callers one limiter may hold before the full buckets are dropped inline.
pub const TRIM_ABOVE: usize = 10_000;

/// The buckets of one requests-per-minute value, keyed by (app id, user id).
type Limiter = DefaultKeyedRateLimiter<(i64, i64)>;

/// The limiters, one per requests-per-minute value, created on first use.
#[derive(Default)]
pub struct RateLimits {
    limiters: Mutex<HashMap<u32, Arc<Limiter>>>,
}

impl Service {
    /// The one authorization step of every API surface (Cloud API, upload, content URLs,
    /// legacy Personal APIs): the bearer token, then the caller's rate limit.
    pub async fn authorize(&self, token: Option<&str>) -> Result<Access> {
        let access = self.authenticate(token).await?;
        self.check_rate(&access)?;
        Ok(access)
    }

    /// Spends one request of the caller's bucket; `RateLimited` with the seconds to wait when
    /// it is empty.
    fn check_rate(&self, a: &Access) -> Result<()> {
        let per_minute = a.app.rate_limit.unwrap_or(self.cfg.rate_limit);
        let Some(n) = NonZeroU32::new(per_minute) else {
            return Ok(());
        };
        let limiter = {
            let mut map = self.limits.limiters.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(per_minute).or_insert_with(|| Arc::new(RateLimiter::keyed(Quota::per_minute(n)))).clone()
        };
        if limiter.len() > TRIM_ABOVE {
            limiter.retain_recent();
        }
        limiter.check_key(&(a.app.id, a.user.id)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })
    }

    /// Drops the buckets that have refilled; returns how many callers are still tracked.
    pub fn trim_rate_limits(&self) -> usize {
        let limiters: Vec<_> =
            self.limits.limiters.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        limiters
            .iter()
            .map(|l| {
                l.retain_recent();
                l.len()
            })
            .sum()
    }
}
