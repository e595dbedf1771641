//! Blobs in an S3-compatible object store, through `object_store`.
//!
//! Objects are `<prefix>/<key>` in one bucket. A blob smaller than one part is sent with a
//! single PUT at commit; a larger one becomes a multipart upload whose parts (8 MiB) are sent
//! as they fill, at most two in flight, so an upload holds ~24 MiB at most, whatever its
//! size. S3 makes an object visible only when its PUT or multipart completion succeeds, which
//! gives the "nothing partial" promise; durability is the store's. No conditional write is
//! relied on (some S3-compatible servers ignore If-Match / If-None-Match). Listing relies on
//! ListObjectsV2 returning keys in lexicographic order, as the S3 API specifies.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::*;

/// Part size of multipart uploads (S3's minimum is 5 MiB).
const PART: usize = 8 << 20;
/// Parts uploading at once per blob.
const PARTS_IN_FLIGHT: usize = 2;

/// Blobs in a bucket.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    bucket: String,
}

impl S3Blobs {
    /// Opens `s3://BUCKET[/PREFIX]`; endpoint, region and credentials come from the `AWS_*`
    /// variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ALLOW_HTTP`).
    pub fn open(url: &str) -> anyhow::Result<S3Blobs> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| anyhow::anyhow!("{url:?}: not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "{url:?}: no bucket name");
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            builder = builder.with_region("us-east-1");
        }
        let store = builder.build().map_err(|e| anyhow::anyhow!("S3 bucket {bucket}: {e}"))?;
        Ok(S3Blobs { store: Arc::new(store), prefix: prefix.trim_matches('/').to_owned(), bucket: bucket.to_owned() })
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() { Path::from(key) } else { Path::from(format!("{}/{key}", self.prefix)) }
    }

    fn err(&self, key: &str, e: object_store::Error) -> BlobError {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound(key.to_owned()),
            // Anything else from a remote store is taken as an outage: the caller gets 503/5
            // and retries, the details go to the log only.
            e => BlobError::Unavailable(format!("s3://{}/{}: {e}", self.bucket, self.path(key))),
        }
    }
}

struct S3Writer {
    blobs: S3Blobs,
    key: String,
    /// Bytes not sent yet: the whole blob while it is under one part.
    buf: Vec<u8>,
    /// Started once the blob outgrows one part.
    upload: Option<WriteMultipart>,
    done: bool,
}

#[async_trait]
impl BlobWriter for S3Writer {
    fn key(&self) -> &str {
        &self.key
    }

    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        if let Some(up) = &mut self.upload {
            up.write(chunk);
            return up.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| self.blobs.err(&self.key, e));
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= PART {
            let path = self.blobs.path(&self.key);
            let up = self.blobs.store.put_multipart(&path).await.map_err(|e| self.blobs.err(&self.key, e))?;
            let mut up = WriteMultipart::new_with_chunk_size(up, PART);
            up.write(&std::mem::take(&mut self.buf));
            self.upload = Some(up);
            let up = self.upload.as_mut().expect("just set");
            return up.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| self.blobs.err(&self.key, e));
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> BlobResult<String> {
        self.done = true;
        let key = std::mem::take(&mut self.key);
        match self.upload.take() {
            Some(up) => up.finish().await.map_err(|e| self.blobs.err(&key, e))?,
            None => {
                let payload = PutPayload::from(std::mem::take(&mut self.buf));
                self.blobs.store.put(&self.blobs.path(&key), payload).await.map_err(|e| self.blobs.err(&key, e))?
            }
        };
        Ok(key)
    }

    async fn abort(mut self: Box<Self>) {
        self.done = true;
        if let Some(up) = self.upload.take() {
            let _ = up.abort().await;
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // A writer dropped mid-transfer: abort its multipart upload so the store frees the
        // parts (an unfinished upload is never visible either way).
        if !self.done
            && let Some(up) = self.upload.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = up.abort().await;
            });
        }
    }
}

#[async_trait]
impl Blobs for S3Blobs {
    async fn create_with_key(&self, key: &str) -> BlobResult<Box<dyn BlobWriter>> {
        let key = key.to_owned();
        Ok(Box::new(S3Writer { blobs: self.clone(), key, buf: Vec::new(), upload: None, done: false }))
    }

    async fn put(&self, key: &str, bytes: Bytes) -> BlobResult<()> {
        self.store.put(&self.path(key), PutPayload::from(bytes)).await.map_err(|e| self.err(key, e))?;
        Ok(())
    }

    async fn read(&self, key: &str, offset: u64, len: Option<u64>) -> BlobResult<BlobStream> {
        let range = match len {
            Some(0) => return Ok(futures_util::stream::empty().boxed()),
            Some(l) => GetRange::Bounded(offset..offset + l),
            None if offset > 0 => GetRange::Offset(offset),
            None => {
                let got = self.store.get(&self.path(key)).await.map_err(|e| self.err(key, e))?;
                return Ok(got.into_stream().map_err(std::io::Error::other).boxed());
            }
        };
        let opts = GetOptions { range: Some(range), ..Default::default() };
        let got = self.store.get_opts(&self.path(key), opts).await.map_err(|e| self.err(key, e))?;
        let expected = got.range.end - got.range.start;
        let key = key.to_owned();
        // A shorter answer than asked ends the stream with an error, as the contract says.
        let mut seen = 0u64;
        let stream = got
            .into_stream()
            .map_err(std::io::Error::other)
            .chain(futures_util::stream::once(async { Ok(Bytes::new()) }));
        let want = len.unwrap_or(expected);
        Ok(stream
            .filter_map(move |item| {
                let out = match item {
                    Ok(b) if b.is_empty() => (seen < want).then(|| {
                        Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("blob {key}: short read")))
                    }),
                    Ok(b) => {
                        seen += b.len() as u64;
                        Some(Ok(b))
                    }
                    Err(e) => Some(Err(e)),
                };
                futures_util::future::ready(out)
            })
            .boxed())
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> BlobResult<Vec<BlobInfo>> {
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        let mut stream = match after {
            Some(a) => self.store.list_with_offset(prefix.as_ref(), &self.path(a)),
            None => self.store.list(prefix.as_ref()),
        };
        let mut out = Vec::new();
        while out.len() < limit
            && let Some(meta) = stream.try_next().await.map_err(|e| self.err("(list)", e))?
        {
            let key = meta.location.filename().unwrap_or_default().to_owned();
            out.push(BlobInfo { key, size: meta.size });
        }
        Ok(out)
    }

    async fn check(&self) -> BlobResult<()> {
        // A list of one object proves the bucket answers and the credentials work.
        self.list(None, 1).await.map(drop)
    }
}
