//! The emulator's one layer on the request path (`--emulator` only; without it the layer is
//! not installed): every request but the control plane's is checked against the fault rules
//! (`super::faults`) and recorded in the journal (`super::journal`). With no rule the check is
//! one atomic load; the journal entry is the rest of the cost (bench/emulator.sh).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ocloud_wire::ErrorCode;

use super::AppState;
use super::error::ApiError;
use super::faults::{Action, Faults, RequestInfo};
use super::journal::{Entry, FaultFired};
use super::tamper::{self, ConnFd, Side};

/// The middleware.
pub async fn layer(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let (Some(journal), Some(faults)) = (s.journal.clone(), s.faults.clone()) else { return next.run(req).await };
    if req.uri().path().starts_with("/_ocloud/") {
        return next.run(req).await;
    }
    let started = std::time::Instant::now();
    let time_ms = s.svc.clock.now_ms();
    let operation =
        req.extensions().get::<MatchedPath>().and_then(|m| journal.operation(req.method(), m.as_str())).cloned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(super::journal::redact);
    let bytes_in = super::journal::length(req.headers());
    let served = async {
        let fired = match faults.any() {
            true => decide(&s, &faults, Probe::of(&req), operation.as_deref()).await,
            false => None,
        };
        match fired {
            None => next.run(req).await,
            Some((name, action)) => act(&faults, name, action, req, next).await,
        }
    };
    let (res, who) = crate::domain::caller::scope(served).await;
    journal.push(Entry {
        id: 0,
        time_ms,
        operation,
        method: method.to_string(),
        path,
        query,
        status: res.status().as_u16(),
        user: who.as_ref().map(|w| w.0.clone()),
        app: who.map(|w| w.1),
        bytes_in,
        bytes_out: super::journal::length(res.headers()),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        fault: res.extensions().get::<FaultFired>().map(|f| f.0.clone()),
    });
    res
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
        true => s.svc.authenticate(p.token.as_deref()).await.ok().map(|a| (a.user.name, a.app.name)),
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
async fn act(faults: &Faults, name: String, action: Action, req: Request, next: Next) -> Response {
    tracing::info!(rule = %crate::logsafe::Esc(&name), "emulator: fault fired");
    let marked = FaultFired(name.clone());
    let fd = req.extensions().get::<ConnFd>().map(|f| f.0);
    let mut res = if let Some((t, side)) = action.tamper() {
        match side {
            Side::Request => next.run(req.map(|b| tamper::wrap(b, t, side, fd))).await,
            Side::Response => next.run(req).await.map(|b| tamper::wrap(b, t, side, fd)),
        }
    } else if let Action::Latency { ms, jitter_ms } = action {
        let extra = faults.jitter(jitter_ms);
        tokio::time::sleep(std::time::Duration::from_millis(ms + extra)).await;
        next.run(req).await
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
