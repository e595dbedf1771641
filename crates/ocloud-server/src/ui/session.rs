//! Signing in and out of the web interface, and its session: cookies holding the access token
//! (with its expiry), the refresh token and a CSRF token. The cookies are `HttpOnly`,
//! `SameSite=Strict` (`Secure` over HTTPS): the page's script never sees a token, and no other
//! site's page can make the browser send them.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use serde::Deserialize;
use sha2::Digest as _;

use super::UiState;
use crate::domain::Service;
use crate::http::extract::cookie;

const ACCESS: &str = "ocloud_ui";
const REFRESH: &str = "ocloud_ui_r";
const CSRF: &str = "ocloud_ui_csrf";
const PENDING: &str = "ocloud_ui_pkce";
/// Refresh when the access token has less than this left (s).
const REFRESH_AHEAD: i64 = 120;
/// How long the session cookies are kept by the browser (the refresh token outlives them).
const COOKIE_AGE: i64 = 30 * 24 * 3600;

/// A signed-in page's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The access token.
    pub access: String,
    /// When it expires (unix s).
    pub expires_at: i64,
    /// The refresh token.
    pub refresh: Option<String>,
    /// The CSRF token the page sends back.
    pub csrf: String,
    /// `Set-Cookie` values to send with the answer (after a refresh).
    pub renewed: Vec<HeaderValue>,
}

fn set_cookie(svc: &Service, name: &str, value: &str, max_age: i64, same_site: &str) -> Option<HeaderValue> {
    let secure = if svc.public_url.starts_with("https://") { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"))
        .ok()
}

fn session_cookies(
    svc: &Service,
    access: &str,
    expires_at: i64,
    refresh: Option<&str>,
    csrf: &str,
) -> Vec<HeaderValue> {
    let mut out = vec![set_cookie(svc, ACCESS, &format!("{expires_at}.{access}"), COOKIE_AGE, "Strict")];
    if let Some(r) = refresh {
        out.push(set_cookie(svc, REFRESH, r, COOKIE_AGE, "Strict"));
    }
    out.push(set_cookie(svc, CSRF, csrf, COOKIE_AGE, "Strict"));
    out.into_iter().flatten().collect()
}

fn cleared(svc: &Service) -> Vec<HeaderValue> {
    [ACCESS, REFRESH, CSRF, PENDING].iter().filter_map(|n| set_cookie(svc, n, "", 0, "Strict")).collect()
}

/// Adds `Set-Cookie` values to a response.
pub fn with_cookies(mut res: Response, cookies: &[HeaderValue]) -> Response {
    for c in cookies {
        res.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    res
}

impl Session {
    /// The session of a request, refreshed if its access token is about to expire; `None`
    /// when there is none or it cannot be renewed (the page signs in again).
    pub async fn of(svc: &Service, headers: &HeaderMap) -> Option<Session> {
        let (expires_at, access) =
            cookie(headers, ACCESS)?.split_once('.').map(|(e, a)| (e.to_owned(), a.to_owned()))?;
        let mut s = Session {
            access,
            expires_at: expires_at.parse().ok()?,
            refresh: cookie(headers, REFRESH),
            csrf: cookie(headers, CSRF)?,
            renewed: Vec::new(),
        };
        if s.expires_at - svc.clock.now_s() < REFRESH_AHEAD {
            let still_valid = s.expires_at > svc.clock.now_s();
            // A refresh that fails (another request of the page refreshed first, with rotation
            // on) leaves a token that still works in use.
            let refreshed = match (svc.web_app().await, s.refresh.as_deref()) {
                (Ok(app), Some(r)) => svc.refresh(&app, r).await.ok(),
                _ => None,
            };
            let Some(grant) = refreshed else { return still_valid.then_some(s) };
            s.access = grant.access_token;
            s.expires_at = svc.clock.now_s() + grant.expires_in as i64;
            if grant.refresh_token.is_some() {
                s.refresh = grant.refresh_token;
            }
            s.renewed = session_cookies(svc, &s.access, s.expires_at, s.refresh.as_deref(), &s.csrf);
        }
        Some(s)
    }

    /// Whether a request that changes something comes from the interface's own page: its
    /// `Origin` is the service's, and it carries the CSRF token (`X-Csrf-Token`, or a `csrf`
    /// form field given as `form_token`).
    pub fn allows(&self, svc: &Service, method: &Method, headers: &HeaderMap, form_token: Option<&str>) -> bool {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return true;
        }
        let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).or(form_token);
        same_origin(svc, headers)
            && token.is_some_and(|t| bool::from(subtle::ConstantTimeEq::ct_eq(t.as_bytes(), self.csrf.as_bytes())))
    }
}

