//! The emulator's one layer on the request path (`--emulator` only; without it the layer is
//! not installed): every request but the control plane's is checked against the fault rules
//! (`super::faults`) and recorded in the journal (`super::journal`). With no rule the check is
//! one atomic load; the journal entry is the rest of the cost (bench/emulator.sh).

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use ocloud_wire::ErrorCode;
use tower::{Layer, Service, ServiceExt as _};

use super::AppState;
use super::conn::Conn;
use super::error::ApiError;
use super::faults::{Action, Faults, RequestInfo};
use super::journal::{Entry, FaultFired, Journal};
use super::tamper::{self, Side};

/// The layer, put on every route (so the route's template is known). A tower service of its
/// own rather than `middleware::from_fn`: that one clones the boxed route per request, and
/// this layer must cost next to nothing.
#[derive(Clone)]
pub struct EmulateLayer(pub AppState);

impl<S> Layer<S> for EmulateLayer {
    type Service = Emulate<S>;

    fn layer(&self, inner: S) -> Emulate<S> {
        Emulate { inner, state: self.0.clone() }
    }
}

/// See [`EmulateLayer`].
#[derive(Clone)]
pub struct Emulate<S> {
    inner: S,
    state: AppState,
}

/// What the journal notes of a request before it is served.
struct Arrival {
    started: std::time::Instant,
    time_ms: i64,
    operation: Option<std::sync::Arc<str>>,
    method: axum::http::Method,
    path: String,
    query: Option<String>,
    bytes_in: Option<u64>,
}

impl Arrival {
    fn of(req: &Request, s: &AppState, journal: &Journal) -> Arrival {
        let operation =
            req.extensions().get::<MatchedPath>().and_then(|m| journal.operation(req.method(), m.as_str())).cloned();
        Arrival {
            started: std::time::Instant::now(),
            time_ms: s.svc.clock.now_ms(),
            operation,
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(super::journal::redact),
            bytes_in: super::journal::length(req.headers()),
        }
    }

    /// The journal entry, once answered.
    fn record(self, journal: &Journal, res: &Response, who: Option<(String, String)>) {
        let (user, app) = who.map_or((None, None), |(u, a)| (Some(u), Some(a)));
        journal.push(Entry {
            id: 0,
            time_ms: self.time_ms,
            operation: self.operation,
            method: self.method,
            path: self.path,
            query: self.query,
            status: res.status().as_u16(),
            user,
            app,
            bytes_in: self.bytes_in,
            bytes_out: super::journal::length(res.headers()).or_else(|| http_body::Body::size_hint(res.body()).exact()),
            duration_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            fault: res.extensions().get::<FaultFired>().map(|f| f.0.clone()),
        });
    }
}

impl<S> Service<Request> for Emulate<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let (Some(journal), Some(faults)) = (self.state.journal.clone(), self.state.faults.clone()) else {
            return Box::pin(self.inner.call(req));
        };
        if req.uri().path().starts_with("/_ocloud/") {
            return Box::pin(self.inner.call(req));
        }
        let arrival = Arrival::of(&req, &self.state, &journal);
        if !faults.any() {
            // The common case: served by the route already made ready, no clone of it.
            let served = self.inner.call(req);
            return Box::pin(async move {
                let (res, who) = crate::domain::caller::scope(served).await;
                let res = res.unwrap_or_else(|never| match never {});
                arrival.record(&journal, &res, who);
                Ok(res)
            });
        }
        let (inner, s) = (self.inner.clone(), self.state.clone());
        Box::pin(async move {
            let op = arrival.operation.clone();
            let served = async {
                match decide(&s, &faults, Probe::of(&req), op.as_deref()).await {
                    None => inner.oneshot(req).await.unwrap_or_else(|never| match never {}),
                    Some((name, action)) => act(&faults, name, action, req, inner).await,
                }
            };
            let (res, who) = crate::domain::caller::scope(served).await;
            arrival.record(&journal, &res, who);
            Ok(res)
        })
    }
}

