//! File I/O shared by the ocloud server and client.
//!
//! [`FileSink`] writes a stream of chunks to a file on a blocking thread of its own, so
//! network reads and disk writes overlap. Chunks are copied into one of three 1 MiB buffers
//! that go round between the caller and the writer thread: the caller drops each network chunk
//! at once, which lets hyper reuse its read buffer (holding chunks until written made every
//! read land in freshly mapped memory, and the kernel spent a quarter of a download zeroing
//! pages), and there is one copy in user space where a `BufWriter` over tokio's `File` makes
//! two.

use std::io::{Seek, Write};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Size of one write.
const BUFFER: usize = 1 << 20;
/// Buffers in circulation: one filling, one queued, one being written.
const BUFFERS: usize = 3;

/// A file being written from async code. See the crate docs.
pub struct FileSink {
    filling: Vec<u8>,
    made: usize,
    full: mpsc::Sender<Vec<u8>>,
    empty: mpsc::Receiver<Vec<u8>>,
    writer: JoinHandle<std::io::Result<std::fs::File>>,
}

impl FileSink {
    /// Starts the writer thread. With `write_back`, each buffer is handed to the disk as soon
    /// as it is written (Linux `sync_file_range`, elsewhere nothing), so that an fsync at the
    /// end finds little left to do: for a durable upload, writing to disk overlaps receiving.
    pub fn new(mut file: std::fs::File, write_back: bool) -> Self {
        let (full, mut full_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
        let (empty_tx, empty) = mpsc::channel::<Vec<u8>>(BUFFERS);
        let writer = tokio::task::spawn_blocking(move || {
            while let Some(mut buf) = full_rx.blocking_recv() {
                file.write_all(&buf)?;
                if write_back {
                    let end = file.stream_position()?;
                    start_write_back(&file, end - buf.len() as u64, buf.len() as u64);
                }
                buf.clear();
                // Never blocks: the channel holds every buffer there is.
                let _ = empty_tx.try_send(buf);
            }
            Ok(file)
        });
        FileSink { filling: Vec::with_capacity(BUFFER), made: 1, full, empty, writer }
    }

    /// Copies `data` in. On a write error, fails (the writer has stopped; `finish` says why).
    pub async fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(BUFFER - self.filling.len());
            self.filling.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.filling.len() == BUFFER {
                self.hand_over().await?;
            }
        }
        Ok(())
    }

    async fn hand_over(&mut self) -> std::io::Result<()> {
        let next = match self.empty.try_recv() {
            Ok(b) => b,
            Err(_) if self.made < BUFFERS => {
                self.made += 1;
                Vec::with_capacity(BUFFER)
            }
            Err(_) => self.empty.recv().await.ok_or_else(stopped)?,
        };
        let full = std::mem::replace(&mut self.filling, next);
        self.full.send(full).await.map_err(|_| stopped())
    }

    /// Writes what is left, waits for the writer, and gives the file back (for an fsync).
    pub async fn finish(mut self) -> std::io::Result<std::fs::File> {
        let sent = if self.filling.is_empty() { Ok(()) } else { self.hand_over().await };
        drop(self.full);
        let file = self.writer.await.map_err(std::io::Error::other)??;
        sent.map(|_| file)
    }
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

fn stopped() -> std::io::Error {
    std::io::Error::other("the file writer stopped")
}

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
        sink.finish().await.unwrap();
        assert!(std::fs::read(&path).unwrap() == content);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_failed_write_is_reported() {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let mut sink = FileSink::new(full, false);
        let chunk = vec![7u8; 64 * 1024];
        // Writes are queued; the error surfaces at a later write or at the end.
        let mut failed = false;
        for _ in 0..(BUFFERS + 2) * BUFFER / chunk.len() {
            if sink.write(&chunk).await.is_err() {
                failed = true;
                break;
            }
        }
        let end = sink.finish().await.unwrap_err();
        assert_eq!(end.raw_os_error(), Some(28), "{end}"); // ENOSPC
        assert!(failed, "the writer's failure stops further writes");
    }
}
