//! The embedded blob backend: one file per blob under `<data>/blobs/<2 hex>/<key>`.
//!
//! A blob is streamed to `<data>/tmp/<instance>/<key>.part` (made with the first write to
//! disk), fsynced, renamed into place and its directory fsynced; only then does `commit`
//! return. On Linux, a blob smaller than the write buffer (1 MiB) is written at its commit, in
//! one trip to the blocking pool, as an unnamed file in its own directory (`O_TMPFILE`),
//! fsynced, then linked under its key and the directory fsynced: no temp file and no rename
//! across directories, one directory touched instead of two (a burst of small uploads made
//! 7.6 disk writes per file, now 7.1), and still nothing visible before it is whole.
//! Where the link is refused (probed at open) or the unnamed file cannot be made (a file
//! system without `O_TMPFILE`, a shard directory removed), the temp file is used. A key
//! already there (an archive imported twice, a migration run again) is replaced, as a
//! rename would.
//! Renditions live beside it as `<key>.<kind>`.
//!
//! Temp files are per instance: each process that opens the store writes into its own
//! `tmp/<instance>/` and holds an exclusive `flock` on its `lock` file while it lives. On
//! open, a temp dir whose lock can be taken belonged to a process that is gone: its partial
//! uploads are removed. Another live process's upload in flight is never touched.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use ocloud_io::FileSink;
use tokio::fs;

use super::*;

/// Blobs as files on the local disk.
#[derive(Debug, Clone)]
pub struct FsBlobs {
    root: PathBuf,
    /// This instance's temp dir.
    tmp: PathBuf,
    /// Holds the `flock` that marks `tmp` as in use, for as long as a clone lives.
    _lock: std::sync::Arc<std::fs::File>,
    /// Partial uploads of dead instances removed on open.
    pub cleared: usize,
    /// Small blobs are written as unnamed files then linked (see the module docs).
    unnamed: bool,
}

impl FsBlobs {
    /// Uses `<dir>/blobs` and a temp dir of its own under `<dir>/tmp`, creating them, and
    /// removes the temp files of processes that are gone.
    pub fn open(dir: &Path) -> std::io::Result<FsBlobs> {
        let root = dir.join("blobs");
        let tmp_root = dir.join("tmp");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&tmp_root)?;
        make_shards(&root)?;
        let cleared = clear_dead_temp(&tmp_root)?;
        let tmp = tmp_root.join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir(&tmp)?;
        let lock = {
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            o.open(tmp.join("lock"))?
        };
        if !try_lock(&lock) {
            return Err(std::io::Error::other(format!("{}: cannot lock", tmp.display())));
        }
        let unnamed = unnamed_file(&root.join("00")).is_ok() && can_link_unnamed(&tmp);
        if !unnamed {
            tracing::info!(dir = %root.display(), "unnamed files refused here: small blobs go through temp files");
        }
        Ok(FsBlobs { root, tmp, _lock: std::sync::Arc::new(lock), cleared, unnamed })
    }

    fn path(&self, key: &str) -> BlobResult<PathBuf> {
        // Keys are ours (hex, or hex.kind for a rendition), but never trust a string that
        // reaches the file system.
        let (blob, kind) = match key.split_once('.') {
            Some((b, k)) if RENDITION_KINDS.contains(&k) => (b, Some(k)),
            Some(_) => return Err(BlobError::NotFound(key.to_owned())),
            None => (key, None),
        };
        if blob.len() < 8 || !blob.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BlobError::NotFound(key.to_owned()));
        }
        let _ = kind;
        Ok(self.root.join(&blob[..2]).join(key))
    }
}

/// Makes the 256 shard directories once, at open: otherwise the first uploads into each shard
/// pay a `mkdir` and two more fsyncs, which is most of a burst of small uploads on a new
/// installation. Already there (the usual case): one `stat` each.
fn make_shards(root: &Path) -> std::io::Result<()> {
    let mut made = false;
    for i in 0..=255u8 {
        let shard = root.join(format!("{i:02x}"));
        if !shard.is_dir() {
            std::fs::create_dir_all(&shard)?;
            made = true;
        }
    }
    if made {
        sync_dir_now(root)?;
    }
    Ok(())
}

