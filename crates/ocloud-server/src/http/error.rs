//! The one place where failures become HTTP answers: the status and body of the spec's
//! table (§4.1) in the configured shape (`--error-shape`, §4.2).
//!
//! A handler returns an [`ApiError`]; its response carries the error in its extensions, and
//! [`render`] (run around the routes, by `http::front` and the web interface's dispatch)
//! writes the final body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ocloud_wire::error::{DualError, ErrorBody, ErrorCode, LegacyLabel, WrappedError};

use crate::config::ErrorShape;
use crate::domain::Error;

/// Header carrying a human-readable reason on 4xx answers; the body stays byte-exact.
pub const DETAIL_HEADER: &str = "x-ocloud-detail";

/// Which legacy shape an error takes under `--error-shape legacy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    /// Wrapped `{"error": {code, message, description}}` (the default legacy shape).
    Wrapped,
    /// A PDK label body `{"error": {code, label, details}}`.
    Label(LegacyLabel),
    /// A back-end error in the new shape: code 800, message `PDK_xx_nnnn-LABEL`.
    Backend(LegacyLabel),
}

/// An error answer. Carried in the response's extensions so the legacy layer can rewrite it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Table row.
    pub code: ErrorCode,
    /// Why, for logs and the detail header (never sent for 5xx).
    pub detail: String,
    /// Shape under `--error-shape legacy`.
    pub legacy: Legacy,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
    /// Answered with this label's body whatever the shape: the upload host's own answer to a
    /// bad token (spec §2.3), which clients tell apart from the API host's.
    pub fixed_label: Option<LegacyLabel>,
}

impl ApiError {
    /// An error of this code.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError { code, detail: detail.into(), legacy: Legacy::Wrapped, retry_after: None, fixed_label: None }
    }

    /// The upload host's answer to a missing, unknown or expired token: 401 with the
    /// `PDK_RP_0004 INVALID_TOKEN` body in every shape. Other errors pass unchanged.
    pub fn on_upload_host(mut self) -> ApiError {
        if matches!(
            self.code,
            ErrorCode::MissingCredentials | ErrorCode::InvalidCredentials | ErrorCode::ExpiredCredentials
        ) {
            self.fixed_label = Some(LegacyLabel::InvalidToken);
        }
        self
    }

    /// Same error, answered with a PDK label under `--legacy-errors`.
    pub fn with_label(mut self, label: LegacyLabel) -> ApiError {
        self.legacy = Legacy::Label(label);
        self
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let detail = e.to_string();
        let code = match &e {
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::BadId(_) => ErrorCode::InvalidUrlParameter,
            Error::InvalidName(..) | Error::Exists(_) | Error::IntoItself => ErrorCode::InvalidBodyField,
            Error::Forbidden(_) => {
                let mut err = ApiError::new(ErrorCode::AccessDenied, detail);
                err.legacy = Legacy::Backend(LegacyLabel::ForbiddenAccess);
                return err;
            }
            // Quota and size: the table has no row of their own; 413/66 is the closest
            // ("larger than the server is willing to process"). README: "Quota".
            Error::QuotaExceeded { .. } => {
                return ApiError::new(ErrorCode::PayloadTooLarge, detail).with_label(LegacyLabel::NoSpaceLeft);
            }
            Error::TooLarge { .. } => {
                return ApiError::new(ErrorCode::PayloadTooLarge, detail).with_label(LegacyLabel::TooBigFile);
            }
            Error::MissingCredentials => ErrorCode::MissingCredentials,
            Error::InvalidCredentials => ErrorCode::InvalidCredentials,
            Error::ExpiredCredentials => ErrorCode::ExpiredCredentials,
            Error::AccessDenied(_) => ErrorCode::AccessDenied,
            Error::BlockedApp => ErrorCode::ForbiddenRequester,
            Error::BlockedUser => ErrorCode::ForbiddenUser,
            Error::RateLimited(secs) => {
                let mut err = ApiError::new(ErrorCode::TooManyRequests, detail);
                err.retry_after = Some((*secs).max(1));
                return err;
            }
            // The table has no "storage full" row; 503/5 ("temporarily unavailable") is what
            // it is for the caller: retry later, once space is freed. README: "Full disk".
            Error::DiskFull(why) => {
                tracing::warn!(error = %crate::logsafe::Esc(why), "disk full: upload refused");
                let mut err = ApiError::new(ErrorCode::Unavailable, "disk full");
                err.retry_after = Some(60);
                return err;
            }
            // A backend outage is temporary: 503/5 with a fixed text, never a 500 with
            // internals; the service recovers by itself when the backend returns.
            Error::Unavailable(why) => {
                tracing::warn!(error = %crate::logsafe::Esc(why), "storage unavailable");
                let mut err = ApiError::new(ErrorCode::Unavailable, "storage unavailable");
                err.retry_after = Some(5);
                return err;
            }
            Error::Internal(_) => ErrorCode::Internal,
        };
        ApiError::new(code, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = self.code.code(), detail = %crate::logsafe::Esc(&self.detail), "request failed");
        } else {
            tracing::debug!(code = self.code.code(), detail = %crate::logsafe::Esc(&self.detail), "request refused");
        }
        let mut res = (status, axum::Json(ErrorBody::from(self.code))).into_response();
        // 503s carry fixed texts (starting, over capacity, disk full), never internals.
        if (!status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE)
            && let Ok(v) = HeaderValue::from_str(&self.detail.replace(['\r', '\n'], " "))
        {
            res.headers_mut().insert(DETAIL_HEADER, v);
        }
        if let Some(s) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res.extensions_mut().insert(self);
        res
    }
}

