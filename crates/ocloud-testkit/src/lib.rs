//! Orange Cloud's emulator inside your Rust tests, as fake-gcs-server's Go package is for
//! Google Cloud Storage: [`Emulator::builder`] starts `ocloud serve --emulator` in process, on
//! an ephemeral loopback port, with its own temporary data dir, seeded as you say; the
//! [`Emulator`] then drives its control plane (clock, tokens, faults, snapshots) and checks
//! what your code sent ([`Emulator::assert_requests`]).
//!
//! ```no_run
//! use ocloud_testkit::Emulator;
//! use serde_json::json;
//!
//! # async fn demo() {
//! let emu = Emulator::builder()
//!     .user("alice", "secret")
//!     .app("my-app", "my-client-id", "my-client-secret", "http://127.0.0.1:9/cb")
//!     .token("alice", "my-app", "OFR-alice")
//!     .file("alice", "Photos/notes.txt", "milk, eggs")
//!     .clock("2030-01-01T00:00:00Z")
//!     .fault(json!({"match": {"op": "files.upload"}, "when": {"times": 1}, "action": {"error": 53}}))
//!     .start()
//!     .await;
//!
//! // Point the code under test at `emu.url()` with the token `OFR-alice`, run it, then:
//! emu.assert_requests(json!({"op": "files.upload", "status": 403}), 1).await;
//! emu.advance(3601.0).await; // the token has expired
//! # }
//! ```
//!
//! The service runs on the caller's tokio runtime and stops when the [`Emulator`] is dropped.
//! Every control call panics with the service's answer when it fails: this is a test kit.

use std::path::Path;

use serde_json::{Value, json};

/// Builds an [`Emulator`]: a fixture (users, apps, tokens, files, settings, fault rules) loaded
/// at start, a clock, a seed.
#[derive(Debug, Default)]
pub struct Builder {
    users: Vec<Value>,
    apps: Vec<Value>,
    tokens: Vec<Value>,
    files: Vec<Value>,
    faults: Vec<Value>,
    settings: serde_json::Map<String, Value>,
    clock: Option<String>,
    seed: Option<u64>,
}

impl Builder {
    /// A user who can sign in with `password` (quota: the service's).
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push(json!({"name": name, "password": password}));
        self
    }

    /// An OAuth client with fixed credentials, allowed every scope.
    pub fn app(mut self, name: &str, client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        self.apps.push(json!({"name": name, "client_id": client_id, "client_secret": client_secret,
            "redirect_uris": [redirect_uri]}));
        self
    }

    /// An access token of that value for `user` through `app` (by name), valid an hour, with
    /// the `cloud` scope: it sees the app's own folder, `mes dossiers partenaires/<app>/`.
    pub fn token(self, user: &str, app: &str, access_token: &str) -> Self {
        self.token_scoped(user, app, access_token, "openid cloud offline_access")
    }

    /// The same with given scopes (`cloudfullread`, `cloudfullwrite`: the whole cloud).
    pub fn token_scoped(mut self, user: &str, app: &str, access_token: &str, scope: &str) -> Self {
        self.tokens.push(json!({"user": user, "app": app, "access_token": access_token, "scope": scope}));
        self
    }

    /// A file of `user` at `path` (from their root; folders made as needed), holding `content`.
    pub fn file(mut self, user: &str, path: &str, content: &str) -> Self {
        self.files.push(json!({"user": user, "path": path, "content": content}));
        self
    }

    /// A fault rule, as `PUT /_ocloud/v1/faults` takes one (see the README's emulator section).
    pub fn fault(mut self, rule: Value) -> Self {
        self.faults.push(rule);
        self
    }

    /// A setting (`quota`, `token_ttl`, `auto_login`, `auto_consent`, `error_shape`…).
    pub fn setting(mut self, key: &str, value: Value) -> Self {
        self.settings.insert(key.to_owned(), value);
        self
    }

    /// The service's clock, frozen at this RFC 3339 time.
    pub fn clock(mut self, now: &str) -> Self {
        self.clock = Some(now.to_owned());
        self
    }

    /// Tokens, ids and keys drawn from a generator seeded with `seed` (process-wide).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Starts the service and loads everything; panics if it cannot.
    pub async fn start(self) -> Emulator {
        let dir = tempfile::tempdir().expect("a temporary data dir");
        let admin = "ocloud-testkit-admin".to_owned();
        let mut cfg = ocloud_server::Config::new(dir.path());
        cfg.listen = ([127, 0, 0, 1], 0).into();
        cfg.emulator = Some(admin.clone());
        cfg.dev_account = false;
        cfg.seed = self.seed;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let on_ready = move |r: ocloud_server::Ready| {
                let _ = ready_tx.send(r.public_url);
            };
            if let Err(e) = ocloud_server::serve(cfg, on_ready, async move {
                let _ = stop_rx.await;
            })
            .await
            {
                panic!("ocloud-testkit: the emulator stopped: {e:#}");
            }
        });
        let url = ready_rx.await.expect("ocloud-testkit: the emulator did not start");
        let emu = Emulator { url, admin, http: reqwest::Client::new(), stop: Some(stop_tx), task: Some(task), dir };
        if let Some(now) = &self.clock {
            emu.control(reqwest::Method::PUT, "/clock", Some(json!({"now": now, "frozen": true}))).await;
        }
        let fixture = json!({
            "users": self.users, "apps": self.apps, "tokens": self.tokens, "files": self.files,
            "settings": self.settings, "faults": self.faults,
        });
        emu.control(reqwest::Method::POST, "/seed", Some(fixture)).await;
        emu
    }
}

