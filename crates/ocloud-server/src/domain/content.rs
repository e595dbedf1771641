//! The lifecycle of content blobs, across the two stores:
//!
//! 1. **claim**: a fresh key is recorded in the metadata store before its first byte is
//!    written ([`Service::new_blob`]); keys are claimed in batches ahead of need
//!    (`ClaimedKeys`), so most uploads start without a commit of their own;
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

/// Keys claimed per commit when the service runs out of claimed keys.
const CLAIM_BATCH: usize = 16;

/// How long a key claimed ahead of need may wait for its upload, far inside [`ORPHAN_GRACE`]:
/// an older one is left to the reaper. The clock is the service's, which an emulator moves.
const CLAIM_FRESH_MS: i64 = 10 * 60 * 1000;

/// Keys claimed ahead of need, so that most uploads start without a commit of their own: one
/// commit claims [`CLAIM_BATCH`] keys, and the next uploads take them from here. A key taken
/// from here is as claimed as one claimed for it alone; one never taken (the service stopped,
/// or it went stale) is an orphan claim without an object, which the reaper forgets.
#[derive(Default)]
pub(crate) struct ClaimedKeys {
    /// Keys and when they were claimed (unix ms), and how many times they were cleared.
    keys: std::sync::Mutex<(Vec<(String, i64)>, u64)>,
    /// One batch claimed at a time: uploads arriving together wait for it.
    refill: tokio::sync::Mutex<()>,
}

impl ClaimedKeys {
    fn take(&self, now: i64) -> Option<String> {
        let mut held = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((key, at)) = held.0.pop() {
            // A claim dated after `now` (the clock was set back) is only reaped later: fine.
            if now - at < CLAIM_FRESH_MS {
                return Some(key);
            }
        }
        None
    }

    /// How many times the keys were cleared: a batch claimed across a clear is not kept.
    fn era(&self) -> u64 {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    fn keep(&self, keys: Vec<String>, at: i64, era: u64) {
        let mut held = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if held.1 == era {
            held.0.extend(keys.into_iter().map(|k| (k, at)));
        }
    }

    /// Forgets the keys held (their claims stay, for the reaper): when a snapshot is taken
    /// (it would name keys not yet written), when one is restored (their claims may be gone,
    /// and a file recorded on one would be refused), and before the reaper runs (the clock
    /// may have moved past their grace).
    pub(crate) fn clear(&self) {
        let mut held = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        held.0.clear();
        held.1 += 1;
    }
}

impl Service {
    /// Starts a blob under a key claimed in the metadata store.
    pub async fn new_blob(&self) -> Result<Box<dyn BlobWriter>> {
        let key = self.claimed_key().await?;
        // On failure the key stays claimed without an object: the reaper forgets it.
        Ok(self.blobs.create_with_key(&key).await?)
    }

    /// A key claimed in the metadata store, from those claimed ahead or from a new batch.
    async fn claimed_key(&self) -> Result<String> {
        if let Some(key) = self.claimed.take(self.clock.now_ms()) {
            return Ok(key);
        }
        let _turn = self.claimed.refill.lock().await;
        let now = self.clock.now_ms();
        if let Some(key) = self.claimed.take(now) {
            return Ok(key); // claimed by the upload before us in line
        }
        let era = self.claimed.era();
        let mut keys: Vec<String> = (0..CLAIM_BATCH).map(|_| crate::random::hex_id()).collect();
        self.meta.claim_blobs(&keys, now).await?;
        // This one is used at once, whatever happened meanwhile, as a key claimed alone was.
        let mine = keys.pop().expect("a batch has keys");
        self.claimed.keep(keys, now, era);
        Ok(mine)
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
        self.claimed.clear();
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn keys_are_claimed_in_batches_and_stale_ones_are_left_to_the_reaper() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Arc::new(crate::config::Config::new(dir.path()));
        let svc = crate::open_service(cfg, "http://x".into()).await.unwrap();
        let held = || svc.claimed.keys.lock().unwrap().0.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();

        let first = svc.claimed_key().await.unwrap();
        let batch = [held(), vec![first.clone()]].concat();
        assert_eq!(batch.len(), CLAIM_BATCH);
        assert_eq!(svc.meta.pending_blobs(&batch).await.unwrap().len(), CLAIM_BATCH, "each one claimed");
        let mut taken = vec![first];
        for _ in 1..CLAIM_BATCH {
            taken.push(svc.claimed_key().await.unwrap());
        }
        assert!(held().is_empty());
        taken.sort();
        let mut claimed = batch.clone();
        claimed.sort();
        assert_eq!(taken, claimed, "the batch, each key once");

        // The next one claims a new batch; once stale, its keys are passed over.
        let next = svc.claimed_key().await.unwrap();
        let stale = held();
        assert_eq!(stale.len(), CLAIM_BATCH - 1);
        assert!(!batch.contains(&next));
        svc.clock.advance(CLAIM_FRESH_MS);
        let fresh = svc.claimed_key().await.unwrap();
        assert!(!stale.contains(&fresh) && held().iter().all(|k| !stale.contains(k)));
        assert_eq!(svc.meta.pending_blobs(&[fresh]).await.unwrap().len(), 1);

        // A batch claimed across a clear is not kept.
        let era = svc.claimed.era();
        svc.claimed.clear();
        assert!(held().is_empty());
        svc.claimed.keep(vec!["late".into()], svc.clock.now_ms(), era);
        assert!(held().is_empty());
    }
}
