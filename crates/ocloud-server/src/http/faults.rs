//! The emulator's fault rules: an ordered list, the first rule that matches a request and
//! fires decides what happens to it. Only with `--emulator` (the middleware is not installed
//! otherwise).
//!
//! A rule matches on any of: the OpenAPI operation id, method, path glob, bearer token, and
//! the `X-Ocloud-Test-Id` header (so parallel tests on one server stay apart). It fires on
//! the n-th matching calls, with a probability (from a seeded generator), and at most a
//! number of times, after which it removes itself. Its action is an error of the spec's
//! table (rendered as the service renders that code, in the configured shape, `Retry-After`
//! on 53 and 5), an expired or revoked token, quota exceeded, or latency (with jitter).

use std::sync::Mutex;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ocloud_wire::ErrorCode;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;

/// What a rule matches; every field optional (`{}` matches every request).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// OpenAPI operation id (`files.upload`, `folders.get`, `oauth.token`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// Method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path glob (`*` matches any run of characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The bearer token of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The `X-Ocloud-Test-Id` header of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_id: Option<String>,
}

/// When a matching rule fires; every field optional (`{}`: every time, forever).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Only on these matching calls (1 = the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nth: Option<Vec<u64>>,
    /// With this probability (0 to 1), drawn from the service's seeded generator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// At most this many times, then the rule removes itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
}

/// What a firing rule does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// An error of the spec's table, by code.
    Error(u16),
    /// `expired` or `revoked`: the token is refused as such.
    Token(String),
    /// `exceeded`: the quota error.
    Quota(String),
    /// Wait this long before serving the request normally.
    Latency {
        /// Milliseconds.
        ms: u64,
        /// Up to this many more, at random.
        #[serde(default)]
        jitter_ms: u64,
    },
}

/// A rule as given.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Its name (for accounting and logs); default `rule-<n>`.
    #[serde(default)]
    pub name: Option<String>,
    /// What it matches.
    #[serde(default, rename = "match")]
    pub matches: Match,
    /// When it fires.
    #[serde(default)]
    pub when: When,
    /// What it does.
    pub action: Action,
}

/// A rule with its accounting.
#[derive(Debug, Clone, Serialize)]
pub struct Active {
    /// The rule.
    #[serde(flatten)]
    pub rule: Rule,
    /// Matching calls seen.
    pub matched: u64,
    /// Times it fired.
    pub fired: u64,
    /// Firings left (`None`: no limit).
    pub remaining: Option<u64>,
}

/// The rules of a service.
pub struct Faults {
    rules: Mutex<Vec<Active>>,
    /// How many rules there are, read without the lock: with none, a request costs one load.
    count: std::sync::atomic::AtomicUsize,
    rng: Mutex<rand::rngs::StdRng>,
    seq: std::sync::atomic::AtomicU64,
}