/// A running emulator; stopped when dropped.
pub struct Emulator {
    url: String,
    admin: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl Emulator {
    /// A [`Builder`].
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Starts one with nothing in it.
    pub async fn start() -> Emulator {
        Builder::default().start().await
    }

    /// The base URL of every API (`/cloud/v1`, `/oauth/v2`, the legacy APIs).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The control plane's admin token.
    pub fn admin_token(&self) -> &str {
        &self.admin
    }

    /// The service's data dir (temporary, removed on drop).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Calls the control plane; its JSON answer (`null` for none). Panics on a failure.
    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self.request(method, path);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        Self::answer(rb, path).await
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}/_ocloud/v1{path}", self.url)).bearer_auth(&self.admin)
    }

    async fn answer(rb: reqwest::RequestBuilder, path: &str) -> Value {
        let res = rb.send().await.unwrap_or_else(|e| panic!("ocloud-testkit: {path}: {e}"));
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert!(status.is_success(), "ocloud-testkit: {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A fresh access token for `user` through `app` (both created if missing).
    pub async fn token(&self, user: &str, app: &str) -> String {
        let t = self.control(reqwest::Method::POST, "/tokens", Some(json!({"user": user, "app": app}))).await;
        t["access_token"].as_str().unwrap_or_default().to_owned()
    }

    /// Moves the clock forward (tokens, codes and upload URLs expire with no waiting).
    pub async fn advance(&self, seconds: f64) {
        self.control(reqwest::Method::POST, "/clock/advance", Some(json!({"seconds": seconds}))).await;
    }

    /// Appends fault rules.
    pub async fn add_faults(&self, rules: Vec<Value>) {
        self.control(reqwest::Method::PATCH, "/faults", Some(json!({"rules": rules}))).await;
    }

    /// Removes every fault rule.
    pub async fn clear_faults(&self) {
        self.control(reqwest::Method::DELETE, "/faults", None).await;
    }

    /// Journal entries matching `matcher` (`{"op", "method", "path", "status", "user", "app",
    /// "since"}`, all optional), oldest first.
    pub async fn requests(&self, matcher: Value) -> Vec<Value> {
        let q: Vec<(String, String)> = matcher
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
            .collect();
        let v = Self::answer(self.request(reqwest::Method::GET, "/requests").query(&q), "/requests").await;
        v["requests"].as_array().cloned().unwrap_or_default()
    }

    /// Asserts that exactly `times` requests match `matcher`; the message lists the journal.
    pub async fn assert_requests(&self, matcher: Value, times: usize) {
        let found = self.requests(matcher.clone()).await;
        if found.len() != times {
            let all = self.requests(json!({})).await;
            let lines: Vec<String> = all
                .iter()
                .map(|e| format!("  {} {} {} -> {} ({})", e["id"], e["method"], e["path"], e["status"], e["operation"]))
                .collect();
            panic!(
                "expected {times} request(s) matching {matcher}, found {}; the journal:\n{}",
                found.len(),
                lines.join("\n")
            );
        }
    }

    /// Takes a snapshot of everything; its id.
    pub async fn snapshot(&self) -> String {
        self.control(reqwest::Method::POST, "/snapshots", None).await["id"].as_str().unwrap_or_default().to_owned()
    }

    /// Puts everything back as it was at snapshot `id`.
    pub async fn restore(&self, id: &str) {
        self.control(reqwest::Method::POST, &format!("/snapshots/{id}/restore"), None).await;
    }

    /// Empties the service (with `keep_accounts`, only the files).
    pub async fn reset(&self, keep_accounts: bool) {
        let q = if keep_accounts { "?keep=accounts" } else { "" };
        self.control(reqwest::Method::POST, &format!("/reset{q}"), None).await;
    }

    /// Stops the service and waits until it has.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
