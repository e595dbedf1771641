//! The embedded blob backend: one file per blob under `<data>/blobs/<2 hex>/<key>`.
//!
//! A blob is streamed to `<data>/tmp/<key>.part`, fsynced, renamed into place and its
//! directory fsynced; only then does `commit` return. Renditions live beside it as
//! `<key>.<kind>`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use ocloud_io::FileSink;
use tokio::fs;
use tokio::io::AsyncWriteExt;

use super::*;

/// Blobs as files on the local disk.
#[derive(Debug, Clone)]
pub struct FsBlobs {
    root: PathBuf,
    tmp: PathBuf,
}

impl FsBlobs {
    /// Uses `<dir>/blobs` and `<dir>/tmp`, creating them.
    pub fn open(dir: &Path) -> std::io::Result<FsBlobs> {
        let root = dir.join("blobs");
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&tmp)?;
        Ok(FsBlobs { root, tmp })
    }

    fn path(&self, key: &str) -> BlobResult<PathBuf> {
        // Keys are ours (hex), but never trust a string that reaches the file system.
        if key.len() < 8 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BlobError::NotFound(key.to_owned()));
        }
        Ok(self.root.join(&key[..2]).join(key))
    }
}

fn io(path: &Path, e: std::io::Error) -> BlobError {
    if super::is_full(&e) {
        return BlobError::Full(format!("{}: {e}", path.display()));
    }
    BlobError::Io(format!("{}: {e}", path.display()))
}

async fn sync_dir(dir: &Path) -> BlobResult<()> {
    let d = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&d).and_then(|f| f.sync_all()).map_err(|e| io(&d, e)))
        .await
        .map_err(|e| BlobError::Io(e.to_string()))?
}

struct FsWriter {
    key: String,
    tmp: PathBuf,
    dest: PathBuf,
    sink: Option<FileSink>,
    /// Renamed into place: the temp file is gone.
    committed: bool,
}

