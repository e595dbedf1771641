//! Metadata storage: users, applications, tokens and the folder tree.
//!
//! The [`Metadata`] trait is the whole contract between the domain layer and a database.
//! Every method is one atomic transaction: it either happens entirely or not at all, and once
//! it returns `Ok` it is durable. Backends: [`sqlite`] (embedded default) and [`postgres`].
//! Time is never stamped by a database: stores take it from the injected [`crate::clock::Clock`].
//! Schemas are versioned; see [`migrations`].

#[doc(hidden)]
pub mod conformance;
pub mod migrations;
pub mod postgres;
pub mod sqlite;
pub mod wal_index;

use async_trait::async_trait;
use ocloud_wire::model::FileType;

/// Database row id of a tree node.
pub type NodeId = i64;

/// Errors of a metadata backend, by meaning.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// The database cannot grow: its disk is full.
    #[error("metadata backend: disk full: {0}")]
    Full(String),
    /// The database cannot be reached (down, restarting, connections exhausted).
    #[error("metadata backend unavailable: {0}")]
    Unavailable(String),
    /// Anything else (I/O, corruption); the message is for logs only.
    #[error("metadata backend: {0}")]
    Backend(String),
}

/// A consent's scopes after adding `more` to `granted` (space-separated): each scope once, in
/// first-granted order. Policy lives here, not in SQL, so every backend merges alike.
pub fn merge_scopes(granted: &str, more: &[String]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in granted.split_whitespace().chain(more.iter().map(String::as_str)) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(" ")
}

/// A value of a row copied between backends (`admin migrate`); booleans are `Int` 0 or 1.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer (or a boolean).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// The type of a column, as both schemas have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 64-bit integer.
    Int,
    /// 32-bit integer (PostgreSQL `INTEGER`).
    Int32,
    /// Boolean (SQLite stores 0 or 1).
    Bool,
    /// Text.
    Text,
    /// Bytes.
    Bytes,
}

/// A table of the logical schema both backends share, for copying.
#[derive(Debug)]
pub struct TableSpec {
    /// Table name.
    pub name: &'static str,
    /// Columns in order; the first `key` of them are the primary key (the copy order).
    pub columns: &'static [(&'static str, Kind)],
    /// Columns of the primary key.
    pub key: usize,
}

impl TableSpec {
    /// The column names, comma-separated.
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
    }

    /// The key columns, comma-separated.
    pub fn key_list(&self) -> String {
        self.columns[..self.key].iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
    }
}

/// Every table of an installation, in an order that copies referenced rows first.
pub const TABLES: &[TableSpec] = {
    use Kind::*;
    &[
        TableSpec {
            name: "users",
            columns: &[
                ("id", Int),
                ("name", Text),
                ("password_hash", Text),
                ("quota", Int),
                ("used", Int),
                ("disabled", Bool),
                ("created", Int),
            ],
            key: 1,
        },
        TableSpec {
            name: "apps",
            columns: &[
                ("id", Int),
                ("name", Text),
                ("client_id", Text),
                ("secret_hash", Text),
                ("redirect_uris", Text),
                ("scopes", Text),
                ("rate_limit", Int32),
                ("disabled", Bool),
                ("created", Int),
            ],
            key: 1,
        },
        TableSpec {
            name: "blobs",
            columns: &[("key", Text), ("refs", Int), ("since", Int), ("reaping", Bool)],
            key: 1,
        },
        TableSpec {
            name: "nodes",
            columns: &[
                ("id", Int),
                ("user_id", Int),
                ("parent_id", Int),
                ("name", Text),
                ("is_dir", Bool),
                ("size", Int),
                ("blob", Text),
                ("file_type", Text),
                ("mime", Text),
                ("metadata", Text),
                ("created", Int),
                ("updated", Int),
            ],
            key: 1,
        },
        TableSpec {
            name: "tokens",
            columns: &[
                ("hash", Bytes),
                ("kind", Text),
                ("user_id", Int),
                ("app_id", Int),
                ("scope", Text),
                ("expires_at", Int),
                ("revoked", Bool),
                ("grant_id", Text),
            ],
            key: 1,
        },
        TableSpec {
            name: "codes",
            columns: &[
                ("hash", Bytes),
                ("app_id", Int),
                ("user_id", Int),
                ("redirect_uri", Text),
                ("scope", Text),
                ("code_challenge", Text),
                ("expires_at", Int),
                ("used", Bool),
            ],
            key: 1,
        },
        TableSpec { name: "consents", columns: &[("user_id", Int), ("app_id", Int), ("scope", Text)], key: 2 },
        TableSpec {
            name: "upload_urls",
            columns: &[
                ("hash", Bytes),
                ("cookie_hash", Bytes),
                ("user_id", Int),
                ("app_id", Int),
                ("scope", Text),
                ("name", Text),
                ("size", Int),
                ("expires_at", Int),
                ("used", Bool),
            ],
            key: 1,
        },
        TableSpec {
            name: "web_sessions",
            columns: &[("hash", Bytes), ("user_id", Int), ("csrf", Text), ("expires_at", Int)],
            key: 1,
        },
        TableSpec { name: "sessions", columns: &[("esid", Text), ("user_id", Int), ("expires_at", Int)], key: 1 },
        TableSpec { name: "secrets", columns: &[("name", Text), ("value", Bytes)], key: 1 },
    ]
};