impl Faults {
    /// No rules; probabilities drawn from `seed`.
    pub fn new(seed: u64) -> Faults {
        Faults {
            rules: Mutex::default(),
            count: std::sync::atomic::AtomicUsize::new(0),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The rules with their accounting.
    pub fn list(&self) -> Vec<Active> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Checks a rule; `Err` says what is wrong with it.
    fn check(rule: &Rule) -> Result<(), String> {
        match &rule.action {
            Action::Error(code) if ErrorCode::from_code(*code).is_none() => {
                return Err(format!("error {code}: not a code of the spec's table"));
            }
            Action::Token(t) if t != "expired" && t != "revoked" => {
                return Err(format!("token {t:?}: expired or revoked"));
            }
            Action::Quota(q) if q != "exceeded" => return Err(format!("quota {q:?}: exceeded")),
            _ => {}
        }
        if let Some(p) = rule.when.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(format!("probability {p}: between 0 and 1"));
        }
        Ok(())
    }

    /// Appends rules (after the ones there are).
    pub fn add(&self, rules: Vec<Rule>) -> Result<(), String> {
        self.install(rules, false)
    }

    /// Replaces every rule, in one step: no request sees the list empty in between.
    pub fn replace(&self, rules: Vec<Rule>) -> Result<(), String> {
        self.install(rules, true)
    }

    /// Checks every rule, then appends them (after emptying the list with `replace`).
    fn install(&self, rules: Vec<Rule>, replace: bool) -> Result<(), String> {
        rules.iter().try_for_each(Faults::check)?;
        let mut list = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        if replace {
            list.clear();
        }
        for mut rule in rules {
            let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            rule.name.get_or_insert_with(|| format!("rule-{n}"));
            let remaining = rule.when.times;
            list.push(Active { rule, matched: 0, fired: 0, remaining });
        }
        self.count.store(list.len(), std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.count.store(0, std::sync::atomic::Ordering::Release);
    }

    /// The action of the first rule that matches this request and fires, with its name.
    fn fire(&self, req: &RequestInfo<'_>) -> Option<(String, Action)> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let mut fired = None;
        for (i, a) in rules.iter_mut().enumerate() {
            if !req.matches(&a.rule.matches) {
                continue;
            }
            a.matched += 1;
            let on_call = a.rule.when.nth.as_ref().is_none_or(|n| n.contains(&a.matched));
            let lucky = a.rule.when.probability.is_none_or(|p| rng.random::<f64>() < p);
            if on_call && lucky {
                a.fired += 1;
                if let Some(r) = &mut a.remaining {
                    *r -= 1;
                }
                fired = Some((i, a.rule.name.clone().unwrap_or_default(), a.rule.action.clone()));
                break;
            }
        }
        let (i, name, action) = fired?;
        if rules[i].remaining == Some(0) {
            rules.remove(i);
            self.count.store(rules.len(), std::sync::atomic::Ordering::Release);
        }
        Some((name, action))
    }
}

struct RequestInfo<'a> {
    op: Option<&'a str>,
    method: &'a Method,
    path: &'a str,
    token: Option<&'a str>,
    test_id: Option<&'a str>,
}

impl RequestInfo<'_> {
    fn matches(&self, m: &Match) -> bool {
        m.op.as_deref().is_none_or(|op| self.op == Some(op))
            && m.method.as_deref().is_none_or(|x| x.eq_ignore_ascii_case(self.method.as_str()))
            && m.path.as_deref().is_none_or(|p| super::journal::glob(p, self.path))
            && m.token.as_deref().is_none_or(|t| self.token == Some(t))
            && m.test_id.as_deref().is_none_or(|t| self.test_id == Some(t))
    }
}

/// Applies the first firing rule to every request but the control plane's.
pub async fn apply(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let (Some(faults), Some(journal)) = (s.faults.clone(), s.journal.clone()) else { return next.run(req).await };
    if faults.count.load(std::sync::atomic::Ordering::Acquire) == 0 || req.uri().path().starts_with("/_ocloud/") {
        return next.run(req).await;
    }
    let fired = {
        let op = req
            .extensions()
            .get::<MatchedPath>()
            .and_then(|m| journal.operation(req.method(), m.as_str()))
            .map(|o| &**o);
        let token = super::extract::bearer(req.headers())
            .ok()
            .flatten()
            .or_else(|| req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token="))));
        let info = RequestInfo {
            op,
            method: req.method(),
            path: req.uri().path(),
            token,
            test_id: req.headers().get("x-ocloud-test-id").and_then(|v| v.to_str().ok()),
        };
        faults.fire(&info)
    };
    let Some((name, action)) = fired else { return next.run(req).await };
    tracing::info!(rule = %crate::logsafe::Esc(&name), "emulator: fault fired");
    let marked = super::journal::FaultFired(name.clone());
    let err = match action {
        Action::Latency { ms, jitter_ms } => {
            let extra = if jitter_ms > 0 {
                faults.rng.lock().unwrap_or_else(|p| p.into_inner()).random_range(0..=jitter_ms)
            } else {
                0
            };
            tokio::time::sleep(std::time::Duration::from_millis(ms + extra)).await;
            let mut res = next.run(req).await;
            res.extensions_mut().insert(marked);
            return res;
        }
        Action::Error(code) => {
            let code = ErrorCode::from_code(code).expect("checked when added");
            let mut e = ApiError::new(code, format!("fault {name}"));
            if matches!(code, ErrorCode::TooManyRequests | ErrorCode::Unavailable) {
                e.retry_after = Some(1);
            }
            e
        }
        Action::Token(t) if t == "expired" => ApiError::new(ErrorCode::ExpiredCredentials, format!("fault {name}")),
        Action::Token(_) => ApiError::new(ErrorCode::InvalidCredentials, format!("fault {name}")),
        Action::Quota(_) => ApiError::from(crate::domain::Error::QuotaExceeded { needed: 1, free: 0 }),
    };
    // What the client is still sending is read and dropped, so it sees this answer.
    tokio::spawn(super::linger::drain(req.into_body()));
    let mut res = err.into_response();
    res.extensions_mut().insert(marked);
    res
}
