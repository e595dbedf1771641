//! The interface's script and stylesheet, embedded in the binary and served under names that
//! carry a hash of their content, so browsers may keep them forever (`immutable`) and a new
//! version is a new name.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;

/// One embedded file.
pub struct Asset {
    /// Its served name, `<stem>.<hash>.<ext>`.
    pub name: String,
    body: &'static str,
    mime: &'static str,
}

fn asset(stem: &str, ext: &str, body: &'static str, mime: &'static str) -> Asset {
    let hash = sha2::Sha256::digest(body.as_bytes());
    let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    Asset { name: format!("{stem}.{hex}.{ext}"), body, mime }
}

/// The script.
pub static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| asset("app", "js", include_str!("assets/app.js"), "text/javascript; charset=utf-8"));
/// The stylesheet.
pub static STYLE: LazyLock<Asset> =
    LazyLock::new(|| asset("app", "css", include_str!("assets/app.css"), "text/css; charset=utf-8"));

/// `GET /ui/assets/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(a) = [&*SCRIPT, &*STYLE].into_iter().find(|a| a.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut res = a.body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    res
}