/// The failed sign-ins of one key (an account or an address): see `domain::login_guard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    /// Failures in a row.
    pub count: u32,
    /// Unix ms of the last one.
    pub last: i64,
    /// Unix ms before which the next attempt is refused.
    pub wait_until: i64,
}

/// The rule applied to the failure records of one sign-in attempt, in key order: `Err(ms to
/// wait)` refuses it (records unchanged), `Ok` keeps the changed records.
pub type LoginStep<'a> = dyn Fn(&mut [Option<LoginFailures>]) -> Result<(), i64> + Send + Sync + 'a;

/// What a reset with `keep_accounts` runs (both schemas): the tree goes, accounts stay.
pub(crate) const RESET_FILES: &[&str] =
    &["DELETE FROM nodes WHERE parent_id IS NOT NULL", "UPDATE users SET used = 0", "DELETE FROM upload_urls"];

/// What a full reset runs (both schemas); a backend adds the tables only it has.
pub(crate) const RESET_ALL: &[&str] = &[
    "DELETE FROM nodes",
    "DELETE FROM users",
    "DELETE FROM apps",
    "DELETE FROM tokens",
    "DELETE FROM codes",
    "DELETE FROM consents",
    "DELETE FROM upload_urls",
    "DELETE FROM web_sessions",
    "DELETE FROM sessions",
];

/// How a file's kind is stored (both schemas).
pub(crate) fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::Picture => "PICTURE",
        FileType::Video => "VIDEO",
        FileType::Audio => "AUDIO",
        FileType::File => "FILE",
    }
}

/// A stored kind back (anything unknown is a plain file).
pub(crate) fn type_from(s: &str) -> FileType {
    match s {
        "PICTURE" => FileType::Picture,
        "VIDEO" => FileType::Video,
        "AUDIO" => FileType::Audio,
        _ => FileType::File,
    }
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
    /// Argon2 hash of the client secret (`None`: the app cannot use the token endpoint).
    pub secret_hash: Option<String>,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Scopes the app may ask for, space-separated.
    pub scopes: String,
    /// Requests per minute per user; `None`: the service default.
    pub rate_limit: Option<u32>,
}

/// An application about to be registered.
#[derive(Debug, Clone)]
pub struct NewApp {
    /// Display and folder name.
    pub name: String,
    /// OAuth client id.
    pub client_id: String,
    /// Argon2 hash of the secret.
    pub secret_hash: String,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Allowed scopes, space-separated.
    pub scopes: String,
    /// Requests per minute per user.
    pub rate_limit: Option<u32>,
}

