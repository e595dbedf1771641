//! What guards the sign-in form.
//!
//! - **CSRF**: the form's token is signed with a server secret kept in the database (so every
//!   instance checks what any instance issued) and expires: a cookie an attacker plants must
//!   still be one the service made, within the hour. The cookie and the form must also carry
//!   the same token (double submit).
//! - **Throttling**: failed sign-ins are counted per account and per client address. From the
//!   third failure in a row, each further attempt must wait 1 s, then 2 s, 4 s… up to 5 min;
//!   an attempt during the wait is refused without looking at the password, with the time
//!   left. Never a permanent lockout: the wait ends, and a success clears the count. Counts
//!   are forgotten an hour after the last failure; they live in the database when it is
//!   shared by several instances (PostgreSQL), else in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Result, Service, auth::hex};
use crate::store::LoginFailures;

/// How long a sign-in form stays valid.
const FORM_TTL_SECS: i64 = 3600;
/// Failures allowed before the waits start.
const FREE_FAILURES: u32 = 2;
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// A record is forgotten this long after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Records at most, before the forgotten ones are swept.
const MAX_RECORDS: usize = 10_000;

/// Failed sign-ins by account and by address.
#[derive(Default)]
pub struct LoginGuard {
    failures: Mutex<HashMap<String, LoginFailures>>,
    key: tokio::sync::OnceCell<Vec<u8>>,
}

impl Service {
    async fn csrf_key(&self) -> Result<&[u8]> {
        let key = self
            .login_guard
            .key
            .get_or_try_init(|| async {
                let mut fresh = [0u8; 32];
                crate::random::fill(&mut fresh);
                self.meta.secret("login-csrf", &fresh).await
            })
            .await?;
        Ok(key)
    }

    fn csrf_mac(key: &[u8], payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(b"login-csrf:");
        mac.update(payload.as_bytes());
        mac
    }

    /// A new token for the sign-in form: `nonce.expiry.signature`.
    pub async fn login_csrf(&self) -> Result<String> {
        let key = self.csrf_key().await?;
        let mut nonce = [0u8; 16];
        crate::random::fill(&mut nonce);
        let payload = format!("{}.{}", hex(&nonce), self.clock.now_s() + FORM_TTL_SECS);
        let sig = hex(&Self::csrf_mac(key, &payload).finalize().into_bytes());
        Ok(format!("{payload}.{sig}"))
    }

    /// Whether `token` is one [`Service::login_csrf`] made and has not expired.
    pub async fn login_csrf_valid(&self, token: &str) -> Result<bool> {
        let key = self.csrf_key().await?;
        let Some((payload, sig)) = token.rsplit_once('.') else { return Ok(false) };
        let Some(expiry) = payload.split_once('.').and_then(|(_, e)| e.parse::<i64>().ok()) else {
            return Ok(false);
        };
        let Some(sig) = unhex(sig) else { return Ok(false) };
        let signed = Self::csrf_mac(key, payload).verify_slice(&sig).is_ok();
        Ok(signed && expiry > self.clock.now_s())
    }

    /// Starts a sign-in for `keys` (the account, the address): `Err` with the time still to
    /// wait, or `Ok` with the attempt already counted as a failure, in one step, so parallel
    /// attempts cannot all slip through before the first is counted. [`Service::login_succeeded`]
    /// clears the count. On a database shared by several instances (PostgreSQL) the counts
    /// live there, so an attacker gains nothing by spreading attempts over instances.
    pub async fn login_begin(&self, keys: &[String]) -> Result<std::result::Result<(), Duration>> {
        let now = self.clock.now_ms();
        let step = move |records: &mut [Option<LoginFailures>]| begin(records, now);
        if let Some(shared) = self.meta.login_failures(keys, &step).await? {
            return Ok(shared.map_err(|ms| Duration::from_millis(ms as u64)));
        }
        let mut map = self.login_guard.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > MAX_RECORDS {
            let forget = FORGET_AFTER.as_millis() as i64;
            map.retain(|_, f| now - f.last < forget);
        }
        let mut records: Vec<Option<LoginFailures>> = keys.iter().map(|k| map.get(k).copied()).collect();
        let verdict = begin(&mut records, now);
        if verdict.is_ok() {
            for (k, r) in keys.iter().zip(records) {
                map.insert(k.clone(), r.expect("begin fills every record"));
            }
        }
        Ok(verdict.map_err(|ms| Duration::from_millis(ms as u64)))
    }

