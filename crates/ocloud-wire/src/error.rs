//! The error model of spec §4.
//!
//! [`ErrorCode`] is the table of §4.1: each code knows its HTTP status, `message` and
//! `description`. [`ErrorBody`] is the documented top-level body; [`WrappedError`] and
//! [`LegacyError`] are the other shapes seen in the field (§4.2); [`OAuthError`] is what the
//! OAuth endpoints answer.
//!
//! ```
//! use ocloud_wire::{ErrorBody, ErrorCode};
//! let body = ErrorBody::from(ErrorCode::ExpiredCredentials);
//! assert_eq!(ErrorCode::ExpiredCredentials.status(), 401);
//! assert_eq!(serde_json::to_string(&body).unwrap(),
//!     r#"{"code":42,"message":"Expired credentials","description":"The requested service needs credentials, and the ones provided were out-of-date."}"#);
//! ```

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($status:literal, $code:literal, $message:literal, $description:literal), )*) => {
        /// One row of the error table of spec §4.1.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code of the table, in table order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The HTTP status this code is sent with.
            pub const fn status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }

            /// The numeric `code` field.
            pub const fn code(self) -> u16 {
                match self { $( ErrorCode::$variant => $code, )* }
            }

            /// The `message` field, exactly as on the wire.
            pub const fn message(self) -> &'static str {
                match self { $( ErrorCode::$variant => $message, )* }
            }

            /// The `description` field, exactly as on the wire.
            pub const fn description(self) -> &'static str {
                match self { $( ErrorCode::$variant => $description, )* }
            }

            /// The table row with this numeric code.
            pub fn from_code(code: u16) -> Option<ErrorCode> {
                Self::ALL.iter().copied().find(|c| c.code() == code)
            }
        }
    };
}

error_codes! {
    /// A path parameter (an item id) is not valid.
    InvalidUrlParameter = (400, 20, "Invalid URL parameter value", "One or more URL path parameters contain invalid values."),
    /// A body was required and none came.
    MissingBody = (400, 21, "Missing body", "A request body was expected but none was sent."),
    /// The body cannot be parsed.
    InvalidBody = (400, 22, "Invalid body", "The request body is malformed and cannot be parsed."),
    /// A required body field is missing.
    MissingBodyField = (400, 23, "Missing body field", "One or more required body fields are missing."),
    /// A body field has an invalid value (bad name, duplicate name, …).
    InvalidBodyField = (400, 24, "Invalid body field", "One or more body fields contain invalid values."),
    /// A required header is missing.
    MissingHeader = (400, 25, "Missing header", "One or more required headers are missing."),
    /// A header has an invalid value.
    InvalidHeader = (400, 26, "Invalid header value", "One or more headers contain invalid values."),
    /// A required query parameter is missing.
    MissingQueryParameter = (400, 27, "Missing query-string parameter", "One or more required query-string parameters are missing."),
    /// A query parameter has an invalid value.
    InvalidQueryParameter = (400, 28, "Invalid query-string parameter value", "One or more query-string parameters contain invalid values."),
    /// No credentials were sent.
    MissingCredentials = (401, 40, "Missing credentials", "The requested service needs credentials, but none were provided."),
    /// The credentials are unknown or revoked.
    InvalidCredentials = (401, 41, "Invalid credentials", "The requested service needs credentials, but the ones provided were invalid."),
    /// The credentials have expired.
    ExpiredCredentials = (401, 42, "Expired credentials", "The requested service needs credentials, and the ones provided were out-of-date."),
    /// The application may not do this (scope, sandbox).
    AccessDenied = (403, 50, "Access denied", "The application is not allowed to access this endpoint."),
    /// The application is blocked.
    ForbiddenRequester = (403, 51, "Forbidden requester", "The application making the request has been blocked."),
    /// The user is blocked.
    ForbiddenUser = (403, 52, "Forbidden user", "The request was made on behalf of a blocked user."),
    /// The rate limit is exceeded.
    TooManyRequests = (403, 53, "Too many requests", "The application has made too many calls and has exceeded the rate limit for this service."),
    /// Unknown path or item.
    NotFound = (404, 60, "Resource not found", "The requested URI or the requested resource does not exist."),
    /// The path exists but not with this method; sent with an `Allow` header.
    MethodNotAllowed = (405, 61, "Method not allowed", "The URI does not support the requested method. The available methods should be set in the response header 'Allow'"),
    /// The `Accept` header excludes JSON.
    NotAcceptable = (406, 62, "Not acceptable", "The Accept incoming header does not match any available content-type."),
    /// The body stalled.
    RequestTimeout = (408, 63, "Request time-out", "The server timed out waiting for the incoming request."),
    /// A `Content-Length` was required.
    LengthRequired = (411, 64, "Length required", "The request did not specify a Content-Length header, which is required by the requested resource."),
    /// A conditional header failed.
    PreconditionFailed = (412, 65, "Precondition failed", "One of the precondition request headers (aka. 'If-None-Match', 'If-Match', 'If-Modified-Since', and 'If-Unmodified-Since') failed to match."),
    /// The body is over the limit.
    PayloadTooLarge = (413, 66, "Request entity too large", "The body of a request (PATCH, POST and PUT methods) is larger than the server is willing or able to process."),
    /// The URI is over the limit.
    UriTooLong = (414, 67, "Request-URI too long", "The URI provided was too long for the server to process."),
    /// The body's content type is not accepted here.
    UnsupportedMediaType = (415, 68, "Unsupported Media Type", "The format of the posted body is not supported by the endpoint."),
    /// Anything unexpected; never carries internals.
    Internal = (500, 1, "internal error", "Generic failure message, used if no more precise code can be provided."),
    /// The service is starting or stopping.
    Unavailable = (503, 5, "The service is temporarily unavailable", "The service behind the requested endpoint is temporarily unavailable or unreachable."),
    /// The service is over capacity.
    OverCapacity = (503, 6, "Orange API is over capacity, retry later !", "The service faces too much requests and can not handle the call."),
}

