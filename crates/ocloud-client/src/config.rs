//! Where the service is and how hard to try.

use std::time::Duration;

/// Orange's production API host (spec §1).
pub const ORANGE_API_URL: &str = "https://api.orange.com";
/// Orange's production upload and content host (spec §1).
pub const ORANGE_UPLOAD_URL: &str = "https://cloudapi.orange.com";

/// Base URLs. Production Orange uses two hosts; `ocloud serve` serves all three bases on one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Base of `/cloud/v1` JSON calls, e.g. `https://api.orange.com`.
    pub api: String,
    /// Base of `/cloud/v1/files/content` uploads, e.g. `https://cloudapi.orange.com`.
    pub upload: String,
    /// Base of `/oauth/v2`, e.g. `https://api.orange.com`.
    pub oauth: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints { api: ORANGE_API_URL.into(), upload: ORANGE_UPLOAD_URL.into(), oauth: ORANGE_API_URL.into() }
    }
}

impl Endpoints {
    /// All three on one base, as `ocloud serve` serves them.
    ///
    /// ```
    /// let e = ocloud_client::Endpoints::single("http://127.0.0.1:8080/");
    /// assert_eq!(e.upload, "http://127.0.0.1:8080");
    /// ```
    pub fn single(base: &str) -> Endpoints {
        let b = base.trim_end_matches('/').to_owned();
        Endpoints { api: b.clone(), upload: b.clone(), oauth: b }
    }
}

/// How failed calls are retried: exponential backoff with full jitter, `Retry-After`
/// honoured, bounded by attempts and by total time.
///
/// Retried: 403/53 (rate limit), 503/5 and 503/6, 429; time-outs and connection failures
/// and 5xx only for calls that are safe to repeat (reads, deletes, uploads from a file).
/// A 401/41-42 (or the upload host's `INVALID_TOKEN`) refreshes the token once and replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retry).
    pub max_attempts: u32,
    /// First wait.
    pub initial_backoff: Duration,
    /// Longest single wait.
    pub max_backoff: Duration,
    /// No new attempt starts after this much time since the first.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// The wait before attempt `n + 1` (n ≥ 1): full jitter over an exponential ceiling, or
    /// the server's `Retry-After` when it is longer.
    pub fn backoff(&self, n: u32, retry_after: Option<u64>) -> Duration {
        let ceiling = self.initial_backoff.saturating_mul(1u32 << (n - 1).min(16)).min(self.max_backoff);
        let jittered = ceiling.mul_f64(rand::random::<f64>().max(0.1));
        match retry_after {
            Some(s) => jittered.max(Duration::from_secs(s)).min(self.max_backoff.max(Duration::from_secs(s))),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_honours_retry_after() {
        let p = RetryPolicy::default();
        for n in 1..20 {
            assert!(p.backoff(n, None) <= p.max_backoff);
        }
        assert!(p.backoff(1, Some(3)) >= Duration::from_secs(3));
    }
}
