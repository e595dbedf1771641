//! # ocloud-client
//!
//! An async client for the Orange Cloud API — and for `ocloud serve`, its self-hosted
//! implementation: the surface of the reference Python client (`ApiManager` with the OAuth2
//! authorization-code flow and a local redirect listener, refresh tokens, the `freespace`,
//! `folders` and `files` domains), plus typed errors, retries with backoff, streaming
//! transfers with progress, and paths.
//!
//! ## Logging in
//!
//! ```no_run
//! # async fn f() -> ocloud_client::Result<()> {
//! use std::sync::Arc;
//! use ocloud_client::{ApiManager, Endpoints, FileTokenStore};
//!
//! let api = ApiManager::builder("my-client-id", "my-client-secret", "http://127.0.0.1:8910/callback")
//!     .endpoints(Endpoints::single("http://127.0.0.1:8080")) // or the default: Orange's hosts
//!     .token_store(Arc::new(FileTokenStore::new("tokens.json")))
//!     .build()?;
//! let url = api.init_authorize_code_process("a-random-state").await?;
//! println!("Open {url} in a browser");
//! let code = api.wait_and_terminate_authorize_code_process(None).await?;
//! api.init_with_authorize_code(&code).await?;
//! // Next time: the token store has the tokens already, or
//! // api.init_with_token(&saved_refresh_token).await?;
//! # Ok(()) }
//! ```
//!
//! ## A first upload
//!
//! ```no_run
//! # async fn f(api: ocloud_client::ApiManager) -> ocloud_client::Result<()> {
//! let folder = api.create_folder_all("/Photos/2024").await?;
//! let up = api.files().upload_path("beach.jpg".as_ref(), Some(&folder), None, None).await?;
//! let info = api.files().get(&up.file_id).await?;
//! println!("{} bytes, download at {:?}", info.size, info.download_url);
//! api.files().download(&up.file_id, "copy.jpg".as_ref(), None).await?;
//! # Ok(()) }
//! ```
//!
//! Errors are one [`Error`] type; [`ApiError`] carries the HTTP status and the Orange code of
//! any of the four error shapes of the spec. Failed calls are retried as the
//! [`RetryPolicy`] says, and a rejected token is refreshed once and the call replayed.

#![warn(missing_docs)]

mod auth;
mod cloud;
mod config;
mod error;
mod manager;
mod paths;
mod personal;
#[cfg(target_os = "linux")]
mod raw;
mod tls;
mod tokens;
mod transfer;

pub use auth::OAuthHttpError;
pub use cloud::{Files, Folders, ListParams};
pub use config::{Endpoints, ORANGE_API_URL, ORANGE_UPLOAD_URL, RetryPolicy};
pub use error::{ApiError, Error, Result};
pub use manager::{ApiManager, ApiManagerBuilder, Credentials};
/// The XML types of the legacy Personal APIs.
pub use ocloud_wire::legacy;
pub use ocloud_wire::model::{File, FileType, Folder, SubFolder, UpdateItem, UploadResponse};
pub use paths::{Entry, segments};
pub use personal::{PersonalContent, PersonalPhotos, UploadUrl};
pub use tls::client_builder as http_client_builder;
pub use tokens::{FileTokenStore, MemoryTokenStore, TokenStore, Tokens};
pub use transfer::{CHUNK, Progress, partial_path};
