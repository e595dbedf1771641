//! [`ApiManager`]: configuration, tokens, and the one place requests are sent, retried and
//! replayed after a token refresh.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::{Client, RequestBuilder, Response};

use crate::config::{Endpoints, RetryPolicy};
use crate::error::{ApiError, Error, Result};
use crate::tokens::{MemoryTokenStore, TokenStore, Tokens};

/// Client credentials of a registered application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Registered redirect URI (where the local listener waits for the code).
    pub redirect_uri: String,
}

pub(crate) struct Inner {
    pub(crate) http: Client,
    pub(crate) endpoints: Endpoints,
    pub(crate) creds: Credentials,
    pub(crate) retry: RetryPolicy,
    pub(crate) scopes: Vec<String>,
    pub(crate) tokens: RwLock<Option<Tokens>>,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) refreshing: tokio::sync::Mutex<()>,
    pub(crate) pending: tokio::sync::Mutex<Option<crate::auth::Pending>>,
    pub(crate) paths: crate::paths::PathCache,
    #[cfg(target_os = "linux")]
    pub(crate) raw: crate::raw::Settings,
}

/// The entry point: OAuth2 login and the Cloud API, as the reference Python client's
/// `ApiManager` (spec §7), async.
///
/// ```no_run
/// # async fn f() -> ocloud_client::Result<()> {
/// use ocloud_client::{ApiManager, Endpoints};
/// let api = ApiManager::builder("client-id", "client-secret", "http://127.0.0.1:8910/callback")
///     .endpoints(Endpoints::single("http://127.0.0.1:8080"))
///     .build()?;
/// let url = api.init_authorize_code_process("some-state").await?;
/// println!("open {url}");
/// let code = api.wait_and_terminate_authorize_code_process(None).await?;
/// api.init_with_authorize_code(&code).await?;
/// println!("{} bytes free", api.freespace().await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ApiManager {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiManager")
            .field("endpoints", &self.inner.endpoints)
            .field("client_id", &self.inner.creds.client_id)
            .finish()
    }
}

/// Builds an [`ApiManager`].
#[derive(Debug)]
pub struct ApiManagerBuilder {
    creds: Credentials,
    endpoints: Endpoints,
    retry: RetryPolicy,
    scopes: Vec<String>,
    store: Option<Arc<dyn TokenStore>>,
    timeout: Duration,
    connect_timeout: Duration,
    accept_invalid_certs: bool,
    ca_certs: Vec<Vec<u8>>,
    resolve: Vec<(String, std::net::SocketAddr)>,
}

impl std::fmt::Debug for dyn TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenStore")
    }
}

impl ApiManagerBuilder {
    /// API, upload and OAuth base URLs (default: Orange's production hosts).
    pub fn endpoints(mut self, e: Endpoints) -> Self {
        self.endpoints = e;
        self
    }

    /// Retry policy (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, r: RetryPolicy) -> Self {
        self.retry = r;
        self
    }

    /// Scopes asked for at login (default `openid cloud offline_access`).
    pub fn scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Where tokens are kept (default: memory only).
    pub fn token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How long a read may wait for the service (default 60 s): each read of an answer, and a
    /// download's silence (transfers are bounded by progress, not by their length).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Accept invalid TLS certificates (two reference clients had to, for content URLs).
    pub fn danger_accept_invalid_certs(mut self, yes: bool) -> Self {
        self.accept_invalid_certs = yes;
        self
    }

    /// Trust the CA certificates of this PEM file too (beside the system's), e.g. the local CA
    /// of `ocloud serve --tls auto`. A file that holds no certificate fails [`Self::build`].
    pub fn ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certs.push(pem.into());
        self
    }

    /// Connect to `addr` whenever a URL names `host` (the port of the URL still applies), as a
    /// hosts-file line would: Orange's hosts can be pointed at a local ocloud this way.
    pub fn resolve(mut self, host: &str, addr: std::net::SocketAddr) -> Self {
        self.resolve.push((host.to_owned(), addr));
        self
    }

    /// The manager; loads stored tokens, if any.
    pub fn build(self) -> Result<ApiManager> {
        let mut http = crate::tls::client_builder(&self.ca_certs, self.accept_invalid_certs)?
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.timeout)
            .user_agent(concat!("ocloud-client/", env!("CARGO_PKG_VERSION")));
        for (host, addr) in &self.resolve {
            http = http.resolve(host, *addr);
        }
        let http = http.build()?;
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryTokenStore::default()));
        let tokens = store.load()?;
        Ok(ApiManager {
            inner: Arc::new(Inner {
                http,
                endpoints: self.endpoints,
                creds: self.creds,
                retry: self.retry,
                scopes: self.scopes,
                tokens: RwLock::new(tokens),
                store,
                refreshing: tokio::sync::Mutex::new(()),
                pending: tokio::sync::Mutex::new(None),
                paths: Default::default(),
                #[cfg(target_os = "linux")]
                raw: crate::raw::Settings {
                    resolve: self.resolve.clone(),
                    connect_timeout: self.connect_timeout,
                    read_timeout: self.timeout,
                },
            }),
        })
    }
}

