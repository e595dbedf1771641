//! The web interface at `/`, for people: browse, upload, organise, view. Server-rendered
//! pages (`pages`), one hand-written script and one stylesheet embedded in the binary under
//! hashed names (`assets`), and thin handlers:
//!
//! - `session`: the interface is a first-party OAuth client of the service's own
//!   authorization server (the login page, PKCE, `state`); its tokens live in `HttpOnly`,
//!   `SameSite=Strict` cookies, refreshed ahead of expiry, so a restart or another instance
//!   changes nothing for the page;
//! - `gateway`: `/ui/api/…` is `/cloud/v1/…` with the session's token. The page reaches the
//!   data only through the API every other client uses. Calls that change anything need the
//!   page's `Origin` and its CSRF token (double submit: cookie and header);
//! - `zip`: a folder or a selection as a zip, streamed while the API's answers stream in;
//! - `account`: free space and the connected applications (the OAuth grants), with Revoke
//!   (the one part that calls the domain: the API has no call for grants).

pub mod account;
pub mod assets;
pub mod gateway;
pub mod pages;
pub mod session;
pub mod zip;

use axum::Router;
use axum::routing::{any, get, post};

use crate::http::AppState;

/// What the interface's handlers share: the service's state, and the API service the
/// gateway and the zip call into.
#[derive(Clone)]
pub struct UiState {
    /// The service.
    pub app: AppState,
    /// `/cloud/v1` and the rest, as clients see them (with every check).
    pub api: crate::http::Api,
}

/// The interface's routes.
pub fn routes(state: UiState) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/ui/signin", get(session::signin))
        .route("/ui/callback", get(session::callback))
        .route("/ui/signout", post(session::signout))
        .route("/ui/signedout", get(session::signed_out))
        .route("/ui/account", get(account::page))
        .route("/ui/grants/{client_id}/revoke", post(account::revoke))
        .route("/ui/api/{*rest}", any(gateway::forward))
        .route("/ui/zip", get(zip::download))
        .route("/ui/assets/{name}", get(assets::serve))
        .with_state(state)
}