/// Writes the final body of an error answer: `shape`, and the code an expired token gets
/// (`expired_code`: 41 or 42). Answers without an [`ApiError`] pass unchanged.
pub fn render(mut res: Response, shape: ErrorShape, expired_code: u16) -> Response {
    let Some(err) = res.extensions_mut().remove::<ApiError>() else {
        return res;
    };
    let code = match err.code {
        ErrorCode::ExpiredCredentials if expired_code == 41 => ErrorCode::InvalidCredentials,
        c => c,
    };
    let (status, body) = match (err.fixed_label, shape, err.legacy) {
        (Some(label), ..) => (label.parts().0, serde_json::to_vec(&label.body())),
        (None, ErrorShape::Flat, _) => (code.status(), serde_json::to_vec(&ErrorBody::from(code))),
        (None, ErrorShape::Both, _) => (code.status(), serde_json::to_vec(&DualError::from(code))),
        (None, ErrorShape::Wrapped | ErrorShape::Legacy, Legacy::Wrapped) | (None, ErrorShape::Wrapped, _) => {
            (code.status(), serde_json::to_vec(&WrappedError { error: ErrorBody::from(code) }))
        }
        (None, ErrorShape::Legacy, Legacy::Label(label)) => (label.parts().0, serde_json::to_vec(&label.body())),
        (None, ErrorShape::Legacy, Legacy::Backend(label)) => {
            let (_, pdk, name, details) = label.parts();
            let body = ErrorBody { code: 800, message: format!("{pdk}-{name}"), description: details.to_owned() };
            (code.status(), serde_json::to_vec(&body))
        }
    };
    let mut out = Response::new(axum::body::Body::from(body.unwrap_or_default()));
    *out.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    // Appended, not inserted: a header can have several values (the web interface's renewed
    // session cookies on a refused gateway call), and insert kept the last one only.
    for (k, v) in res.headers() {
        if k != header::CONTENT_LENGTH {
            headers.append(k.clone(), v.clone());
        }
    }
    out.extensions_mut().insert(err);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_error_keeps_every_value_of_its_headers() {
        let mut res = ApiError::new(ErrorCode::AccessDenied, "no").into_response();
        res.headers_mut().append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        res.headers_mut().append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        let out = render(res, ErrorShape::Flat, 40);
        let cookies: Vec<_> = out.headers().get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(out.headers().get_all(header::CONTENT_TYPE).iter().count(), 1);
    }
}