/// What one attempt of a call came to.
pub(crate) enum Attempt<T> {
    /// An answer for the caller (a success, or a redirection).
    Answered(T),
    /// The service's error answer, to read.
    Refused(Response),
    /// No answer (the network failed), and whether the call may be sent again.
    Lost(Error, bool),
}

/// Whether a call may be sent again without changing its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Reads, deletes, uploads from a file: retried on network failures and 5xx.
    Safe,
    /// Creations and moves: retried only when the service surely did nothing (rate limit,
    /// unavailable).
    Unsafe,
}

impl ApiManager {
    /// A manager for Orange's production hosts.
    pub fn new(client_id: &str, client_secret: &str, redirect_uri: &str) -> Result<ApiManager> {
        Self::builder(client_id, client_secret, redirect_uri).build()
    }

    /// A builder, to change hosts, retries, scopes or the token store.
    pub fn builder(client_id: &str, client_secret: &str, redirect_uri: &str) -> ApiManagerBuilder {
        ApiManagerBuilder {
            creds: Credentials {
                client_id: client_id.into(),
                client_secret: client_secret.into(),
                redirect_uri: redirect_uri.into(),
            },
            endpoints: Endpoints::default(),
            retry: RetryPolicy::default(),
            scopes: vec!["openid".into(), "cloud".into(), "offline_access".into()],
            store: None,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            ca_certs: Vec::new(),
            resolve: Vec::new(),
            accept_invalid_certs: false,
        }
    }

