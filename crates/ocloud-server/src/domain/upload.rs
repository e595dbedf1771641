//! Uploads (spec §3.9): checks before any byte is stored, then the record after the content
//! is durable.
//!
//! Order of events: [`Service::prepare_upload`] (name, folder, rights, size, free space) →
//! the HTTP layer streams the body into a blob writer, which fsyncs and renames on commit →
//! [`Service::finish_upload`] sniffs the picture header, records the file in one
//! transaction (quota re-checked there, so concurrent uploads cannot overshoot it) and
//! schedules renditions off the request path. Any failure after the blob is committed
//! deletes it again.

use ocloud_wire::model::{FileType, UploadResponse};

use super::{Access, Error, Item, Result, Service, kinds, names};
use crate::blobs;
use crate::store::NewFile;

/// Bytes kept from the start of every upload as it streams: picture sniffing reads them
/// instead of the stored blob (and reads the blob back only for a picture larger than this).
pub const HEAD: usize = 16 << 10;

/// A blob written and durable, ready to be recorded as a file.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its first bytes, up to [`HEAD`].
    pub head: Vec<u8>,
}

/// A checked upload destination.
#[derive(Debug, Clone)]
pub struct UploadTarget {
    /// Destination folder.
    pub folder: Item,
    /// Validated (NFC) name.
    pub name: String,
    /// Size the client announced, if it did.
    pub declared: Option<u64>,
}

impl Service {
    /// Validates an upload before any content is read.
    pub async fn prepare_upload(
        &self,
        a: &Access,
        folder_id: Option<&str>,
        name: &str,
        declared: Option<u64>,
    ) -> Result<UploadTarget> {
        let name = names::validate(name)?;
        let folder = match folder_id {
            Some(fid) if !fid.is_empty() => self.resolve(a, fid, true).await?,
            _ => self.default_target(a).await?,
        };
        self.check_write_into(a, &folder)?;
        if let Some(size) = declared {
            self.check_size(a, size)?;
        }
        Ok(UploadTarget { folder, name, declared })
    }

    /// Refuses a size over the upload limit or the free space.
    pub fn check_size(&self, a: &Access, size: u64) -> Result<()> {
        let max = self.settings.max_upload_size();
        if size > max {
            return Err(Error::TooLarge { size, max });
        }
        let free = self.freespace(a);
        if size > free {
            return Err(Error::QuotaExceeded { needed: size, free });
        }
        Ok(())
    }

    /// Records an uploaded blob as a file of the target folder.
    pub async fn finish_upload(&self, a: &Access, target: UploadTarget, blob: StoredBlob) -> Result<UploadResponse> {
        match self.record(a, &target, &blob).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.drop_blobs(vec![blob.key]).await;
                Err(e)
            }
        }
    }

    async fn record(&self, a: &Access, target: &UploadTarget, stored: &StoredBlob) -> Result<UploadResponse> {
        let (blob, size) = (stored.key.as_str(), stored.size);
        let (mut file_type, mut mime) = kinds::from_name(&target.name);
        let mut metadata = None;
        let sniffed = if size <= stored.head.len() as u64 {
            kinds::sniff_picture(&stored.head)
        } else if kinds::may_be_picture(&stored.head) {
            // A header can sit past the kept bytes (a JPEG's after its EXIF): read further.
            kinds::sniff_picture(&blobs::read_all(self.blobs.as_ref(), blob, 512 * 1024).await?)
        } else {
            None
        };
        if let Some((m, w, h)) = sniffed {
            file_type = FileType::Picture;
            mime = m;
            metadata = Some(serde_json::json!({"width": w, "height": h}).to_string());
        }
        let file = NewFile {
            name: target.name.clone(),
            size,
            blob: blob.to_owned(),
            file_type,
            mime: mime.to_owned(),
            metadata,
        };
        let node = self.meta.insert_file(target.folder.node.id, file, self.quota_of(&a.user)).await?;
        if Service::has_renditions(&node) {
            self.schedule_renditions(blob.to_owned());
        }
        self.schedule_metadata(&node);
        let item = Item { path: ocloud_wire::id::file_path(&target.folder.path, &node.name), node };
        tracing::info!(user = %crate::logsafe::Esc(&a.user.name), file = %crate::logsafe::Esc(&item.path), size, "stored");
        Ok(UploadResponse { file_id: item.id(), file_name: item.node.name })
    }
}
