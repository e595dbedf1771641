//! Streaming uploads and downloads in fixed-size chunks with progress: memory stays flat
//! whatever the file size. Uploads from a file are replayed from the file on retry; downloads
//! to a path go through `.<name>.ocloud-part`, written in 1 MiB writes on the blocking pool
//! ([`ocloud_io::FileSink`]), and resume with `Range`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use ocloud_io::FileSink;
use ocloud_wire::model::{UploadDescription, UploadResponse};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::multipart::{Form, Part};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::error::{Error, Result};
use crate::manager::{ApiManager, Replay};

/// Chunk size of transfers.
pub const CHUNK: usize = 256 * 1024;

/// A download of a known size from this one up has its space reserved first.
const RESERVED_FROM: u64 = 1 << 20;

/// Told how many bytes just went through.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// let done = Arc::new(AtomicU64::new(0));
/// let d = done.clone();
/// let progress: Arc<dyn ocloud_client::Progress> = Arc::new(move |n: u64| { d.fetch_add(n, Ordering::Relaxed); });
/// progress.advance(10);
/// assert_eq!(done.load(Ordering::Relaxed), 10);
/// ```
pub trait Progress: Send + Sync {
    /// `bytes` more were sent or received.
    fn advance(&self, bytes: u64);
}

impl<F: Fn(u64) + Send + Sync> Progress for F {
    fn advance(&self, bytes: u64) {
        self(bytes)
    }
}

