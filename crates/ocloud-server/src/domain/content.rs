//! The lifecycle of content blobs, across the two stores:
//!
//! 1. **claim**: a fresh key is recorded in the metadata store before its first byte is
//!    written ([`Service::new_blob`]);
//! 2. **record**: the file row that references it commits only once the content is durable;
//! 3. **release**: a delete's transaction drops the reference and returns the keys left
//!    unreferenced; their objects are deleted, then the keys forgotten
//!    ([`Service::drop_blobs`]);
//! 4. **reap**: a key unreferenced for longer than [`ORPHAN_GRACE`] (an upload that never
//!    finished, a crash between a delete's commit and its object removal) is found in the
//!    database and removed ([`Service::reap_orphans`]), by whichever instance gets it first.
//!
//! So orphans are found from the database, never by listing a whole bucket, and an upload
//! in flight on another instance is never taken for one (unless it outlasts the grace).

use super::{Result, Service};
use crate::blobs::{BlobWriter, delete_with_renditions};

/// How long a key may stay unreferenced before the reaper takes it: longer than any upload
/// is expected to last (an upload still running then fails when it tries to record its file).
pub const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Keys reaped per batch.
const REAP_BATCH: usize = 100;

impl Service {
    /// Starts a blob under a key claimed in the metadata store.
    pub async fn new_blob(&self) -> Result<Box<dyn BlobWriter>> {
        // The key is chosen before the writer opens, so the claim's commit and the writer's
        // start (an object store's request; nothing yet for files) run side by side.
        let key = crate::random::hex_id();
        let (writer, claimed) =
            tokio::join!(self.blobs.create_with_key(&key), self.meta.claim_blob(&key, self.clock.now_ms()));
        match (writer, claimed) {
            (Ok(w), Ok(())) => Ok(w),
            // Both ran to their end (no future dropped half-way), so an opened writer is
            // aborted here and leaves no temp file; a claim without content is reaped.
            (Ok(w), Err(e)) => {
                w.abort().await;
                Err(e.into())
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    /// Deletes the objects of keys no file references any more (and their renditions), then
    /// forgets the keys. Failures are logged: the reaper retries later.
    pub async fn drop_blobs(&self, keys: Vec<String>) {
        let mut gone = Vec::with_capacity(keys.len());
        for key in keys {
            // A snapshot of the emulator still names it: keep the object, forget the key.
            if self.snapshots.pins(&key) {
                gone.push(key);
                continue;
            }
            match delete_with_renditions(self.blobs.as_ref(), &key).await {
                Ok(()) => gone.push(key),
                Err(e) => {
                    tracing::warn!(blob = %key, error = %crate::logsafe::Esc(&e), "could not delete blob; the reaper will")
                }
            }
        }
        if !gone.is_empty()
            && let Err(e) = self.meta.forget_blobs(&gone).await
        {
            tracing::warn!(error = %crate::logsafe::Esc(&e), "could not forget deleted blobs; the reaper will");
        }
    }

    /// Removes the blobs unreferenced since before `before` (unix ms); returns how many.
    pub async fn reap_orphans(&self, before: i64) -> Result<usize> {
        let mut total = 0;
        loop {
            let keys = self.meta.reap_blobs(before, REAP_BATCH).await?;
            let n = keys.len();
            for key in keys.iter().filter(|k| !self.snapshots.pins(k)) {
                delete_with_renditions(self.blobs.as_ref(), key).await?;
            }
            self.meta.forget_blobs(&keys).await?;
            total += n;
            if n < REAP_BATCH {
                return Ok(total);
            }
        }
    }
}
