//! The emulator's control plane, `/_ocloud/v1/…` (only with `--emulator`): the clock, tokens
//! and reset. Every call needs the admin token printed at start (`Authorization: Bearer …`);
//! without `--emulator` none of these routes exists (404 like any unknown path) and nothing
//! here is on the request path. Answers are JSON; refusals use the service's error bodies.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ocloud_wire::ErrorCode;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use super::AppState;
use super::error::ApiError;
use super::extract::{json_body, json_body_up_to};

/// Largest fixture `POST /_ocloud/v1/seed` takes (file contents come inline).
const MAX_FIXTURE: usize = 16 << 20;

type ApiResult<T> = Result<T, ApiError>;

/// The control-plane routes, guarded by the admin token.
pub fn routes(state: AppState) -> axum::Router<AppState> {
    axum::Router::new()
        .route("/_ocloud/v1/clock", get(clock).put(set_clock))
        .route("/_ocloud/v1/clock/advance", post(advance))
        .route("/_ocloud/v1/tokens", post(mint))
        .route("/_ocloud/v1/tokens/{token}/expire", post(expire))
        .route("/_ocloud/v1/tokens/{token}/revoke", post(revoke))
        .route("/_ocloud/v1/reset", post(reset))
        .route("/_ocloud/v1/seed", post(seed))
        .route("/_ocloud/v1/settings", get(settings).patch(patch_settings))
        .route("/_ocloud/v1/oauth/codes", get(codes))
        .route("/_ocloud/v1/faults", get(faults).put(set_faults).patch(add_faults).delete(clear_faults))
        .route("/_ocloud/v1/requests", get(requests).delete(clear_requests))
        .route("/_ocloud/v1/requests/count", post(count_requests))
        .route("/_ocloud/v1/requests/unmatched", get(unmatched))
        .route("/_ocloud/v1/requests/tail", get(tail))
        .route("/_ocloud/v1/requests/har", get(har))
        .route("/_ocloud/v1/snapshots", post(snapshot))
        .route("/_ocloud/v1/snapshots/{id}", axum::routing::delete(delete_snapshot))
        .route("/_ocloud/v1/snapshots/{id}/restore", post(restore))
        .route("/_ocloud/v1/snapshots/{id}/export", get(export))
        .route("/_ocloud/v1/snapshots/import", post(import))
        // Before the guard, so that it covers a wrong method too (405 only with the token).
        .method_not_allowed_fallback(super::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state, guard))
}

/// Query parameters, refused in the spec's error body (400/27… as the API's own are) rather
/// than axum's plain text.
pub struct Q<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(t)| Q(t))
            .map_err(|e| ApiError::new(ErrorCode::InvalidUrlParameter, e.body_text()))
    }
}

/// Only a request with the admin token gets through (compared in constant time).
async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let expected = s.svc.cfg.emulator.as_deref().unwrap_or_default();
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if expected.is_empty() || !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        let code = if given.is_empty() { ErrorCode::MissingCredentials } else { ErrorCode::InvalidCredentials };
        return ApiError::new(code, "the control plane needs the emulator's admin token").into_response();
    }
    next.run(req).await
}

fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn clock_state(s: &AppState) -> Value {
    let ms = s.svc.clock.now_ms();
    json!({"now": rfc3339(ms), "now_ms": ms, "frozen": s.svc.clock.is_frozen()})
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidBodyField, detail)
}