pub(crate) fn counted<R: AsyncRead + Send + 'static>(reader: R, progress: Option<Arc<dyn Progress>>) -> reqwest::Body {
    let stream = ReaderStream::with_capacity(reader, CHUNK).inspect(move |chunk| {
        if let (Ok(c), Some(p)) = (chunk, &progress) {
            p.advance(c.len() as u64);
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// An upload from a file, as both ways of sending it take it.
#[derive(Clone, Copy)]
struct FileUpload<'a> {
    url: &'a str,
    path: &'a Path,
    /// The name stored under.
    name: &'a str,
    size: u64,
    folder: Option<&'a str>,
    progress: &'a Option<Arc<dyn Progress>>,
}

/// The upload form's `description` part (spec §3.9).
fn description(name: &str, size: u64, folder: Option<&str>) -> String {
    let desc = UploadDescription { name: name.to_owned(), size: size.to_string(), folder: folder.map(str::to_owned) };
    serde_json::to_string(&desc).expect("description serialises")
}

fn form(name: &str, size: u64, folder: Option<&str>, body: reqwest::Body) -> Result<Form> {
    let part = Part::stream_with_length(body, size).file_name(name.to_owned()).mime_str("application/octet-stream")?;
    Ok(Form::new().text("description", description(name, size, folder)).part("file", part))
}

impl crate::cloud::Files<'_> {
    /// Uploads a local file (form A of spec §3.9) into `folder` (`None`: the default
    /// folder), under `name` (default: the file's name). Replayed from the file on retry.
    ///
    /// ```no_run
    /// # async fn f(api: ocloud_client::ApiManager) -> ocloud_client::Result<()> {
    /// let r = api.files().upload_path("photo.jpg".as_ref(), None, None, None).await?;
    /// println!("stored as {} ({})", r.file_name, r.file_id);
    /// # Ok(()) }
    /// ```
    pub async fn upload_path(
        &self,
        path: &Path,
        folder: Option<&str>,
        name: Option<&str>,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<UploadResponse> {
        let name = match name {
            Some(n) => n.to_owned(),
            None => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| Error::Invalid(format!("{}: no file name", path.display())))?,
        };
        // One trip to the blocking pool learns the size and, for a small file, reads it whole:
        // for many small files, those trips were most of the CLI's work.
        let p = path.to_owned();
        let (size, content) = blocking(path, move || {
            let mut file = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
            let meta = file.metadata().map_err(|e| Error::io(&p, e))?;
            if !meta.is_file() {
                return Err(Error::Invalid(format!("{}: not a file", p.display())));
            }
            if meta.len() > CHUNK as u64 {
                return Ok((meta.len(), None));
            }
            let mut content = Vec::with_capacity(meta.len() as usize);
            std::io::Read::read_to_end(&mut file, &mut content).map_err(|e| Error::io(&p, e))?;
            Ok((content.len() as u64, Some(bytes::Bytes::from(content))))
        })
        .await?;
        let url = self.m.upload_url("/files/content");
        let upload = FileUpload { url: &url, path, name: &name, size, folder, progress: &progress };
        #[cfg(target_os = "linux")]
        let raw = match content {
            None if size >= crate::raw::LARGE => self.upload_raw(&upload).await?,
            _ => None,
        };
        #[cfg(not(target_os = "linux"))]
        let raw = None;
        let resp = match raw {
            Some(resp) => resp,
            None => self.upload_through_reqwest(&upload, &content).await?,
        };
        // Content read whole was sent in one piece: counted now.
        if let (Some(_), Some(p)) = (&content, &progress) {
            p.advance(size);
        }
        let r: UploadResponse = resp.json().await?;
        self.m.inner.paths.clear();
        Ok(r)
    }

    /// Uploads through reqwest: `content` when read already, else the file, streamed.
    async fn upload_through_reqwest(
        &self,
        upload: &FileUpload<'_>,
        content: &Option<bytes::Bytes>,
    ) -> Result<reqwest::Response> {
        let FileUpload { url, path, name, size, folder, progress } = *upload;
        self.m
            .send(Replay::Safe, |c| {
                let body = match &content {
                    Some(bytes) => reqwest::Body::from(bytes.clone()),
                    None => {
                        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
                        counted(tokio::fs::File::from_std(file), progress.clone())
                    }
                };
                Ok(c.post(url).multipart(form(name, size, folder, body)?))
            })
            .await
    }

    /// Uploads a large file on a connection of its own, its content sent with `sendfile`
    /// (`raw.rs`), when the URL allows it; `None`: send it through reqwest.
    #[cfg(target_os = "linux")]
    async fn upload_raw(&self, upload: &FileUpload<'_>) -> Result<Option<reqwest::Response>> {
        use crate::manager::Attempt;
        use crate::raw::Posted;
        let FileUpload { url, path, name, size, folder, progress } = *upload;
        let Some(target) = crate::raw::Target::of(url) else { return Ok(None) };
        let form = crate::raw::Form::new(&description(name, size, folder), name);
        let (settings, target, form) = (&self.m.inner.raw, &target, &form);
        let tries = std::sync::atomic::AtomicU32::new(0);
        let got = self
            .m
            .attempts(Replay::Safe, |token| {
                let progress = progress.clone();
                let first = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
                async move {
                    // Opened for every attempt, as the reqwest path reopens it.
                    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
                    let lost = |source, again| Attempt::Lost(Error::Connection { url: url.to_owned(), source }, again);
                    Ok(match crate::raw::post_file(settings, target, &token, form, file, size, progress).await {
                        Ok(Posted::Stored(r)) => Attempt::Answered(Some(r)),
                        Ok(Posted::Refused(r)) => Attempt::Refused(r),
                        // Through reqwest, on its own attempts, only if the first found no
                        // connection: a later one is a retry like any other.
                        Ok(Posted::Unsent) if first => Attempt::Answered(None),
                        Ok(Posted::Unsent) => lost(std::io::ErrorKind::NotConnected.into(), true),
                        Ok(Posted::Unclear(source)) => lost(source, false),
                        Ok(Posted::File(e)) => return Err(Error::io(path, e)),
                        Err(source) => lost(source, true),
                    })
                }
            })
            .await?;
        if got.is_none() {
            tracing::debug!(url, "not sent on a connection of its own, sending through reqwest");
        }
        Ok(got)
    }

    /// Uploads `size` bytes read from `reader`. A stream cannot be replayed: a failure after
    /// sending started is returned, not retried.
    pub async fn upload_reader<R: AsyncRead + Send + 'static>(
        &self,
        reader: R,
        name: &str,
        size: u64,
        folder: Option<&str>,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<UploadResponse> {
        let url = self.m.upload_url("/files/content");
        let source = std::sync::Mutex::new(Some(reader));
        let resp = self
            .m
            .send(Replay::Unsafe, |c| {
                let reader = source
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .ok_or_else(|| Error::Invalid("a stream upload cannot be replayed".into()))?;
                Ok(c.post(&url).multipart(form(name, size, folder, counted(reader, progress.clone()))?))
            })
            .await?;
        let r: UploadResponse = resp.json().await?;
        self.m.inner.paths.clear();
        Ok(r)
    }

    /// Downloads a file by id to a local path (see [`ApiManager::download_to_path`]). On
    /// Linux, a file of 1 MiB or more at a plain `http://` URL comes over a connection of its
    /// own and is written by `splice(2)`, straight from the socket to the file.
    pub async fn download(&self, id: &str, dest: &Path, progress: Option<Arc<dyn Progress>>) -> Result<u64> {
        let info = self.get(id).await?;
        let url = info.download_url.ok_or_else(|| Error::Invalid(format!("file {id} has no downloadUrl")))?;
        self.m.fetch_to_path(&url, dest, progress, Some(info.size)).await
    }
}

/// The temp file a download to `dest` goes through: `.<name>.ocloud-part`, or, when that would
/// pass the 255-byte limit of file names, the name's first bytes and a hash of the whole name
/// (still the same for the same `dest`, so an interrupted download resumes).
pub fn partial_path(dest: &Path) -> PathBuf {
    const SUFFIX: &str = ".ocloud-part";
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if 1 + name.len() + SUFFIX.len() <= 255 {
        return dest.with_file_name(format!(".{name}{SUFFIX}"));
    }
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(name.as_bytes());
    let hash: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    let mut keep = 255 - 1 - 1 - hash.len() - SUFFIX.len();
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    dest.with_file_name(format!(".{}~{hash}{SUFFIX}", &name[..keep]))
}

impl ApiManager {
    /// Streams the content at `url` from byte `offset` into `writer`; returns the bytes
    /// written. Fails if the server ignores the range.
    pub async fn download_to_writer<W: AsyncWrite + Unpin>(
        &self,
        url: &str,
        offset: u64,
        writer: &mut W,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<u64> {
        let resp = self
            .send(Replay::Safe, |c| {
                let rb = c.get(url);
                Ok(if offset > 0 { rb.header(RANGE, format!("bytes={offset}-")) } else { rb })
            })
            .await?;
        if offset > 0 && resp.status().as_u16() != 206 {
            return Err(Error::Invalid(format!("{url}: the server ignored the range")));
        }
        copy_body(resp, writer, progress.as_deref(), url).await
    }

    /// Downloads the content at `url` to `dest`: streamed into `.<name>.ocloud-part` beside
    /// it, then renamed, so `dest` never holds a partial file. A part left by an
    /// interrupted download is resumed with `Range`, and so is a connection lost part-way
    /// (reset, cut short), as long as each attempt brings bytes and the retry policy's
    /// attempts last. Returns the size of the file.
    pub async fn download_to_path(&self, url: &str, dest: &Path, progress: Option<Arc<dyn Progress>>) -> Result<u64> {
        self.fetch_to_path(url, dest, progress, None).await
    }

    /// [`Self::download_to_path`], of a file of `size` bytes when known: a large one gets a
    /// connection of its own whose body is spliced into the file (see `raw.rs`), and the
    /// download must end at that size.
    pub(crate) async fn fetch_to_path(
        &self,
        url: &str,
        dest: &Path,
        progress: Option<Arc<dyn Progress>>,
        size: Option<u64>,
    ) -> Result<u64> {
        let part = partial_path(dest);
        let d = dest.to_owned();
        blocking(dest, move || {
            if let Some(dir) = d.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            Ok(())
        })
        .await?;
        let mut attempt = 1;
        let mut counted = false;
        loop {
            let before = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
            match self.download_part(url, &part, before, progress.clone(), !counted, size).await {
                Ok(()) => break,
                Err(e @ (Error::Http(_) | Error::Connection { .. })) if attempt < self.inner.retry.max_attempts => {
                    let now = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
                    if now <= before {
                        return Err(e);
                    }
                    attempt += 1;
                    counted = true;
                    tracing::info!(url, at = now, error = %e, "connection lost part-way, resuming");
                }
                Err(e) => return Err(e),
            }
        }
        let d = dest.to_owned();
        blocking(dest, move || {
            let got = std::fs::metadata(&part).map_err(|e| Error::io(&part, e))?.len();
            if let Some(expected) = size.filter(|s| *s != got) {
                // Not the file asked for (replaced meanwhile, or a server's wrong range): a
                // next try starts afresh.
                let _ = std::fs::remove_file(&part);
                return Err(Error::Invalid(format!("{}: got {got} bytes, the file has {expected}", d.display())));
            }
            std::fs::rename(&part, &d).map_err(|e| Error::io(&d, e))?;
            Ok(got)
        })
        .await
    }

    /// One attempt: the content from byte `have` written into `part` from there (or all of
    /// it, when the server answers the whole file), of the file's `size` when known.
    /// `count_resumed`: report the bytes already there as progress.
    async fn download_part(
        &self,
        url: &str,
        part: &Path,
        have: u64,
        progress: Option<Arc<dyn Progress>>,
        count_resumed: bool,
        size: Option<u64>,
    ) -> Result<()> {
        #[cfg(target_os = "linux")]
        let large = size.is_some_and(|s| s >= crate::raw::LARGE);
        #[cfg(not(target_os = "linux"))]
        let large = false;
        let answer = match self.ask(url, have, large).await {
            // A part as long as the file: the last download stopped just before the rename.
            Err(Error::Api(a)) if a.status == 416 && have > 0 => return Ok(()),
            Err(e) => return Err(e),
            Ok(r) => r,
        };
        let (status, start) = match &answer {
            Answer::Http(r) => (r.status().as_u16(), content_range_start(r.headers())),
            #[cfg(target_os = "linux")]
            Answer::Raw(b) => (b.status, b.range_start),
        };
        let resume = have > 0 && status == 206 && start == Some(have);
        if status == 206 && !resume {
            return Err(Error::Invalid(format!("{url}: the server answered a range not asked for")));
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(!resume)
            .open(part)
            .await
            .map_err(|e| Error::io(part, e))?
            .into_std()
            .await;
        if let Some(size) = size.filter(|s| *s >= RESERVED_FROM) {
            // On the blocking pool: reserving a large file can take a while, and the CLI's
            // other transfers share its thread.
            let p = part.to_owned();
            file = blocking(part, move || reserve(&file, &p, size).map(|()| file)).await?;
        }
        if resume {
            // At the end the range starts from; not in append mode, which `splice` refuses.
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(have)).map_err(|e| Error::io(part, e))?;
            if count_resumed && let Some(p) = &progress {
                p.advance(have);
            }
        }
        match answer {
            #[cfg(target_os = "linux")]
            Answer::Raw(body) => body.into_file(file, progress).await.map_err(|e| match e {
                ocloud_io::splice::Stopped::Socket(source) => Error::Connection { url: url.to_owned(), source },
                ocloud_io::splice::Stopped::File(e) => Error::io(part, e),
            }),
            Answer::Http(resp) => {
                let sink = FileSink::new(file, false);
                // The body is pumped by a task of its own, on the runtime's thread like hyper's
                // connection task: on a multi-threaded runtime, pumped from a future under
                // `block_on`, every chunk woke another CPU, and a 1 GiB download ran 2.5×
                // slower. (The CLI now runs on one thread, where this costs nothing either.)
                let pump = tokio::spawn(pump(resp, sink, progress));
                let (received, written) = pump.await.map_err(|e| Error::io(part, std::io::Error::other(e)))?;
                written.map_err(|e| Error::io(part, e))?;
                // No fsync: the rename makes the file appear whole or not at all, which is
                // what an interrupted transfer needs; like curl and rclone, we leave flushing
                // to the OS.
                received
            }
        }
    }

    /// Asks for the content from byte `have`: on a connection of its own when the file is
    /// `large` and the URL allows it, through reqwest otherwise.
    async fn ask(&self, url: &str, have: u64, large: bool) -> Result<Answer> {
        #[cfg(target_os = "linux")]
        if let Some(target) = crate::raw::Target::of(url).filter(|_| large) {
            use crate::manager::Attempt;
            let (settings, target) = (&self.inner.raw, &target);
            let got = self
                .attempts(Replay::Safe, |token| async move {
                    Ok(match crate::raw::get(settings, target, &token, have).await {
                        Ok(crate::raw::Answer::Body(b)) => Attempt::Answered(Some(b)),
                        Ok(crate::raw::Answer::Refused(r)) => Attempt::Refused(r),
                        Ok(crate::raw::Answer::Unsuitable) => Attempt::Answered(None),
                        Err(source) => Attempt::Lost(Error::Connection { url: url.to_owned(), source }, true),
                    })
                })
                .await?;
            if let Some(body) = got {
                return Ok(Answer::Raw(body));
            }
            tracing::debug!(url, "an answer not for splicing, asked again through reqwest");
        }
        #[cfg(not(target_os = "linux"))]
        let _ = large;
        let resp = self
            .send(Replay::Safe, |c| {
                let rb = c.get(url);
                Ok(if have > 0 { rb.header(RANGE, format!("bytes={have}-")) } else { rb })
            })
            .await?;
        Ok(Answer::Http(resp))
    }
}

/// Reserves the space of a download of `size` bytes into `part` (see [`ocloud_io::reserve`]):
/// a disk or quota too full for it is said before its content is read. On any failure the
/// part is left as it was (an empty one removed), and what was reserved goes back.
fn reserve(file: &std::fs::File, part: &Path, size: u64) -> Result<()> {
    let Err(e) = ocloud_io::reserve(file, size) else { return Ok(()) };
    match file.metadata().map(|m| m.len()) {
        Ok(0) => drop(std::fs::remove_file(part)),
        Ok(had) => drop(file.set_len(had)),
        Err(_) => {}
    }
    let why = match e.kind() {
        std::io::ErrorKind::StorageFull => format!("not enough free space for the file's {size} bytes"),
        std::io::ErrorKind::QuotaExceeded => format!("the disk quota has no room for the file's {size} bytes"),
        std::io::ErrorKind::FileTooLarge => format!("the file system takes no file of {size} bytes"),
        _ => return Err(Error::io(part, e)),
    };
    Err(Error::io(part, std::io::Error::new(e.kind(), why)))
}

/// A download's answer, and how its body is to be read.
enum Answer {
    Http(reqwest::Response),
    #[cfg(target_os = "linux")]
    Raw(crate::raw::Body),
}

/// Runs file work on the blocking pool; `what` names it if the task dies.
async fn blocking<T: Send + 'static>(what: &Path, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::io(what, std::io::Error::other(e)))?
}

/// Streams a response body into a file; returns how the network side ended and how the file
/// side ended. Whatever stopped the transfer, what arrived is written, for a resume.
async fn pump(
    resp: reqwest::Response,
    mut sink: FileSink,
    progress: Option<Arc<dyn Progress>>,
) -> (Result<()>, std::io::Result<std::fs::File>) {
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return (Err(e.into()), sink.finish().await),
        };
        if let Err(e) = sink.write(&chunk).await {
            return (Ok(()), Err(e));
        }
        if let Some(p) = &progress {
            p.advance(chunk.len() as u64);
        }
    }
    (Ok(()), sink.finish().await)
}