/// A pending authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// App it was issued to.
    pub app_id: i64,
    /// User who consented.
    pub user_id: i64,
    /// The redirect URI of the authorize request.
    pub redirect_uri: String,
    /// Granted scopes.
    pub scope: String,
    /// PKCE S256 challenge, if the request had one.
    pub code_challenge: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A one-time upload URL of the Personal Content API (spec §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadUrl {
    /// SHA-256 of the `downloadUploadKey` cookie value.
    pub cookie_hash: Vec<u8>,
    /// Whose upload.
    pub user_id: i64,
    /// Through which app.
    pub app_id: i64,
    /// Scopes of the token that asked.
    pub scope: String,
    /// Declared name.
    pub name: String,
    /// Declared size.
    pub size: u64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A browser session of the login pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// Signed-in user.
    pub user_id: i64,
    /// CSRF token of the forms of this session.
    pub csrf: String,
    /// Unix seconds.
    pub expires_at: i64,
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
    /// Tokens of one grant (one code exchange) are revoked together.
    pub grant: String,
}

/// A token with its user and app ([`Grants::token_access`]); `None` where the row is gone.
#[derive(Debug, Clone)]
pub struct TokenAccess {
    /// The token.
    pub token: TokenRecord,
    /// Its user.
    pub user: Option<User>,
    /// Its app.
    pub app: Option<App>,
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

/// What [`Tree::children`] returns.
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

/// The metadata contract: the four parts below, each with its own contract; every call is
/// one atomic transaction, durable once it returns `Ok`.
pub trait Metadata: Accounts + Grants + Tree + Housekeeping {}

impl<T: Accounts + Grants + Tree + Housekeeping> Metadata for T {}

/// Users and applications.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    /// The user with this name, created (with its root folder) if missing.
    async fn ensure_user(&self, name: &str) -> StoreResult<User>;
    /// A user by id.
    async fn user(&self, id: i64) -> StoreResult<Option<User>>;
    /// The app with this name, created if missing (client id = name) with these scopes.
    async fn ensure_app(&self, name: &str, scopes: &str) -> StoreResult<App>;
    /// Blocks or unblocks a user (`app == false`) or an app by name; `false` if unknown.
    async fn set_disabled(&self, app: bool, name: &str, disabled: bool) -> StoreResult<bool>;
    /// An app by id.
    async fn app(&self, id: i64) -> StoreResult<Option<App>>;
    /// Registers a user. `AlreadyExists` if the name is taken.
    async fn create_user(&self, name: &str, password_hash: &str, quota: Option<u64>) -> StoreResult<User>;
    /// A user and their password hash, by name.
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<(User, Option<String>)>>;
    /// Every user, by name.
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// Removes a user, their files and tokens; returns the blob keys freed. `NotFound` if unknown.
    async fn remove_user(&self, name: &str) -> StoreResult<Vec<String>>;
    /// Registers an app. `AlreadyExists` if the name is taken.
    async fn create_app(&self, app: NewApp) -> StoreResult<App>;
    /// An app by OAuth client id.
    async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<App>>;
    /// Every app, by name.
    async fn apps(&self) -> StoreResult<Vec<App>>;
    /// Removes an app and its tokens, codes and consents. `false` if unknown.
    async fn remove_app(&self, name: &str) -> StoreResult<bool>;
}

/// What OAuth and the legacy APIs hand out: codes, consents, tokens, sessions, upload URLs.
/// Each call is one atomic step; read-then-write sequences (a code taken once, a token pair,
/// a consent merged) are single calls so they hold across instances.
#[async_trait]
pub trait Grants: Send + Sync + 'static {
    /// Stores an authorization code (by hash).
    async fn insert_code(&self, hash: &[u8], code: CodeRecord) -> StoreResult<()>;
    /// Takes a code and marks it used; the flag says whether it was used already (a
    /// replay). `None` for an unknown code.
    async fn take_code(&self, hash: &[u8]) -> StoreResult<Option<(CodeRecord, bool)>>;
    /// The scopes a user granted an app, if any.
    async fn consent(&self, user_id: i64, app_id: i64) -> StoreResult<Option<String>>;
    /// Adds scopes to a user's consent to an app (the union of what was granted and `scopes`,
    /// in first-granted order), in one step.
    async fn merge_consent(&self, user_id: i64, app_id: i64, scopes: &[String]) -> StoreResult<()>;
    /// Stores a browser session (by hash).
    async fn insert_web_session(&self, hash: &[u8], session: WebSession) -> StoreResult<()>;
    /// A browser session by hash.
    async fn web_session(&self, hash: &[u8]) -> StoreResult<Option<WebSession>>;
    /// Ends a browser session.
    async fn delete_web_session(&self, hash: &[u8]) -> StoreResult<()>;
    /// Revokes the token with this hash if it belongs to `app_id`, and with `whole_grant`, for a
    /// refresh token, every token of its grant. Returns whether anything was revoked.
    async fn revoke_token(&self, hash: &[u8], app_id: i64, whole_grant: bool) -> StoreResult<bool>;
    /// Stores a one-time upload URL (by hash of its key).
    async fn insert_upload_url(&self, hash: &[u8], url: UploadUrl) -> StoreResult<()>;
    /// Takes the upload URL with this key hash and cookie hash, and marks it used, in one
    /// step; the flag says whether it was used already. A URL presented with another cookie is
    /// not found and stays unused.
    async fn take_upload_url(&self, hash: &[u8], cookie_hash: &[u8]) -> StoreResult<Option<(UploadUrl, bool)>>;
    /// Deletes what expired before `now` (unix seconds): codes, upload URLs, browser and legacy
    /// sessions, refilled rate-limit buckets, and the tokens expired before `tokens_before`
    /// (the caller's retention); returns how many rows went.
    async fn purge_expired(&self, now: i64, tokens_before: i64) -> StoreResult<usize>;
    /// Revokes every token of a grant (a replayed code's tokens).
    async fn revoke_grant(&self, grant: &str) -> StoreResult<()>;
    /// The consents of a user: `(app id, scopes)`, by app id.
    async fn consents_of(&self, user_id: i64) -> StoreResult<Vec<(i64, String)>>;
    /// Forgets a user's consent to an app and revokes every token of theirs for it, in one
    /// transaction; whether there was anything to forget.
    async fn forget_access(&self, user_id: i64, app_id: i64) -> StoreResult<bool>;
    /// Stores the tokens of one issue (an access token and its refresh token) together.
    async fn insert_tokens(&self, tokens: Vec<NewToken>) -> StoreResult<()>;
    /// The token whose SHA-256 is `hash`.
    async fn token(&self, hash: &[u8]) -> StoreResult<Option<TokenRecord>>;
    /// The token whose SHA-256 is `hash` with its user and app: what authenticating a request
    /// reads, read together where the backend can (one snapshot).
    async fn token_access(&self, hash: &[u8]) -> StoreResult<Option<TokenAccess>>;
    /// Sets a token's expiry and/or revokes it (the emulator's control plane); whether the
    /// token exists.
    async fn set_token(&self, hash: &[u8], expires_at: Option<i64>, revoke: bool) -> StoreResult<bool>;
    /// Stores a legacy session id for a user.
    async fn insert_session(&self, esid: &str, user_id: i64, expires_at: i64) -> StoreResult<()>;
}