/// `GET /_ocloud/v1/clock`: the service's time.
async fn clock(State(s): State<AppState>) -> Json<Value> {
    Json(clock_state(&s))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClock {
    /// RFC 3339 time, or…
    now: Option<String>,
    /// …unix milliseconds.
    now_ms: Option<i64>,
    /// Stand still there (default), or run on from it.
    frozen: Option<bool>,
}

/// `PUT /_ocloud/v1/clock {"now": "2030-01-01T00:00:00Z", "frozen": true}`.
async fn set_clock(State(s): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let body: SetClock = json_body(&s, &headers, body).await?;
    let ms = match (body.now, body.now_ms) {
        (Some(t), _) => {
            let t = time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| bad(format!("now: not an RFC 3339 time: {e}")))?;
            (t.unix_timestamp_nanos() / 1_000_000) as i64
        }
        (None, Some(ms)) => ms,
        (None, None) => s.svc.clock.now_ms(),
    };
    s.svc.clock.set(ms, body.frozen.unwrap_or(true));
    tracing::info!(now = %rfc3339(ms), frozen = s.svc.clock.is_frozen(), "emulator: clock set");
    Ok(Json(clock_state(&s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: Option<f64>,
    ms: Option<i64>,
}

/// `POST /_ocloud/v1/clock/advance {"seconds": 3601}`: expires what would have expired.
async fn advance(State(s): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let body: Advance = json_body(&s, &headers, body).await?;
    let ms = match (body.seconds, body.ms) {
        (Some(sec), _) if sec.is_finite() && sec.abs() < 1e12 => (sec * 1000.0) as i64,
        (None, Some(ms)) => ms,
        _ => return Err(bad("seconds (a number) or ms")),
    };
    s.svc.clock.advance(ms);
    Ok(Json(clock_state(&s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mint {
    user: String,
    app: String,
    scope: Option<String>,
    /// Access-token lifetime, seconds.
    ttl: Option<u64>,
}

/// `POST /_ocloud/v1/tokens {"user": "alice", "app": "tests"}`: the token endpoint's answer
/// for that user and app (both created if missing).
async fn mint(State(s): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let m: Mint = json_body(&s, &headers, body).await?;
    let ttl = std::time::Duration::from_secs(m.ttl.unwrap_or(s.svc.settings.token_ttl().as_secs()));
    let scope = m.scope.as_deref().unwrap_or(crate::domain::auth::DEFAULT_TEST_SCOPES);
    let t = s.svc.mint_tokens(&m.user, &m.app, scope, ttl).await?;
    Ok(Json(json!({
        "access_token": t.access_token,
        "refresh_token": t.refresh_token,
        "expires_in": t.expires_in,
        "token_type": "Bearer",
        "scope": scope,
    })))
}

/// `POST /_ocloud/v1/tokens/{token}/expire`: expired from now on (401 on its next use).
async fn expire(State(s): State<AppState>, Path(token): Path<String>) -> ApiResult<StatusCode> {
    s.svc.expire_token(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /_ocloud/v1/tokens/{token}/revoke`.
async fn revoke(State(s): State<AppState>, Path(token): Path<String>) -> ApiResult<StatusCode> {
    s.svc.revoke_token_now(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Loads a fixture (`POST …/seed`, `--emulator-file`): its settings, then its fault rules
/// (replacing the current ones), then its accounts, tokens and files. Idempotent.
pub async fn load(s: &AppState, fixture: &crate::domain::seed::Fixture) -> ApiResult<crate::domain::seed::Seeded> {
    let rules: Option<Vec<super::faults::Rule>> = match &fixture.faults {
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| bad(format!("faults: {e}")))?),
        None => None,
    };
    if let Some(p) = &fixture.settings {
        apply_settings(s, p).map_err(|e| bad(format!("settings: {e}")))?;
    }
    if let (Some(rules), Some(f)) = (rules, &s.faults) {
        f.replace(rules).map_err(|e| bad(format!("faults: {e}")))?;
    }
    Ok(s.svc.seed(fixture).await?)
}

/// Applies settings (all or nothing); a `seed` reseeds the fault rules' generator too.
fn apply_settings(s: &AppState, p: &crate::domain::settings::Patch) -> Result<(), String> {
    s.svc.settings.apply(p)?;
    if let (Some(seed), Some(f)) = (p.seed, &s.faults) {
        f.reseed(seed);
    }
    Ok(())
}

/// `GET /_ocloud/v1/settings`: the settings in force.
async fn settings(State(s): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(s.svc.settings.current()).unwrap_or_default())
}

/// `PATCH /_ocloud/v1/settings {"quota": 1048576, "auto_login": "alice", …}`: applied at once,
/// all or nothing; answers the settings in force.
async fn patch_settings(State(s): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let p: crate::domain::settings::Patch = json_body(&s, &headers, body).await?;
    apply_settings(&s, &p).map_err(bad)?;
    tracing::info!("emulator: settings changed");
    Ok(settings(State(s)).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodesQuery {
    client_id: String,
}

/// `GET /_ocloud/v1/oauth/codes?client_id=…`: the last authorization code issued to that
/// client, for a headless test that cannot follow the redirect (404/1 if none yet).
async fn codes(State(s): State<AppState>, Q(q): Q<CodesQuery>) -> ApiResult<Json<Value>> {
    let (code, at) = s
        .svc
        .settings
        .last_code(&q.client_id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no code issued to this client yet"))?;
    Ok(Json(json!({"client_id": q.client_id, "code": code, "issued_at": rfc3339(at)})))
}

/// `POST /_ocloud/v1/seed`: loads a fixture (see `domain::seed`); idempotent.
async fn seed(State(s): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let fixture: crate::domain::seed::Fixture = json_body_up_to(&s, &headers, body, MAX_FIXTURE).await?;
    let done = load(&s, &fixture).await?;
    tracing::info!(users = done.users, apps = done.apps, tokens = done.tokens, files = done.files, "emulator: seeded");
    Ok(Json(serde_json::to_value(done).unwrap_or_default()))
}

/// `GET /_ocloud/v1/faults`: the rules in order, each with how often it matched and fired
/// and how many firings remain.
async fn faults(State(s): State<AppState>) -> Json<Value> {
    let list = s.faults.as_ref().map(|f| f.list()).unwrap_or_default();
    Json(json!({"rules": list}))
}

#[derive(Deserialize)]
struct Rules {
    rules: Vec<super::faults::Rule>,
}

async fn rules_body(s: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<Vec<super::faults::Rule>> {
    Ok(json_body::<Rules>(s, headers, body).await?.rules)
}

/// `PUT /_ocloud/v1/faults {"rules": [...]}`: replaces every rule.
async fn set_faults(State(s): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let rules = rules_body(&s, &headers, body).await?;
    if let Some(f) = &s.faults {
        f.replace(rules).map_err(bad)?;
    }
    Ok(faults(State(s)).await)
}

/// `PATCH /_ocloud/v1/faults {"rules": [...]}`: appends rules after the ones there are.
async fn add_faults(State(s): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let rules = rules_body(&s, &headers, body).await?;
    if let Some(f) = &s.faults {
        f.add(rules).map_err(bad)?;
    }
    Ok(faults(State(s)).await)
}

/// `DELETE /_ocloud/v1/faults`.
async fn clear_faults(State(s): State<AppState>) -> StatusCode {
    if let Some(f) = &s.faults {
        f.clear();
    }
    StatusCode::NO_CONTENT
}

/// `GET /_ocloud/v1/requests?op=&method=&path=&status=&user=&since=`: the journal, oldest first.
async fn requests(State(s): State<AppState>, Q(m): Q<super::journal::Matcher>) -> Json<Value> {
    let list: Vec<Value> = s.journal.as_ref().map(|j| j.list(&m)).unwrap_or_default().iter().map(entry_json).collect();
    Json(json!({"requests": list}))
}

fn entry_json(e: &super::journal::Entry) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    v["time"] = json!(rfc3339(e.time_ms));
    v
}

/// `GET /_ocloud/v1/requests/unmatched`: requests no route took (404 "no such endpoint"),
/// each with the nearest known route, so a typo in a client's URL shows at once.
async fn unmatched(State(s): State<AppState>) -> Json<Value> {
    let Some(j) = &s.journal else { return Json(json!({"requests": []})) };
    let list: Vec<Value> = j
        .list(&super::journal::Matcher::default())
        .iter()
        .filter(|e| e.operation.is_none())
        .map(|e| {
            let mut v = entry_json(e);
            v["nearest"] = json!(j.nearest(e.method.as_str(), &e.path));
            v
        })
        .collect();
    Json(json!({"requests": list}))
}

/// `GET /_ocloud/v1/requests/tail?op=…`: the requests to come, as server-sent events (one
/// `request` event each, the entry as JSON), filtered like `GET …/requests`.
async fn tail(
    State(s): State<AppState>,
    Q(m): Q<super::journal::Matcher>,
) -> ApiResult<
    axum::response::sse::Sse<
        impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
> {
    use tokio::sync::broadcast::error::RecvError;
    let rx = s.journal.as_ref().ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no journal"))?.subscribe();
    let phase = s.phase.clone();
    let events = futures_util::stream::unfold((rx, m, phase), |(mut rx, m, phase)| async move {
        loop {
            // Checked every second, so a shutdown does not wait on an open tail.
            let next = match tokio::time::timeout(std::time::Duration::from_secs(1), rx.recv()).await {
                Ok(n) => n,
                Err(_) if phase.load(std::sync::atomic::Ordering::Acquire) == super::phase::READY => continue,
                Err(_) => return None,
            };
            match next {
                Ok(e) if m.matches(&e) => {
                    let event = axum::response::sse::Event::default().event("request").data(entry_json(&e).to_string());
                    return Some((Ok(event), (rx, m, phase)));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(axum::response::sse::Sse::new(events).keep_alive(axum::response::sse::KeepAlive::default()))
}

/// `GET /_ocloud/v1/requests/har?op=…`: the journal as an HTTP Archive (HAR 1.2), for browser
/// tools and proxies. Headers and bodies are not kept, so they are empty; sizes, timings and
/// the fault that fired (as the entry's comment) are there.
async fn har(State(s): State<AppState>, Q(m): Q<super::journal::Matcher>) -> Response {
    let base = s.svc.public_url.trim_end_matches('/').to_owned();
    let entries: Vec<Value> = s
        .journal
        .as_ref()
        .map(|j| j.list(&m))
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let url = match &e.query {
                Some(q) => format!("{base}{}?{q}", e.path),
                None => format!("{base}{}", e.path),
            };
            let query: Vec<Value> = form_urlencoded::parse(e.query.as_deref().unwrap_or_default().as_bytes())
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            let status = StatusCode::from_u16(e.status).ok();
            json!({
                "startedDateTime": rfc3339(e.time_ms),
                "time": e.duration_ms,
                "request": {
                    "method": e.method.as_str(), "url": url, "httpVersion": "HTTP/1.1", "cookies": [], "headers": [],
                    "queryString": query, "headersSize": -1, "bodySize": e.bytes_in.map_or(-1, |b| b as i64),
                },
                "response": {
                    "status": e.status,
                    "statusText": status.and_then(|s| s.canonical_reason()).unwrap_or_default(),
                    "httpVersion": "HTTP/1.1", "cookies": [], "headers": [], "redirectURL": "",
                    "content": {"size": e.bytes_out.map_or(-1, |b| b as i64), "mimeType": ""},
                    "headersSize": -1, "bodySize": e.bytes_out.map_or(-1, |b| b as i64),
                },
                "cache": {},
                "timings": {"send": 0, "wait": e.duration_ms, "receive": 0},
                "comment": e.fault.as_ref().map(|f| format!("fault {f}")).unwrap_or_default(),
            })
        })
        .collect();
    let doc = json!({"log": {
        "version": "1.2",
        "creator": {"name": "ocloud", "version": env!("CARGO_PKG_VERSION")},
        "entries": entries,
    }});
    ([(axum::http::header::CONTENT_TYPE, "application/json")], doc.to_string()).into_response()
}

/// `DELETE /_ocloud/v1/requests`.
async fn clear_requests(State(s): State<AppState>) -> StatusCode {
    if let Some(j) = &s.journal {
        j.clear();
    }
    StatusCode::NO_CONTENT
}

/// `POST /_ocloud/v1/requests/count` with a matcher as JSON (`{}`: every request).
async fn count_requests(State(s): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Json<Value>> {
    let m: super::journal::Matcher = json_body(&s, &headers, body).await?;
    let n = s.journal.as_ref().map(|j| j.list(&m).len()).unwrap_or(0);
    Ok(Json(json!({"count": n})))
}

/// `POST /_ocloud/v1/snapshots` → `{"id"}`: the whole installation's metadata, now.
async fn snapshot(State(s): State<AppState>) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = s.svc.take_snapshot().await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

/// `POST /_ocloud/v1/snapshots/{id}/restore`.
async fn restore(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.svc.restore_snapshot(&id).await?;
    tracing::info!(snapshot = %crate::logsafe::Esc(&id), "emulator: restored");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /_ocloud/v1/snapshots/{id}/export`: the snapshot as a tar archive, streamed.
async fn export(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let body = super::archive::export((*s.svc).clone(), &id)?;
    let name = format!("attachment; filename=\"ocloud-{id}.tar\"");
    let mut res = Response::new(body);
    res.headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/x-tar"));
    if let Ok(v) = axum::http::HeaderValue::from_str(&name) {
        res.headers_mut().insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// `POST /_ocloud/v1/snapshots/import` with an archive of `…/export` as the body → 201
/// `{"id"}`: a new snapshot, to restore when wanted.
async fn import(State(s): State<AppState>, body: Body) -> ApiResult<(StatusCode, Json<Value>)> {
    match super::archive::import(&s.svc, body).await {
        Ok(id) => Ok((StatusCode::CREATED, Json(json!({"id": id})))),
        Err(super::archive::ImportError::Bad(why)) => Err(bad(why)),
        Err(super::archive::ImportError::Store(e)) => Err(crate::domain::Error::from(e).into()),
    }
}

/// `DELETE /_ocloud/v1/snapshots/{id}`.
async fn delete_snapshot(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.svc.delete_snapshot(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetQuery {
    keep: Option<String>,
}

/// `POST /_ocloud/v1/reset[?keep=accounts]`.
async fn reset(State(s): State<AppState>, Q(q): Q<ResetQuery>) -> ApiResult<Json<Value>> {
    let keep_accounts = match q.keep.as_deref() {
        None => false,
        Some("accounts") => true,
        Some(other) => return Err(bad(format!("keep={other:?}: only keep=accounts"))),
    };
    let blobs = s.svc.reset(keep_accounts).await?;
    tracing::info!(keep_accounts, blobs, "emulator: reset");
    Ok(Json(json!({"kept": if keep_accounts { "accounts" } else { "nothing" }, "contents_deleted": blobs})))
}