/// An exclusive, non-blocking `flock`; released when the file is closed (or its process dies).
fn try_lock(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd as _;
    // SAFETY: flock on a valid open descriptor.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Removes the temp dirs no live process holds, and loose temp files of older versions;
/// returns how many partial files went.
fn clear_dead_temp(tmp_root: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(tmp_root)? {
        let path = entry?.path();
        if !path.is_dir() {
            if std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
            continue;
        }
        // A dir without a lock file is one being created right now: leave it.
        let Ok(lock) = std::fs::OpenOptions::new().write(true).open(path.join("lock")) else { continue };
        if try_lock(&lock) {
            removed += std::fs::read_dir(&path)?.count().saturating_sub(1);
            std::fs::remove_dir_all(&path)?;
        }
    }
    Ok(removed)
}

fn io(path: &Path, e: std::io::Error) -> BlobError {
    if super::is_full(&e) {
        return BlobError::Full(format!("{}: {e}", path.display()));
    }
    BlobError::Io(format!("{}: {e}", path.display()))
}

fn sync_dir_now(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// An I/O failure and the path it concerns.
type Failed = (PathBuf, std::io::Error);

/// An unnamed file in `dir`, to be linked under a name once written ([`link_into_place`]).
#[cfg(target_os = "linux")]
fn unnamed_file(dir: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).custom_flags(libc::O_TMPFILE).mode(0o600).open(dir)
}

#[cfg(not(target_os = "linux"))]
fn unnamed_file(_: &Path) -> std::io::Result<std::fs::File> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Gives a written unnamed file the name `dest` (through `/proc/self/fd`, which needs no
/// privilege, unlike `AT_EMPTY_PATH`).
#[cfg(target_os = "linux")]
fn link(f: &std::fs::File, dest: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", f.as_raw_fd()))?;
    let to = std::ffi::CString::new(dest.as_os_str().as_bytes())?;
    // SAFETY: two NUL-terminated paths that outlive the call.
    let r =
        unsafe { libc::linkat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW) };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn link(_: &std::fs::File, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Whether unnamed files can be made and linked in `dir` (not on every file system or kernel).
fn can_link_unnamed(dir: &Path) -> bool {
    let probe = dir.join("unnamed-probe");
    let ok = unnamed_file(dir).and_then(|f| link(&f, &probe)).is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// An error of the file-system call on `p`, named after it.
fn at(p: &Path) -> impl FnOnce(std::io::Error) -> Failed + '_ {
    move |e| (p.to_owned(), e)
}

/// Makes a written unnamed file the blob at `dest`: fsync, link, fsync of the directory,
/// unless the writer was `abandoned` meanwhile. A `dest` already there is replaced through
/// `tmp`, a link then a rename. `Err`: failed before the blob was in place (nothing is
/// visible); `Ok(Err)`: after it.
fn link_into_place(
    f: std::fs::File,
    tmp: &Path,
    dest: &Path,
    abandoned: impl Fn() -> bool,
) -> Result<Result<(), Failed>, Failed> {
    f.sync_all().map_err(at(dest))?;
    if abandoned() {
        return Err((dest.to_owned(), std::io::Error::other("the upload was abandoned")));
    }
    match link(&f, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            link(&f, tmp).map_err(at(tmp))?;
            if let Err(e) = std::fs::rename(tmp, dest) {
                let _ = std::fs::remove_file(tmp);
                return Err(at(dest)(e));
            }
        }
        Err(e) => return Err(at(dest)(e)),
    }
    drop(f);
    let dir = dest.parent().expect("blob path has a parent");
    Ok(sync_dir_now(dir).map_err(at(dir)))
}

/// Makes a written temp file the blob at `dest`: fsync, rename, fsync of the directory.
/// `Err`: failed before the rename (the temp file is still there); `Ok(Err)`: after it.
fn place(f: std::fs::File, tmp: &Path, dest: &Path) -> Result<Result<(), Failed>, Failed> {
    f.sync_all().map_err(at(tmp))?;
    drop(f);
    let dir = dest.parent().expect("blob path has a parent");
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        let shards = dir.parent().expect("blob dir has a parent");
        sync_dir_now(shards).map_err(at(shards))?;
    }
    std::fs::rename(tmp, dest).map_err(at(dest))?;
    Ok(sync_dir_now(dir).map_err(at(dir)))
}

struct FsWriter {
    key: String,
    tmp: PathBuf,
    dest: PathBuf,
    sink: Option<FileSink>,
    /// Durable at `dest`: no temp file is left.
    committed: bool,
    gate: std::sync::Arc<std::sync::Mutex<Gate>>,
    /// See [`FsBlobs::unnamed`].
    unnamed: bool,
}

/// Where the writer's file is made, decided when it is made. The file is made on the blocking
/// pool, possibly after the writer was dropped (a client gone mid-upload): made under this
/// lock and only while `dropped` is unset, it is either made before the drop removes it, or
/// never.
#[derive(Default)]
struct Gate {
    dropped: bool,
    /// Made as an unnamed file in `dest`'s directory rather than as a temp file (a small
    /// blob, made at its commit); unset again by the opener if that file cannot be made.
    in_place: bool,
}

#[async_trait]
impl BlobWriter for FsWriter {
    fn key(&self) -> &str {
        &self.key
    }

    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        let f = self.sink.as_mut().expect("writer used after commit");
        f.write(chunk).await.map_err(|e| io(&self.tmp, e))
    }

    async fn commit(mut self: Box<Self>) -> BlobResult<String> {
        let sink = self.sink.take().expect("writer committed twice");
        let in_place = self.unnamed && sink.unopened();
        if in_place {
            self.gate.lock().unwrap_or_else(|p| p.into_inner()).in_place = true;
        }
        let (tmp, dest, gate) = (self.tmp.clone(), self.dest.clone(), self.gate.clone());
        // The last write, the fsync, the link or rename and the directory's fsync in one trip
        // to the blocking pool: for a small file that trip is most of the upload's cost.
        let placed = sink
            .close_with(move |f| {
                let state = || gate.lock().unwrap_or_else(|p| p.into_inner());
                // As the opener left it, which has run by now.
                let in_place = state().in_place;
                Ok(if in_place { link_into_place(f, &tmp, &dest, || state().dropped) } else { place(f, &tmp, &dest) })
            })
            .await;
        let synced = match placed {
            Ok(Ok(synced)) => synced,
            Ok(Err((path, e))) => return Err(io(&path, e)),
            // Failed before placing (making the file, or its last write): named after the
            // file the opener made.
            Err(e) => {
                let in_place = self.gate.lock().unwrap_or_else(|p| p.into_inner()).in_place;
                return Err(io(if in_place { &self.dest } else { &self.tmp }, e));
            }
        };
        self.committed = true;
        synced.map_err(|(path, e)| io(&path, e))?;
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
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        gate.dropped = true;
        // An unnamed file not linked yet vanishes when closed.
        if !self.committed && !gate.in_place {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[async_trait]
impl Blobs for FsBlobs {
    async fn create_with_key(&self, key: &str) -> BlobResult<Box<dyn BlobWriter>> {
        let key = key.to_owned();
        let tmp = self.tmp.join(format!("{key}.part"));
        let dest = self.path(&key)?;
        // The file is made with the first write to disk: a blob smaller than the sink's buffer
        // is created (unnamed, in its directory), written, fsynced and linked in one trip to
        // the blocking pool. A larger one's temp file is written back to disk as it arrives:
        // the fsync in `commit` then has little left to do.
        let gate = std::sync::Arc::new(std::sync::Mutex::new(Gate::default()));
        let (opening, at_tmp, at_dest) = (gate.clone(), tmp.clone(), dest.clone());
        let sink = FileSink::open_later(
            move || {
                let mut gate = opening.lock().unwrap_or_else(|p| p.into_inner());
                if gate.dropped {
                    return Err(std::io::Error::other("the upload was abandoned"));
                }
                if gate.in_place {
                    match unnamed_file(at_dest.parent().expect("blob path has a parent")) {
                        Ok(f) => return Ok(f),
                        // A shard removed, a file system that refuses: the temp file instead.
                        Err(_) => gate.in_place = false,
                    }
                }
                private_file(&at_tmp)
            },
            true,
        );
        Ok(Box::new(FsWriter { key, tmp, dest, sink: Some(sink), committed: false, gate, unnamed: self.unnamed }))
    }

    fn available(&self) -> Option<u64> {
        free_bytes(&self.root)
    }

    fn local_file(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
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
        match fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, e)),
        }
    }

    async fn put(&self, key: &str, bytes: Bytes) -> BlobResult<()> {
        let dest = self.path(key)?;
        // Unique temp name: a background job and a request may render the same thing at once.
        let tmp = self.tmp.join(format!("{key}.{}.part", uuid::Uuid::new_v4().simple()));
        tokio::task::spawn_blocking(move || {
            let mut f = private_file(&tmp).map_err(|e| io(&tmp, e))?;
            // Placed as a streamed blob is: fsync, rename, the directory's fsync.
            let placed = std::io::Write::write_all(&mut f, &bytes).map_err(|e| (tmp.clone(), e));
            match placed.and_then(|()| place(f, &tmp, &dest)) {
                Ok(synced) => synced.map_err(|(path, e)| io(&path, e)),
                Err((path, e)) => {
                    let _ = std::fs::remove_file(&tmp); // not renamed: the temp file is still there
                    Err(io(&path, e))
                }
            }
        })
        .await
        .map_err(|e| BlobError::Io(e.to_string()))?
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> BlobResult<Vec<BlobInfo>> {
        // Shards are the first two hex digits of the key, so walking shards in order and
        // files in order within each gives the key order.
        let (root, after) = (self.root.clone(), after.map(str::to_owned));
        tokio::task::spawn_blocking(move || {
            let mut shards: Vec<String> = std::fs::read_dir(&root)
                .map_err(|e| io(&root, e))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.len() == 2)
                .collect();
            shards.sort();
            let mut out = Vec::new();
            for shard in shards {
                if after.as_deref().is_some_and(|a| shard.as_str() < &a[..a.len().min(2)]) {
                    continue;
                }
                let dir = root.join(&shard);
                let mut names: Vec<(String, u64)> = std::fs::read_dir(&dir)
                    .map_err(|e| io(&dir, e))?
                    .filter_map(|e| {
                        let e = e.ok()?;
                        Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len()))
                    })
                    .filter(|(n, _)| after.as_deref().is_none_or(|a| n.as_str() > a))
                    .collect();
                names.sort();
                for (key, size) in names {
                    out.push(BlobInfo { key, size });
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| BlobError::Io(e.to_string()))?
    }

    async fn check(&self) -> BlobResult<()> {
        fs::metadata(&self.root).await.map(drop).map_err(|e| io(&self.root, e))
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
    let mut buf = pooled_buffer(want);
    Read::take(&mut file, want as u64).read_to_end(&mut buf)?;
    Ok((file, buf))
}

/// Whole read buffers given back once the response has sent them. A download then reads into
/// memory it already has, where a fresh buffer per chunk is fresh pages the kernel must map
/// and zero (that was a third of a large download's time). Bounded: what a few downloads in
/// flight use, so idle memory stays small.
static POOL: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
const POOL_MAX: usize = 8;

fn pooled_buffer(want: usize) -> Vec<u8> {
    if want == READ_CHUNK
        && let Some(buf) = POOL.lock().unwrap_or_else(|p| p.into_inner()).pop()
    {
        return buf;
    }
    Vec::with_capacity(want)
}

/// A read buffer that goes back to [`POOL`] when the last `Bytes` viewing it is dropped.
struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() == READ_CHUNK {
            buf.clear();
            let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < POOL_MAX {
                pool.push(buf);
            }
        }
    }
}

