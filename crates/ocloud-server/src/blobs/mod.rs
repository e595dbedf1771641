//! Content storage: immutable blobs addressed by keys.
//!
//! The contract of [`Blobs`] is what object stores do, for every backend:
//! - **streamed put**: a blob is written through a [`BlobWriter`] under a key chosen at
//!   [`Blobs::create`]; it becomes visible under that key only when [`BlobWriter::commit`]
//!   returns, and is then durable. An aborted or dropped writer, or a crash, leaves nothing
//!   visible (a file backend's temp file, an object store's unfinished multipart upload);
//! - **ranged get**, **delete** (of a missing key: not an error) and a paged, key-ordered
//!   **list** for maintenance (fsck, migration); small derived objects (renditions) are
//!   ordinary blobs under [`rendition_key`]s, written whole with [`Blobs::put`];
//! - blobs are never modified; keys are generated here, never taken from a client, so no
//!   name a client sends can reach a file system or a bucket.
//!
//! Durability mechanics (fsync, write-back, rename into place, temp files) are private to a
//! backend. Which blobs are live is the metadata store's business: a key is claimed there
//! before its upload starts and released in a delete's transaction, and orphans are found
//! from those rows, never by listing a whole bucket.

pub mod fs;
pub mod s3;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

/// Errors of a blob backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// No blob with this key.
    #[error("blob {0} not found")]
    NotFound(String),
    /// I/O failure; the message names the file or object.
    #[error("{0}")]
    Io(String),
    /// The storage is full (ENOSPC, EDQUOT), or under the reserve kept for the database.
    #[error("disk full: {0}")]
    Full(String),
    /// The backend cannot be reached (an object store down); retrying later may work.
    #[error("content store unavailable: {0}")]
    Unavailable(String),
}

/// Whether an I/O error means "no space left" (ENOSPC, or a quota of the file system).
pub fn is_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(28 | 122))
}

/// Result of a blob call.
pub type BlobResult<T> = Result<T, BlobError>;

/// The bytes of a blob, in chunks (as `object_store` gives them): a response body takes the
/// chunks as they are, with no copy through an intermediate buffer.
pub type BlobStream = BoxStream<'static, std::io::Result<Bytes>>;

/// A blob being written.
#[async_trait]
pub trait BlobWriter: Send {
    /// The key the blob will have (known before any byte is written, so it can be claimed).
    fn key(&self) -> &str;
    /// Appends bytes.
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()>;
    /// Makes the blob durable and visible; returns its key.
    async fn commit(self: Box<Self>) -> BlobResult<String>;
    /// Drops what was written.
    async fn abort(self: Box<Self>);
}

/// A stored object, as [`Blobs::list`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its key (a blob's, or a [`rendition_key`]).
    pub key: String,
    /// Bytes.
    pub size: u64,
}

/// The kinds of derived objects a blob can have; [`delete_with_renditions`] removes them all.
pub const RENDITION_KINDS: [&str; 4] = ["thumb", "preview", "p100", "p500"];

/// The key of a derived object of blob `key`: `<key>.<kind>`.
pub fn rendition_key(key: &str, kind: &str) -> String {
    debug_assert!(RENDITION_KINDS.contains(&kind), "unknown rendition kind {kind}");
    format!("{key}.{kind}")
}

/// The blob a stored key belongs to: itself, or the blob of a rendition.
pub fn owner_key(key: &str) -> &str {
    key.split('.').next().unwrap_or(key)
}

/// The content-storage contract. See the module docs.
#[async_trait]
pub trait Blobs: Send + Sync + 'static {
    /// Starts a new blob under a fresh key.
    async fn create(&self) -> BlobResult<Box<dyn BlobWriter>> {
        self.create_with_key(&crate::random::hex_id()).await
    }
    /// Starts a blob under a given key: a copy keeping its key (`admin migrate`). Keys come
    /// from this module or from another store's listing, never from a client.
    async fn create_with_key(&self, key: &str) -> BlobResult<Box<dyn BlobWriter>>;
    /// Stores a small object whole under `key`, durably and atomically (renditions).
    async fn put(&self, key: &str, bytes: Bytes) -> BlobResult<()>;
    /// Reads `len` bytes from `offset` (`None`: to the end).
    /// A blob shorter than `offset + len` ends the stream with an error.
    async fn read(&self, key: &str, offset: u64, len: Option<u64>) -> BlobResult<BlobStream>;
    /// Deletes one object.
    async fn delete(&self, key: &str) -> BlobResult<()>;
    /// Up to `limit` objects with keys after `after`, in key order (maintenance only).
    async fn list(&self, after: Option<&str>, limit: usize) -> BlobResult<Vec<BlobInfo>>;
    /// Whether the backend answers (health checks).
    async fn check(&self) -> BlobResult<()>;
    /// Bytes still free where the blobs are stored, if the backend can tell (a file system
    /// can; an object store cannot, and has no such limit).
    fn available(&self) -> Option<u64> {
        None
    }

    /// A local file holding exactly the blob's bytes, so a download can be sent from it
    /// without copying it through memory (`sendfile`). `None` (the default) where content is
    /// not in local files, as in object stores.
    fn local_file(&self, key: &str) -> Option<std::path::PathBuf> {
        let _ = key;
        None
    }
}

