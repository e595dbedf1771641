//! Rate limits per (application, user): a token bucket of N requests per minute (governor),
//! N from the app's own setting or the service default; 0 means unlimited.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::{Access, Error, Result, Service};

/// The buckets, created on first use.
#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<(i64, i64, u32), Arc<DefaultDirectRateLimiter>>>,
}

impl Service {
    /// Spends one request of the caller's bucket; `RateLimited` with the seconds to wait when
    /// it is empty.
    pub fn check_rate(&self, a: &Access) -> Result<()> {
        let per_minute = a.app.rate_limit.unwrap_or(self.cfg.rate_limit);
        let Some(n) = NonZeroU32::new(per_minute) else {
            return Ok(());
        };
        let bucket = {
            let mut map = self.limits.buckets.lock().unwrap_or_else(|p| p.into_inner());
            map.entry((a.app.id, a.user.id, per_minute))
                .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_minute(n))))
                .clone()
        };
        bucket.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })
    }
}
