//! Exit codes, after rclone's (`rclone help flags`, "Exit Code"), decided in one place.

use ocloud_client::Error;

/// What the process exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success = 0,
    /// 1: syntax or usage error.
    Usage = 1,
    /// 2: error not otherwise categorised.
    Error = 2,
    /// 3: directory not found.
    DirNotFound = 3,
    /// 4: file not found.
    FileNotFound = 4,
    /// 5: temporary error (rate limit, unavailable, network); retrying later may work.
    Temporary = 5,
    /// 6: less serious errors: some files of a transfer failed, the others went.
    Partial = 6,
    /// 7: fatal error: not logged in, credentials refused, forbidden.
    Fatal = 7,
}

/// The text of `--help` that lists them.
pub const HELP: &str = "Exit codes (as rclone's): 0 success, 1 usage error, 2 other error, 3 folder not found, \
4 file not found, 5 temporary error (retry later), 6 some files failed, 7 fatal (login needed, access refused).";

/// A failure that already knows its exit code.
#[derive(Debug)]
pub struct Coded(pub Exit, pub String);

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Coded {}

/// Sorts an error into an exit code.
pub fn classify(e: &anyhow::Error) -> Exit {
    if let Some(c) = e.downcast_ref::<Coded>() {
        return c.0;
    }
    let Some(client) = e.chain().find_map(|c| c.downcast_ref::<Error>()) else {
        return Exit::Error;
    };
    match client {
        Error::NotFound(p) if p.ends_with('/') => Exit::DirNotFound,
        Error::NotFound(_) => Exit::FileNotFound,
        Error::NotAuthenticated | Error::Authorization(_) | Error::OAuth { .. } => Exit::Fatal,
        Error::Api(a) if a.status == 401 || (a.status == 403 && a.code != Some(53)) => Exit::Fatal,
        Error::Api(a) if a.status == 404 => Exit::FileNotFound,
        e if e.is_retryable() => Exit::Temporary,
        Error::Invalid(_) => Exit::Usage,
        _ => Exit::Error,
    }
}