/// Where a `206`'s `Content-Range: bytes START-END/SIZE` starts.
pub(crate) fn content_range_start(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    v.strip_prefix("bytes ")?.split('-').next()?.parse().ok()
}

async fn copy_body<W: AsyncWrite + Unpin>(
    resp: reqwest::Response,
    writer: &mut W,
    progress: Option<&dyn Progress>,
    what: &str,
) -> Result<u64> {
    let mut stream = resp.bytes_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        writer.write_all(&chunk).await.map_err(|e| Error::io(what, e))?;
        total += chunk.len() as u64;
        if let Some(p) = progress {
            p.advance(chunk.len() as u64);
        }
    }
    writer.flush().await.map_err(|e| Error::io(what, e))?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_names_always_fit() {
        assert_eq!(partial_path(Path::new("/d/a.txt")), Path::new("/d/.a.txt.ocloud-part"));
        for name in ["é".repeat(127), "x".repeat(255), format!("{}.jpg", "€".repeat(80))] {
            let p = partial_path(&Path::new("/d").join(&name));
            let part = p.file_name().unwrap().to_str().unwrap();
            assert!(part.len() <= 255 && part.starts_with('.') && part.ends_with(".ocloud-part"), "{part}");
            assert_eq!(p, partial_path(&Path::new("/d").join(&name)), "stable, so a download resumes");
            let other = partial_path(&Path::new("/d").join(format!("{name}b")));
            assert_ne!(p, other);
        }
    }
}
