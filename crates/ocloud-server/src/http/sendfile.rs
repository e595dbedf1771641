//! Zero-copy downloads: on a plain HTTP/1.1 connection, a file-store blob goes from the page
//! cache to the socket with `sendfile(2)`, instead of being read into memory and written back
//! out (two copies and a trip through the blocking pool per MiB).
//!
//! hyper owns the connection's writes, so the response body carries *stand-ins*: slices of
//! one private region that is never read (`mark`), one per chunk, whose file and offset
//! wait in the connection's [`Splice`] queue. The connection's I/O ([`SpliceIo`]) recognises
//! a stand-in by its address when hyper writes it, and sends the file's bytes in its place.
//!
//! This holds because:
//! - hyper is told to queue body buffers as they are (`writev(true)`: never copied into its
//!   own buffer) and writes them in order, each stand-in advanced only by what was sent;
//! - nothing between the handler and the connection reads a body's bytes. The path is taken
//!   only without TLS, without the emulator (its faults rewrite bodies), and for requests
//!   that came straight from a connection: the web interface's gateway and zip do not pass
//!   the [`Splice`] on.

use std::collections::VecDeque;
use std::io::IoSlice;
#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};

use axum::body::Body;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Bytes per stand-in: one `sendfile` call at most, and one read-ahead.
const CHUNK: usize = 4 << 20;

/// The stand-ins' region. Allocated zeroed and never touched, so it costs address space
/// only; a stand-in is recognised by pointing into it.
fn mark() -> &'static [u8] {
    static MARK: OnceLock<&'static [u8]> = OnceLock::new();
    MARK.get_or_init(|| Box::leak(vec![0u8; CHUNK].into_boxed_slice()))
}

/// Whether `buf` is (the unsent rest of) a stand-in; then how much of it was sent already.
fn sent_of_mark(buf: &[u8]) -> Option<usize> {
    let base = mark().as_ptr() as usize;
    let at = buf.as_ptr() as usize;
    (!buf.is_empty() && at >= base && at + buf.len() <= base + CHUNK).then(|| at - base)
}

/// A chunk of a file waiting to be sent for the stand-in at the front of the queue.
struct Pending {
    file: Arc<std::fs::File>,
    offset: u64,
    len: usize,
    /// Bytes of it sent so far: a stand-in written must say the same, or the queue and
    /// hyper's writes disagree and the connection is closed rather than send wrong bytes.
    sent: usize,
}

/// Brings `len` bytes of `file` from `offset` into the page cache and waits for them:
/// `readahead` only starts the reads, so one byte of every 64 KiB is then read, which waits
/// for the pages to arrive.
#[cfg(target_os = "linux")]
fn page_in(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    // SAFETY: a valid descriptor and plain integers.
    unsafe { libc::readahead(file.as_raw_fd(), offset as libc::off64_t, len) };
    let mut byte = [0u8; 1];
    for at in (0..len).step_by(64 << 10).chain([len - 1]) {
        if file.read_at(&mut byte, offset + at as u64)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn page_in(_: &std::fs::File, _: u64, _: usize) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(target_os = "linux")]
use ocloud_io::splice::send_file;

#[cfg(not(target_os = "linux"))]
fn send_file(_: &TcpStream, _: &std::fs::File, _: u64, _: usize) -> std::io::Result<usize> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Whether this platform sends downloads with `sendfile` (Linux only).
pub const AVAILABLE: bool = cfg!(target_os = "linux");

/// One connection's stand-ins, in the order hyper will write them. Requests reach it
/// through their [`super::conn::Conn`] extension.
#[derive(Default)]
pub struct Splice {
    queue: Mutex<VecDeque<Pending>>,
}

/// The body of `len` bytes of `file` from `offset`, sent by the connection with `sendfile`.
pub fn body(splice: Arc<Splice>, file: std::fs::File, offset: u64, len: u64) -> Body {
    let file = Arc::new(file);
    let chunks = futures_util::stream::unfold((offset, len), move |(offset, left)| {
        let (splice, file) = (splice.clone(), file.clone());
        async move {
            if left == 0 {
                return None;
            }
            let n = left.min(CHUNK as u64) as usize;
            // The chunk is brought into the page cache on the blocking pool first, so that the
            // `sendfile` on the runtime's thread finds it there instead of waiting for the disk.
            let f = file.clone();
            let paged = tokio::task::spawn_blocking(move || page_in(&f, offset, n)).await;
            match paged {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Some((Err(e), (offset, 0))),
                Err(e) => return Some((Err(std::io::Error::other(e)), (offset, 0))),
            }
            splice.queue.lock().unwrap_or_else(|p| p.into_inner()).push_back(Pending { file, offset, len: n, sent: 0 });
            Some((Ok(Bytes::from_static(&mark()[..n])), (offset + n as u64, left - n as u64)))
        }
    });
    Body::from_stream(chunks)
}

/// A plain TCP connection that sends stand-ins' files with `sendfile`.
pub struct SpliceIo {
    tcp: TcpStream,
    splice: Arc<Splice>,
}

impl SpliceIo {
    /// Wraps an accepted connection; `splice` goes into each of its requests.
    pub fn new(tcp: TcpStream, splice: Arc<Splice>) -> SpliceIo {
        SpliceIo { tcp, splice }
    }

    /// Sends bytes of the front stand-in's file, of which `sent` were sent already.
    fn poll_send_file(&mut self, cx: &mut Context<'_>, sent: usize, want: usize) -> Poll<std::io::Result<usize>> {
        let (file, offset, len) = {
            let q = self.splice.queue.lock().unwrap_or_else(|p| p.into_inner());
            match q.front() {
                Some(p) if p.sent == sent => (p.file.clone(), p.offset + sent as u64, p.len),
                _ => {
                    return Poll::Ready(Err(std::io::Error::other(
                        "a download's stand-in does not match its file: closing the connection",
                    )));
                }
            }
        };
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_io(Interest::WRITABLE, || send_file(&self.tcp, &file, offset, want)) {
                // The file ended before its record said: never send the stand-in's zeros.
                Ok(0) => return Poll::Ready(Err(std::io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => {
                    let mut q = self.splice.queue.lock().unwrap_or_else(|p| p.into_inner());
                    if sent + n >= len {
                        q.pop_front();
                    } else if let Some(p) = q.front_mut() {
                        p.sent = sent + n;
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for SpliceIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SpliceIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match sent_of_mark(buf) {
            Some(sent) => this.poll_send_file(cx, sent, buf.len()),
            None => Pin::new(&mut this.tcp).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        // Plain buffers up to the first stand-in go out together; a stand-in goes alone.
        match bufs.iter().position(|b| sent_of_mark(b).is_some()) {
            Some(0) => {
                let sent = sent_of_mark(&bufs[0]).expect("a stand-in");
                this.poll_send_file(cx, sent, bufs[0].len())
            }
            Some(i) => Pin::new(&mut this.tcp).poll_write_vectored(cx, &bufs[..i]),
            None => Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_are_recognised_by_address_only() {
        let m = mark();
        assert_eq!(sent_of_mark(&m[..10]), Some(0));
        assert_eq!(sent_of_mark(&m[100..CHUNK]), Some(100));
        // The same bytes elsewhere are not a stand-in.
        assert_eq!(sent_of_mark(&[0u8; 10]), None);
        assert_eq!(sent_of_mark(&[]), None);
    }
}
