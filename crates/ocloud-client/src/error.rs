//! One error type for the whole client, carrying what the service said.

use ocloud_wire::error::{ErrorBody, LegacyError, OAuthError, WrappedError};

/// Everything a call can fail with.
///
/// ```
/// # fn f(e: ocloud_client::Error) {
/// match &e {
///     ocloud_client::Error::Api(api) if api.code == Some(60) => println!("not found: {}", api.message),
///     other => println!("{other}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service answered with an error (any of the shapes of spec §4).
    #[error("{0}")]
    Api(ApiError),
    /// The OAuth endpoints refused (`{error, error_description}`).
    #[error("OAuth error {status} {error}: {description}")]
    OAuth {
        /// HTTP status.
        status: u16,
        /// `invalid_grant`, `invalid_client`, …
        error: String,
        /// Human-readable text.
        description: String,
    },
    /// The authorization redirect carried an error, a wrong state, or no code.
    #[error("authorization failed: {0}")]
    Authorization(String),
    /// No token yet: call one of the `init_*` methods first.
    #[error("not authenticated: log in first")]
    NotAuthenticated,
    /// Network, TLS or protocol failure.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// A large transfer's own connection (plain HTTP, see [`crate::Files::download`] and
    /// [`crate::Files::upload_path`]) failed, timed out or closed early.
    #[error("connection for {url}: {source}")]
    Connection {
        /// The URL fetched.
        url: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Local file failure, naming the file.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A path that does not exist remotely.
    #[error("{0}: no such file or folder")]
    NotFound(String),
    /// Waited too long (authorization listener, retries).
    #[error("timed out: {0}")]
    Timeout(String),
    /// Bad input (URL, path, size).
    #[error("{0}")]
    Invalid(String),
}

/// Result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error answer of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Numeric code (spec §4.1; 800 for back-end errors), when the body had one.
    pub code: Option<u16>,
    /// `PDK_xx_nnnn` code of the legacy label shape.
    pub legacy_code: Option<String>,
    /// `message`, or the legacy `label`.
    pub message: String,
    /// `description`, or the legacy `details`.
    pub description: String,
    /// The service's `x-ocloud-detail` header, when present.
    pub detail: Option<String>,
    /// `Retry-After` seconds, when present.
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(c) = self.code {
            write!(f, " (HTTP {}, code {c})", self.status)?;
        } else {
            write!(f, " (HTTP {})", self.status)?;
        }
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// Parses an error body of any of the four shapes of spec §4 (top level, wrapped, PDK
    /// label, OAuth); an unparsable body still gives an error with the status.
    pub fn parse(status: u16, body: &[u8]) -> ApiError {
        let mut e = ApiError {
            status,
            code: None,
            legacy_code: None,
            message: String::new(),
            description: String::new(),
            detail: None,
            retry_after: None,
        };
        if let Ok(b) = serde_json::from_slice::<ErrorBody>(body) {
            (e.code, e.message, e.description) = (Some(b.code), b.message, b.description);
        } else if let Ok(w) = serde_json::from_slice::<WrappedError>(body) {
            (e.code, e.message, e.description) = (Some(w.error.code), w.error.message, w.error.description);
        } else if let Ok(l) = serde_json::from_slice::<LegacyError>(body) {
            (e.legacy_code, e.message, e.description) = (Some(l.error.code), l.error.label, l.error.details);
        } else if let Ok(o) = serde_json::from_slice::<OAuthError>(body) {
            (e.message, e.description) = (o.error, o.error_description.unwrap_or_default());
        } else {
            e.message = format!("HTTP {status}");
            e.description = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        }
        e
    }

    /// The token was refused: 401 with code 41 or 42, or the upload host's `INVALID_TOKEN`.
    pub fn is_token_rejected(&self) -> bool {
        self.status == 401 && (matches!(self.code, Some(41 | 42)) || self.message == "INVALID_TOKEN")
    }

    /// Worth retrying later: rate limit (403/53), unavailable or over capacity (503/5, 503/6).
    pub fn is_transient(&self) -> bool {
        (self.status == 403 && self.code == Some(53)) || self.status == 503 || self.status == 429
    }

    /// Worth retrying for idempotent calls: an internal error.
    pub fn is_server_fault(&self) -> bool {
        self.status >= 500 && self.status != 501
    }

    /// The item does not exist (404/60).
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
}

impl Error {
    /// The service's answer, if the service answered.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(a) => Some(a),
            _ => None,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api(a) => a.is_transient() || a.is_server_fault(),
            Error::Http(h) => {
                (h.is_timeout() || h.is_connect() || h.is_request() || h.is_body()) && !is_certificate_refusal(h)
            }
            Error::Connection { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io { path: path.as_ref().display().to_string(), source }
    }
}

/// The server's certificate was refused (unknown issuer, wrong name, expired): asking again
/// cannot help, unlike a refused or dropped connection.
fn is_certificate_refusal(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.to_string().contains("invalid peer certificate") {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_shapes() {
        let top = ApiError::parse(404, br#"{"code":60,"message":"Resource not found","description":"d"}"#);
        assert_eq!((top.code, top.message.as_str()), (Some(60), "Resource not found"));
        let wrapped =
            ApiError::parse(401, br#"{"error":{"code":41,"message":"Invalid credentials","description":"d"}}"#);
        assert!(wrapped.is_token_rejected());
        let label = ApiError::parse(401, br#"{"error":{"code":"PDK_RP_0004","label":"INVALID_TOKEN","details":"x"}}"#);
        assert!(label.is_token_rejected());
        assert_eq!(label.legacy_code.as_deref(), Some("PDK_RP_0004"));
        let oauth = ApiError::parse(400, br#"{"error":"invalid_grant","error_description":"used"}"#);
        assert_eq!((oauth.message.as_str(), oauth.description.as_str()), ("invalid_grant", "used"));
        let junk = ApiError::parse(502, b"<html>bad gateway</html>");
        assert!(junk.is_server_fault() && junk.code.is_none());
        assert!(ApiError::parse(403, br#"{"code":53,"message":"Too many requests","description":""}"#).is_transient());
    }
}