/// Whether a request comes from a page of this service (its `Origin` is the public URL's).
fn same_origin(svc: &Service, headers: &HeaderMap) -> bool {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) == Some(svc.public_url.trim_end_matches('/'))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `GET /ui/signin`: to the authorization server, with `state` and a PKCE challenge kept in
/// a short-lived cookie.
pub async fn signin(State(s): State<UiState>, headers: HeaderMap) -> Response {
    let svc = &s.app.svc;
    // Reached under another name (localhost for 127.0.0.1…): sign in under the public URL,
    // where the callback and the cookies will be.
    let public = svc.public_url.trim_end_matches('/');
    let authority = public.split_once("://").map(|(_, a)| a).unwrap_or(public);
    if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok())
        && host != authority
    {
        return Redirect::to(&format!("{public}/ui/signin")).into_response();
    }
    if let Err(e) = svc.web_app().await {
        tracing::error!(error = %crate::logsafe::Esc(&e), "web interface: its OAuth client");
        return (StatusCode::INTERNAL_SERVER_ERROR, super::pages::message("Internal error.", "Try again later."))
            .into_response();
    }
    let (mut st, mut verifier) = ([0u8; 16], [0u8; 32]);
    crate::random::fill(&mut st);
    crate::random::fill(&mut verifier);
    let (state, verifier) = (b64(&st), b64(&verifier));
    let challenge = b64(&sha2::Sha256::digest(verifier.as_bytes()));
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", crate::domain::oauth::WEB_CLIENT_ID)
        .append_pair("redirect_uri", &svc.web_redirect_uri())
        .append_pair("scope", crate::domain::oauth::WEB_SCOPES)
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let res = Redirect::to(&format!("/oauth/v2/authorize?{}", q.finish())).into_response();
    // Lax: the callback arrives as a redirect from the login form.
    with_cookies(
        res,
        &set_cookie(svc, PENDING, &format!("{state}.{verifier}"), 600, "Lax").into_iter().collect::<Vec<_>>(),
    )
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /ui/callback`: the code exchanged (by the service itself, with the PKCE verifier),
/// the session cookies set, and on to the page.
pub async fn callback(State(s): State<UiState>, headers: HeaderMap, Query(q): Query<Callback>) -> Response {
    let svc = &s.app.svc;
    let fail = |why: &str| {
        let res = (StatusCode::BAD_REQUEST, super::pages::message("Sign-in failed", why)).into_response();
        with_cookies(res, &cleared(svc))
    };
    if let Some(e) = q.error {
        return fail(&format!("{e}: {}", q.error_description.unwrap_or_default()));
    }
    let pending = cookie(&headers, PENDING).unwrap_or_default();
    let Some((state, verifier)) = pending.split_once('.') else { return fail("the sign-in took too long; try again") };
    if q.state.as_deref().is_none_or(|s| !crate::domain::oauth::same(s, state)) {
        return fail("the answer does not belong to this sign-in; try again");
    }
    let app = match svc.web_app().await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %crate::logsafe::Esc(&e), "web interface: its OAuth client");
            return fail("internal error");
        }
    };
    let grant = match svc
        .exchange_code(&app, q.code.as_deref().unwrap_or_default(), &svc.web_redirect_uri(), Some(verifier))
        .await
    {
        Ok(g) => g,
        Err(e) => return fail(&format!("the code was refused ({})", e.error)),
    };
    let mut csrf = [0u8; 24];
    crate::random::fill(&mut csrf);
    let expires_at = svc.clock.now_s() + grant.expires_in as i64;
    let mut cookies =
        session_cookies(svc, &grant.access_token, expires_at, grant.refresh_token.as_deref(), &b64(&csrf));
    cookies.extend(set_cookie(svc, PENDING, "", 0, "Lax"));
    with_cookies(Redirect::to("/").into_response(), &cookies)
}

#[derive(Deserialize)]
pub struct SignoutForm {
    csrf: Option<String>,
}

/// `POST /ui/signout` (a form with the CSRF token): the grant revoked, the cookies and the
/// login pages' session cleared.
pub async fn signout(State(s): State<UiState>, headers: HeaderMap, axum::Form(f): axum::Form<SignoutForm>) -> Response {
    let svc = &s.app.svc;
    // From this service's own pages only, signed in or not: no other site may sign one out.
    if !same_origin(svc, &headers) {
        return (
            StatusCode::FORBIDDEN,
            super::pages::message("Not signed out", "The request did not come from this page."),
        )
            .into_response();
    }
    if let Some(session) = Session::of(svc, &headers).await {
        if !session.allows(svc, &Method::POST, &headers, f.csrf.as_deref()) {
            return (
                StatusCode::FORBIDDEN,
                super::pages::message("Not signed out", "The request did not come from this page."),
            )
                .into_response();
        }
        if let (Ok(app), Some(r)) = (svc.web_app().await, session.refresh.as_deref())
            && let Err(e) = svc.revoke(&app, r).await
        {
            tracing::warn!(error = %crate::logsafe::Esc(&e), "web interface: revoking on sign-out");
        }
    }
    if let Some(sid) = cookie(&headers, "ocloud_session") {
        let _ = svc.close_web_session(&sid).await;
    }
    let mut cookies = cleared(svc);
    cookies.extend(set_cookie(svc, "ocloud_session", "", 0, "Lax"));
    // On to a page of its own, so a reload does not post again.
    with_cookies(Redirect::to("/ui/signedout").into_response(), &cookies)
}

/// `GET /ui/signedout`.
pub async fn signed_out() -> Response {
    super::pages::message("Signed out", "You are signed out.")
}
