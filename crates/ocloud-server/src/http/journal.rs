//! The emulator's request journal: a bounded ring of the last requests (`--journal N`), each
//! with its operation id, status, caller and sizes, for tests to check what a client really
//! sent. Only with `--emulator`: without it this middleware is not installed at all.
//!
//! No header is kept (so no `Authorization`), and the values of query parameters that carry
//! secrets (`token`, `password`, `code`, `client_secret`, `refresh_token`) are redacted.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::AppState;

/// One request, as the journal keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Increasing from 1.
    pub id: u64,
    /// When it arrived, on the service's clock (unix ms; the control plane adds RFC 3339).
    pub time_ms: i64,
    /// The OpenAPI operation id (`files.upload`…), none for an unknown route.
    #[serde(serialize_with = "shared_str")]
    pub operation: Option<std::sync::Arc<str>>,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string, secrets redacted.
    pub query: Option<String>,
    /// Status answered.
    pub status: u16,
    /// The authenticated user, if any.
    pub user: Option<String>,
    /// The app of the token, if any.
    pub app: Option<String>,
    /// Request body bytes, when the client declared them.
    pub bytes_in: Option<u64>,
    /// Response body bytes, when known up front.
    pub bytes_out: Option<u64>,
    /// Until the answer's head, ms.
    pub duration_ms: f64,
    /// The fault rule that fired on it, if one did.
    pub fault: Option<String>,
}

/// An operation id shared with the route table, written as a string.
fn shared_str<S: serde::Serializer>(v: &Option<std::sync::Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_some(&v.as_deref())
}

/// Put on a response by `faults::apply`: the rule that fired.
#[derive(Debug, Clone)]
pub struct FaultFired(pub String);

/// What `GET …/requests` and `POST …/requests/count` match on; every field optional.
#[derive(Debug, Default, Deserialize)]
pub struct Matcher {
    /// Operation id.
    pub op: Option<String>,
    /// Method, any case.
    pub method: Option<String>,
    /// Path glob (`*` matches any run of characters).
    pub path: Option<String>,
    /// Status.
    pub status: Option<u16>,
    /// User.
    pub user: Option<String>,
    /// Only entries with a greater id.
    pub since: Option<u64>,
}

impl Matcher {
    /// Whether `e` matches.
    pub fn matches(&self, e: &Entry) -> bool {
        self.op.as_deref().is_none_or(|op| e.operation.as_deref() == Some(op))
            && self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(&e.method))
            && self.path.as_deref().is_none_or(|p| glob(p, &e.path))
            && self.status.is_none_or(|s| s == e.status)
            && self.user.as_deref().is_none_or(|u| e.user.as_deref() == Some(u))
            && self.since.is_none_or(|id| e.id > id)
    }
}

/// `*` matches any run of characters; everything else itself.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The ring, and the operation ids by route.
pub struct Journal {
    ring: Mutex<VecDeque<Entry>>,
    capacity: usize,
    next: AtomicU64,
    /// Operation ids by path template, then method (looked up with no allocation).
    ops: HashMap<String, HashMap<Method, std::sync::Arc<str>>>,
}

impl Journal {
    /// A journal of at most `capacity` entries, naming operations from the OpenAPI document.
    pub fn new(capacity: usize, openapi: &[u8]) -> Journal {
        let mut ops: HashMap<String, HashMap<Method, std::sync::Arc<str>>> = HashMap::new();
        let doc: serde_json::Value = serde_json::from_slice(openapi).unwrap_or_default();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                if let (Ok(m), Some(id)) = (method.to_uppercase().parse::<Method>(), op["operationId"].as_str()) {
                    ops.entry(path.clone()).or_default().insert(m, id.into());
                }
            }
        }
        Journal { ring: Mutex::new(VecDeque::new()), capacity: capacity.max(1), next: AtomicU64::new(0), ops }
    }

    /// The operation id of a route (`method`, axum's path template).
    pub fn operation(&self, method: &Method, template: &str) -> Option<&std::sync::Arc<str>> {
        self.ops.get(template)?.get(method)
    }

    /// The entries matching `m`, oldest first.
    pub fn list(&self, m: &Matcher) -> Vec<Entry> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|e| m.matches(e)).cloned().collect()
    }

    /// Empties the journal (ids go on increasing).
    pub fn clear(&self) {
        self.ring.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn push(&self, e: Entry) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(e);
    }
}

/// Query parameters whose values are never kept.
const SECRET_PARAMS: [&str; 6] = ["token", "password", "code", "client_secret", "refresh_token", "access_token"];

fn redact(query: &str) -> String {
    query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => format!("{k}=REDACTED"),
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Records every request but the control plane's own.
pub async fn record(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(journal) = s.journal.clone() else { return next.run(req).await };
    if req.uri().path().starts_with("/_ocloud/") {
        return next.run(req).await;
    }
    let started = std::time::Instant::now();
    let now = s.svc.clock.now_ms();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(redact);
    let operation = req.extensions().get::<MatchedPath>().and_then(|m| journal.operation(&method, m.as_str())).cloned();
    let bytes_in = length(req.headers());
    let (res, who) = crate::domain::caller::scope(next.run(req)).await;
    let id = journal.next.fetch_add(1, Ordering::Relaxed) + 1;
    journal.push(Entry {
        id,
        time_ms: now,
        operation,
        method: method.to_string(),
        path,
        query,
        status: res.status().as_u16(),
        user: who.as_ref().map(|w| w.0.clone()),
        app: who.map(|w| w.1),
        bytes_in,
        bytes_out: length(res.headers()),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        fault: res.extensions().get::<FaultFired>().map(|f| f.0.clone()),
    });
    res
}

#[cfg(test)]
mod tests {
    #[test]
    fn globs_and_redaction() {
        assert!(super::glob("/cloud/v1/*", "/cloud/v1/folders/x"));
        assert!(super::glob("*/content", "/cloud/v1/files/content"));
        assert!(super::glob("/a*c*e", "/abcde"));
        assert!(!super::glob("/a*c*e", "/abde"));
        assert!(!super::glob("/cloud", "/cloud/v1"));
        assert_eq!(super::redact("action=x&token=secret&TOKEN=y"), "action=x&token=REDACTED&TOKEN=REDACTED");
    }
}
