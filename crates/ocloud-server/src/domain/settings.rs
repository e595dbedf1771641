//! The settings an emulator changes while it runs (`PATCH /_ocloud/v1/settings`, the
//! `settings` of an `--emulator-file`), and what it observes for tests (the last code issued
//! per client). They start from the configuration; without `--emulator` nothing changes them,
//! and reading one is an atomic load.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ErrorShape};

/// A shape as the atomic holds it: its place in [`ErrorShape::ALL`].
fn shape_index(shape: ErrorShape) -> u8 {
    ErrorShape::ALL.iter().position(|s| *s == shape).unwrap_or(2) as u8
}

/// The live values.
pub struct Settings {
    token_ttl_s: AtomicU64,
    quota: AtomicU64,
    rate_limit: AtomicU32,
    max_upload_size: AtomicU64,
    error_shape: AtomicU8,
    expired_token_code: AtomicU16,
    auto_consent: AtomicBool,
    auto_login: Mutex<Option<String>>,
    /// The last authorization code issued, by client id (emulator only).
    codes: Mutex<HashMap<String, (String, i64)>>,
}

/// A change of settings: every field optional. `auto_login: null` turns auto-login off.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    /// Access-token lifetime, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_ttl: Option<u64>,
    /// Quota of users without their own, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<u64>,
    /// Requests per minute per (app, user) for apps without their own limit; 0: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Largest accepted upload, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_upload_size: Option<u64>,
    /// `flat`, `wrapped`, `both` or `legacy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_shape: Option<String>,
    /// 41 or 42.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_token_code: Option<u16>,
    /// Sign every authorize request in as this user, with no login page (`null`: off).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_with_null")]
    pub auto_login: Option<Option<String>>,
    /// Skip the consent page: every authorize request is allowed at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_consent: Option<bool>,
    /// Reseeds the generators of tokens, ids and keys (`--seed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// `Option<Option<T>>` where a present `null` is `Some(None)`.
mod serde_with_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<String>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref().and_then(|x| x.as_ref()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::<String>::deserialize(d)?))
    }
}

impl Settings {
    /// The values of `cfg`.
    pub fn new(cfg: &Config) -> Settings {
        Settings {
            token_ttl_s: AtomicU64::new(cfg.token_ttl.as_secs()),
            quota: AtomicU64::new(cfg.quota),
            rate_limit: AtomicU32::new(cfg.rate_limit),
            max_upload_size: AtomicU64::new(cfg.max_upload_size),
            error_shape: AtomicU8::new(shape_index(cfg.error_shape)),
            expired_token_code: AtomicU16::new(cfg.expired_token_code),
            auto_consent: AtomicBool::new(false),
            auto_login: Mutex::new(None),
            codes: Mutex::default(),
        }
    }

    /// Lifetime of access tokens.
    pub fn token_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.token_ttl_s.load(Ordering::Relaxed))
    }
    /// Quota of a user without one of their own.
    pub fn quota(&self) -> u64 {
        self.quota.load(Ordering::Relaxed)
    }
    /// Requests per minute for apps without their own limit.
    pub fn rate_limit(&self) -> u32 {
        self.rate_limit.load(Ordering::Relaxed)
    }
    /// Largest accepted upload.
    pub fn max_upload_size(&self) -> u64 {
        self.max_upload_size.load(Ordering::Relaxed)
    }
    /// The shape of error answers.
    pub fn error_shape(&self) -> ErrorShape {
        ErrorShape::ALL[usize::from(self.error_shape.load(Ordering::Relaxed)) % ErrorShape::ALL.len()]
    }
    /// The code of an expired token.
    pub fn expired_token_code(&self) -> u16 {
        self.expired_token_code.load(Ordering::Relaxed)
    }
    /// Whether the consent page is skipped.
    pub fn auto_consent(&self) -> bool {
        self.auto_consent.load(Ordering::Relaxed)
    }
    /// The user every authorize request is signed in as, if any.
    pub fn auto_login(&self) -> Option<String> {
        self.auto_login.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Checks then applies `p` (all or nothing).
    pub fn apply(&self, p: &Patch) -> Result<(), String> {
        let shape = match &p.error_shape {
            Some(s) => Some(s.parse::<ErrorShape>()?),
            None => None,
        };
        if let Some(c) = p.expired_token_code
            && c != 41
            && c != 42
        {
            return Err(format!("expired_token_code {c}: 41 or 42"));
        }
        if p.token_ttl == Some(0) {
            return Err("token_ttl: at least 1 second".into());
        }
        if let Some(v) = p.token_ttl {
            self.token_ttl_s.store(v, Ordering::Relaxed);
        }
        if let Some(v) = p.quota {
            self.quota.store(v, Ordering::Relaxed);
        }
        if let Some(v) = p.rate_limit {
            self.rate_limit.store(v, Ordering::Relaxed);
        }
        if let Some(v) = p.max_upload_size {
            self.max_upload_size.store(v, Ordering::Relaxed);
        }
        if let Some(s) = shape {
            self.error_shape.store(shape_index(s), Ordering::Relaxed);
        }
        if let Some(c) = p.expired_token_code {
            self.expired_token_code.store(c, Ordering::Relaxed);
        }
        if let Some(v) = p.auto_consent {
            self.auto_consent.store(v, Ordering::Relaxed);
        }
        if let Some(v) = &p.auto_login {
            *self.auto_login.lock().unwrap_or_else(|p| p.into_inner()) = v.clone();
        }
        if let Some(seed) = p.seed {
            crate::random::seed(Some(seed));
        }
        Ok(())
    }

    /// The values now, as a patch that would set them all.
    pub fn current(&self) -> Patch {
        Patch {
            token_ttl: Some(self.token_ttl().as_secs()),
            quota: Some(self.quota()),
            rate_limit: Some(self.rate_limit()),
            max_upload_size: Some(self.max_upload_size()),
            error_shape: Some(self.error_shape().name().to_owned()),
            expired_token_code: Some(self.expired_token_code()),
            auto_login: Some(self.auto_login()),
            auto_consent: Some(self.auto_consent()),
            seed: crate::random::current_seed(),
        }
    }

    /// Notes the code just issued to `client_id` (issued at `now_ms`).
    pub fn note_code(&self, client_id: &str, code: &str, now_ms: i64) {
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.insert(client_id.to_owned(), (code.to_owned(), now_ms));
    }

    /// The last code issued to `client_id`, with when.
    pub fn last_code(&self, client_id: &str) -> Option<(String, i64)> {
        self.codes.lock().unwrap_or_else(|p| p.into_inner()).get(client_id).cloned()
    }
}
