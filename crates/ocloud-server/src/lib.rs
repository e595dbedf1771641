//! The ocloud service: the Orange Cloud API v1 over a metadata store and a blob store.
//!
//! Layers, top to bottom: [`http`] (routes, extractors, the error table) → [`domain`] (the
//! rules) → [`store`] and [`blobs`] (storage traits and their backends). [`serve`] builds the
//! backends once from a [`Config`] and runs until the shutdown future resolves.

pub mod admin;
pub mod blobs;
pub mod clock;
pub mod config;
pub mod domain;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod logsafe;
pub mod random;
pub mod store;
pub mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::Context as _;

pub use config::Config;
use http::{AppState, phase};

/// The database file inside the data dir.
pub const DB_FILE: &str = "ocloud.db";

/// Opens the backends `cfg` names (by default SQLite and files in the data dir), once; the
/// rest of the service sees only the storage traits.
pub async fn open_service(cfg: Arc<Config>, public_url: String) -> anyhow::Result<domain::Service> {
    let clock = clock::Clock::system();
    // An empty setting means the embedded default, as no setting does.
    let database = cfg.database.as_deref().filter(|d| !d.is_empty());
    let blob_store = cfg.blobs.as_deref().filter(|b| !b.is_empty());
    // Once, before any database connection opens (see `make_private`).
    if database.is_none() || blob_store.is_none() {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
        make_private(&cfg.data_dir).with_context(|| format!("restricting data dir {}", cfg.data_dir.display()))?;
    }
    let meta: Arc<dyn store::Metadata> = match database {
        None => {
            let path = cfg.data_dir.join(DB_FILE);
            Arc::new(
                store::sqlite::Sqlite::open(&path, clock.clone())
                    .with_context(|| format!("opening database {}", path.display()))?,
            )
        }
        Some(url) if url.starts_with("sqlite://") => {
            let path = std::path::Path::new(&url["sqlite://".len()..]);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            Arc::new(
                store::sqlite::Sqlite::open(path, clock.clone())
                    .with_context(|| format!("opening database {}", path.display()))?,
            )
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Arc::new(
            store::postgres::Postgres::connect(url, clock.clone())
                .await
                .with_context(|| format!("opening database {}", redact_url(url)))?,
        ),
        Some(other) => anyhow::bail!("--database {:?}: expected sqlite://PATH or postgres://…", redact_url(other)),
    };
    let blobs: Arc<dyn blobs::Blobs> = match blob_store {
        None => Arc::new(
            blobs::fs::FsBlobs::open(&cfg.data_dir)
                .with_context(|| format!("opening content store in {}", cfg.data_dir.display()))?,
        ),
        Some(url) if url.starts_with("file://") => {
            let dir = std::path::Path::new(&url["file://".len()..]);
            Arc::new(
                blobs::fs::FsBlobs::open(dir).with_context(|| format!("opening content store in {}", dir.display()))?,
            )
        }
        Some(url) if url.starts_with("s3://") => Arc::new(blobs::s3::S3Blobs::open(url)?),
        Some(other) => anyhow::bail!("--blobs {other:?}: expected file://PATH or s3://BUCKET[/PREFIX]"),
    };
    Ok(domain::Service::new(meta, blobs, cfg, public_url, clock))
}

/// A URL with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((cred, host)) => match cred.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Only the service's own user may read its data: the data dir becomes 0700 and the database
/// files 0600 (made so before SQLite first creates them; its WAL and SHM files take the
/// database's mode). Data dirs of earlier versions are tightened on start.
fn make_private(data_dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
        // Made only when missing: opening and closing the file while this process has SQLite
        // connections on it would drop their POSIX locks.
        let db = data_dir.join(DB_FILE);
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&db) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        for name in [DB_FILE.to_owned(), format!("{DB_FILE}-wal"), format!("{DB_FILE}-shm")] {
            match std::fs::set_permissions(data_dir.join(name), std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// What `serve` tells its caller once it is ready.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The bound address.
    pub addr: SocketAddr,
    /// The account created on this first start of an empty data dir, if any.
    pub dev_account: Option<admin::DevAccount>,
    /// The base URL clients use (https with TLS).
    pub public_url: String,
    /// Whether the listener speaks HTTPS.
    pub https: bool,
    /// With `--tls auto`: the CA file clients should trust.
    pub tls_ca: Option<std::path::PathBuf>,
    /// With `--emulator`: the admin token of the control plane.
    pub admin_token: Option<String>,
}

/// Runs the service until `shutdown` resolves, then lets in-flight requests finish.
/// `on_ready` is called once requests are served.
pub async fn serve(
    mut cfg: Config,
    on_ready: impl FnOnce(Ready),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // `--emulator` without `--emulator-token`: a fresh random admin token, printed at start.
    if cfg.emulator.as_deref() == Some("") {
        cfg.emulator = Some(domain::auth::new_token());
    }
    // After the admin token, which stays unpredictable.
    if cfg.seed.is_some() {
        random::seed(cfg.seed);
    }
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("listening on {}", cfg.listen))?;
    // Bound to loopback, every connection is: they inherit this from the listener, from their
    // start (see `ocloud_io::tcp` for why).
    ocloud_io::tcp::unpaced_if_loopback(&listener, cfg.listen.ip());
    let addr = listener.local_addr()?;
    let limits = http::conn::Limits { header_timeout: cfg.header_timeout, max_connections: cfg.max_connections };
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let public_url =
        cfg.public_url.clone().unwrap_or_else(|| format!("{scheme}://{addr}")).trim_end_matches('/').to_owned();
    let svc = open_service(Arc::new(cfg), public_url.clone()).await?;
    let tls = match &svc.cfg.tls {
        Some(mode) => Some(http::tls::setup(mode, &svc.cfg.data_dir, url_host(&public_url))?),
        None => None,
    };
    let tls_ca = tls.as_ref().and_then(|t| t.ca.clone());
    let openapi = bytes::Bytes::from(http::openapi::document(svc.cfg.emulator.is_some()));
    let journal = svc.cfg.emulator.is_some().then(|| Arc::new(http::journal::Journal::new(svc.cfg.journal, &openapi)));
    let state = AppState::new(http::Shared {
        slots: Arc::new(tokio::sync::Semaphore::new(svc.cfg.max_concurrent_requests)),
        svc: Arc::new(svc.clone()),
        phase: Arc::new(AtomicU8::new(phase::STARTING)),
        openapi,
        journal,
        faults: svc.cfg.emulator.is_some().then(|| Arc::new(http::faults::Faults::new(svc.cfg.seed.unwrap_or(0)))),
    });
    let app = http::app(state.clone());
    let phase = state.phase.clone();
    // Serve at once: until the start-up work below is done, every request gets 503/5.
    let acceptor = tls.map(|t| t.acceptor);
    let lanes = http::lanes::Lanes::start().context("starting the threads that serve connections")?;
    let server = tokio::spawn(http::conn::serve(listener, app, limits, acceptor, lanes, async move {
        shutdown.await;
        phase.store(phase::STOPPING, Ordering::Release);
        tracing::info!("stopping: finishing requests in flight");
    }));
    // A shutdown that came during start-up wins.
    let _ = state.phase.compare_exchange(phase::STARTING, phase::READY, Ordering::AcqRel, Ordering::Acquire);
    if let Some(path) = &svc.cfg.emulator_file {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let fixture: domain::seed::Fixture =
            serde_json::from_slice(&text).with_context(|| format!("{}: not a fixture", path.display()))?;
        let done = http::control::load(&state, &fixture)
            .await
            .map_err(|e| anyhow::anyhow!("loading {}: {}", path.display(), e.detail))?;
        tracing::info!(file = %path.display(), users = done.users, apps = done.apps, tokens = done.tokens, files = done.files, "fixture loaded");
    }
    let dev_account = if svc.cfg.dev_account {
        admin::ensure_dev_account(&svc).await.context("creating the dev account")?
    } else {
        None
    };
    let https = svc.cfg.tls.is_some();
    let admin_token = svc.cfg.emulator.clone();
    on_ready(Ready { addr, dev_account, public_url, https, tls_ca, admin_token });
    tracing::info!(%addr, "ready");
    tokio::spawn(maintain(svc.clone()));
    server.await.context("server task")?;
    Ok(())
}

/// The host of a URL (`https://cloud.example.org:8443/x` → `cloud.example.org`).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host =
        if host.starts_with('[') { host.split(']').next()?.trim_start_matches('[') } else { host.split(':').next()? };
    (!host.is_empty()).then_some(host)
}

