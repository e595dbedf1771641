//! `/oauth/v2`: authorize (with the login and consent pages), token, revoke, logout
//! (spec §2, RFC 6749, RFC 7636, RFC 7009). OAuth errors are `{error, error_description}`.

use axum::Form;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use bytes::BytesMut;
use ocloud_wire::error::OAuthError;
use ocloud_wire::model::TokenResponse;

use super::AppState;
use super::extract::{RawQuery, cookie, next_chunk};
use super::web;
use crate::domain::oauth::{AuthorizeError, AuthorizeRequest, OAuthFailure, same};
use crate::store::{App, User};

const SESSION_COOKIE: &str = "ocloud_session";
const LOGIN_CSRF_COOKIE: &str = "ocloud_login_csrf";

fn set_cookie(s: &AppState, res: &mut Response, name: &str, value: &str, max_age: Option<i64>) {
    let secure = if s.svc.public_url.starts_with("https://") { "; Secure" } else { "" };
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{age}");
    if let Ok(v) = HeaderValue::from_str(&v) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, Html(body)).into_response();
    // The pages hold credentials and one-time tokens: never cache, never frame. (No CSP
    // form-action: browsers apply it to the redirect to the app, which must go through.)
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    res
}

/// `redirect_uri` with parameters appended.
fn redirect_to(uri: &str, params: &[(&str, &str)]) -> Response {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{uri}{sep}{}", ser.finish())).into_response()
}

fn redirect_error(req: &AuthorizeRequest, error: &str, description: &str) -> Response {
    redirect_to(&req.redirect_uri, &[("error", error), ("error_description", description), ("state", &req.state)])
}

async fn redirect_code(s: &AppState, user: &User, app: &App, req: &AuthorizeRequest) -> Response {
    match s.svc.issue_code(user, app, req).await {
        Ok(code) => redirect_to(&req.redirect_uri, &[("code", &code), ("state", &req.state)]),
        Err(e) => {
            tracing::error!(error = %crate::logsafe::Esc(&e), "issuing a code");
            redirect_error(req, "server_error", "internal error")
        }
    }
}

async fn login_page(s: &AppState, app: &App, req: &AuthorizeRequest, error: Option<&str>, username: &str) -> Response {
    let csrf = match s.svc.login_csrf().await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %crate::logsafe::Esc(&e), "signing a login form");
            return html(StatusCode::INTERNAL_SERVER_ERROR, web::error("Internal error."));
        }
    };
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    let mut res = html(status, web::login(&app.name, req, &csrf, error, username));
    set_cookie(s, &mut res, LOGIN_CSRF_COOKIE, &csrf, None);
    res
}

async fn session_of(s: &AppState, headers: &HeaderMap) -> Option<(User, crate::store::WebSession)> {
    let sid = cookie(headers, SESSION_COOKIE)?;
    s.svc.web_session(&sid).await.ok().flatten()
}

async fn checked(s: &AppState, req: &AuthorizeRequest) -> Result<App, Response> {
    s.svc.check_authorize(req).await.map_err(|e| match e {
        AuthorizeError::Page(m) => html(StatusCode::BAD_REQUEST, web::error(&m)),
        AuthorizeError::Redirect(error, description) => redirect_error(req, error, &description),
    })
}

/// After the user is known: a code at once if consent covers the request, else the consent
/// page.
async fn after_login(
    s: &AppState,
    user: &User,
    csrf: &str,
    app: &App,
    req: &AuthorizeRequest,
    force_consent: bool,
) -> Response {
    if crate::domain::Service::is_first_party(app) {
        // The service's own web interface: consent is implied.
        return redirect_code(s, user, app, req).await;
    }
    match s.svc.has_consent(user, app, req).await {
        Ok(true) if !force_consent => redirect_code(s, user, app, req).await,
        Ok(_) => html(StatusCode::OK, web::consent(&app.name, &user.name, req, csrf)),
        Err(e) => {
            tracing::error!(error = %crate::logsafe::Esc(&e), "reading consent");
            html(StatusCode::INTERNAL_SERVER_ERROR, web::error("Internal error."))
        }
    }
}

/// The emulator's auto-login: a session opened for that user, as if they had signed in
/// (its cookie goes with the answer).
async fn auto_login(s: &AppState) -> Option<(User, crate::store::WebSession, String)> {
    let name = s.svc.settings.auto_login()?;
    let user = match s.svc.meta.user_by_name(&name).await {
        Ok(Some((user, _))) if !user.disabled => user,
        _ => {
            tracing::warn!(user = %crate::logsafe::Esc(&name), "emulator auto-login: no such user");
            return None;
        }
    };
    let (sid, csrf) = s.svc.open_web_session(&user).await.ok()?;
    let session = crate::store::WebSession { user_id: user.id, csrf, expires_at: 0 };
    Some((user, session, sid))
}

