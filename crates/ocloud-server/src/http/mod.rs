//! HTTP surface: routes, the middleware every request goes through, and the state handlers
//! share. One module per API surface; no SQL here.

pub mod archive;
pub mod cloud_v1;
pub mod conditional;
pub mod conn;
pub mod content;
pub mod control;
pub mod emulate;
pub mod error;
pub mod extract;
pub mod faults;
pub mod journal;
pub mod lanes;
pub mod legacy;
pub mod linger;
pub mod oauth;
pub mod openapi;
pub mod sendfile;
pub mod tamper;
pub mod tls;
pub mod upload;
pub mod web;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ocloud_wire::ErrorCode;

use crate::domain::Service;
use error::ApiError;

/// Life-cycle phases; outside `READY` every request gets 503/5.
pub mod phase {
    /// Start-up work not finished.
    pub const STARTING: u8 = 0;
    /// Serving.
    pub const READY: u8 = 1;
    /// Shutting down.
    pub const STOPPING: u8 = 2;
}

/// What every handler can reach: one `Arc`, because every middleware layer and extractor
/// clones the state per request, and with a field per `Arc` those clones were ~15 % of a
/// listing's CPU (their counters bouncing between cores).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state of a service.
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    /// The domain layer.
    pub svc: Arc<Service>,
    /// See [`phase`].
    pub phase: Arc<AtomicU8>,
    /// Requests in flight; one permit each (`--max-concurrent-requests`).
    pub slots: Arc<tokio::sync::Semaphore>,
    /// The OpenAPI document, rendered once.
    pub openapi: bytes::Bytes,
    /// The emulator's request journal (`--emulator` only).
    pub journal: Option<Arc<journal::Journal>>,
    /// The emulator's fault rules (`--emulator` only).
    pub faults: Option<Arc<faults::Faults>>,
}

/// `GET /healthz`: 200 `ok` when both backends answer (within 2 s each), else 503/5 naming
/// neither (the cause goes to the log), so a load balancer takes an instance out of rotation
/// while its database or object store is unreachable.
async fn healthz(State(s): State<AppState>) -> Result<&'static str, error::ApiError> {
    let limit = std::time::Duration::from_secs(2);
    let db = tokio::time::timeout(limit, s.svc.meta.check()).await;
    let blobs = tokio::time::timeout(limit, s.svc.blobs.check()).await;
    let why = match (db, blobs) {
        (Ok(Ok(())), Ok(Ok(()))) => return Ok("ok"),
        (Ok(Err(e)), _) => format!("database: {e}"),
        (Err(_), _) => "database: no answer within 2 s".to_owned(),
        (_, Ok(Err(e))) => format!("content store: {e}"),
        (_, Err(_)) => "content store: no answer within 2 s".to_owned(),
    };
    Err(crate::domain::Error::Unavailable(why).into())
}

/// The whole HTTP application.
pub fn app(state: AppState) -> App {
    use cloud_v1::*;
    let routes = Router::new()
        .route("/cloud/v1/freespace", get(freespace))
        .route("/cloud/v1/folders", get(root_folder).post(create_folder))
        .route("/cloud/v1/folders/", get(root_folder).post(create_folder))
        .route("/cloud/v1/folders/{id}", get(folder).post(update_folder).delete(delete_folder))
        .route("/cloud/v1/folders/{id}/", get(folder).post(update_folder).delete(delete_folder))
        // A fallback set before a route's own layer is wrapped by it: the 405s of the upload
        // routes drain the body too (and the control plane's are behind its admin token).
        .route(
            "/cloud/v1/files/content",
            post(upload::upload).fallback(method_not_allowed).layer(middleware::from_fn(linger::linger)),
        )
        .route("/cloud/v1/files/{id}", get(file).post(update_file).delete(delete_file))
        .route("/cloud/v1/files/{id}/{kind}/{opaque}", get(content::get))
        .route("/cloud/v1/session", post(session))
        .route("/cloud/v1/session/", post(session))
        .route("/cloud/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/personal/content/v1", get(legacy::content_api).post(legacy::content_api))
        .route(
            "/personal/content/v1/upload/{key}",
            axum::routing::any(legacy::content_upload).layer(middleware::from_fn(linger::linger)),
        )
        .route(
            "/personal/photos/v1",
            get(legacy::photos_api)
                .post(legacy::photos_api)
                .fallback(method_not_allowed)
                .layer(middleware::from_fn(linger::linger)),
        )
        .route("/personal/photos/v1/photo", get(legacy::photo))
        .route("/oauth/v2/authorize", get(oauth::authorize))
        .route("/oauth/v2/login", post(oauth::login))
        .route("/oauth/v2/consent", post(oauth::consent))
        .route("/oauth/v2/token", post(oauth::token))
        .route("/oauth/v2/revoke", post(oauth::revoke))
        .route("/oauth/v2/logout", get(oauth::logout).post(oauth::logout))
        .merge(if state.svc.cfg.emulator.is_some() { control::routes(state.clone()) } else { Router::new() })
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such endpoint") })
        // Last: it is set on the routes registered above that have no fallback of their own.
        .method_not_allowed_fallback(method_not_allowed);
    // The emulator's journal sees every routed request; without `--emulator` it is not here.
    let routes = match state.journal {
        Some(_) => routes.layer(emulate::EmulateLayer(state.clone())),
        None => routes,
    };
    let api = Api(Arc::new((state.clone(), routes.with_state(state.clone()))));
    // The web interface calls into `api` as any client would; its unknown paths fall through.
    let ui = state.svc.cfg.web.then(|| {
        crate::ui::routes(crate::ui::UiState { app: state.clone(), api: api.clone() }).fallback_service(api.clone())
    });
    // Request logs are debug events: without a subscriber that records them, the layer is
    // left out rather than asked for nothing on every request (a few % of a listing's cost).
    // Its one line at the default level, an error for a 5xx, is written by `front` instead.
    // Decided when the app is built: a subscriber installed later does not add it.
    let traced = tracing::enabled!(target: "tower_http::trace::make_span", tracing::Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_response", tracing::Level::DEBUG);
    App(Arc::new(Surfaces { api, ui, traced }))
}

/// A path's route exists, not for this method: the spec's body; axum adds `Allow`.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed here")
}