/// What the rules can match of a request, taken from it before anything is awaited (a
/// request is not `Sync`, so nothing borrowed from it may be held across an await).
struct Probe {
    method: axum::http::Method,
    path: String,
    token: Option<String>,
    action: Option<String>,
    test_id: Option<String>,
}

impl Probe {
    fn of(req: &Request) -> Probe {
        let uri = req.uri();
        let param =
            |name: &str| uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')));
        let token = super::extract::bearer(req.headers()).ok().flatten().or_else(|| param("token"));
        Probe {
            method: req.method().clone(),
            path: uri.path().to_owned(),
            token: token.map(str::to_owned),
            action: param("action").filter(|_| uri.path().starts_with("/personal/")).map(str::to_owned),
            test_id: req.headers().get("x-ocloud-test-id").and_then(|v| v.to_str().ok()).map(str::to_owned),
        }
    }
}

/// The first rule that matches the request and fires.
async fn decide(s: &AppState, faults: &Faults, p: Probe, op: Option<&str>) -> Option<(String, Action)> {
    // Only rules on a user or app pay for resolving the token before the handler does.
    let caller = match faults.needs_caller() {
        true => s.svc.authenticate(p.token.as_deref()).await.ok().map(|a| (a.user.name, a.app.name.clone())),
        false => None,
    };
    faults.fire(&RequestInfo {
        op,
        action: p.action.as_deref(),
        method: &p.method,
        path: &p.path,
        caller: caller.as_ref().map(|(u, a)| (u.as_str(), a.as_str())),
        token: p.token.as_deref(),
        test_id: p.test_id.as_deref(),
    })
}

/// Serves `req` as the fired rule `name` says.
async fn act<S>(faults: &Faults, name: String, action: Action, req: Request, inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let run = |req: Request| async move { inner.oneshot(req).await.unwrap_or_else(|never| match never {}) };
    tracing::info!(rule = %crate::logsafe::Esc(&name), "emulator: fault fired");
    let marked = FaultFired(name.clone());
    let fd = req.extensions().get::<Conn>().and_then(|c| c.fd);
    let mut res = if let Some((t, side)) = action.tamper() {
        match side {
            Side::Request => run(req.map(|b| tamper::wrap(b, t, side, fd))).await,
            Side::Response => {
                let mut res = run(req).await;
                // The length stays declared, so a cut body falls short of it (hyper would
                // send a body of unknown length chunked, and a cut would look complete).
                if let Some(n) = http_body::Body::size_hint(res.body()).exact()
                    && !res.headers().contains_key(axum::http::header::CONTENT_LENGTH)
                {
                    res.headers_mut().insert(axum::http::header::CONTENT_LENGTH, n.into());
                }
                res.map(|b| tamper::wrap(b, t, side, fd))
            }
        }
    } else if let Action::Latency { ms, jitter_ms } = action {
        let extra = faults.jitter(jitter_ms);
        tokio::time::sleep(std::time::Duration::from_millis(ms + extra)).await;
        run(req).await
    } else {
        let err = match action {
            Action::Error(code) => {
                let code = ErrorCode::from_code(code).expect("checked when added");
                let mut e = ApiError::new(code, format!("fault {name}"));
                if matches!(code, ErrorCode::TooManyRequests | ErrorCode::Unavailable) {
                    e.retry_after = Some(1);
                }
                e
            }
            Action::Token(t) if t == "expired" => ApiError::new(ErrorCode::ExpiredCredentials, format!("fault {name}")),
            Action::Token(_) => ApiError::new(ErrorCode::InvalidCredentials, format!("fault {name}")),
            _ => ApiError::from(crate::domain::Error::QuotaExceeded { needed: 1, free: 0 }),
        };
        // What the client is still sending is read and dropped, so it sees this answer.
        tokio::spawn(super::linger::drain(req.into_body()));
        err.into_response()
    };
    res.extensions_mut().insert(marked);
    res
}
