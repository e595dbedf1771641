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

    /// Records an uploaded blob of `size` bytes as a file of the target folder.
    pub async fn finish_upload(
        &self,
        a: &Access,
        target: UploadTarget,
        blob: String,
        size: u64,
    ) -> Result<UploadResponse> {
        match self.record(a, &target, &blob, size).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.drop_blobs(vec![blob]).await;
                Err(e)
            }
        }
    }

    async fn record(&self, a: &Access, target: &UploadTarget, blob: &str, size: u64) -> Result<UploadResponse> {
        let (mut file_type, mut mime) = kinds::from_name(&target.name);
        let mut metadata = None;
        let prefix = blobs::read_all(self.blobs.as_ref(), blob, 512 * 1024).await?;
        if let Some((m, w, h)) = kinds::sniff_picture(&prefix) {
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