/// The documented error body (spec §4.1), top level: `{code, message, description}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Numeric code of the table.
    pub code: u16,
    /// Short message.
    pub message: String,
    /// Longer description.
    pub description: String,
}

impl From<ErrorCode> for ErrorBody {
    fn from(c: ErrorCode) -> Self {
        ErrorBody { code: c.code(), message: c.message().to_owned(), description: c.description().to_owned() }
    }
}

/// Shape 1 of spec §4.2: the same fields wrapped in `{"error": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedError {
    /// The wrapped body.
    pub error: ErrorBody,
}

/// The top-level fields and the wrapped object at once: the one body that clients reading
/// either shape of spec §4.1 understand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DualError {
    /// Numeric code of the table.
    pub code: u16,
    /// Short message.
    pub message: String,
    /// Longer description.
    pub description: String,
    /// The same three fields.
    pub error: ErrorBody,
}

impl From<ErrorCode> for DualError {
    fn from(c: ErrorCode) -> Self {
        DualError {
            code: c.code(),
            message: c.message().to_owned(),
            description: c.description().to_owned(),
            error: c.into(),
        }
    }
}

/// Shape 2 of spec §4.2: `{"error": {"code": "PDK_RP_0004", "label": "INVALID_TOKEN", "details": "…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyError {
    /// The wrapped body.
    pub error: LegacyErrorBody,
}

/// The inside of a [`LegacyError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyErrorBody {
    /// `PDK_xx_nnnn` code.
    pub code: String,
    /// Upper-case label such as `INVALID_TOKEN`.
    pub label: String,
    /// Free text.
    pub details: String,
}

/// The legacy labels of spec §4.2 and the PDK codes and HTTP statuses we send them with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegacyLabel {
    /// Token rejected by the upload host (401).
    InvalidToken,
    /// Session id expired (500).
    SessionExpired,
    /// Write outside the app folder (403).
    ForbiddenAccess,
    /// Quota exhausted (500).
    NoSpaceLeft,
    /// File over the size limit (500).
    TooBigFile,
}

impl LegacyLabel {
    /// `(HTTP status, PDK code, label, details)`.
    pub const fn parts(self) -> (u16, &'static str, &'static str, &'static str) {
        match self {
            LegacyLabel::InvalidToken => (401, "PDK_RP_0004", "INVALID_TOKEN", "OIDC rejected the token"),
            LegacyLabel::SessionExpired => (500, "PDK_RP_0005", "SESSION_EXPIRED", "The session has expired"),
            LegacyLabel::ForbiddenAccess => {
                (403, "PDK_CW_0003", "FORBIDDEN_ACCESS", "Forbidden access for the requested resource")
            }
            LegacyLabel::NoSpaceLeft => (500, "PDK_UP_0010", "NO_SPACE_LEFT", "Not enough free space for this file"),
            LegacyLabel::TooBigFile => {
                (500, "PDK_UP_0011", "TOO_BIG_FILE", "The file is larger than the maximum upload size")
            }
        }
    }

    /// The body of this label in the legacy shape.
    pub fn body(self) -> LegacyError {
        let (_, code, label, details) = self.parts();
        LegacyError {
            error: LegacyErrorBody { code: code.to_owned(), label: label.to_owned(), details: details.to_owned() },
        }
    }
}

/// Error body of the OAuth endpoints (spec §4.2 shape 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthError {
    /// RFC 6749 error code such as `invalid_grant`.
    pub error: String,
    /// Human-readable text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_28_distinct_codes() {
        assert_eq!(ErrorCode::ALL.len(), 28);
        let mut codes: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), 28);
        assert_eq!(ErrorCode::from_code(6), Some(ErrorCode::OverCapacity));
        assert_eq!(ErrorCode::OverCapacity.message(), "Orange API is over capacity, retry later !");
    }

    #[test]
    fn status_follows_code_ranges() {
        for c in ErrorCode::ALL {
            let expected = match c.code() {
                20..=28 => 400,
                40..=42 => 401,
                50..=53 => 403,
                60 => 404,
                61 => 405,
                62 => 406,
                63 => 408,
                64 => 411,
                65 => 412,
                66 => 413,
                67 => 414,
                68 => 415,
                1 => 500,
                _ => 503,
            };
            assert_eq!(c.status(), expected, "{c:?}");
        }
    }
}
