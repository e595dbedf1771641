//! The embedded blob backend: one file per blob under `<data>/blobs/<2 hex>/<key>`.
//!
//! A blob is streamed to `<data>/tmp/<key>.part`, fsynced, renamed into place and its
//! directory fsynced; only then does `commit` return. Renditions live beside it as
//! `<key>.<kind>`.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

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
    file: Option<BufWriter<fs::File>>,
}

#[async_trait]
impl BlobWriter for FsWriter {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        let f = self.file.as_mut().expect("writer used after commit");
        f.write_all(chunk).await.map_err(|e| io(&self.tmp, e))
    }

    async fn commit(mut self: Box<Self>) -> BlobResult<String> {
        let mut f = self.file.take().expect("writer committed twice");
        f.flush().await.map_err(|e| io(&self.tmp, e))?;
        let f = f.into_inner();
        f.sync_all().await.map_err(|e| io(&self.tmp, e))?;
        drop(f);
        let dir = self.dest.parent().expect("blob path has a parent").to_owned();
        if fs::metadata(&dir).await.is_err() {
            fs::create_dir_all(&dir).await.map_err(|e| io(&dir, e))?;
            sync_dir(dir.parent().expect("blob dir has a parent")).await?;
        }
        fs::rename(&self.tmp, &self.dest).await.map_err(|e| io(&self.dest, e))?;
        sync_dir(&dir).await?;
        Ok(std::mem::take(&mut self.key))
    }

    async fn abort(mut self: Box<Self>) {
        self.file.take();
        let _ = fs::remove_file(&self.tmp).await;
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        // A writer dropped mid-transfer (client gone, task cancelled) leaves no temp file.
        if self.file.take().is_some() {
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
        let file = fs::File::create(&tmp).await.map_err(|e| io(&tmp, e))?;
        Ok(Box::new(FsWriter { key, tmp, dest, file: Some(BufWriter::with_capacity(256 * 1024, file)) }))
    }

    async fn read(&self, key: &str, offset: u64, len: Option<u64>) -> BlobResult<BlobReader> {
        let path = self.path(key)?;
        let mut f = match fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound(key.to_owned()));
            }
            Err(e) => return Err(io(&path, e)),
        };
        if offset > 0 {
            f.seek(SeekFrom::Start(offset)).await.map_err(|e| io(&path, e))?;
        }
        Ok(match len {
            Some(n) => Box::pin(f.take(n)),
            None => Box::pin(f),
        })
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        let path = self.path(key)?;
        for p in [path.clone(), path.with_extension("thumb"), path.with_extension("preview")] {
            match fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&p, e)),
            }
        }
        Ok(())
    }

    async fn put_rendition(&self, key: &str, kind: &str, bytes: Bytes) -> BlobResult<()> {
        let dest = self.path(key)?.with_extension(kind);
        // Unique temp name: a background job and a request may render the same thing at once.
        let tmp = self.tmp.join(format!("{key}.{kind}.{}.part", uuid::Uuid::new_v4().simple()));
        let mut f = fs::File::create(&tmp).await.map_err(|e| io(&tmp, e))?;
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

    async fn sweep(
        &self,
        before: std::time::SystemTime,
        keep: &(dyn for<'k> Fn(&'k str) -> bool + Send + Sync),
    ) -> BlobResult<usize> {
        let mut removed = 0;
        let mut tmp = fs::read_dir(&self.tmp).await.map_err(|e| io(&self.tmp, e))?;
        while let Some(e) = tmp.next_entry().await.map_err(|e| io(&self.tmp, e))? {
            if fs::remove_file(e.path()).await.is_ok() {
                removed += 1;
            }
        }
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
