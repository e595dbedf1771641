//! The rules of the service: who sees what, the folder tree, names, copy/move semantics,
//! quotas, uploads and renditions. Knows nothing of HTTP; talks to storage only through the
//! [`Metadata`] and [`Blobs`] traits.

pub mod auth;
pub mod cache;
pub mod caller;
pub mod content;
pub mod control;
pub mod dates;
pub mod error;
pub mod kinds;
pub mod legacy;
pub mod limits;
pub mod login_guard;
pub mod media_meta;
pub mod names;
pub mod oauth;
pub mod renditions;
pub mod seed;
pub mod settings;
pub mod snapshots;
pub mod tree;
pub mod upload;

use std::sync::Arc;

use crate::blobs::Blobs;
use crate::config::Config;
use crate::store::Metadata;

pub use auth::Access;
pub use error::{Error, Result};
pub use tree::{Item, ListParams};

/// The service's domain layer: storage backends plus configuration. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    /// Metadata backend.
    pub meta: Arc<dyn Metadata>,
    /// Content backend.
    pub blobs: Arc<dyn Blobs>,
    /// Configuration.
    pub cfg: Arc<Config>,
    /// Base of content URLs, without trailing slash.
    pub public_url: String,
    /// The one source of time (shared with the metadata backend).
    pub clock: crate::clock::Clock,
    pub(crate) renders: Arc<tokio::sync::Semaphore>,
    rendering: Arc<renditions::InFlight>,
    pub(crate) claimed: Arc<content::ClaimedKeys>,
    limits: Arc<limits::RateLimits>,
    pub(crate) caches: Arc<cache::Caches>,
    login_guard: Arc<login_guard::LoginGuard>,
    pub(crate) snapshots: Arc<snapshots::Snapshots>,
    /// The values an emulator changes at run time (quota, token TTL…), from `cfg` at start.
    pub settings: Arc<settings::Settings>,
}

impl Service {
    /// Assembles the domain layer over its two backends.
    pub fn new(
        meta: Arc<dyn Metadata>,
        blobs: Arc<dyn Blobs>,
        cfg: Arc<Config>,
        public_url: String,
        clock: crate::clock::Clock,
    ) -> Service {
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Service {
            settings: Arc::new(settings::Settings::new(&cfg)),
            meta,
            blobs,
            cfg,
            public_url,
            clock,
            renders: Arc::new(tokio::sync::Semaphore::new(workers)),
            rendering: Arc::default(),
            claimed: Arc::default(),
            limits: Arc::default(),
            caches: Arc::default(),
            login_guard: Arc::default(),
            snapshots: Arc::default(),
        }
    }
}