/// The folder tree. A user's tree changes are serialisable, across processes and instances:
/// quota, clash renaming, move-into-itself and name-taken checks hold under any concurrency
/// (SQLite: one writer; PostgreSQL: a per-user transaction-scoped advisory lock). A file's
/// content never changes under its id (the API has no overwrite), so an ETag checked before a
/// delete or a move cannot go stale.
#[async_trait]
pub trait Tree: Send + Sync + 'static {
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
    /// Records a file whose content is already durable under a claimed key; renames on a
    /// clash; checks the quota. `NotFound` if the key was never claimed or is being reaped.
    async fn insert_file(&self, parent: NodeId, file: NewFile, quota: u64) -> StoreResult<Node>;
    /// Records many files at once in one transaction (imports, benchmarks); renames on
    /// clashes; checks the quota for the total.
    async fn insert_files(&self, parent: NodeId, files: Vec<NewFile>, quota: u64) -> StoreResult<usize>;
    /// Renames and/or moves a node. `AlreadyExists`, `IntoItself`.
    async fn relocate(&self, node: NodeId, parent: NodeId, name: &str) -> StoreResult<Node>;
    /// Copies a node (recursively) under `parent` as `name`, sharing blobs; checks the quota.
    async fn copy(&self, node: NodeId, parent: NodeId, name: &str, quota: u64) -> StoreResult<Node>;
    /// Deletes a node and its subtree; returns the blob keys no node references any more
    /// (they stay known, unreferenced, until [`Housekeeping::forget_blobs`]).
    async fn delete(&self, node: NodeId) -> StoreResult<Vec<String>>;
    /// Replaces the metadata JSON of every file whose content is `blob` (metadata comes from
    /// the content, and copies share it); returns how many files.
    async fn set_blob_metadata(&self, blob: &str, metadata: &str) -> StoreResult<usize>;
}