#[async_trait]
impl BlobWriter for FsWriter {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        let f = self.sink.as_mut().expect("writer used after commit");
        f.write(chunk).await.map_err(|e| io(&self.tmp, e))
    }

    async fn commit(mut self: Box<Self>) -> BlobResult<String> {
        let sink = self.sink.take().expect("writer committed twice");
        let f = sink.finish().await.map_err(|e| io(&self.tmp, e))?;
        tokio::task::spawn_blocking(move || f.sync_all())
            .await
            .map_err(|e| BlobError::Io(e.to_string()))?
            .map_err(|e| io(&self.tmp, e))?;
        let dir = self.dest.parent().expect("blob path has a parent").to_owned();
        if fs::metadata(&dir).await.is_err() {
            fs::create_dir_all(&dir).await.map_err(|e| io(&dir, e))?;
            sync_dir(dir.parent().expect("blob dir has a parent")).await?;
        }
        fs::rename(&self.tmp, &self.dest).await.map_err(|e| io(&self.dest, e))?;
        self.committed = true;
        sync_dir(&dir).await?;
        Ok(std::mem::take(&mut self.key))
    }

    async fn abort(mut self: Box<Self>) {
        self.sink.take();
        let _ = fs::remove_file(&self.tmp).await;
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        // A writer dropped mid-transfer (client gone, task cancelled) or whose commit failed
        // (a full disk at the final flush) leaves no temp file: on a full disk, that file is
        // the space everything else needs.
        self.sink.take();
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[async_trait]
impl Blobs for FsBlobs {
    async fn create(&self) -> BlobResult<Box<dyn BlobWriter>> {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let tmp = self.tmp.join(format!("{key}.part"));
        let dest = self.path(&key)?;
        let file = private_file(&tmp).await.map_err(|e| io(&tmp, e))?.into_std().await;
        // Written back to disk as it arrives: the fsync in `commit` then has little left to do.
        Ok(Box::new(FsWriter { key, tmp, dest, sink: Some(FileSink::new(file, true)), committed: false }))
    }

    fn available(&self) -> Option<u64> {
        free_bytes(&self.root)
    }

    async fn read(&self, key: &str, offset: u64, len: Option<u64>) -> BlobResult<BlobStream> {
        let path = self.path(key)?;
        // Opening and the first read share one hop to the blocking pool: a small file is
        // served with that one hop.
        let (p, want) = (path.clone(), chunk_len(len));
        let first = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&p)?;
            file.seek(SeekFrom::Start(offset))?;
            read_chunk(file, want)
        })
        .await
        .map_err(|e| BlobError::Io(e.to_string()))?;
        match first {
            Ok(first) => Ok(chunks(first, path, len)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound(key.to_owned())),
            Err(e) => Err(io(&path, e)),
        }
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        let path = self.path(key)?;
        let renditions = RENDITION_KINDS.iter().map(|k| path.with_extension(k));
        for p in std::iter::once(path.clone()).chain(renditions) {
            match fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&p, e)),
            }
        }
        Ok(())
    }

    async fn put_rendition(&self, key: &str, kind: &str, bytes: Bytes) -> BlobResult<()> {
        // Only known kinds, so a delete finds every rendition a blob has.
        debug_assert!(RENDITION_KINDS.contains(&kind), "unknown rendition kind {kind}");
        let dest = self.path(key)?.with_extension(kind);
        // Unique temp name: a background job and a request may render the same thing at once.
        let tmp = self.tmp.join(format!("{key}.{kind}.{}.part", uuid::Uuid::new_v4().simple()));
        let mut f = private_file(&tmp).await.map_err(|e| io(&tmp, e))?;
        f.write_all(&bytes).await.map_err(|e| io(&tmp, e))?;
        f.sync_all().await.map_err(|e| io(&tmp, e))?;
        fs::rename(&tmp, &dest).await.map_err(|e| io(&dest, e))?;
        Ok(())
    }

    async fn rendition(&self, key: &str, kind: &str) -> BlobResult<Option<Bytes>> {
        let path = self.path(key)?.with_extension(kind);
        match fs::read(&path).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    async fn clear_temp(&self) -> BlobResult<usize> {
        let mut removed = 0;
        let mut tmp = fs::read_dir(&self.tmp).await.map_err(|e| io(&self.tmp, e))?;
        while let Some(e) = tmp.next_entry().await.map_err(|e| io(&self.tmp, e))? {
            if fs::remove_file(e.path()).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn sweep(
        &self,
        before: std::time::SystemTime,
        keep: &(dyn for<'k> Fn(&'k str) -> bool + Send + Sync),
    ) -> BlobResult<usize> {
        let mut removed = 0;
        let mut shards = fs::read_dir(&self.root).await.map_err(|e| io(&self.root, e))?;
        while let Some(shard) = shards.next_entry().await.map_err(|e| io(&self.root, e))? {
            let mut files = fs::read_dir(shard.path()).await.map_err(|e| io(&shard.path(), e))?;
            while let Some(f) = files.next_entry().await.map_err(|e| io(&shard.path(), e))? {
                let name = f.file_name().to_string_lossy().into_owned();
                let key = name.split('.').next().unwrap_or_default();
                let old = f.metadata().await.and_then(|m| m.modified()).map(|t| t < before).unwrap_or(false);
                if old && !keep(key) && fs::remove_file(f.path()).await.is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Size of the reads that feed a download.
const READ_CHUNK: usize = 1 << 20;

/// The next read: `len` bytes still expected (`None`: to the end).
fn chunk_len(left: Option<u64>) -> usize {
    left.map_or(READ_CHUNK, |l| l.min(READ_CHUNK as u64) as usize)
}

/// Reads up to `want` bytes from the file's position; short only at the end of the file.
fn read_chunk(mut file: std::fs::File, want: usize) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    let mut buf = Vec::with_capacity(want);
    Read::take(&mut file, want as u64).read_to_end(&mut buf)?;
    Ok((file, buf))
}

type Pending = BoxFuture<'static, std::io::Result<(std::fs::File, Vec<u8>)>>;

/// The rest of a blob after its first chunk: 1 MiB reads on the blocking pool, one chunk ahead
/// of the consumer, so disk reads overlap network sends. Each chunk is read straight into the
/// buffer that becomes the body chunk (tokio's `File` reads into a buffer of its own and
/// copies).
fn chunks(first: (std::fs::File, Vec<u8>), path: PathBuf, len: Option<u64>) -> BlobStream {
    fn next(file: std::fs::File, want: usize) -> Pending {
        tokio::task::spawn_blocking(move || read_chunk(file, want))
            .map(|joined| joined.unwrap_or_else(|e| Err(std::io::Error::other(e))))
            .boxed()
    }
    let first: Pending = futures_util::future::ready(Ok(first)).boxed();
    // State: the read in flight, and the bytes still expected from it on (`None`: to the end).
    futures_util::stream::unfold((Some(first), len), move |(pending, left)| {
        let path = path.clone();
        async move {
            let fail = |e: std::io::Error| {
                let e = std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
                Some((Err(e), (None, None)))
            };
            let want = chunk_len(left);
            let (file, buf) = match pending?.await {
                Ok(read) => read,
                Err(e) => return fail(e),
            };
            let got = buf.len();
            if got < want && left.is_some() {
                return fail(std::io::ErrorKind::UnexpectedEof.into()); // shorter than its record
            }
            if got == 0 {
                return None;
            }
            let left = left.map(|l| l - got as u64);
            let more = got == want && left != Some(0);
            let pending = more.then(|| next(file, chunk_len(left)));
            Some((Ok(Bytes::from(buf)), (pending, left)))
        }
    })
    .boxed()
}

/// Bytes an unprivileged writer may still use on the file system of `dir` (statvfs).
fn free_bytes(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt as _;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: a zeroed statvfs is a valid out-parameter; the path is NUL-terminated.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return None;
        }
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Creates a file only its owner can read (content is private to the service's user).
async fn private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    o.open(path).await
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;

    async fn stored(len: usize) -> (tempfile::TempDir, FsBlobs, String, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobs::open(dir.path()).unwrap();
        let content: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = blobs.create().await.unwrap();
        w.write(&content).await.unwrap();
        let key = w.commit().await.unwrap();
        (dir, blobs, key, content)
    }

    async fn read(blobs: &FsBlobs, key: &str, offset: u64, len: Option<u64>) -> std::io::Result<Vec<u8>> {
        let chunks: Vec<Bytes> = blobs.read(key, offset, len).await.unwrap().try_collect().await?;
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= READ_CHUNK));
        Ok(chunks.concat())
    }

    #[tokio::test]
    async fn reads_any_range_across_chunks() {
        let n = 2 * READ_CHUNK + 12_345;
        let (_d, blobs, key, content) = stored(n).await;
        assert_eq!(read(&blobs, &key, 0, None).await.unwrap(), content);
        assert_eq!(read(&blobs, &key, 0, Some(n as u64)).await.unwrap(), content);
        let (a, b) = (READ_CHUNK - 10, 2 * READ_CHUNK + 10);
        assert_eq!(read(&blobs, &key, a as u64, Some((b - a) as u64)).await.unwrap(), &content[a..b]);
        assert_eq!(read(&blobs, &key, n as u64 - 1, Some(1)).await.unwrap(), &content[n - 1..]);
        assert!(read(&blobs, &key, 5, Some(0)).await.unwrap().is_empty());
        let (_d, blobs, key, _) = stored(0).await;
        assert!(read(&blobs, &key, 0, None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_blob_shorter_than_asked_ends_in_an_error_naming_it() {
        let (_d, blobs, key, _) = stored(READ_CHUNK + 100).await;
        let e = read(&blobs, &key, 0, Some(READ_CHUNK as u64 + 101)).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains(&key), "{e}");
        assert!(matches!(blobs.read("0123456789abcdef0123456789abcdef", 0, None).await, Err(BlobError::NotFound(_))));
    }

    #[tokio::test]
    async fn clear_temp_and_sweep_remove_only_what_they_should() {
        let (dir, blobs, kept, _) = stored(10).await;
        let mut w = blobs.create().await.unwrap();
        w.write(b"orphan").await.unwrap();
        let orphan = w.commit().await.unwrap();
        blobs.put_rendition(&orphan, "thumb", Bytes::from_static(b"jpeg")).await.unwrap();
        std::fs::write(dir.path().join("tmp/left.part"), b"partial").unwrap();

        assert_eq!(blobs.clear_temp().await.unwrap(), 1);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        // Nothing is older than a moment ago: the sweep leaves young blobs alone.
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        assert_eq!(blobs.sweep(past, &|_| false).await.unwrap(), 0);
        let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        let keep = kept.clone();
        assert_eq!(blobs.sweep(future, &move |k| k == keep).await.unwrap(), 2, "the orphan and its thumbnail");
        assert!(read(&blobs, &kept, 0, None).await.is_ok());
        assert!(matches!(blobs.read(&orphan, 0, None).await, Err(BlobError::NotFound(_))));
        assert!(blobs.rendition(&orphan, "thumb").await.unwrap().is_none());
    }
}
