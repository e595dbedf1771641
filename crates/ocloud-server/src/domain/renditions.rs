//! Thumbnails (~144×144) and previews (~800×800) of pictures for the Cloud API, and the
//! 100×100 and 500×500 sizes of the Personal Photos API: JPEG, aspect kept, never upscaled.
//! Made once in the background after an upload, cached beside the blob, and made on demand
//! if asked for before the background job ran.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;

use super::{Error, Result, Service};

/// The renditions: URL segment (a kind of `blobs::RENDITION_KINDS`) and bounding box.
pub const KINDS: [(&str, u32); 4] = [("thumb", 144), ("preview", 800), ("p100", 100), ("p500", 500)];

/// Pictures larger than this are not rendered (decoding needs the whole file in memory).
const MAX_SOURCE: u64 = 64 << 20;

/// Scales `source` to fit a `size`×`size` box (never up) and encodes it as JPEG.
pub fn render(source: &[u8], size: u32) -> std::result::Result<Vec<u8>, image::ImageError> {
    render_box(source, size, size)
}

/// Scales `source` to fit a `width`×`height` box (aspect kept, never up), as JPEG.
pub fn render_box(source: &[u8], width: u32, height: u32) -> std::result::Result<Vec<u8>, image::ImageError> {
    let img = image::load_from_memory(source)?;
    let img =
        if img.width() > width || img.height() > height { img.thumbnail(width.max(1), height.max(1)) } else { img };
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img.to_rgb8()).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)?;
    Ok(out)
}

impl Service {
    /// Makes both renditions of a blob in the background.
    pub fn schedule_renditions(&self, blob: String) {
        let svc = self.clone();
        tokio::spawn(async move {
            for (kind, _) in KINDS {
                if let Err(e) = svc.rendition(&blob, kind).await {
                    tracing::warn!(blob = %blob, kind, error = %crate::logsafe::Esc(&e), "rendition failed");
                }
            }
        });
    }

    /// A rendition of a blob, made now if it is not cached yet. One render per rendition at a
    /// time: a second asker (the background job and a client asking early) waits for the
    /// first and reads what it stored instead of rendering again. The store and its check
    /// ([`crate::blobs::put_rendition`]) run in a task of their own, which a client that
    /// hangs up cannot cut short between the two.
    pub async fn rendition(&self, blob: &str, kind: &str) -> Result<Bytes> {
        let size =
            KINDS.iter().find(|(k, _)| *k == kind).map(|(_, s)| *s).ok_or_else(|| Error::NotFound(kind.to_owned()))?;
        if let Some(b) = crate::blobs::rendition(self.blobs.as_ref(), blob, kind).await? {
            return Ok(b);
        }
        let turn = self.rendering.turn(crate::blobs::rendition_key(blob, kind));
        let _turn = turn.lock.lock().await;
        if let Some(b) = crate::blobs::rendition(self.blobs.as_ref(), blob, kind).await? {
            return Ok(b);
        }
        let _permit = self.renders.acquire().await.map_err(|e| Error::Internal(e.to_string()))?;
        let jpeg = self.render_now(blob, size, size).await?;
        let (blobs, key, kind_owned, bytes) = (self.blobs.clone(), blob.to_owned(), kind.to_owned(), jpeg.clone());
        let stored =
            tokio::spawn(async move { crate::blobs::put_rendition(blobs.as_ref(), &key, &kind_owned, bytes).await });
        match stored.await.map_err(|e| Error::Internal(e.to_string()))? {
            Ok(()) => Ok(jpeg),
            // The picture was deleted while it was being rendered: as if it had been gone before.
            Err(crate::blobs::BlobError::NotFound(_)) => Err(Error::NotFound(format!("blob {blob}"))),
            Err(e) => Err(e.into()),
        }
    }
}

/// The renders under way, by rendition key, each with a lock its askers take in turn.
#[derive(Default)]
pub(crate) struct InFlight(std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl InFlight {
    fn turn(self: &Arc<Self>, key: String) -> Turn {
        let lock = self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_default().clone();
        Turn { all: self.clone(), key, lock }
    }
}

/// One asker's place at a rendition; the last to leave (done or cancelled) removes the entry.
struct Turn {
    all: Arc<InFlight>,
    key: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut map = self.all.0.lock().unwrap_or_else(|e| e.into_inner());
        // Our share goes under the map's lock, so the last one out sees the map's share alone.
        drop(std::mem::take(&mut self.lock));
        if map.get(&self.key).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(&self.key);
        }
    }
}

impl Service {
    /// Renders a blob into a `width`×`height` box now (not cached).
    pub async fn render_now(&self, blob: &str, width: u32, height: u32) -> Result<Bytes> {
        let source = crate::blobs::read_all(self.blobs.as_ref(), blob, MAX_SOURCE + 1).await?;
        if source.len() as u64 > MAX_SOURCE {
            return Err(Error::NotFound("renditions of a picture over 64 MiB".into()));
        }
        let jpeg = tokio::task::spawn_blocking(move || render_box(&source, width, height))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::NotFound(format!("rendition of blob {blob}: {e}")))?;
        Ok(Bytes::from(jpeg))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    #[test]
    fn askers_of_one_rendition_share_a_turn_and_the_last_out_clears_it() {
        let all = Arc::new(super::InFlight::default());
        let (a, b, other) = (all.turn("k.p100".into()), all.turn("k.p100".into()), all.turn("k.p500".into()));
        assert!(Arc::ptr_eq(&a.lock, &b.lock) && !Arc::ptr_eq(&a.lock, &other.lock));
        let held = a.lock.try_lock().unwrap();
        assert!(b.lock.try_lock().is_err(), "the second asker waits for the first");
        drop(held);
        drop((a, other));
        assert_eq!(all.0.lock().unwrap().len(), 1, "b still waits at k.p100");
        drop(b);
        assert!(all.0.lock().unwrap().is_empty());
    }

    #[test]
    fn keeps_aspect_never_upscales() {
        let mut png = Vec::new();
        image::RgbImage::new(1000, 500).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let t = image::load_from_memory(&super::render(&png, 144).unwrap()).unwrap();
        assert_eq!((t.width(), t.height()), (144, 72));
        let mut small = Vec::new();
        image::RgbImage::new(50, 40).write_to(&mut std::io::Cursor::new(&mut small), image::ImageFormat::Png).unwrap();
        let s = image::load_from_memory(&super::render(&small, 800).unwrap()).unwrap();
        assert_eq!((s.width(), s.height()), (50, 40));
    }
}