/// Cache coherence, server secrets, the lifecycle of blob keys, health.
#[async_trait]
pub trait Housekeeping: Send + Sync + 'static {
    /// A number that changes whenever anything is committed, by this process or another one
    /// (caches compare it).
    async fn generation(&self) -> StoreResult<u64>;
    /// The server secret `name`: `candidate` is stored if there is none yet, and the stored
    /// one is returned, in one step (every instance then signs with the same key).
    async fn secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;
    /// Spends one request of the GCRA bucket of (app, user), shared by every instance on this
    /// database: `Some(0)` allowed, `Some(ms)` to wait, or `None` if this backend serves one
    /// process only (the service then counts in memory). `interval` and `burst` in ms; see
    /// [`crate::domain::limits`].
    async fn take_rate(
        &self,
        app_id: i64,
        user_id: i64,
        interval: i64,
        burst: i64,
        now: i64,
    ) -> StoreResult<Option<u64>> {
        let _ = (app_id, user_id, interval, burst, now);
        Ok(None)
    }
    /// Sign-in failure records shared by every instance: locks the records of `keys`, applies
    /// `step`, and stores what it kept, in one transaction; `None` if this backend serves one
    /// process (the service then keeps them in memory).
    async fn login_failures(&self, keys: &[String], step: &LoginStep<'_>) -> StoreResult<Option<Result<(), i64>>> {
        let _ = (keys, step);
        Ok(None)
    }
    /// Forgets the failure records of `keys`; `false` if this backend keeps none.
    async fn clear_login_failures(&self, keys: &[String]) -> StoreResult<bool> {
        let _ = keys;
        Ok(false)
    }
    /// Empties the installation at `now` (the emulator's reset): with `keep_accounts`, only the
    /// tree (users keep their empty roots, apps, tokens and consents stay); else every user,
    /// app, grant, token and file. Returns the content keys released, for the caller to delete.
    async fn reset(&self, keep_accounts: bool, now: i64) -> StoreResult<Vec<String>>;
    /// Takes the lease `name` for `holder` until `until` (unix ms) if there is none or it
    /// expired at `now`, in one step; whether it was taken. Background jobs that should run
    /// once per period across all instances run where this is `true`.
    async fn lease(&self, name: &str, holder: &str, until: i64, now: i64) -> StoreResult<bool>;
    /// Whether the database answers (health checks).
    async fn check(&self) -> StoreResult<()>;
    /// Records `keys` as blobs about to be written (before their first byte), at `now` (unix
    /// ms), in one commit: a key whose upload never gets recorded is an orphan the reaper
    /// finds here. Several at once: the service claims keys ahead of its uploads.
    async fn claim_blobs(&self, keys: &[String], now: i64) -> StoreResult<()>;
    /// Forgets keys whose objects were deleted, if still unreferenced.
    async fn forget_blobs(&self, keys: &[String]) -> StoreResult<()>;
    /// Up to `limit` keys unreferenced since before `before` (unix ms): claims of uploads that
    /// never finished and blobs freed whose objects may remain. They are marked as being
    /// reaped, in one step, so no file can reference them any more (recording a file on a
    /// reaped key fails), and concurrent reapers take different keys where the backend allows.
    /// The caller deletes the objects, then [`Housekeeping::forget_blobs`].
    async fn reap_blobs(&self, before: i64, limit: usize) -> StoreResult<Vec<String>>;
    /// Of these keys, those pending cleanup: known to the database with no reference (claimed
    /// for an upload in flight, freed by a delete, or being reaped).
    async fn pending_blobs(&self, keys: &[String]) -> StoreResult<std::collections::HashSet<String>>;
    /// File contents in blob-key order after `after`: `(key, size)` once per key (fsck).
    async fn file_blobs(&self, after: Option<&str>, limit: usize) -> StoreResult<Vec<(String, u64)>>;
    /// Users whose `used` differs from the sum of their files' sizes: `(name, used, sum)`.
    async fn usage_mismatches(&self) -> StoreResult<Vec<(String, u64, u64)>>;
    /// Rows of a table in key order, from `offset` (`admin migrate`).
    async fn export_rows(&self, table: &'static TableSpec, offset: u64, limit: usize) -> StoreResult<Vec<Vec<Cell>>>;
    /// Inserts rows as they are, keys included, in one transaction (`admin migrate`).
    async fn import_rows(&self, table: &'static TableSpec, rows: Vec<Vec<Cell>>) -> StoreResult<()>;
    /// Replaces the rows of every table of [`TABLES`] with these, in one transaction (the
    /// emulator's snapshot restore).
    async fn replace_all(&self, tables: Vec<(&'static TableSpec, Vec<Vec<Cell>>)>) -> StoreResult<()>;
    /// After an import: what the backend derives from the rows (PostgreSQL: id sequences).
    async fn finish_import(&self) -> StoreResult<()> {
        Ok(())
    }
}
