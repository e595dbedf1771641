//! `ocloud serve`: runs the service until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ocloud_server::{Config, Ready};

/// Options of `ocloud serve`; each has an environment variable.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Example:\n  ocloud serve --listen 127.0.0.1:8080 --data-dir ./ocloud-data --quota 5GiB")]
pub struct Args {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, env = "OCLOUD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the database and the content are kept (created if missing).
    #[arg(long, env = "OCLOUD_DATA_DIR", default_value = "./ocloud-data")]
    data_dir: PathBuf,
    /// Metadata database: sqlite://PATH or postgres://USER@HOST:PORT/DB (default: SQLite in
    /// the data dir).
    #[arg(long, env = "OCLOUD_DATABASE")]
    database: Option<String>,
    /// Content store: file://PATH or s3://BUCKET[/PREFIX]; the endpoint and credentials come
    /// from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP (default: files in the data dir).
    #[arg(long, env = "OCLOUD_BLOBS")]
    blobs: Option<String>,
    /// Base URL of downloadUrl/thumbUrl/previewUrl, as clients reach the service
    /// [default: http://<listen address>].
    #[arg(long, env = "OCLOUD_PUBLIC_URL")]
    public_url: Option<String>,
    /// HTTPS with a certificate made here: `auto` keeps a local CA in <data dir>/tls/ and
    /// signs a certificate for api.orange.com, cloudapi.orange.com, localhost, 127.0.0.1 and
    /// the public URL's host.
    #[arg(long, env = "OCLOUD_TLS", value_parser = ["auto"], conflicts_with_all = ["tls_cert", "tls_key"])]
    tls: Option<String>,
    /// HTTPS with this certificate chain (PEM, leaf first); re-read on SIGHUP.
    #[arg(long, env = "OCLOUD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "OCLOUD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Quota of each user without one of their own.
    #[arg(long, env = "OCLOUD_QUOTA", default_value = "5GiB", value_parser = crate::size::parse)]
    quota: u64,
    /// Free disk kept for the database: an upload that would go under it is refused (503/5,
    /// "disk full"), so deletes and folder changes keep working on a full disk.
    #[arg(long, env = "OCLOUD_MIN_FREE_DISK", default_value = "64MiB", value_parser = crate::size::parse)]
    min_free_disk: u64,
    /// Largest accepted upload.
    #[arg(long, env = "OCLOUD_MAX_UPLOAD_SIZE", default_value = "16GiB", value_parser = crate::size::parse)]
    max_upload_size: u64,
    /// Shape of error bodies: flat (top-level fields), wrapped ({"error": {…}}), both (the two
    /// at once, which every client reads) or legacy (wrapped, and the storage back-end's PDK_*
    /// bodies of spec §4.2).
    #[arg(long, env = "OCLOUD_ERROR_SHAPE", default_value = "both")]
    error_shape: ocloud_server::config::ErrorShape,
    /// Same as --error-shape legacy.
    #[arg(long, env = "OCLOUD_LEGACY_ERRORS", conflicts_with = "error_shape")]
    legacy_errors: bool,
    /// Code of the 401 an expired access token gets: 41 "Invalid credentials", as Orange's
    /// gateway answered and clients refresh on, or 42 "Expired credentials", as the table says.
    #[arg(long, env = "OCLOUD_EXPIRED_TOKEN_CODE", default_value_t = 41,
          value_parser = clap::value_parser!(u16).range(41..=42))]
    expired_token_code: u16,
    /// Seconds a request body may stall before 408/63.
    #[arg(long, env = "OCLOUD_BODY_TIMEOUT", default_value_t = 30)]
    body_timeout: u64,
    /// Seconds a request head may take to arrive whole; also how long an idle keep-alive
    /// connection stays open.
    #[arg(long, env = "OCLOUD_HEADER_TIMEOUT", default_value_t = 30)]
    header_timeout: u64,
    /// Open connections at most [default: 4096, or the descriptor limit less 64]. At the cap,
    /// idle connections are closed to make room.
    #[arg(long, env = "OCLOUD_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Requests served at once; more get 503/6.
    #[arg(long, env = "OCLOUD_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    max_concurrent_requests: usize,
    /// Access-token lifetime, seconds (expires_in).
    #[arg(long, env = "OCLOUD_TOKEN_TTL", default_value_t = 3600)]
    token_ttl: u64,
    /// Authorization-code lifetime, seconds.
    #[arg(long, env = "OCLOUD_CODE_TTL", default_value_t = 60)]
    code_ttl: u64,
    /// Requests per minute per (app, user) for apps without a limit of their own; 0: none.
    #[arg(long, env = "OCLOUD_RATE_LIMIT", default_value_t = 0)]
    rate_limit: u32,
    /// Issue a new refresh token on each refresh (Orange kept the old one).
    #[arg(long, env = "OCLOUD_ROTATE_REFRESH_TOKENS")]
    rotate_refresh_tokens: bool,
    /// Lifetime of a Personal Content upload URL, seconds.
    #[arg(long, env = "OCLOUD_UPLOAD_URL_TTL", default_value_t = 600)]
    upload_url_ttl: u64,
    /// Turn off the read caches of tokens and listings (for measurements).
    #[arg(long, env = "OCLOUD_NO_CACHE")]
    no_cache: bool,
    /// Do not create the dev user and app on an empty data dir.
    #[arg(long, env = "OCLOUD_NO_DEV_ACCOUNT")]
    no_dev_account: bool,
    /// Serve the API alone, without the web interface at `/`.
    #[arg(long, env = "OCLOUD_NO_WEB")]
    no_web: bool,
    /// Serve the emulator's control plane at /_ocloud/v1/ (clock, tokens, reset; see
    /// `ocloud emu`), guarded by an admin token printed at start.
    #[arg(long, env = "OCLOUD_EMULATOR")]
    emulator: bool,
    /// The control plane's admin token (default: a random one, printed at start).
    #[arg(long, env = "OCLOUD_EMULATOR_TOKEN", requires = "emulator", hide_env_values = true)]
    emulator_token: Option<String>,
    /// Requests the emulator's journal keeps (the oldest go first).
    #[arg(long, env = "OCLOUD_JOURNAL", default_value_t = 1000, requires = "emulator")]
    journal: usize,
    /// A fixture (users, apps, tokens, files; JSON as `POST /_ocloud/v1/seed` takes) loaded
    /// at start; loading it again at the next start changes nothing.
    #[arg(long, env = "OCLOUD_EMULATOR_FILE", requires = "emulator")]
    emulator_file: Option<PathBuf>,
    /// Draw tokens, client ids, session ids, codes and content keys from a generator seeded
    /// with N: two runs given the same requests one after the other answer the same bytes
    /// (set the clock too). Fault probabilities use it as well.
    #[arg(long, env = "OCLOUD_SEED", requires = "emulator")]
    seed: Option<u64>,
}