    /// Forgets every in-memory failure count (the emulator's reset).
    pub(crate) fn forget_login_failures(&self) {
        self.login_guard.failures.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// A sign-in begun with [`Service::login_begin`] succeeded: its keys start afresh.
    pub async fn login_succeeded(&self, keys: &[String]) -> Result<()> {
        if !self.meta.clear_login_failures(keys).await? {
            let mut map = self.login_guard.failures.lock().unwrap_or_else(|p| p.into_inner());
            for k in keys {
                map.remove(k);
            }
        }
        Ok(())
    }
}

/// The rule, on the records of the attempt's keys (`None`: no failure yet): refused with the
/// ms still to wait if any key must wait, else every key's failure is counted and its next
/// wait set. Times are unix ms of the injected clock.
fn begin(records: &mut [Option<LoginFailures>], now: i64) -> std::result::Result<(), i64> {
    let wait = records.iter().flatten().map(|f| f.wait_until - now).max().unwrap_or(0);
    if wait > 0 {
        return Err(wait);
    }
    let forget = FORGET_AFTER.as_millis() as i64;
    for r in records.iter_mut() {
        let f = r.get_or_insert(LoginFailures { count: 0, last: now, wait_until: now });
        if now - f.last >= forget {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
        if f.count > FREE_FAILURES {
            let wait = Duration::from_secs(1u64 << (f.count - FREE_FAILURES - 1).min(9)).min(MAX_WAIT);
            f.wait_until = now + wait.as_millis() as i64;
        }
    }
    Ok(())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn service() -> (tempfile::TempDir, Service) {
        let dir = tempfile::tempdir().unwrap();
        let svc = crate::open_service(Arc::new(crate::Config::new(dir.path())), "http://x".into()).await.unwrap();
        (dir, svc)
    }

    #[tokio::test]
    async fn csrf_tokens_are_signed_and_expire() {
        let (dir, svc) = service().await;
        let t = svc.login_csrf().await.unwrap();
        assert!(svc.login_csrf_valid(&t).await.unwrap());
        // Any token an attacker makes up, or one with its expiry changed, fails.
        assert!(!svc.login_csrf_valid("0011.9999999999.aabb").await.unwrap());
        let (nonce, rest) = t.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        assert!(!svc.login_csrf_valid(&format!("{nonce}.9999999999.{sig}")).await.unwrap());
        let expired = format!("{nonce}.1");
        let sig = hex(&Service::csrf_mac(svc.csrf_key().await.unwrap(), &expired).finalize().into_bytes());
        assert!(!svc.login_csrf_valid(&format!("{expired}.{sig}")).await.unwrap(), "expired");
        // Another process on the same database checks what this one signed.
        let other = crate::open_service(Arc::new(crate::Config::new(dir.path())), "http://x".into()).await.unwrap();
        assert!(other.login_csrf_valid(&t).await.unwrap());
    }

    #[tokio::test]
    async fn waits_grow_and_a_success_clears_them() {
        let (_dir, svc) = service().await;
        let keys = vec!["user:a".to_owned(), "addr:1".to_owned()];
        // Each begun attempt counts at once: parallel attempts cannot all get through.
        for _ in 0..=FREE_FAILURES {
            assert_eq!(svc.login_begin(&keys).await.unwrap(), Ok(()));
        }
        let first = svc.login_begin(&keys).await.unwrap().unwrap_err();
        assert!(first <= Duration::from_secs(1) && first > Duration::from_millis(500));
        // The address alone is enough to wait; a success clears both.
        assert!(svc.login_begin(&["addr:1".to_owned()]).await.unwrap().is_err());
        svc.login_succeeded(&keys).await.unwrap();
        assert_eq!(svc.login_begin(&keys).await.unwrap(), Ok(()));
        svc.login_succeeded(&keys).await.unwrap();
        // The waits double, and stay bounded: never a lockout.
        let now = svc.clock.now_ms();
        svc.login_guard
            .failures
            .lock()
            .unwrap()
            .insert("user:a".into(), LoginFailures { count: 40, last: now, wait_until: now });
        assert_eq!(svc.login_begin(&keys[..1]).await.unwrap(), Ok(()));
        assert!(svc.login_begin(&keys[..1]).await.unwrap().unwrap_err() <= MAX_WAIT);
        // The injected clock ends the wait: no sleeping.
        svc.clock.advance(MAX_WAIT.as_millis() as i64);
        assert_eq!(svc.login_begin(&keys[..1]).await.unwrap(), Ok(()));
    }
}