/// The whole HTTP application as one service, with the checks every request passes written
/// around the routers rather than layered onto them: axum's `Router::layer` wraps each route
/// in a boxed service that is cloned, and its future boxed, on every request (with three
/// such layers, about 20 of a cached listing's 54 allocations were theirs).
#[derive(Clone)]
pub struct App(Arc<Surfaces>);

struct Surfaces {
    api: Api,
    /// The web interface's routes (`/` and `/ui/…`), when it is on.
    ui: Option<Router>,
    /// Whether tower-http's request logs are wanted (see [`app`]).
    traced: bool,
}

/// Everything but the web interface's pages, behind the checks every API request passes
/// (`front`): what the gateway calls into.
#[derive(Clone)]
pub struct Api(Arc<(AppState, Router)>);

impl Api {
    fn state(&self) -> &AppState {
        &self.0.0
    }
}

type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

impl<B> tower::Service<axum::http::Request<B>> for App
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Answer {
        let app = self.0.clone();
        let req = req.map(axum::body::Body::new);
        if !app.traced {
            return Box::pin(async move { Ok(app.answer(req).await) });
        }
        let untraced = tower::service_fn(move |req: Request| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(app.answer(req).await) }
        });
        let traced = tower::Layer::layer(&tower_http::trace::TraceLayer::new_for_http(), untraced);
        Box::pin(async move { Ok(tower::ServiceExt::oneshot(traced, req).await?.map(axum::body::Body::new)) })
    }
}

impl Surfaces {
    async fn answer(&self, req: Request) -> Response {
        let path = req.uri().path();
        match &self.ui {
            // Its own refusals in the configured shape too (the API's are shaped already).
            Some(ui) if path == "/" || path.starts_with("/ui/") => {
                let res = tower::ServiceExt::oneshot(ui.clone(), req).await.unwrap_or_else(|never| match never {});
                shaped(self.api.state(), res)
            }
            _ => front(&self.api, req).await,
        }
    }
}

impl tower::Service<Request> for Api {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Answer {
        let api = self.clone();
        Box::pin(async move { Ok(front(&api, req).await) })
    }
}

/// What every API request goes through, outermost first: the capacity check (over
/// `--max-concurrent-requests` requests in flight, the next one gets 503/6 at once; one
/// semaphore for the whole API), the gate (life-cycle, URI length, `Accept`), the routes
/// (a handler that panics answers 500/1, in the configured shape, instead of dropping the
/// connection; the panic is logged), and the rendering of every error answer in its final
/// shape.
async fn front(api: &Api, req: Request) -> Response {
    let (s, routes) = &*api.0;
    let res = match s.slots.clone().try_acquire_owned() {
        Ok(_permit) => match gate(s, &req) {
            Ok(()) => {
                let routed = tower::ServiceExt::oneshot(routes.clone(), req);
                match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(routed)).await {
                    Ok(res) => res.unwrap_or_else(|never| match never {}),
                    Err(_) => ApiError::new(ErrorCode::Internal, "a handler panicked").into_response(),
                }
            }
            Err(refused) => {
                // Read and drop what the client is still sending, so it sees this answer.
                tokio::spawn(linger::drain(req.into_body()));
                refused.into_response()
            }
        },
        Err(_) => {
            tokio::spawn(linger::drain(req.into_body()));
            ApiError::new(ErrorCode::OverCapacity, "too many requests in flight").into_response()
        }
    };
    if res.status().is_server_error() {
        // Every failed answer leaves a line, whichever path made it (some, such as the
        // legacy API's, say nothing of their own).
        tracing::error!(status = res.status().as_u16(), "response failed");
    }
    shaped(s, res)
}

