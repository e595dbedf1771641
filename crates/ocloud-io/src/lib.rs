//! File I/O shared by the ocloud server and client.
//!
//! [`FileSink`] writes a stream of chunks to a file from async code. Chunks are copied into
//! one of two 1 MiB buffers; a full buffer is written on the blocking pool while the other
//! fills, so network reads and disk writes overlap. The caller drops each network chunk at
//! once, which lets hyper reuse its read buffer (holding chunks until written made every read
//! land in freshly mapped memory, and the kernel spent a quarter of a download zeroing pages),
//! and there is one copy in user space where a `BufWriter` over tokio's `File` makes two.
//!
//! A blocking thread is taken only for the length of one write, never while waiting for the
//! network: a thousand slow uploads cannot starve the blocking pool.

use std::io::{Seek, Write};

#[cfg(target_os = "linux")]
pub mod splice;
pub mod tcp;

mod reserve;
pub use reserve::reserve;

use tokio::task::JoinHandle;

/// Size of one write.
const BUFFER: usize = 1 << 20;

type Writing = JoinHandle<std::io::Result<(std::fs::File, Vec<u8>)>>;

/// Opens the file, on the blocking pool, when the first bytes are written.
type Opener = Box<dyn FnOnce() -> std::io::Result<std::fs::File> + Send>;

/// The file of a sink with no write in flight: open, or still to open.
enum Target {
    Open(std::fs::File),
    Later(Opener),
}

impl Target {
    fn file(self) -> std::io::Result<std::fs::File> {
        match self {
            Target::Open(f) => Ok(f),
            Target::Later(open) => open(),
        }
    }
}

/// A file being written from async code. See the crate docs.
pub struct FileSink {
    filling: Vec<u8>,
    /// The file, when no write is in flight.
    idle: Option<Target>,
    /// The write in flight; it gives the file and its buffer back.
    writing: Option<Writing>,
    write_back: bool,
}

impl FileSink {
    /// With `write_back`, each buffer is handed to the disk as soon as it is written (Linux
    /// `sync_file_range`, elsewhere nothing), so that an fsync at the end finds little left to
    /// do: for a durable upload, writing to disk overlaps receiving.
    pub fn new(file: std::fs::File, write_back: bool) -> Self {
        FileSink { filling: Vec::new(), idle: Some(Target::Open(file)), writing: None, write_back }
    }

    /// A sink whose file `open` makes on the blocking pool with the first write (or at
    /// [`Self::close_with`]): a file smaller than one buffer is then opened, written and
    /// closed in a single trip there. Failures to open are reported as write failures.
    pub fn open_later(
        open: impl FnOnce() -> std::io::Result<std::fs::File> + Send + 'static,
        write_back: bool,
    ) -> Self {
        FileSink { filling: Vec::new(), idle: Some(Target::Later(Box::new(open))), writing: None, write_back }
    }

    /// Whether the file is still to be opened: every byte so far fits in the buffer, and
    /// [`Self::close_with`] will open, write and close it in one go.
    pub fn unopened(&self) -> bool {
        matches!(self.idle, Some(Target::Later(_)))
    }

