//! `/ui/api/{rest}` → `/cloud/v1/{rest}` with the session's token: the page's one way to the
//! data. The request goes through the whole API stack (limits, errors in the spec's shapes)
//! with its body streamed both ways; its cookies are not passed on.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header, request::Parts};
use axum::response::{IntoResponse, Response};
use ocloud_wire::ErrorCode;
use tower::ServiceExt as _;

use super::UiState;
use super::session::{Session, with_cookies};
use crate::http::error::ApiError;

/// Sends a request to the API as the session: `parts.uri` is rewritten to `path_and_query`
/// (which starts with `/cloud/v1/`), cookies dropped, the session's token added.
async fn send(s: &UiState, session: &Session, mut parts: Parts, path_and_query: &str, body: Body) -> Response {
    parts.uri = match path_and_query.parse() {
        Ok(u) => u,
        Err(_) => return ApiError::new(ErrorCode::InvalidUrlParameter, "not a path").into_response(),
    };
    parts.headers.remove(header::COOKIE);
    // Only the client's connection goes along: the outer route's parameters and matched path
    // would be taken for the API route's own.
    let mut ext = axum::http::Extensions::new();
    // Not the `sendfile` stand-ins: see `http::sendfile`.
    if let Some(c) = parts.extensions.get::<crate::http::conn::Conn>() {
        ext.insert(crate::http::conn::Conn { splice: None, ..c.clone() });
    }
    parts.extensions = ext;
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", session.access)) {
        parts.headers.insert(header::AUTHORIZATION, v);
    }
    s.api.clone().oneshot(Request::from_parts(parts, body)).await.unwrap_or_else(|never| match never {})
}

/// A `GET` of the API as the session (the zip's listings and content).
pub async fn get(s: &UiState, session: &Session, path_and_query: &str) -> Response {
    let (parts, body) = Request::new(Body::empty()).into_parts();
    send(s, session, parts, path_and_query, body).await
}

/// The gateway.
pub async fn forward(State(s): State<UiState>, req: Request) -> Response {
    let svc = &s.app.svc;
    let Some(session) = Session::of(svc, req.headers()).await else {
        return ApiError::new(ErrorCode::MissingCredentials, "not signed in to the web interface").into_response();
    };
    if !session.allows(svc, req.method(), req.headers(), None) {
        return ApiError::new(ErrorCode::AccessDenied, "a change needs the page's origin and CSRF token")
            .into_response();
    }
    let (parts, body) = req.into_parts();
    let rest = parts.uri.path().strip_prefix("/ui/api/").unwrap_or_default();
    // `inline=1` is the page's own: content shown in its viewer rather than saved.
    let query: Vec<&str> = parts.uri.query().unwrap_or_default().split('&').filter(|p| !p.is_empty()).collect();
    let inline = query.contains(&"inline=1");
    let rest_query: Vec<&str> = query.into_iter().filter(|p| *p != "inline=1").collect();
    let target = match rest_query.is_empty() {
        false => format!("/cloud/v1/{rest}?{}", rest_query.join("&")),
        true => format!("/cloud/v1/{rest}"),
    };
    let mut res = send(&s, &session, parts, &target, body).await;
    if inline && res.status().is_success() {
        show_inline(&mut res);
    }
    with_cookies(res, &session.renewed)
}

/// Content to display, not to save: `inline`, and (but for PDF, which the browser's own viewer
/// shows) sandboxed by its CSP, so a user's HTML never runs script in the interface's origin,
/// even opened directly.
fn show_inline(res: &mut Response) {
    let h = res.headers_mut();
    if let Some(v) = h.get(header::CONTENT_DISPOSITION).and_then(|v| v.to_str().ok())
        && let Ok(inline) = HeaderValue::from_str(&v.replacen("attachment", "inline", 1))
    {
        h.insert(header::CONTENT_DISPOSITION, inline);
    }
    let pdf =
        h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("application/pdf"));
    if !pdf {
        h.insert(
            "content-security-policy",
            HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"),
        );
    }
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
}
