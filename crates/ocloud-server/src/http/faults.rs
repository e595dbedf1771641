//! The emulator's fault rules: an ordered list, the first rule that matches a request and
//! fires decides what happens to it. Only with `--emulator` (the middleware is not installed
//! otherwise).
//!
//! A rule matches on any of: the OpenAPI operation id (or a legacy API's `action`), method,
//! path glob, user, app, bearer token, and the `X-Ocloud-Test-Id` header (so parallel tests
//! on one server stay apart). It fires on the n-th matching calls, with a probability (from a
//! seeded generator), and at most a number of times, after which it removes itself. Its
//! action is an error of the spec's table (rendered as the service renders that code, in the
//! configured shape, `Retry-After` on 53 and 5), an expired or revoked token, quota exceeded,
//! latency (with jitter), or a byte-level fault on the request or response body
//! (`super::tamper`). The middleware that applies them is `super::emulate`.

use std::sync::Mutex;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use axum::http::Method;
use ocloud_wire::ErrorCode;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::tamper::{Side, Tamper};

/// What a rule matches; every field optional (`{}` matches every request).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// OpenAPI operation id (`files.upload`, `folders.get`, `oauth.token`…), or the `action`
    /// of a legacy API call (`getContentUploadURL`, `AddMediaObj`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// Method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path glob (`*` matches any run of characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The user the request's token acts for (its login name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The app holding the request's token (its name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
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
    /// Nothing more flows after `after` bytes of the body, for `ms` (none: until the peer
    /// gives up).
    Stall {
        #[serde(default)]
        after: u64,
        ms: Option<u64>,
        #[serde(default)]
        body: Side,
    },
    /// The connection is reset (TCP RST) after `after` bytes of the body.
    Reset {
        #[serde(default)]
        after: u64,
        #[serde(default)]
        body: Side,
    },
    /// The body ends after `after` bytes.
    Truncate {
        #[serde(default)]
        after: u64,
        #[serde(default)]
        body: Side,
    },
    /// `bytes` bytes (default 1) from offset `after` are inverted.
    Corrupt {
        #[serde(default)]
        after: u64,
        #[serde(default = "one")]
        bytes: u64,
        #[serde(default)]
        body: Side,
    },
    /// The body flows at most this fast.
    Bandwidth {
        bytes_per_s: u64,
        #[serde(default)]
        body: Side,
    },
}

fn one() -> u64 {
    1
}

impl Action {
    /// The byte-level fault of this action, and the body it acts on.
    pub fn tamper(&self) -> Option<(Tamper, Side)> {
        Some(match *self {
            Action::Stall { after, ms, body } => (Tamper::Stall { after, ms }, body),
            Action::Reset { after, body } => (Tamper::Reset { after }, body),
            Action::Truncate { after, body } => (Tamper::Truncate { after }, body),
            Action::Corrupt { after, bytes, body } => (Tamper::Corrupt { after, bytes }, body),
            Action::Bandwidth { bytes_per_s, body } => (Tamper::Bandwidth { bytes_per_s }, body),
            _ => return None,
        })
    }
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
    count: AtomicUsize,
    /// Some rule matches on the user or app, so the caller must be known before the handler.
    needs_caller: AtomicBool,
    rng: Mutex<rand::rngs::StdRng>,
    seq: AtomicU64,
}

impl Faults {
    /// No rules; probabilities drawn from `seed`.
    pub fn new(seed: u64) -> Faults {
        Faults {
            rules: Mutex::default(),
            count: AtomicUsize::new(0),
            needs_caller: AtomicBool::new(false),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            seq: AtomicU64::new(0),
        }
    }

    /// Draws probabilities from `seed` from now on (`--seed`, or the settings).
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock().unwrap_or_else(|p| p.into_inner()) = rand::rngs::StdRng::seed_from_u64(seed);
    }

    /// Whether there is any rule (one atomic load).
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Whether some rule matches on the user or the app.
    pub fn needs_caller(&self) -> bool {
        self.needs_caller.load(Ordering::Acquire)
    }

    /// A random delay of up to `max` ms, from the seeded generator.
    pub fn jitter(&self, max: u64) -> u64 {
        if max == 0 { 0 } else { self.rng.lock().unwrap_or_else(|p| p.into_inner()).random_range(0..=max) }
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
            Action::Bandwidth { bytes_per_s: 0, .. } => return Err("bandwidth: bytes_per_s above 0".into()),
            _ => {}
        }
        if rule.when.times == Some(0) {
            return Err("times: at least 1 (leave it out for no limit)".into());
        }
        if rule.when.nth.as_ref().is_some_and(|n| n.contains(&0)) {
            return Err("nth: calls count from 1".into());
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
            let n = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
            rule.name.get_or_insert_with(|| format!("rule-{n}"));
            let remaining = rule.when.times;
            list.push(Active { rule, matched: 0, fired: 0, remaining });
        }
        self.counted(&list);
        Ok(())
    }

    fn counted(&self, list: &[Active]) {
        let caller = list.iter().any(|a| a.rule.matches.user.is_some() || a.rule.matches.app.is_some());
        self.needs_caller.store(caller, Ordering::Release);
        self.count.store(list.len(), Ordering::Release);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        let mut list = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        list.clear();
        self.counted(&list);
    }

    /// The action of the first rule that matches this request and fires, with its name.
    pub fn fire(&self, req: &RequestInfo<'_>) -> Option<(String, Action)> {
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
            self.counted(&rules);
        }
        Some((name, action))
    }
}

/// What a rule can match of a request.
pub struct RequestInfo<'a> {
    /// Operation id.
    pub op: Option<&'a str>,
    /// A legacy API's `action` parameter.
    pub action: Option<&'a str>,
    /// Method.
    pub method: &'a Method,
    /// Path.
    pub path: &'a str,
    /// The caller (user, app), when some rule needs it and the token is valid.
    pub caller: Option<(&'a str, &'a str)>,
    /// Bearer token (or `token=` of the legacy APIs).
    pub token: Option<&'a str>,
    /// `X-Ocloud-Test-Id`.
    pub test_id: Option<&'a str>,
}

impl RequestInfo<'_> {
    fn matches(&self, m: &Match) -> bool {
        m.op.as_deref().is_none_or(|op| self.op == Some(op) || self.action == Some(op))
            && m.method.as_deref().is_none_or(|x| x.eq_ignore_ascii_case(self.method.as_str()))
            && m.path.as_deref().is_none_or(|p| super::journal::glob(p, self.path))
            && m.user.as_deref().is_none_or(|u| self.caller.is_some_and(|c| c.0 == u))
            && m.app.as_deref().is_none_or(|a| self.caller.is_some_and(|c| c.1 == a))
            && m.token.as_deref().is_none_or(|t| self.token == Some(t))
            && m.test_id.as_deref().is_none_or(|t| self.test_id == Some(t))
    }
}