/// `GET /oauth/v2/authorize` (spec §2.1).
pub async fn authorize(State(s): State<AppState>, headers: HeaderMap, q: RawQuery) -> Response {
    let req = AuthorizeRequest::from_pairs(q.0.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let app = match checked(&s, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let mut session = session_of(&s, &headers).await;
    let mut opened = None;
    if session.is_none()
        && let Some((user, ws, sid)) = auto_login(&s).await
    {
        session = Some((user, ws));
        opened = Some(sid);
    }
    let mut res = authorize_as(&s, session, &app, &req).await;
    if let Some(sid) = opened {
        set_cookie(&s, &mut res, SESSION_COOKIE, &sid, None);
    }
    res
}

/// The answer to an authorize request once the session (if any) is known.
async fn authorize_as(
    s: &AppState,
    session: Option<(User, crate::store::WebSession)>,
    app: &App,
    req: &AuthorizeRequest,
) -> Response {
    // Emulator auto-consent: allowed at once, whatever the prompt asks.
    if let Some((user, _)) = &session
        && s.svc.settings.auto_consent()
    {
        if let Err(e) = s.svc.grant_consent(user, app, req).await {
            tracing::error!(error = %crate::logsafe::Esc(&e), "recording consent");
            return redirect_error(req, "server_error", "internal error");
        }
        return redirect_code(s, user, app, req).await;
    }
    if req.prompts("none") {
        let Some((user, _)) = session else {
            return redirect_error(req, "login_required", "the user is not signed in");
        };
        return match s.svc.has_consent(&user, app, req).await {
            Ok(true) => redirect_code(s, &user, app, req).await,
            _ => redirect_error(req, "consent_required", "the user has not allowed this application"),
        };
    }
    match session {
        Some((user, session)) if !req.prompts("login") => {
            after_login(s, &user, &session.csrf, app, req, req.prompts("consent")).await
        }
        _ => login_page(s, app, req, None, "").await,
    }
}

/// `POST /oauth/v2/login`: the sign-in form.
pub async fn login(
    State(s): State<AppState>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or_default();
    let req = AuthorizeRequest::from_pairs(form.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let app = match checked(&s, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    // The form's token must be the cookie's (double submit) and one this service signed: a
    // planted cookie cannot be made up.
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    let signed = s.svc.login_csrf_valid(get("csrf")).await.unwrap_or(false);
    if expected.is_empty() || !same(&expected, get("csrf")) || !signed {
        return login_page(&s, &app, &req, Some("This form has expired. Please sign in again."), get("username")).await;
    }
    // The account key is bounded: a name is at most 255 bytes, longer input is no name.
    let account: String = get("username").chars().take(256).collect();
    let keys = [
        format!("user:{account}"),
        format!("addr:{}", super::conn::peer(&ext).map(|p| p.ip().to_string()).unwrap_or_default()),
    ];
    // The attempt is counted before the password is checked (see `login_begin`).
    let begun = match s.svc.login_begin(&keys).await {
        Ok(b) => b,
        // Fails closed: no attempt goes uncounted.
        Err(e) => {
            tracing::error!(error = %crate::logsafe::Esc(&e), "login throttle");
            return html(StatusCode::SERVICE_UNAVAILABLE, web::error("Temporarily unavailable. Please try again."));
        }
    };
    if let Err(wait) = begun {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let why = format!("Too many failed sign-ins. Please wait {secs} s and try again.");
        let mut res = login_page(&s, &app, &req, Some(&why), get("username")).await;
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return res;
    }
    let user = match s.svc.login(get("username"), get("password")).await {
        Ok(Some(u)) => {
            if let Err(e) = s.svc.login_succeeded(&keys).await {
                tracing::warn!(error = %crate::logsafe::Esc(&e), "could not clear the sign-in failures");
            }
            u
        }
        Ok(None) => {
            return login_page(&s, &app, &req, Some("Wrong user name or password."), get("username")).await;
        }
        Err(e) => {
            tracing::error!(error = %crate::logsafe::Esc(&e), "login");
            return html(StatusCode::INTERNAL_SERVER_ERROR, web::error("Internal error."));
        }
    };
    let (sid, csrf) = match s.svc.open_web_session(&user).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %crate::logsafe::Esc(&e), "opening a session");
            return html(StatusCode::INTERNAL_SERVER_ERROR, web::error("Internal error."));
        }
    };
    tracing::info!(user = %crate::logsafe::Esc(&user.name), app = %crate::logsafe::Esc(&app.name), "signed in");
    let mut res = after_login(&s, &user, &csrf, &app, &req, req.prompts("consent")).await;
    set_cookie(&s, &mut res, SESSION_COOKIE, &sid, None);
    set_cookie(&s, &mut res, LOGIN_CSRF_COOKIE, "", Some(0));
    res
}

/// `POST /oauth/v2/consent`: Allow or Deny.
pub async fn consent(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or_default();
    let req = AuthorizeRequest::from_pairs(form.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let app = match checked(&s, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let Some((user, session)) = session_of(&s, &headers).await else {
        return login_page(&s, &app, &req, Some("Your session has ended. Please sign in again."), "").await;
    };
    if !same(&session.csrf, get("csrf")) {
        return html(
            StatusCode::FORBIDDEN,
            web::error("This form has expired. Please start again from the application."),
        );
    }
    if get("decision") != "allow" {
        return redirect_error(&req, "access_denied", "consent denied");
    }
    if let Err(e) = s.svc.grant_consent(&user, &app, &req).await {
        tracing::error!(error = %crate::logsafe::Esc(&e), "recording consent");
        return redirect_error(&req, "server_error", "internal error");
    }
    redirect_code(&s, &user, &app, &req).await
}

/// `GET|POST /oauth/v2/logout`: ends the browser session.
pub async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(sid) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = s.svc.close_web_session(&sid).await
    {
        // The cookie is cleared below all the same; the session row expires on its own.
        tracing::warn!(error = %crate::logsafe::Esc(&e), "ending a browser session");
    }
    let mut res = html(StatusCode::OK, web::logged_out());
    set_cookie(&s, &mut res, SESSION_COOKIE, "", Some(0));
    res
}

fn oauth_error(f: OAuthFailure) -> Response {
    let status = StatusCode::from_u16(f.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut res =
        (status, axum::Json(OAuthError { error: f.error.to_owned(), error_description: Some(f.description) }))
            .into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"ocloud\""));
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn invalid_request(why: &str) -> OAuthFailure {
    OAuthFailure { error: "invalid_request", description: why.to_owned() }
}

/// Reads an `application/x-www-form-urlencoded` body (at most 64 KiB).
async fn form_body(s: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<(String, String)>, OAuthFailure> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return Err(invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) =
        next_chunk(&mut stream, s.svc.cfg.body_timeout).await.map_err(|e| invalid_request(&e.detail))?
    {
        buf.extend_from_slice(&chunk);
        if buf.len() > 64 * 1024 {
            return Err(invalid_request("body too large"));
        }
    }
    Ok(form_urlencoded::parse(&buf).into_owned().collect())
}

/// Client credentials from HTTP Basic or from the body (client_secret_post).
async fn client(s: &AppState, headers: &HeaderMap, form: &[(String, String)]) -> Result<App, OAuthFailure> {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic")).map(|(_, b)| b.trim().to_owned())
    });
    let (id, secret) = match basic {
        Some(b64) => {
            let raw =
                base64::engine::general_purpose::STANDARD.decode(b64).ok().and_then(|b| String::from_utf8(b).ok());
            let Some((id, secret)) = raw.as_deref().and_then(|r| r.split_once(':')) else {
                return Err(OAuthFailure {
                    error: "invalid_client",
                    description: "malformed Basic credentials".into(),
                });
            };
            // RFC 6749 §2.3.1: both halves are form-urlencoded.
            let dec = |x: &str| {
                form_urlencoded::parse(format!("v={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (dec(id), dec(secret))
        }
        None => match (get("client_id"), get("client_secret")) {
            (Some(i), Some(sec)) => (i, sec),
            _ => {
                return Err(OAuthFailure {
                    error: "invalid_client",
                    description: "client authentication is required".into(),
                });
            }
        },
    };
    s.svc.authenticate_client(&id, &secret).await
}

/// `POST /oauth/v2/token` (spec §2.2): authorization_code and refresh_token grants.
pub async fn token(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let form = form_body(&s, &headers, body).await?;
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let app = client(&s, &headers, &form).await?;
        let grant = match get("grant_type") {
            Some("authorization_code") => {
                let code = get("code").ok_or_else(|| invalid_request("code is required"))?;
                let redirect_uri = get("redirect_uri").ok_or_else(|| invalid_request("redirect_uri is required"))?;
                s.svc.exchange_code(&app, code, redirect_uri, get("code_verifier")).await?
            }
            // redirect_uri and scope are sent by some clients on refresh: accepted, ignored.
            Some("refresh_token") => {
                let rt = get("refresh_token").ok_or_else(|| invalid_request("refresh_token is required"))?;
                s.svc.refresh(&app, rt).await?
            }
            Some(other) => {
                return Err(OAuthFailure {
                    error: "unsupported_grant_type",
                    description: format!("grant_type {other:?} is not supported"),
                });
            }
            None => return Err(invalid_request("grant_type is required")),
        };
        Ok::<_, OAuthFailure>(grant)
    }
    .await;
    match result {
        Ok(g) => {
            let body = TokenResponse {
                token_type: "Bearer".into(),
                access_token: g.access_token,
                expires_in: g.expires_in,
                refresh_token: g.refresh_token,
                scope: None,
            };
            let mut res = axum::Json(body).into_response();
            res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            res
        }
        Err(f) => oauth_error(f),
    }
}

/// `POST /oauth/v2/revoke` (RFC 7009): 200 whether or not the token was known.
pub async fn revoke(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let form = form_body(&s, &headers, body).await?;
        let app = client(&s, &headers, &form).await?;
        let token = form
            .iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| invalid_request("token is required"))?;
        s.svc.revoke(&app, &token).await.map_err(OAuthFailure::internal)
    }
    .await;
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(f) => oauth_error(f),
    }
}
