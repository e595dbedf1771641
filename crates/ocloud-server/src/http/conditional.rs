//! ETag / Last-Modified validators and the conditional headers of RFC 9110 §13.
//!
//! On GET and HEAD a satisfied `If-None-Match` / `If-Modified-Since` is answered 304, as
//! caches expect; every other failed precondition (`If-Match`, `If-Unmodified-Since`, and any
//! of the four on POST or DELETE) is 412/65.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::Node;

/// Outcome of the conditional headers.
#[derive(Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Go on.
    Pass,
    /// 304.
    NotModified,
    /// 412/65, with the reason.
    Failed(String),
}

/// A representation's validators.
#[derive(Debug, Clone)]
pub struct Validators {
    /// Strong ETag, quoted.
    pub etag: String,
    /// Last modification, whole seconds.
    pub modified: SystemTime,
}

/// The validators of a file: its content key (content never changes in place) and its
/// update time.
pub fn validators(node: &Node) -> Validators {
    let secs = (node.updated.max(0) / 1000) as u64;
    Validators {
        etag: format!("\"{}\"", node.blob.as_deref().unwrap_or("dir")),
        modified: UNIX_EPOCH + Duration::from_secs(secs),
    }
}

/// Whether a request carries any of the four conditional headers.
pub fn has_preconditions(h: &HeaderMap) -> bool {
    [header::IF_MATCH, header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE, header::IF_UNMODIFIED_SINCE]
        .iter()
        .any(|n| h.contains_key(n))
}

fn etag_list_matches(list: &str, etag: &str, weak: bool) -> bool {
    list.split(',').map(str::trim).any(|t| t == "*" || t == etag || (weak && t.strip_prefix("W/") == Some(etag)))
}

fn date(h: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    httpdate::parse_http_date(h.get(name)?.to_str().ok()?).ok()
}

impl Validators {
    /// Evaluates the conditional headers in the RFC's order. `safe`: GET or HEAD.
    pub fn evaluate(&self, h: &HeaderMap, safe: bool) -> Precondition {
        if let Some(v) = h.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
            if !etag_list_matches(v, &self.etag, false) {
                return Precondition::Failed(format!("If-Match {v} does not match ETag {}", self.etag));
            }
        } else if let Some(t) = date(h, header::IF_UNMODIFIED_SINCE)
            && self.modified > t
        {
            return Precondition::Failed("modified since If-Unmodified-Since".into());
        }
        let fail = |why: String| {
            if safe { Precondition::NotModified } else { Precondition::Failed(why) }
        };
        if let Some(v) = h.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
            if etag_list_matches(v, &self.etag, true) {
                return fail(format!("If-None-Match {v} matches ETag {}", self.etag));
            }
        } else if let Some(t) = date(h, header::IF_MODIFIED_SINCE)
            && self.modified <= t
        {
            return fail("not modified since If-Modified-Since".into());
        }
        Precondition::Pass
    }

    /// Adds `ETag` and `Last-Modified`.
    pub fn apply(&self, h: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.etag) {
            h.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(self.modified)) {
            h.insert(header::LAST_MODIFIED, v);
        }
    }

    /// A 304 with the validators.
    pub fn not_modified(&self) -> Response {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        self.apply(res.headers_mut());
        res
    }

    /// Whether an `If-Range` value still designates this representation.
    pub fn if_range_holds(&self, h: &HeaderMap) -> bool {
        match h.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
            None => true,
            Some(v) if v.starts_with('"') => v == self.etag,
            Some(v) => httpdate::parse_http_date(v).is_ok_and(|t| t >= self.modified),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validators {
        Validators { etag: "\"abc\"".into(), modified: UNIX_EPOCH + Duration::from_secs(1_000_000) }
    }

    fn h(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, HeaderValue::from_str(value).unwrap());
        m
    }

    #[test]
    fn rfc_order_and_outcomes() {
        let later = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(2_000_000));
        let earlier = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(10));
        assert_eq!(v().evaluate(&h(header::IF_MATCH, "\"abc\""), false), Precondition::Pass);
        assert!(matches!(v().evaluate(&h(header::IF_MATCH, "\"x\""), true), Precondition::Failed(_)));
        assert_eq!(v().evaluate(&h(header::IF_NONE_MATCH, "\"abc\""), true), Precondition::NotModified);
        assert!(matches!(v().evaluate(&h(header::IF_NONE_MATCH, "*"), false), Precondition::Failed(_)));
        assert_eq!(v().evaluate(&h(header::IF_MODIFIED_SINCE, &later), true), Precondition::NotModified);
        assert_eq!(v().evaluate(&h(header::IF_MODIFIED_SINCE, &earlier), true), Precondition::Pass);
        assert!(matches!(v().evaluate(&h(header::IF_UNMODIFIED_SINCE, &earlier), true), Precondition::Failed(_)));
    }
}
