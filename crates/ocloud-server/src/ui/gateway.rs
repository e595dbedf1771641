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
    // Only the client's address goes along: the outer route's parameters and matched path
    // would be taken for the API route's own.
    let mut ext = axum::http::Extensions::new();
    if let Some(c) = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() {
        ext.insert(*c);
    }
    if let Some(fd) = parts.extensions.get::<crate::http::tamper::ConnFd>() {
        ext.insert(*fd);
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
    let target = match parts.uri.query() {
        Some(q) => format!("/cloud/v1/{rest}?{q}"),
        None => format!("/cloud/v1/{rest}"),
    };
    let res = send(&s, &session, parts, &target, body).await;
    with_cookies(res, &session.renewed)
}
