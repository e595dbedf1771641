//! Content URLs (spec §3.8): `GET|HEAD /cloud/v1/files/{id}/{content|thumb|preview}/{opaque}`
//! with the bearer token; single byte ranges (206), ETag and Last-Modified.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ocloud_wire::ErrorCode;

use super::AppState;
use super::conditional::{Precondition, validators};
use super::error::ApiError;
use super::extract::Auth;

/// A parsed `Range: bytes=…` against a known size.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// No usable range: the whole content.
    Full,
    /// Inclusive first and last byte.
    Part(u64, u64),
    /// Syntactically fine but outside the content: 416.
    Unsatisfiable,
}

/// Parses one range; several ranges or nonsense mean `Full` (RFC 9110 lets a server ignore
/// `Range`).
pub fn parse_range(value: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return ByteRange::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(first), Ok(last)) if first <= last => {
            if first >= size {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part(first, last.min(size - 1))
            }
        }
        (Ok(first), Err(_)) if b.is_empty() => {
            if first >= size {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part(first, size - 1)
            }
        }
        (Err(_), Ok(n)) if a.is_empty() => {
            if n == 0 || size == 0 {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part(size - n.min(size), size - 1)
            }
        }
        _ => ByteRange::Full,
    }
}

/// Serves the content, the thumbnail or the preview of a file.
pub async fn get(
    State(s): State<AppState>,
    Auth(a): Auth,
    method: Method,
    Path((id, kind, opaque)): Path<(String, String, String)>,
    conn: Option<axum::Extension<super::conn::Conn>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !matches!(kind.as_str(), "content" | "thumb" | "preview") {
        return Err(ApiError::new(ErrorCode::NotFound, format!("no {kind:?} for file {id}")));
    }
    let item = s.svc.content_item(&a, &id, &opaque).await?;
    let mut v = validators(&item.node);
    if kind != "content" {
        if !crate::domain::Service::has_renditions(&item.node) {
            return Err(ApiError::new(ErrorCode::NotFound, format!("file {id} has no {kind}")));
        }
        v.etag = format!("\"{}-{kind}\"", item.node.blob.as_deref().unwrap_or_default());
    }
    match v.evaluate(&headers, true) {
        Precondition::Pass => {}
        Precondition::NotModified => return Ok(v.not_modified()),
        Precondition::Failed(why) => return Err(ApiError::new(ErrorCode::PreconditionFailed, why)),
    }
    let blob = item.node.blob.clone().unwrap_or_default();
    if kind == "thumb" || kind == "preview" {
        let bytes = s.svc.rendition(&blob, &kind).await?;
        let mut res = ([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response();
        v.apply(res.headers_mut());
        return Ok(res);
    }
    let size = item.node.size;
    let range = if v.if_range_holds(&headers) {
        parse_range(headers.get(header::RANGE).and_then(|r| r.to_str().ok()), size)
    } else {
        ByteRange::Full
    };
    let (status, first, len) = match range {
        ByteRange::Full => (StatusCode::OK, 0, size),
        ByteRange::Part(f, l) => (StatusCode::PARTIAL_CONTENT, f, l - f + 1),
        ByteRange::Unsatisfiable => {
            // 416 is outside the spec's error table; the body is empty, as RFC 9110 allows.
            let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            res.headers_mut()
                .insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"));
            return Ok(res);
        }
    };
    let splice = conn.and_then(|c| c.0.splice);
    let body = if method == Method::HEAD {
        Body::empty()
    } else if let Some(file) = spliceable(&s, splice.is_some(), &blob, len, first + len).await {
        super::sendfile::body(splice.expect("checked"), file, first, len)
    } else {
        Body::from_stream(s.svc.blobs.read(&blob, first, Some(len)).await.map_err(crate::domain::Error::from)?)
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    let mime = item.node.mime.as_deref().unwrap_or("application/octet-stream");
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let disposition = format!("attachment; filename*=UTF-8''{}", percent_encode(&item.node.name));
    if let Ok(d) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let cr = format!("bytes {first}-{}/{size}", first + len - 1);
        h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&cr).expect("ascii"));
    }
    v.apply(h);
    Ok(res)
}

/// Smallest download sent with `sendfile`: below it, one read is as cheap.
const SPLICE_MIN: u64 = 1 << 20;

/// The blob's file, open, when these `len` bytes up to `end` can go out with `sendfile` (see
/// [`super::sendfile`]): a plain connection, no emulator, a local file at least `end` bytes
/// long, and at least [`SPLICE_MIN`] bytes to send.
async fn spliceable(s: &AppState, on_plain_conn: bool, blob: &str, len: u64, end: u64) -> Option<std::fs::File> {
    if !super::sendfile::AVAILABLE || !on_plain_conn || s.svc.cfg.emulator.is_some() || len < SPLICE_MIN {
        return None;
    }
    let path = s.svc.blobs.local_file(blob)?;
    let file = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path).ok()?;
        // Shorter than its record (a damaged store): the plain path reports it.
        (f.metadata().ok()?.len() >= end).then_some(f)
    })
    .await
    .ok()??;
    Some(file)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), ByteRange::Full);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), ByteRange::Part(0, 3));
        assert_eq!(parse_range(Some("bytes=5-"), 10), ByteRange::Part(5, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), ByteRange::Part(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), ByteRange::Part(0, 9));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), ByteRange::Part(8, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), ByteRange::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), ByteRange::Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), ByteRange::Full);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), ByteRange::Full);
        assert_eq!(percent_encode("a b.txt"), "a%20b.txt");
    }
}