    /// The base URLs in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// The current tokens, if logged in.
    pub fn tokens(&self) -> Option<Tokens> {
        self.inner.tokens.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current refresh token, if any (what the Python client exposes as an attribute).
    pub fn refresh_token_value(&self) -> Option<String> {
        self.tokens().and_then(|t| t.refresh_token)
    }

    /// Uses a bare access token (no refresh possible), e.g. one from `ocloud admin token`.
    pub fn init_with_access_token(&self, access_token: &str) {
        *self.inner.tokens.write().unwrap_or_else(|p| p.into_inner()) =
            Some(Tokens::new(access_token.into(), None, None));
    }

    pub(crate) fn set_tokens(&self, t: Tokens) -> Result<()> {
        self.inner.store.save(&t)?;
        *self.inner.tokens.write().unwrap_or_else(|p| p.into_inner()) = Some(t);
        Ok(())
    }

    fn access_token(&self) -> Result<String> {
        self.tokens().map(|t| t.access_token).ok_or(Error::NotAuthenticated)
    }

    pub(crate) fn api_url(&self, path: &str) -> String {
        format!("{}/cloud/v1{path}", self.inner.endpoints.api.trim_end_matches('/'))
    }

    pub(crate) fn upload_url(&self, path: &str) -> String {
        format!("{}/cloud/v1{path}", self.inner.endpoints.upload.trim_end_matches('/'))
    }

    /// Sends a request built by `build` with the bearer token; on a rejected token refreshes
    /// once and replays; retries as the [`RetryPolicy`] says. `build` is called for every
    /// attempt, so bodies are made anew (uploads reopen their file).
    pub(crate) async fn send<F>(&self, replay: Replay, build: F) -> Result<Response>
    where
        F: Fn(&Client) -> Result<RequestBuilder>,
    {
        let http = &self.inner.http;
        self.attempts(replay, |token| {
            let request = build(http).map(|b| b.bearer_auth(token));
            async move {
                Ok(match request?.send().await {
                    Ok(r) if r.status().is_success() || r.status().is_redirection() => Attempt::Answered(r),
                    Ok(r) => Attempt::Refused(r),
                    Err(e) => {
                        let again = e.is_connect()
                            || (replay == Replay::Safe && (e.is_timeout() || e.is_request() || e.is_body()));
                        Attempt::Lost(Error::Http(e), again)
                    }
                })
            }
        })
        .await
    }

    /// Runs `once` with the bearer token until it brings an answer: on a rejected token
    /// refreshes once and replays; retries as the [`RetryPolicy`] says. What [`Self::send`]
    /// does, for any way of sending (downloads also have their own, see `raw.rs`).
    pub(crate) async fn attempts<T, F, Fut>(&self, replay: Replay, once: F) -> Result<T>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>>>,
    {
        let policy = &self.inner.retry;
        let start = Instant::now();
        let mut attempt = 0u32;
        // Once per call, a rejected token is refreshed and the request replayed. A refresh
        // ahead of time does not use that up: another process sharing the token store may
        // refresh (and rotate) right after ours.
        let mut refreshed = false;
        // Refresh ahead of time rather than fail half-way through an upload.
        if self.tokens().is_some_and(|t| t.expires_within(30) && t.refresh_token.is_some()) {
            self.refresh_token().await?;
        }
        loop {
            attempt += 1;
            let token = self.access_token()?;
            let (err, retry_after) = match once(token.clone()).await? {
                Attempt::Answered(answer) => return Ok(answer),
                Attempt::Refused(resp) => {
                    let err = read_error(resp).await;
                    if err.is_token_rejected() && !refreshed && self.can_refresh() {
                        tracing::debug!("token rejected, refreshing and replaying");
                        self.refresh_after_rejection(&token).await?;
                        refreshed = true;
                        attempt -= 1;
                        continue;
                    }
                    let retryable = err.is_transient() || (replay == Replay::Safe && err.is_server_fault());
                    if !retryable {
                        return Err(Error::Api(err));
                    }
                    let ra = err.retry_after;
                    (Error::Api(err), ra)
                }
                Attempt::Lost(e, again) => {
                    if !again {
                        return Err(e);
                    }
                    // An expired token on the upload host may show up as a reset connection.
                    if !refreshed
                        && replay == Replay::Safe
                        && self.can_refresh()
                        && self.tokens().is_some_and(|t| t.expires_within(0))
                    {
                        self.refresh_after_rejection(&token).await?;
                        refreshed = true;
                    }
                    (e, None)
                }
            };
            if attempt >= policy.max_attempts || start.elapsed() >= policy.max_elapsed {
                return Err(err);
            }
            let wait = policy.backoff(attempt, retry_after);
            tracing::info!(attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    fn can_refresh(&self) -> bool {
        self.tokens().is_some_and(|t| t.refresh_token.is_some())
    }

    /// Sends and decodes a JSON answer.
    pub(crate) async fn send_json<T: serde::de::DeserializeOwned, F>(&self, replay: Replay, build: F) -> Result<T>
    where
        F: Fn(&Client) -> Result<RequestBuilder>,
    {
        let resp = self.send(replay, build).await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Api(ApiError {
                status,
                code: None,
                legacy_code: None,
                message: "unexpected answer".into(),
                description: e.to_string(),
                detail: None,
                retry_after: None,
            })
        })
    }
}

/// Reads an error answer.
pub(crate) async fn read_error(resp: Response) -> ApiError {
    let status = resp.status().as_u16();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let detail = header("x-ocloud-detail");
    let retry_after = header("retry-after").and_then(|v| v.trim().parse().ok());
    let body = resp.bytes().await.unwrap_or_default();
    let mut e = ApiError::parse(status, &body);
    e.detail = detail;
    e.retry_after = retry_after;
    e
}