/// Deletes a blob and every rendition it may have.
///
/// The blob goes first, its renditions after: with [`put_rendition`]'s check after its put, a
/// rendition made while the blob is being deleted never outlives it (either this deletes it,
/// or the writer sees the blob gone and deletes it itself).
pub async fn delete_with_renditions(blobs: &dyn Blobs, key: &str) -> BlobResult<()> {
    blobs.delete(key).await?;
    for kind in RENDITION_KINDS {
        blobs.delete(&rendition_key(key, kind)).await?;
    }
    Ok(())
}

/// Stores a rendition of blob `key`, unless the blob was deleted meanwhile (renders run in the
/// background and can end after the delete): then the rendition is removed again and the
/// answer is `NotFound`. The blob is checked after the put, so, run to its end, no order of
/// the two escapes [`delete_with_renditions`]; callers run it where no departing client can
/// cut it short. A check that fails otherwise removes the rendition too: it is only a cache.
pub async fn put_rendition(blobs: &dyn Blobs, key: &str, kind: &str, bytes: Bytes) -> BlobResult<()> {
    let rkey = rendition_key(key, kind);
    blobs.put(&rkey, bytes).await?;
    // One byte, not zero: a source has content, and an empty range asks nothing of a store.
    let checked = blobs.read(key, 0, Some(1)).await;
    if checked.is_err() {
        blobs.delete(&rkey).await?;
    }
    checked.map(drop)
}

/// A rendition of a blob, if it was made.
pub async fn rendition(blobs: &dyn Blobs, key: &str, kind: &str) -> BlobResult<Option<Bytes>> {
    match read_all(blobs, &rendition_key(key, kind), u64::MAX).await {
        Ok(b) => Ok(Some(Bytes::from(b))),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the first `max` bytes of a blob (or all of a shorter one) into memory: format
/// sniffing and image sources.
pub async fn read_all(blobs: &dyn Blobs, key: &str, max: u64) -> BlobResult<Vec<u8>> {
    use futures_util::TryStreamExt;
    let mut stream = blobs.read(key, 0, None).await?;
    let mut buf = Vec::new();
    while let Some(chunk) = stream.try_next().await.map_err(|e| BlobError::Io(format!("blob {key}: {e}")))? {
        let room = (max as usize).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() as u64 >= max {
            break;
        }
    }
    Ok(buf)
}

/// A blob as a blocking `Read + Seek`, for parsers that jump around in a file's headers (an MP4's
/// `moov` at the end, an EXIF block): each read is one ranged read of the backend. Use it on a
/// blocking thread (it waits on the runtime with `block_on`), behind a `BufReader`.
pub struct SyncReader {
    blobs: std::sync::Arc<dyn Blobs>,
    key: String,
    size: u64,
    pos: u64,
    runtime: tokio::runtime::Handle,
    /// Bytes that may still be read: a parser that would read a whole huge file (a TIFF's
    /// EXIF reader does) meets the end of the file instead.
    budget: u64,
}

impl SyncReader {
    /// A reader of blob `key` of `size` bytes; call from within the runtime.
    pub fn new(blobs: std::sync::Arc<dyn Blobs>, key: &str, size: u64) -> SyncReader {
        SyncReader {
            blobs,
            key: key.to_owned(),
            size,
            pos: 0,
            runtime: tokio::runtime::Handle::current(),
            budget: u64::MAX,
        }
    }

    /// At most `bytes` are read in all; past that, reads find the end of the file.
    pub fn with_budget(mut self, bytes: u64) -> SyncReader {
        self.budget = bytes;
        self
    }
}

impl std::io::Read for SyncReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use futures_util::TryStreamExt;
        let want = (buf.len() as u64).min(self.size.saturating_sub(self.pos)).min(self.budget);
        if want == 0 {
            return Ok(0);
        }
        let (blobs, key, pos) = (self.blobs.clone(), self.key.clone(), self.pos);
        let n = self.runtime.block_on(async move {
            let mut stream = blobs.read(&key, pos, Some(want)).await.map_err(std::io::Error::other)?;
            let mut n = 0;
            while let Some(chunk) = stream.try_next().await? {
                let take = chunk.len().min(buf.len() - n);
                buf[n..n + take].copy_from_slice(&chunk[..take]);
                n += take;
            }
            Ok::<_, std::io::Error>(n)
        })?;
        self.pos += n as u64;
        self.budget -= n as u64;
        Ok(n)
    }
}

impl std::io::Seek for SyncReader {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            std::io::SeekFrom::Start(p) => Some(p),
            std::io::SeekFrom::End(d) => self.size.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
