//! Service configuration, built once by the binary and read everywhere else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `ocloud serve` can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Where the embedded database and content live (and the local TLS CA).
    pub data_dir: PathBuf,
    /// `--database`: `sqlite://PATH` or `postgres://…`; `None`: SQLite in the data dir.
    pub database: Option<String>,
    /// `--blobs`: `file://PATH` or `s3://BUCKET[/PREFIX]`; `None`: files in the data dir.
    pub blobs: Option<String>,
    /// Base of downloadUrl/thumbUrl/previewUrl, e.g. `https://cloud.example.org`; default
    /// `http://<listen address>`.
    pub public_url: Option<String>,
    /// HTTPS (`--tls auto`, `--tls-cert`/`--tls-key`); `None`: plain HTTP.
    pub tls: Option<crate::http::tls::TlsMode>,
    /// Quota of a user without one of their own, bytes.
    pub quota: u64,
    /// Free disk kept for the database: uploads that would go under it are refused (503/5,
    /// "disk full") so deletes and other metadata changes keep working.
    pub min_free_disk: u64,
    /// Largest accepted upload, bytes.
    pub max_upload_size: u64,
    /// The JSON shape of error answers (spec §4.1, §4.2).
    pub error_shape: ErrorShape,
    /// The code an expired access token gets: 41 as Orange's gateway answered (clients refresh
    /// only on it), or 42 as the table describes.
    pub expired_token_code: u16,
    /// A request body that sends nothing for this long gets 408/63.
    pub body_timeout: Duration,
    /// Longest accepted request URI, bytes (414/67 above).
    pub max_uri_len: usize,
    /// Largest accepted JSON body, bytes (413/66 above).
    pub max_json_body: usize,
    /// A request head must arrive whole within this; also the idle keep-alive timeout.
    pub header_timeout: Duration,
    /// Open connections at most (see `http::conn`).
    pub max_connections: usize,
    /// Requests served at once; the next one gets 503/6.
    pub max_concurrent_requests: usize,
    /// Lifetime of access tokens.
    pub token_ttl: Duration,
    /// Lifetime of authorization codes.
    pub code_ttl: Duration,
    /// Requests per minute per (app, user) for apps without their own limit; 0: unlimited.
    pub rate_limit: u32,
    /// Issue a new refresh token on every refresh (Orange kept the old one: spec §2.2).
    pub rotate_refresh_tokens: bool,
    /// Lifetime of a Personal Content upload URL.
    pub upload_url_ttl: Duration,
    /// Keep the generation-keyed read caches (tokens, listings); off only for measurements.
    pub cache: bool,
    /// `--emulator`: the control plane at `/_ocloud/v1/`, guarded by this admin token.
    pub emulator: Option<String>,
    /// `--journal`: requests the emulator's journal keeps.
    pub journal: usize,
    /// `--emulator-file`: a fixture loaded at start (see `domain::seed`).
    pub emulator_file: Option<PathBuf>,
    /// `--seed`: tokens, ids and keys drawn from a generator seeded with it (see `random`).
    pub seed: Option<u64>,
    /// Serve the web interface at `/` (`--no-web`: the API alone).
    pub web: bool,
    /// Create the dev user and app on an empty data dir.
    pub dev_account: bool,
}

impl Config {
    /// The defaults of `ocloud serve` with no arguments.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            database: None,
            blobs: None,
            public_url: None,
            tls: None,
            quota: 5 << 30,
            max_upload_size: 16 << 30,
            min_free_disk: 64 << 20,
            error_shape: ErrorShape::Both,
            expired_token_code: 41,
            body_timeout: Duration::from_secs(30),
            max_uri_len: 8192,
            max_json_body: 64 << 10,
            max_concurrent_requests: 1024,
            header_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
            token_ttl: Duration::from_secs(3600),
            code_ttl: Duration::from_secs(60),
            rate_limit: 0,
            rotate_refresh_tokens: false,
            upload_url_ttl: Duration::from_secs(600),
            dev_account: true,
            web: true,
            seed: None,
            emulator: None,
            emulator_file: None,
            journal: 1000,
            cache: true,
        }
    }
}

impl Config {
    /// Where the data is, for messages: the data dir, or the backends' URLs (without
    /// credentials).
    pub fn location(&self) -> String {
        match (&self.database, &self.blobs) {
            (None, None) => self.data_dir.display().to_string(),
            (d, b) => format!(
                "{} + {}",
                d.as_deref().map(crate::redact_url).unwrap_or_else(|| "sqlite in the data dir".into()),
                b.as_deref().unwrap_or("files in the data dir")
            ),
        }
    }
}

/// How error answers are shaped (`--error-shape`). Clients in the field read different shapes
/// (spec §4.1): antechrestos and mkbrv the top-level fields, Orange's Android and iOS SDKs only
/// the wrapped object. `Both` serves every one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorShape {
    /// `{code, message, description}` at the top level.
    Flat,
    /// `{"error": {code, message, description}}`.
    Wrapped,
    /// The three fields at the top level and the same object under `"error"`.
    #[default]
    Both,
    /// The shapes of the storage back-end (spec §4.2): wrapped, PDK_* labels for quota, size and
    /// forbidden writes (`--legacy-errors`).
    Legacy,
}

impl ErrorShape {
    /// Every shape, in the order of [`ErrorShape::name`]'s list.
    pub const ALL: [ErrorShape; 4] = [ErrorShape::Flat, ErrorShape::Wrapped, ErrorShape::Both, ErrorShape::Legacy];

    /// Its name, as `--error-shape` and the emulator's settings take it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorShape::Flat => "flat",
            ErrorShape::Wrapped => "wrapped",
            ErrorShape::Both => "both",
            ErrorShape::Legacy => "legacy",
        }
    }
}

impl std::str::FromStr for ErrorShape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorShape::ALL
            .into_iter()
            .find(|shape| shape.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown error shape {s:?}: flat, wrapped, both or legacy"))
    }
}

/// 4,096 connections, or fewer when the descriptor limit is lower: 64 descriptors stay for the
/// database, content files and accept itself.
pub fn default_max_connections() -> usize {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            return (lim.rlim_cur as usize).saturating_sub(64).clamp(16, 4096);
        }
    }
    4096
}
