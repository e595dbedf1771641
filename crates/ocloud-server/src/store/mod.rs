//! Metadata storage: users, applications, tokens and the folder tree.
//!
//! The [`Metadata`] trait is the whole contract between the domain layer and a database.
//! Every method is one atomic transaction: it either happens entirely or not at all, and once
//! it returns `Ok` it is durable. Backends: [`sqlite`] (embedded default).

pub mod sqlite;

use async_trait::async_trait;
use ocloud_wire::model::FileType;

/// Database row id of a tree node.
pub type NodeId = i64;

/// Errors of a metadata backend, by meaning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named thing does not exist (any more).
    #[error("not found: {0}")]
    NotFound(String),
    /// A sibling already has this name.
    #[error("an item named {0:?} already exists there")]
    AlreadyExists(String),
    /// The operation would exceed the user's quota.
    #[error("quota exceeded: {needed} bytes needed, {free} free")]
    QuotaExceeded {
        /// Bytes the operation needs.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// A folder cannot be moved or copied into itself.
    #[error("a folder cannot be moved or copied into itself")]
    IntoItself,
    /// Anything else (I/O, corruption); the message is for logs only.
    #[error("metadata backend: {0}")]
    Backend(String),
}

/// Result of a metadata call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Per-user quota in bytes; `None` means the service default.
    pub quota: Option<u64>,
    /// Bytes stored (sum of file sizes, copies counted).
    pub used: u64,
    /// A disabled user gets 403/52.
    pub disabled: bool,
}

/// A registered application (OAuth client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Row id.
    pub id: i64,
    /// Display name, also the name of its folder in `mes dossiers partenaires`.
    pub name: String,
    /// OAuth client id.
    pub client_id: String,
    /// A disabled app gets 403/51.
    pub disabled: bool,
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// `access` or `refresh`.
    pub kind: String,
    /// Owner.
    pub user_id: i64,
    /// Application it was issued to.
    pub app_id: i64,
    /// Space-separated scopes.
    pub scope: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Revoked tokens are refused as unknown.
    pub revoked: bool,
}

/// A folder or a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Row id.
    pub id: NodeId,
    /// Owner.
    pub user_id: i64,
    /// `None` for a user's root.
    pub parent_id: Option<NodeId>,
    /// Name (NFC); empty for the root.
    pub name: String,
    /// Folder or file.
    pub is_dir: bool,
    /// Bytes (0 for folders).
    pub size: u64,
    /// Content key in the blob store (files only).
    pub blob: Option<String>,
    /// Kind (files only).
    pub file_type: Option<FileType>,
    /// MIME type (files only).
    pub mime: Option<String>,
    /// Free-form JSON object text.
    pub metadata: Option<String>,
    /// Unix milliseconds.
    pub created: i64,
    /// Unix milliseconds.
    pub updated: i64,
}

/// A node with the path of its parent relative to the folder a walk started from (`""` for
/// direct children).
#[derive(Debug, Clone, PartialEq)]
pub struct Descendant {
    /// The node.
    pub node: Node,
    /// Parent path relative to the walk's start, ending with `/` unless empty.
    pub parent_rel: String,
}

/// What [`Metadata::children`] returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildQuery {
    /// Include folders.
    pub dirs: bool,
    /// Include files.
    pub files: bool,
    /// Keep only files of this kind.
    pub file_type: Option<FileType>,
    /// Entries skipped (folders first, then files, each by name).
    pub offset: u64,
    /// Max entries; `None` for all.
    pub limit: Option<u64>,
}

/// A file about to be recorded.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Wanted name; renamed `stem(n).ext` on a clash.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Blob key holding the content (already durable).
    pub blob: String,
    /// Kind.
    pub file_type: FileType,
    /// MIME type.
    pub mime: String,
    /// JSON object text.
    pub metadata: Option<String>,
}

/// A token about to be stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// SHA-256 of the token text.
    pub hash: Vec<u8>,
    /// The record.
    pub record: TokenRecord,
}

/// The metadata contract. See the module docs for atomicity.
#[async_trait]
pub trait Metadata: Send + Sync + 'static {
    /// The user with this name, created (with its root folder) if missing.
    async fn ensure_user(&self, name: &str) -> StoreResult<User>;
    /// A user by id.
    async fn user(&self, id: i64) -> StoreResult<Option<User>>;
    /// The app with this name, created if missing (client id = name).
    async fn ensure_app(&self, name: &str) -> StoreResult<App>;
    /// Blocks or unblocks a user (`app == false`) or an app by name; `false` if unknown.
    async fn set_disabled(&self, app: bool, name: &str, disabled: bool) -> StoreResult<bool>;
    /// An app by id.
    async fn app(&self, id: i64) -> StoreResult<Option<App>>;

    /// Stores a token.
    async fn insert_token(&self, token: NewToken) -> StoreResult<()>;
    /// The token whose SHA-256 is `hash`.
    async fn token(&self, hash: &[u8]) -> StoreResult<Option<TokenRecord>>;
    /// Stores a legacy session id for a user.
    async fn insert_session(&self, esid: &str, user_id: i64, expires_at: i64) -> StoreResult<()>;

    /// The root folder of a user.
    async fn root(&self, user_id: i64) -> StoreResult<Node>;
    /// A node by row id.
    async fn node(&self, id: NodeId) -> StoreResult<Option<Node>>;
    /// Follows `names` from `start`, one child per name. `None` if any step is missing.
    async fn walk(&self, start: NodeId, names: &[String]) -> StoreResult<Option<Node>>;
    /// The folders of `names` below `start`, created as needed; the last one.
    async fn ensure_folders(&self, start: NodeId, names: &[String]) -> StoreResult<Node>;
    /// Direct children, folders first then files, each ordered by name.
    async fn children(&self, parent: NodeId, query: ChildQuery) -> StoreResult<Vec<Node>>;
    /// Every descendant (pre-order by path), folders only when `dirs_only`.
    async fn descendants(&self, folder: NodeId, dirs_only: bool) -> StoreResult<Vec<Descendant>>;
    /// Creates an empty folder. `AlreadyExists` if the name is taken.
    async fn create_folder(&self, parent: NodeId, name: &str) -> StoreResult<Node>;
    /// Records a file whose content is already durable; renames on a clash; checks the quota.
    async fn insert_file(&self, parent: NodeId, file: NewFile, quota: u64) -> StoreResult<Node>;
    /// Renames and/or moves a node. `AlreadyExists`, `IntoItself`.
    async fn relocate(&self, node: NodeId, parent: NodeId, name: &str) -> StoreResult<Node>;
    /// Copies a node (recursively) under `parent` as `name`, sharing blobs; checks the quota.
    async fn copy(&self, node: NodeId, parent: NodeId, name: &str, quota: u64)
    -> StoreResult<Node>;
    /// Deletes a node and its subtree; returns the blob keys no node references any more.
    async fn delete(&self, node: NodeId) -> StoreResult<Vec<String>>;
    /// Replaces a file's metadata JSON.
    async fn set_metadata(&self, node: NodeId, metadata: &str) -> StoreResult<()>;
    /// Every blob key some node references (for the start-up sweep of orphans).
    async fn blob_keys(&self) -> StoreResult<std::collections::HashSet<String>>;
}