pub async fn run(args: Args, json: bool) -> anyhow::Result<()> {
    let mut cfg = Config::new(args.data_dir);
    if args.emulator {
        cfg.emulator = Some(args.emulator_token.clone().unwrap_or_default());
        cfg.emulator_file = args.emulator_file.clone();
        cfg.journal = args.journal;
        cfg.seed = args.seed;
    }
    cfg.database = args.database;
    cfg.blobs = args.blobs;
    cfg.listen = args.listen;
    cfg.public_url = args.public_url;
    cfg.tls = match (args.tls, args.tls_cert, args.tls_key) {
        (Some(_), ..) => Some(ocloud_server::http::tls::TlsMode::Auto),
        (None, Some(cert), Some(key)) => Some(ocloud_server::http::tls::TlsMode::Files { cert, key }),
        _ => None,
    };
    cfg.quota = args.quota;
    cfg.max_upload_size = args.max_upload_size;
    cfg.min_free_disk = args.min_free_disk;
    cfg.error_shape = if args.legacy_errors { ocloud_server::config::ErrorShape::Legacy } else { args.error_shape };
    cfg.expired_token_code = args.expired_token_code;
    cfg.body_timeout = Duration::from_secs(args.body_timeout.max(1));
    cfg.max_concurrent_requests = args.max_concurrent_requests.max(1);
    cfg.header_timeout = Duration::from_secs(args.header_timeout.max(1));
    if let Some(n) = args.max_connections {
        cfg.max_connections = n.max(1);
    }
    cfg.token_ttl = Duration::from_secs(args.token_ttl);
    cfg.code_ttl = Duration::from_secs(args.code_ttl);
    cfg.rate_limit = args.rate_limit;
    cfg.rotate_refresh_tokens = args.rotate_refresh_tokens;
    cfg.dev_account = !args.no_dev_account;
    cfg.web = !args.no_web;
    let web = cfg.web;
    cfg.cache = !args.no_cache;
    cfg.upload_url_ttl = Duration::from_secs(args.upload_url_ttl);
    let data_dir = cfg.data_dir.clone();
    let location = cfg.location();
    ocloud_server::serve(
        cfg,
        |ready: Ready| {
            // On stdout, so scripts and tests can read where it listens; a closed stdout is
            // no reason to stop serving.
            use std::io::Write as _;
            let addr = ready.addr;
            let mut out = std::io::stdout().lock();
            let scheme = if ready.https { "https" } else { "http" };
            if json {
                // One line for scripts: `ocloud serve --emulator --listen 127.0.0.1:0 --json`.
                let line = serde_json::json!({
                    "url": format!("{scheme}://{addr}"),
                    "public_url": ready.public_url,
                    "admin_token": ready.admin_token,
                    "https": ready.https,
                    "ca_cert": ready.tls_ca,
                    "dev_account": ready.dev_account.as_ref().map(|d| serde_json::json!({
                        "user": d.user, "password": d.password, "client_id": d.client_id,
                        "client_secret": d.client_secret, "redirect_uris": d.redirect_uris,
                    })),
                });
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                return;
            }
            let _ = writeln!(out, "ocloud: listening on {scheme}://{addr} (data in {location})");
            if web {
                let _ = writeln!(out, "ocloud: web interface at {scheme}://{addr}/");
            }
            if let Some(ca) = &ready.tls_ca {
                let _ = writeln!(
                    out,
                    "ocloud: HTTPS with a local CA: clients trust {ca} (ocloud --ca-cert {ca} …)\n  for clients that hard-code Orange's hosts, add to /etc/hosts:  {ip} api.orange.com cloudapi.orange.com",
                    ca = ca.display(),
                    ip = if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() }
                );
            }
            let dir = data_dir.display();
            if let Some(dev) = ready.dev_account {
                let _ = writeln!(
                    out,
                    "ocloud: created the dev account (shown once):\n  user {}  password {}\n  app dev  client_id {}  client_secret {}\n  redirect URIs {}",
                    dev.user,
                    dev.password,
                    dev.client_id,
                    dev.client_secret,
                    dev.redirect_uris.join(" ")
                );
                let _ = writeln!(
                    out,
                    "ocloud: point the CLI here and log in:\n  ocloud config set --api-url {scheme}://{addr} --client-id {} --client-secret {} && ocloud login",
                    dev.client_id, dev.client_secret
                );
            }
            if let Some(t) = &ready.admin_token {
                let _ = writeln!(
                    out,
                    "ocloud: emulator control plane at {scheme}://{addr}/_ocloud/v1/, admin token (shown once):\n  export OCLOUD_EMULATOR_TOKEN={t}"
                );
            }
            let _ = writeln!(out, "ocloud: or use a token directly:\n  export OCLOUD_API_URL={scheme}://{addr} OCLOUD_TOKEN=$(ocloud admin token --data-dir {dir})");
            let _ = out.flush();
        },
        shutdown_signal(),
    )
    .await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
