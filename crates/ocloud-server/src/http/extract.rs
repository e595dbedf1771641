//! Extractors that answer with the spec's error bodies: the bearer token, JSON bodies,
//! query strings, and body chunks read with an idle timeout.

use axum::body::{Body, BodyDataStream};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use ocloud_wire::ErrorCode;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::domain::Access;

/// The caller, authenticated by `Authorization: Bearer <token>`.
pub struct Auth(pub Access);

/// The bearer token of a request: `Ok(None)` when there is no `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| ApiError::new(ErrorCode::InvalidHeader, "Authorization is not text"))?;
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(ApiError::new(ErrorCode::InvalidHeader, "Authorization must be 'Bearer <access token>'")),
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?;
        let access = state.svc.authorize(token).await?;
        Ok(Auth(access))
    }
}

/// Query parameters in order, decoded; a bare `flag` has an empty value.
pub struct RawQuery(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for RawQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or_default();
        Ok(RawQuery(form_urlencoded::parse(q.as_bytes()).into_owned().collect()))
    }
}

impl RawQuery {
    /// The value of a parameter (case-insensitive name), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A flag of spec §3.4: on when present, unless its value is `false` or `0`.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !(v.eq_ignore_ascii_case("false") || v == "0"))
    }

    /// A non-negative integer parameter; 400/28 when it is not one.
    pub fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::new(ErrorCode::InvalidQueryParameter, format!("{name}={v:?} is not a non-negative integer"))
            }),
        }
    }
}

/// Reads the next body chunk, giving up with 408/63 after `idle` without data.
pub async fn next_chunk(stream: &mut BodyDataStream, idle: std::time::Duration) -> Result<Option<Bytes>, ApiError> {
    match tokio::time::timeout(idle, stream.next()).await {
        Err(_) => Err(ApiError::new(ErrorCode::RequestTimeout, format!("no body data for {} s", idle.as_secs()))),
        Ok(None) => Ok(None),
        Ok(Some(Ok(b))) => Ok(Some(b)),
        Ok(Some(Err(e))) => Err(ApiError::new(ErrorCode::InvalidBody, format!("reading the body: {e}"))),
    }
}

/// The value of a cookie of the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The declared `Content-Length`, if any.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A JSON body, checked the spec's way: no body 21, no `Content-Type` 25, another type 68,
/// too large 66, stalled 63, unparsable 22, a missing field 23, a bad field 24.
pub async fn json_body<T: DeserializeOwned>(state: &AppState, headers: &HeaderMap, body: Body) -> Result<T, ApiError> {
    json_body_up_to(state, headers, body, state.svc.cfg.max_json_body).await
}

/// [`json_body`] with a size limit of its own (the emulator's fixtures are larger than any
/// API body).
pub async fn json_body_up_to<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    if content_length(headers).is_some_and(|n| n > limit as u64) {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge, format!("JSON bodies are limited to {limit} bytes")));
    }
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = next_chunk(&mut stream, state.svc.cfg.body_timeout).await? {
        buf.extend_from_slice(&chunk);
        if buf.len() > limit {
            return Err(ApiError::new(ErrorCode::PayloadTooLarge, format!("JSON bodies are limited to {limit} bytes")));
        }
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(ErrorCode::MissingBody, "a JSON body is required"));
    }
    match headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or_default()) {
        None => {
            return Err(ApiError::new(ErrorCode::MissingHeader, "Content-Type: application/json is required"));
        }
        Some(ct) if !is_json(ct) => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("Content-Type {ct:?} is not application/json"),
            ));
        }
        Some(_) => {}
    }
    parse_json(&buf)
}

/// Parses JSON into `T`, sorting failures into 22, 23 and 24.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidBody, format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::new(ErrorCode::InvalidBody, "the body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| {
        let msg = e.to_string();
        let code =
            if msg.starts_with("missing field") { ErrorCode::MissingBodyField } else { ErrorCode::InvalidBodyField };
        ApiError::new(code, msg)
    })
}

fn is_json(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json") || essence == "text/json"
}

/// Whether an `Accept` header admits a JSON answer.
pub fn accepts_json(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p.strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q == 0.0)
        });
        !refused && matches!(media.as_str(), "*/*" | "application/*" | "application/json" | "")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header() {
        assert!(accepts_json("application/json"));
        assert!(accepts_json("text/html, */*;q=0.1"));
        assert!(accepts_json("application/*"));
        assert!(!accepts_json("text/html"));
        assert!(!accepts_json("application/json;q=0, text/plain"));
    }

    #[test]
    fn json_error_codes() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            name: String,
        }
        assert_eq!(parse_json::<T>(b"{").err().unwrap().code, ErrorCode::InvalidBody);
        assert_eq!(parse_json::<T>(b"[]").err().unwrap().code, ErrorCode::InvalidBody);
        assert_eq!(parse_json::<T>(b"{}").err().unwrap().code, ErrorCode::MissingBodyField);
        assert_eq!(parse_json::<T>(b"{\"name\":3}").err().unwrap().code, ErrorCode::InvalidBodyField);
        assert!(parse_json::<T>(b"{\"name\":\"x\"}").is_ok());
    }
}
