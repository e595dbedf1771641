//! Writes a download to a file on a blocking thread of its own, so network reads and disk
//! writes overlap.
//!
//! Network chunks (up to ~400 KiB, usually much less) are copied into one of three 1 MiB
//! buffers that go round between this side and the writer thread. Dropping each chunk at once
//! lets hyper reuse its read buffer; holding chunks until written made every read land in
//! freshly mapped memory, and the kernel spent a quarter of the download zeroing pages.

use std::io::Write;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Size of one write.
const BUFFER: usize = 1 << 20;
/// Buffers in circulation: one filling, one queued, one being written.
const BUFFERS: usize = 3;

pub(crate) struct FileSink {
    filling: Vec<u8>,
    made: usize,
    full: mpsc::Sender<Vec<u8>>,
    empty: mpsc::Receiver<Vec<u8>>,
    writer: JoinHandle<std::io::Result<()>>,
}

impl FileSink {
    pub(crate) fn new(mut file: std::fs::File) -> Self {
        let (full, mut full_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
        let (empty_tx, empty) = mpsc::channel::<Vec<u8>>(BUFFERS);
        let writer = tokio::task::spawn_blocking(move || {
            while let Some(mut buf) = full_rx.blocking_recv() {
                file.write_all(&buf)?;
                buf.clear();
                // Never blocks: the channel holds every buffer there is.
                let _ = empty_tx.try_send(buf);
            }
            Ok(())
        });
        FileSink { filling: Vec::with_capacity(BUFFER), made: 1, full, empty, writer }
    }

    /// Copies `data` in. On a write error, fails (the writer has stopped; `finish` says why).
    pub(crate) async fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
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

    /// Writes what is left and waits for the writer.
    pub(crate) async fn finish(mut self) -> std::io::Result<()> {
        let sent = if self.filling.is_empty() { Ok(()) } else { self.hand_over().await };
        drop(self.full);
        self.writer.await.map_err(std::io::Error::other)??;
        sent
    }
}

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
        let mut sink = FileSink::new(std::fs::File::create(&path).unwrap());
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
        let mut sink = FileSink::new(full);
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