/// The bytes of a chunk read, for the response; a whole buffer returns to the pool after.
fn chunk_bytes(buf: Vec<u8>) -> Bytes {
    if buf.capacity() == READ_CHUNK { Bytes::from_owner(Pooled(buf)) } else { Bytes::from(buf) }
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
            Some((Ok(chunk_bytes(buf)), (pending, left)))
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
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
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
    async fn temp_files_of_dead_instances_go_and_a_live_instances_stay() {
        // More than two of the sink's buffers: the temp file exists once `write` returns
        // (a smaller blob's is only made at commit).
        let big: Vec<u8> = (0..(2 << 20) + 9).map(|i| (i % 241) as u8).collect();
        let (dir, live, _kept, _) = stored(10).await;
        let mut inflight = live.create().await.unwrap();
        inflight.write(&big).await.unwrap();
        std::fs::write(dir.path().join("tmp/left-by-v0.part"), b"partial").unwrap();
        let dead = FsBlobs::open(dir.path()).unwrap();
        assert_eq!(dead.cleared, 1, "the loose temp file of an older version");
        let mut w = dead.create().await.unwrap();
        w.write(&big).await.unwrap();
        std::mem::forget(w); // a crash: the temp file stays
        drop(dead);

        let next = FsBlobs::open(dir.path()).unwrap();
        assert_eq!(next.cleared, 1, "the dead instance's upload, not the live one's");
        // The live instance's upload is intact and commits.
        let key = inflight.commit().await.unwrap();
        assert!(read(&next, &key, 0, None).await.unwrap() == big);
    }

    #[tokio::test]
    async fn a_key_written_again_is_replaced_and_a_removed_shard_made_again() {
        let (_dir, blobs, key, _) = stored(10).await;
        // An archive imported twice, a migration run again: the same key, written anew.
        for content in [&b"again"[..], &vec![3u8; (1 << 20) + 5]] {
            let mut w = blobs.create_with_key(&key).await.unwrap();
            w.write(content).await.unwrap();
            assert_eq!(w.commit().await.unwrap(), key);
            assert!(read(&blobs, &key, 0, None).await.unwrap() == content);
        }
        // A shard directory someone removed: the small blob goes through a temp file, and
        // the directory is made again.
        let shard = blobs.path(&key).unwrap().parent().unwrap().to_owned();
        std::fs::remove_dir_all(&shard).unwrap();
        let mut w = blobs.create_with_key(&key).await.unwrap();
        w.write(b"back").await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(read(&blobs, &key, 0, None).await.unwrap(), b"back".to_vec());
        assert_eq!(std::fs::read_dir(&blobs.tmp).unwrap().count(), 1, "only the lock file is left");
    }

    #[tokio::test]
    async fn a_small_blob_makes_no_temp_file_before_its_commit() {
        let (dir, blobs, _, _) = stored(0).await;
        let temp_files = || std::fs::read_dir(&blobs.tmp).unwrap().count() - 1; // the lock file
        let mut w = blobs.create().await.unwrap();
        w.write(b"small").await.unwrap();
        assert_eq!(temp_files(), 0);
        let key = w.commit().await.unwrap();
        assert_eq!((temp_files(), read(&blobs, &key, 0, None).await.unwrap()), (0, b"small".to_vec()));
        // Written in its own directory (unnamed, then linked, where the file system allows)
        // or through a temp file: a blob whose directory is unusable fails its commit, naming
        // the path, and leaves nothing behind.
        let mut w = blobs.create().await.unwrap();
        let shard = blobs.path(w.key()).unwrap().parent().unwrap().to_owned();
        let kept = dir.path().join("kept-shard");
        std::fs::rename(&shard, &kept).unwrap();
        std::fs::write(&shard, b"not a dir").unwrap();
        w.write(b"small").await.unwrap();
        let e = w.commit().await.unwrap_err().to_string();
        assert!(e.contains(&shard.display().to_string()), "{e}");
        std::fs::remove_file(&shard).unwrap();
        std::fs::rename(&kept, &shard).unwrap();
        let left = std::fs::read_dir(&shard).unwrap().filter(|e| e.as_ref().unwrap().file_name() != key.as_str());
        assert_eq!((temp_files(), left.count()), (0, 0));
        // A blob dropped before its commit leaves nothing, whether its file was made or not.
        let mut w = blobs.create().await.unwrap();
        w.write(b"dropped").await.unwrap();
        drop(w);
        let mut w = blobs.create().await.unwrap();
        w.write(&vec![1u8; (2 << 20) + 1]).await.unwrap();
        assert_eq!(temp_files(), 1);
        drop(w);
        assert_eq!(temp_files(), 0);
        // Dropped while the write that makes its file may still be under way: nothing stays.
        for _ in 0..20 {
            let mut w = blobs.create().await.unwrap();
            w.write(&vec![2u8; 1 << 20]).await.unwrap();
            drop(w);
            assert_eq!(temp_files(), 0);
        }
        drop(dir);
    }

    #[tokio::test]
    async fn list_pages_in_key_order_with_renditions() {
        let (_dir, blobs, a, _) = stored(10).await;
        let mut keys = vec![a.clone()];
        for _ in 0..4 {
            let mut w = blobs.create().await.unwrap();
            w.write(b"x").await.unwrap();
            keys.push(w.commit().await.unwrap());
        }
        blobs.put(&rendition_key(&a, "thumb"), Bytes::from_static(b"jpeg")).await.unwrap();
        keys.push(rendition_key(&a, "thumb"));
        keys.sort();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = blobs.list(after.as_deref(), 2).await.unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|b| b.key.clone());
            seen.extend(page);
        }
        assert_eq!(seen.iter().map(|b| b.key.clone()).collect::<Vec<_>>(), keys);
        assert_eq!(seen.iter().find(|b| b.key == a).unwrap().size, 10);
        assert_eq!(rendition(&blobs, &a, "thumb").await.unwrap().unwrap(), &b"jpeg"[..]);
        delete_with_renditions(&blobs, &a).await.unwrap();
        assert!(rendition(&blobs, &a, "thumb").await.unwrap().is_none());
        // A render that ends after its blob was deleted leaves nothing behind.
        let late = put_rendition(&blobs, &a, "p500", Bytes::from_static(b"jpeg")).await;
        assert!(matches!(late, Err(BlobError::NotFound(_))), "{late:?}");
        assert!(rendition(&blobs, &a, "p500").await.unwrap().is_none());
        let live = keys.iter().find(|k| **k != a && !k.contains('.')).unwrap();
        put_rendition(&blobs, live, "p100", Bytes::from_static(b"jpeg")).await.unwrap();
        assert!(rendition(&blobs, live, "p100").await.unwrap().is_some());
        assert!(blobs.path("../etc").is_err() && blobs.path(&format!("{a}.exe")).is_err());
    }
}
