//! What can go wrong in the domain, by meaning. `http::error` maps these onto the spec's table.

use crate::blobs::BlobError;
use crate::store::StoreError;

/// A domain failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such item (or not visible to this token).
    #[error("{0} not found")]
    NotFound(String),
    /// An id that is not an id.
    #[error("invalid id {0:?}")]
    BadId(String),
    /// A name the service refuses.
    #[error("invalid name {0:?}: {1}")]
    InvalidName(String, &'static str),
    /// A sibling has this name.
    #[error("an item named {0:?} already exists in the destination folder")]
    Exists(String),
    /// Moving or copying a folder into itself.
    #[error("a folder cannot be moved or copied into itself")]
    IntoItself,
    /// Outside what the token may write.
    #[error("{0}")]
    Forbidden(String),
    /// Quota.
    #[error("not enough free space: {needed} bytes needed, {free} free")]
    QuotaExceeded {
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// Over `--max-upload-size`.
    #[error("file of {size} bytes is over the {max} bytes upload limit")]
    TooLarge {
        /// Declared or actual size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// No token.
    #[error("no access token")]
    MissingCredentials,
    /// Unknown or revoked token.
    #[error("unknown or revoked access token")]
    InvalidCredentials,
    /// Expired token.
    #[error("expired access token")]
    ExpiredCredentials,
    /// The token lacks a needed scope.
    #[error("{0}")]
    AccessDenied(String),
    /// The application is disabled.
    #[error("application blocked")]
    BlockedApp,
    /// The user is disabled.
    #[error("user blocked")]
    BlockedUser,
    /// Over the rate limit; retry after this many seconds.
    #[error("rate limit exceeded: retry in {0} s")]
    RateLimited(u64),
    /// No room left to store content or metadata; retry once space is freed.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// A storage backend cannot be reached (database or object store down); retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else; logged, never shown.
    #[error("{0}")]
    Internal(String),
}

/// Result of a domain call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Error::NotFound(what),
            StoreError::AlreadyExists(name) => Error::Exists(name),
            StoreError::QuotaExceeded { needed, free } => Error::QuotaExceeded { needed, free },
            StoreError::IntoItself => Error::IntoItself,
            StoreError::Full(why) => Error::DiskFull(why),
            StoreError::Unavailable(why) => Error::Unavailable(why),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<BlobError> for Error {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Full(why) => Error::DiskFull(why),
            BlobError::Unavailable(why) => Error::Unavailable(why),
            other => Error::Internal(other.to_string()),
        }
    }
}