/// An answer in its final shape: errors rendered as the settings say.
fn shaped(s: &AppState, res: Response) -> Response {
    error::render(res, s.svc.settings.error_shape(), s.svc.settings.expired_token_code())
}

/// Checks that apply to every request before routing: life-cycle, URI length, `Accept`.
fn gate(s: &AppState, req: &Request) -> Result<(), ApiError> {
    if s.phase.load(Ordering::Acquire) != phase::READY {
        return Err(ApiError::new(ErrorCode::Unavailable, "the service is starting or stopping"));
    }
    let uri_len = req.uri().path().len() + req.uri().query().map_or(0, |q| q.len() + 1);
    if uri_len > s.svc.cfg.max_uri_len {
        return Err(ApiError::new(ErrorCode::UriTooLong, format!("URI of {uri_len} bytes")));
    }
    // Content URLs answer bytes, not JSON: Accept does not apply to them.
    let is_content = req.uri().path().starts_with("/cloud/v1/files/") && req.uri().path().matches('/').count() >= 6;
    if !is_content
        && let Some(accept) = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok())
        && !extract::accepts_json(accept)
    {
        return Err(ApiError::new(ErrorCode::NotAcceptable, format!("Accept {accept:?} excludes application/json")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt as _;

    /// The answer to one request, by the whole app in `phase_now` or, with `panicking`, by
    /// the API's front around a route whose handler panics.
    async fn answer_to(phase_now: u8, panicking: bool) -> (StatusCode, serde_json::Value) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Arc::new(crate::Config::new(dir.path()));
        let svc = crate::open_service(cfg, "http://x".into()).await.unwrap();
        let state = AppState::new(Shared {
            slots: Arc::new(tokio::sync::Semaphore::new(4)),
            svc: Arc::new(svc),
            phase: Arc::new(AtomicU8::new(phase_now)),
            openapi: bytes::Bytes::new(),
            journal: None,
            faults: None,
        });
        let req = axum::http::Request::get("/cloud/v1/freespace").body(Body::empty()).unwrap();
        let res = match panicking {
            false => app(state).oneshot(req).await.unwrap(),
            true => {
                async fn boom() -> Response {
                    panic!("a handler's bug")
                }
                let boom = Router::new().fallback(boom).with_state(state.clone());
                front(&Api(Arc::new((state, boom))), req).await
            }
        };
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn answer(phase_now: u8) -> (StatusCode, serde_json::Value) {
        answer_to(phase_now, false).await
    }

    /// A log writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the service logs while answering one request in `phase_now` under `filter`.
    async fn logged(filter: &str, phase_now: u8) -> String {
        logged_with(filter, phase_now, false).await
    }

    async fn logged_with(filter: &str, phase_now: u8, panicking: bool) -> String {
        let out = Captured::default();
        let w = out.clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(move || w.clone())
            .with_ansi(false)
            .finish();
        let _scope = tracing::subscriber::set_default(sub);
        answer_to(phase_now, panicking).await;
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    // One test, not three: tracing caches each callsite's interest process-wide. A test
    // answering requests with no subscriber on another thread could register tower-http's
    // callsites as "never" while this one sets its own subscriber, and its events would be
    // lost (CI saw the 503 line go missing). Nothing else in this crate's tests routes a
    // request, so running every check on one thread keeps the cache truthful.
    #[tokio::test]
    async fn requests_are_logged_only_at_debug_failures_always_503_5_while_starting_500_1_on_a_panic() {
        for (filter, each) in [("info", false), ("debug", true), ("warn,tower_http=debug", true)] {
            let text = logged(filter, phase::READY).await;
            assert_eq!(text.contains("finished processing request"), each, "{filter}: {text}");
            assert!(!text.contains("response failed"), "{filter}: {text}");
        }
        let text = logged("info", phase::STARTING).await;
        assert!(text.contains("response failed status=503"), "{text}");

        let expected = serde_json::to_value(ocloud_wire::error::DualError::from(ErrorCode::Unavailable)).unwrap();
        for p in [phase::STARTING, phase::STOPPING] {
            assert_eq!(answer(p).await, (StatusCode::SERVICE_UNAVAILABLE, expected.clone()));
        }
        // Ready: the request goes through to authentication.
        assert_eq!(answer(phase::READY).await.1["code"], 40);

        // A handler's panic is an answer (and a line), not a dropped connection.
        let text = logged_with("info", phase::READY, true).await;
        assert!(text.contains("response failed status=500"), "{text}");
        let expected = serde_json::to_value(ocloud_wire::error::DualError::from(ErrorCode::Internal)).unwrap();
        assert_eq!(answer_to(phase::READY, true).await, (StatusCode::INTERNAL_SERVER_ERROR, expected));
    }
}