    /// Copies `data` in. Fails if an earlier write failed (the error is that write's).
    pub async fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(BUFFER - self.filling.len());
            let (len, cap) = (self.filling.len(), self.filling.capacity());
            if len + n > cap {
                // Sized on first use and grown (doubling, from SMALL, never past one buffer)
                // only while the first buffer fills: a small file costs a small buffer, and
                // later buffers are recycled whole.
                self.filling.reserve_exact((cap * 2).max(len + n).clamp(SMALL, BUFFER) - len);
            }
            self.filling.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.filling.len() == BUFFER {
                self.hand_over().await?;
            }
        }
        Ok(())
    }

    /// Waits for the write in flight, then starts writing the filled buffer.
    async fn hand_over(&mut self) -> std::io::Result<()> {
        let (target, spare) = self.settle().await?;
        let full = std::mem::replace(&mut self.filling, spare);
        let write_back = self.write_back;
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let mut file = target.file()?;
            write(&mut file, &full, write_back)?;
            Ok((file, full))
        }));
        Ok(())
    }

    /// The file and an empty buffer, once no write is in flight.
    async fn settle(&mut self) -> std::io::Result<(Target, Vec<u8>)> {
        match self.writing.take() {
            Some(w) => {
                let (file, mut buf) = w.await.map_err(std::io::Error::other)??;
                buf.clear();
                Ok((Target::Open(file), buf))
            }
            None => {
                let target = self.idle.take().ok_or_else(|| std::io::Error::other("an earlier write failed"))?;
                // The first hand-over of a file larger than one buffer: the spare is needed.
                Ok((target, Vec::with_capacity(BUFFER)))
            }
        }
    }

    /// Writes what is left and gives the file back (for an fsync).
    pub async fn finish(self) -> std::io::Result<std::fs::File> {
        self.close_with(Ok).await
    }

    /// Writes what is left, then runs `then` on the file, both in one trip to the blocking
    /// pool: a small file (one buffer) is written, fsynced and put in place in a single trip.
    pub async fn close_with<T: Send + 'static>(
        mut self,
        then: impl FnOnce(std::fs::File) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let target = match self.writing.take() {
            Some(w) => Target::Open(w.await.map_err(std::io::Error::other)??.0),
            None => self.idle.take().ok_or_else(|| std::io::Error::other("an earlier write failed"))?,
        };
        let rest = std::mem::take(&mut self.filling);
        tokio::task::spawn_blocking(move || {
            let mut file = target.file()?;
            // No early write-back for the last bytes: what follows is usually the fsync.
            if !rest.is_empty() {
                write(&mut file, &rest, false)?;
            }
            then(file)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Smallest buffer: what one network read usually brings.
const SMALL: usize = 16 << 10;

fn write(file: &mut std::fs::File, buf: &[u8], write_back: bool) -> std::io::Result<()> {
    file.write_all(buf)?;
    if write_back {
        let end = file.stream_position()?;
        start_write_back(file, end - buf.len() as u64, buf.len() as u64);
    }
    Ok(())
}

/// Starts writing a range of the file to disk, without waiting. Failures are left to the
/// fsync that follows, which reports them.
#[cfg(target_os = "linux")]
fn start_write_back(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor and plain integers; the call reads no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_write_back(_: &std::fs::File, _: u64, _: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_every_byte_in_order_whatever_the_chunk_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let content: Vec<u8> = (0..5 * BUFFER + 777).map(|i| (i * 13 % 253) as u8).collect();
        let mut sink = FileSink::new(std::fs::File::create(&path).unwrap(), true);
        let mut rest = &content[..];
        for size in [1, 16 * 1024, BUFFER - 1, 3 * BUFFER, 400 * 1024].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = rest.len().min(*size);
            sink.write(&rest[..n]).await.unwrap();
            rest = &rest[n..];
        }
        let file = sink.finish().await.unwrap();
        assert_eq!(file.metadata().unwrap().len(), content.len() as u64);
        assert!(std::fs::read(&path).unwrap() == content);
    }

    #[tokio::test]
    async fn a_file_opened_later_is_opened_with_the_first_write_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let p = path.clone();
        let mut sink = FileSink::open_later(move || std::fs::File::create(&p), false);
        sink.write(b"small").await.unwrap();
        assert!(!path.exists(), "not before the bytes go to disk");
        let len = sink.close_with(|f| Ok(f.metadata()?.len())).await.unwrap();
        assert_eq!((len, std::fs::read(&path).unwrap()), (5, b"small".to_vec()));

        let mut refused = FileSink::open_later(|| Err(std::io::Error::other("no room")), false);
        assert!(refused.write(&vec![0u8; BUFFER]).await.is_ok(), "handed over, not yet written");
        let e = refused.write(&vec![0u8; BUFFER]).await.unwrap_err();
        assert_eq!(e.to_string(), "no room");
        assert!(refused.finish().await.is_err());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_failed_write_is_reported_and_stops_the_sink() {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let mut sink = FileSink::new(full, false);
        let chunk = vec![7u8; 64 * 1024];
        // Writes run behind: the error surfaces at a later write.
        let first = loop {
            if let Err(e) = sink.write(&chunk).await {
                break e;
            }
        };
        assert_eq!(first.raw_os_error(), Some(28), "{first}"); // ENOSPC
        assert!(sink.write(&chunk).await.is_err(), "nothing is written after a failure");
        assert!(sink.finish().await.is_err());
    }
}
