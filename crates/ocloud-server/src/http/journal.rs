//! The emulator's request journal: a bounded ring of the last requests (`--journal N`), each
//! with its operation id, status, caller and sizes, for tests to check what a client really
//! sent. Only with `--emulator`: without it this middleware is not installed at all.
//!
//! No header is kept (so no `Authorization`), and the values of query parameters that carry
//! secrets (`token`, `password`, `code`, `client_secret`, `refresh_token`) are redacted.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{Method, header};
use serde::{Deserialize, Serialize};

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
    #[serde(serialize_with = "method_str")]
    pub method: Method,
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

fn method_str<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

/// Put on a response by `faults::apply`: the rule that fired.
#[derive(Debug, Clone)]
pub struct FaultFired(pub String);

/// What `GET …/requests` and `POST …/requests/count` match on; every field optional (an
/// unknown one is refused: a typo must not make every assertion pass).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// App.
    pub app: Option<String>,
}

impl Matcher {
    /// Whether `e` matches.
    pub fn matches(&self, e: &Entry) -> bool {
        self.op.as_deref().is_none_or(|op| e.operation.as_deref() == Some(op))
            && self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(e.method.as_str()))
            && self.path.as_deref().is_none_or(|p| glob(p, &e.path))
            && self.status.is_none_or(|s| s == e.status)
            && self.user.as_deref().is_none_or(|u| e.user.as_deref() == Some(u))
            && self.app.as_deref().is_none_or(|a| e.app.as_deref() == Some(a))
            && self.since.is_none_or(|id| e.id > id)
    }
}

/// Levenshtein distance, by characters.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diag + usize::from(ca != *cb));
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
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
    /// The live tail (`GET …/requests/tail`); entries are cloned only while someone listens.
    tail: tokio::sync::broadcast::Sender<Entry>,
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
        let tail = tokio::sync::broadcast::channel(256).0;
        Journal { ring: Mutex::new(VecDeque::new()), capacity: capacity.max(1), next: AtomicU64::new(0), ops, tail }
    }

    /// The entries to come, as they are recorded (a slow reader skips what it missed).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Entry> {
        self.tail.subscribe()
    }

    /// The known route nearest to an unknown `method path`: the smallest edit distance
    /// between path segments (a `{param}` matches any), then the same method.
    pub fn nearest(&self, method: &str, path: &str) -> Option<String> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let distance = |template: &str| {
            let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
            let pairs = segs.iter().zip(&t).map(|(a, b)| if b.starts_with('{') { 0 } else { edits(a, b) });
            let extra = segs.iter().skip(t.len()).chain(t.iter().skip(segs.len())).map(|x| x.len() + 1);
            pairs.sum::<usize>() + extra.sum::<usize>()
        };
        self.ops
            .iter()
            .flat_map(|(template, methods)| methods.keys().map(move |m| (template, m)))
            .min_by_key(|(template, m)| (distance(template), !m.as_str().eq_ignore_ascii_case(method), template.len()))
            .map(|(template, m)| format!("{m} {template}"))
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

    /// Records `e`, numbering it.
    pub fn push(&self, mut e: Entry) {
        e.id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        if self.tail.receiver_count() > 0 {
            let _ = self.tail.send(e.clone());
        }
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(e);
    }
}

/// Query parameters whose values are never kept.
const SECRET_PARAMS: [&str; 6] = ["token", "password", "code", "client_secret", "refresh_token", "access_token"];

pub(crate) fn redact(query: &str) -> String {
    query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => format!("{k}=REDACTED"),
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) fn length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
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

    #[test]
    fn the_nearest_route_of_a_typo() {
        let doc = serde_json::json!({"paths": {
            "/cloud/v1/folders/{id}": {"get": {"operationId": "folders.get"}},
            "/cloud/v1/files/{id}": {"get": {"operationId": "files.get"}, "delete": {"operationId": "files.delete"}},
            "/cloud/v1/freespace": {"get": {"operationId": "freespace.get"}},
        }});
        let j = super::Journal::new(4, doc.to_string().as_bytes());
        assert_eq!(j.nearest("GET", "/cloud/v1/folder/abc").as_deref(), Some("GET /cloud/v1/folders/{id}"));
        assert_eq!(j.nearest("DELETE", "/cloud/v1/file/x").as_deref(), Some("DELETE /cloud/v1/files/{id}"));
        assert_eq!(j.nearest("GET", "/cloud/v1/freespaces").as_deref(), Some("GET /cloud/v1/freespace"));
    }
}
