//! Service configuration, built once by the binary and read everywhere else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `ocloud serve` can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Where the database and the content live.
    pub data_dir: PathBuf,
    /// Base of downloadUrl/thumbUrl/previewUrl, e.g. `https://cloud.example.org`; default
    /// `http://<listen address>`.
    pub public_url: Option<String>,
    /// Quota of a user without one of their own, bytes.
    pub quota: u64,
    /// Largest accepted upload, bytes.
    pub max_upload_size: u64,
    /// Emit the wrapped and PDK_* error shapes of spec §4.2 instead of the top-level one.
    pub legacy_errors: bool,
    /// A request body that sends nothing for this long gets 408/63.
    pub body_timeout: Duration,
    /// Longest accepted request URI, bytes (414/67 above).
    pub max_uri_len: usize,
    /// Largest accepted JSON body, bytes (413/66 above).
    pub max_json_body: usize,
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
    /// Create the dev user and app on an empty data dir.
    pub dev_account: bool,
}

impl Config {
    /// The defaults of `ocloud serve` with no arguments.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            public_url: None,
            quota: 5 << 30,
            max_upload_size: 16 << 30,
            legacy_errors: false,
            body_timeout: Duration::from_secs(30),
            max_uri_len: 8192,
            max_json_body: 64 << 10,
            max_concurrent_requests: 1024,
            token_ttl: Duration::from_secs(3600),
            code_ttl: Duration::from_secs(60),
            rate_limit: 0,
            rotate_refresh_tokens: false,
            upload_url_ttl: Duration::from_secs(600),
            dev_account: true,
            cache: true,
        }
    }
}
