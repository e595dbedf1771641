//! Snapshot archives of the emulator (`GET …/snapshots/{id}/export`, `POST
//! …/snapshots/import`): a tar stream of `snapshot.json` (every table's rows) followed by one
//! `blobs/<key>` entry per content object the snapshot names. Both directions stream: the
//! export reads each object as it writes it, the import writes each entry to the content
//! store as it arrives; only the manifest is held in memory (at most [`MAX_MANIFEST`]).
//! Renditions are not archived: they are made again on first request.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::domain::Service;

/// Largest manifest an import reads.
pub const MAX_MANIFEST: u64 = 256 << 20;
const BLOCK: usize = 512;

fn header(path: &str, size: u64) -> Bytes {
    let mut h = tar::Header::new_ustar();
    // Paths are ASCII and short (`snapshot.json`, `blobs/` and 32 hex characters).
    let _ = h.set_path(path);
    h.set_size(size);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Bytes::copy_from_slice(h.as_bytes())
}

fn padding(size: u64) -> Bytes {
    let rem = (size % BLOCK as u64) as usize;
    Bytes::from(vec![0u8; if rem == 0 { 0 } else { BLOCK - rem }])
}

/// The archive of a snapshot, as a body that streams; `NotFound` for an unknown id.
pub fn export(svc: Service, id: &str) -> crate::domain::Result<Body> {
    let crate::domain::snapshots::Manifest { json: manifest, contents: blobs } = svc.snapshot_manifest(id)?;
    let manifest_len = manifest.len() as u64;
    let head = futures_util::stream::iter([
        Ok(header("snapshot.json", manifest_len)),
        Ok(Bytes::from(manifest)),
        Ok(padding(manifest_len)),
    ]);
    let objects = futures_util::stream::iter(blobs).then(move |(key, size)| {
        let svc = svc.clone();
        async move {
            let body = match svc.blobs.read(&key, 0, Some(size)).await {
                Ok(s) => s,
                Err(e) => {
                    // The answer has begun: the connection is cut, the cause logged.
                    tracing::error!(key = %key, error = %e, "snapshot export: reading content");
                    return futures_util::stream::iter([Err(std::io::Error::other(format!("content {key}")))]).boxed();
                }
            };
            let start = futures_util::stream::iter([Ok(header(&format!("blobs/{key}"), size))]);
            start.chain(body).chain(futures_util::stream::iter([Ok(padding(size))])).boxed()
        }
    });
    let end = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 2 * BLOCK]))]);
    let stream = head.chain(objects.flatten()).chain(end);
    Ok(Body::from_stream(stream))
}

/// Reads a tar stream a block at a time.
struct Reader<S> {
    src: S,
    buf: BytesMut,
}

impl<S: Stream<Item = Result<Bytes, axum::Error>> + Unpin> Reader<S> {
    /// At least `n` bytes buffered, or `false` at the end.
    async fn fill(&mut self, n: usize) -> Result<bool, String> {
        while self.buf.len() < n {
            match self.src.next().await {
                Some(Ok(b)) => self.buf.extend_from_slice(&b),
                Some(Err(e)) => return Err(format!("reading the archive: {e}")),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Up to `left` bytes of the current entry (whatever is buffered, or the next chunk).
    async fn chunk(&mut self, left: u64) -> Result<Bytes, String> {
        if self.buf.is_empty() && !self.fill(1).await? {
            return Err("the archive ends inside an entry".into());
        }
        let n = self.buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        Ok(self.buf.split_to(n).freeze())
    }
}

/// Why an import failed.
#[derive(Debug)]
pub enum ImportError {
    /// The archive is not one: what is wrong with it (for the client).
    Bad(String),
    /// The content store failed (logged; the client gets the service's 5xx).
    Store(crate::blobs::BlobError),
}

impl From<String> for ImportError {
    fn from(s: String) -> Self {
        ImportError::Bad(s)
    }
}

impl From<&str> for ImportError {
    fn from(s: &str) -> Self {
        ImportError::Bad(s.to_owned())
    }
}

/// Imports an archive: each content object is stored under its key, then the manifest
/// becomes a new snapshot; its id.
pub async fn import(svc: &Service, body: Body) -> Result<String, ImportError> {
    let mut r = Reader { src: body.into_data_stream(), buf: BytesMut::new() };
    let mut manifest = None;
    loop {
        if !r.fill(BLOCK).await? {
            return Err("the archive ends without its end blocks".into());
        }
        let block = r.buf.split_to(BLOCK);
        if block.iter().all(|b| *b == 0) {
            break;
        }
        let h = tar::Header::from_byte_slice(&block);
        let size = h.entry_size().map_err(|e| format!("an entry's header: {e}"))?;
        let path = h.path().map_err(|e| format!("an entry's path: {e}"))?.to_string_lossy().into_owned();
        let mut left = size;
        if path == "snapshot.json" {
            if size > MAX_MANIFEST {
                return Err(format!("snapshot.json of {size} bytes (at most {MAX_MANIFEST})").into());
            }
            let mut m = Vec::with_capacity(size as usize);
            while left > 0 {
                let c = r.chunk(left).await?;
                left -= c.len() as u64;
                m.extend_from_slice(&c);
            }
            manifest = Some(m);
        } else if let Some(key) = path.strip_prefix("blobs/") {
            if !crate::domain::snapshots::is_content_key(key) {
                return Err(format!("entry {path:?}: not a content key").into());
            }
            let mut w = svc.blobs.create_with_key(key).await.map_err(ImportError::Store)?;
            while left > 0 {
                let c = match r.chunk(left).await {
                    Ok(c) => c,
                    Err(e) => {
                        w.abort().await;
                        return Err(e.into());
                    }
                };
                left -= c.len() as u64;
                if let Err(e) = w.write(&c).await {
                    w.abort().await;
                    return Err(ImportError::Store(e));
                }
            }
            w.commit().await.map_err(ImportError::Store)?;
        } else {
            return Err(format!("unexpected entry {path:?}").into());
        }
        let pad = padding(size).len();
        if !r.fill(pad).await? {
            return Err("the archive ends inside an entry".into());
        }
        let _ = r.buf.split_to(pad);
    }
    let manifest = manifest.ok_or("the archive has no snapshot.json")?;
    Ok(svc.import_snapshot(&manifest)?)
}