/// How often the clean-up below runs again after the start-up pass.
const MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Tokens are kept this long past expiry, so a late client still hears "expired", not
/// "unknown".
const TOKEN_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// How often an instance checks whether the maintenance lease is free.
const LEASE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Cleans up once an hour across all instances, so a server that runs for months keeps
/// neither expired rows nor orphan blobs: every instance checks every five minutes, and the
/// one that takes the hour's lease in the database runs the pass (each step is also safe to
/// repeat, should two passes ever overlap).
async fn maintain(svc: domain::Service) {
    let holder = uuid::Uuid::new_v4().simple().to_string();
    let mut every = tokio::time::interval(LEASE_CHECK_EVERY);
    loop {
        every.tick().await;
        let now = svc.clock.now_ms();
        match svc.meta.lease("maintenance", &holder, now + MAINTENANCE_EVERY.as_millis() as i64, now).await {
            Ok(true) => maintenance_pass(&svc).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %crate::logsafe::Esc(&e), "maintenance lease unavailable"),
        }
    }
}

/// Drops expired codes, upload URLs, sessions and tokens, and the blobs unreferenced for
/// longer than [`domain::content::ORPHAN_GRACE`]. Failures are logged: the next pass retries.
async fn maintenance_pass(svc: &domain::Service) {
    let now = svc.clock.now_s();
    match svc.meta.purge_expired(now, now - TOKEN_RETENTION.as_secs() as i64).await {
        Ok(n) if n > 0 => tracing::info!(removed = n, "purged expired codes, URLs, sessions and tokens"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %crate::logsafe::Esc(&e), "purge of expired rows failed"),
    }
    let callers = svc.trim_rate_limits();
    tracing::debug!(callers, "rate-limit buckets trimmed");
    let before = svc.clock.now_ms() - domain::content::ORPHAN_GRACE.as_millis() as i64;
    match svc.reap_orphans(before).await {
        Ok(n) if n > 0 => tracing::info!(removed = n, "removed orphan blobs"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %crate::logsafe::Esc(&e), "orphan sweep failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_maintenance_pass_purges_expired_rows_and_old_orphans_only() {
        let dir = tempfile::tempdir().unwrap();
        let svc = open_service(Arc::new(Config::new(dir.path())), "http://x".into()).await.unwrap();
        let user = svc.meta.ensure_user("u").await.unwrap();
        svc.meta.insert_session("gone", user.id, 1).await.unwrap();
        let mut w = svc.new_blob().await.unwrap();
        w.write(b"nobody's").await.unwrap();
        let orphan = w.commit().await.unwrap();

        // An orphan younger than the grace stays (it may be an upload being recorded).
        maintenance_pass(&svc).await;
        assert_eq!(svc.meta.purge_expired(2, 0).await.unwrap(), 0, "the expired session went in the pass");
        assert!(svc.blobs.read(&orphan, 0, None).await.is_ok());

        // One lease per hour across instances: a second taker is refused until it expires.
        let now = svc.clock.now_ms();
        assert!(svc.meta.lease("maintenance", "one", now + 3_600_000, now).await.unwrap());
        assert!(!svc.meta.lease("maintenance", "two", now + 3_600_000, now).await.unwrap());
        assert!(svc.meta.lease("maintenance", "two", now + 7_200_000, now + 3_600_000).await.unwrap());

        // The injected clock moves past the grace: no waiting.
        svc.clock.advance(domain::content::ORPHAN_GRACE.as_millis() as i64 + 1);
        maintenance_pass(&svc).await;
        assert!(matches!(svc.blobs.read(&orphan, 0, None).await, Err(blobs::BlobError::NotFound(_))));
        assert!(svc.meta.pending_blobs(std::slice::from_ref(&orphan)).await.unwrap().is_empty(), "forgotten");
    }
}
