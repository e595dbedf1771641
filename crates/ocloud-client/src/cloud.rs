//! The Cloud API domains of spec §3: free space, folders, files (spec §7's `freespace`,
//! `folders`, `files`).

use ocloud_wire::model::{CreateFolder, File, FileType, Folder, FreeSpace, SubFolder, UpdateItem};

use crate::error::Result;
use crate::manager::{ApiManager, Replay};

/// Query parameters of a folder listing (spec §3.4), all seven.
///
/// ```
/// use ocloud_client::ListParams;
/// let p = ListParams { flat: true, tree: true, ..Default::default() };
/// assert_eq!(p.query(), [("flat", "true".to_string()), ("tree", "true".to_string())]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// The app folder as root even with full scopes.
    pub restricted_mode: bool,
    /// Add content URLs to files.
    pub show_thumbnails: bool,
    /// Only files of this kind.
    pub filter: Option<FileType>,
    /// The whole subtree.
    pub flat: bool,
    /// Folders only.
    pub tree: bool,
    /// At most this many entries (sub-folders first, then files).
    pub limit: Option<u64>,
    /// Skip this many entries.
    pub offset: Option<u64>,
}

impl ListParams {
    /// The query pairs sent.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let flags = [
            ("restrictedmode", self.restricted_mode),
            ("showthumbnails", self.show_thumbnails),
            ("flat", self.flat),
            ("tree", self.tree),
        ];
        for (name, on) in flags {
            if on {
                q.push((name, "true".to_owned()));
            }
        }
        if let Some(f) = self.filter {
            q.push(("filter", f.filter_name().to_owned()));
        }
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(o) = self.offset {
            q.push(("offset", o.to_string()));
        }
        q
    }
}

/// `api.folders()`.
#[derive(Debug, Clone, Copy)]
pub struct Folders<'a> {
    pub(crate) m: &'a ApiManager,
}

/// `api.files()`.
#[derive(Debug, Clone, Copy)]
pub struct Files<'a> {
    pub(crate) m: &'a ApiManager,
}

impl ApiManager {
    /// Bytes the user can still store (`GET /freespace`).
    ///
    /// ```no_run
    /// # async fn f(api: ocloud_client::ApiManager) -> ocloud_client::Result<()> {
    /// println!("{} bytes free", api.freespace().await?);
    /// # Ok(()) }
    /// ```
    pub async fn freespace(&self) -> Result<u64> {
        let url = self.api_url("/freespace");
        let f: FreeSpace = self.send_json(Replay::Safe, |c| Ok(c.get(&url))).await?;
        Ok(f.freespace)
    }

    /// Folder operations.
    pub fn folders(&self) -> Folders<'_> {
        Folders { m: self }
    }

    /// File operations.
    pub fn files(&self) -> Files<'_> {
        Files { m: self }
    }

    pub(crate) async fn update<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
        body: UpdateItem,
    ) -> Result<T> {
        let url = self.api_url(&format!("/{kind}/{id}"));
        let v = self.send_json(Replay::Unsafe, |c| Ok(c.post(&url).json(&body))).await?;
        self.inner.paths.clear();
        Ok(v)
    }
}

impl Folders<'_> {
    /// A folder with its content; `None`: the root the token sees.
    ///
    /// ```no_run
    /// # async fn f(api: ocloud_client::ApiManager) -> ocloud_client::Result<()> {
    /// let root = api.folders().get(None, &Default::default()).await?;
    /// for sub in &root.subfolders { println!("{}/", sub.name); }
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, id: Option<&str>, params: &ListParams) -> Result<Folder> {
        let url = match id {
            Some(id) => self.m.api_url(&format!("/folders/{id}")),
            None => self.m.api_url("/folders"),
        };
        let q = params.query();
        self.m.send_json(Replay::Safe, |c| Ok(c.get(&url).query(&q))).await
    }

    /// Creates a folder; `parent` `None`: in the root the token sees.
    pub async fn create(&self, name: &str, parent: Option<&str>) -> Result<Folder> {
        let url = self.m.api_url("/folders");
        let body = CreateFolder { name: name.to_owned(), parent_folder_id: parent.map(str::to_owned) };
        self.m.send_json(Replay::Unsafe, |c| Ok(c.post(&url).json(&body))).await
    }

    /// The raw call of spec §3.6: any combination of rename, move and copy.
    pub async fn update(&self, id: &str, change: &UpdateItem) -> Result<SubFolder> {
        self.m.update("folders", id, change.clone()).await
    }

    /// Deletes a folder and everything in it.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let url = self.m.api_url(&format!("/folders/{id}"));
        self.m.send(Replay::Safe, |c| Ok(c.delete(&url))).await?;
        self.m.inner.paths.clear();
        Ok(())
    }

    /// Renames a folder (its id changes).
    pub async fn rename(&self, id: &str, new_name: &str) -> Result<SubFolder> {
        self.m.update("folders", id, UpdateItem { name: Some(new_name.into()), ..Default::default() }).await
    }

    /// Moves a folder into another (its id changes).
    pub async fn move_to(&self, id: &str, destination: &str) -> Result<SubFolder> {
        self.m
            .update("folders", id, UpdateItem { parent_folder_id: Some(destination.into()), ..Default::default() })
            .await
    }

    /// Copies a folder, recursively, into another; `new_name` renames the copy.
    pub async fn copy_to(&self, id: &str, destination: &str, new_name: Option<&str>) -> Result<SubFolder> {
        let body = UpdateItem {
            parent_folder_id: Some(destination.into()),
            clone: Some(true),
            name: new_name.map(Into::into),
        };
        self.m.update("folders", id, body).await
    }
}

impl Files<'_> {
    /// A file's information, with its `downloadUrl`.
    pub async fn get(&self, id: &str) -> Result<File> {
        let url = self.m.api_url(&format!("/files/{id}"));
        self.m.send_json(Replay::Safe, |c| Ok(c.get(&url))).await
    }

    /// The raw call of spec §3.6: any combination of rename, move and copy.
    pub async fn update(&self, id: &str, change: &UpdateItem) -> Result<File> {
        self.m.update("files", id, change.clone()).await
    }

    /// Deletes a file.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let url = self.m.api_url(&format!("/files/{id}"));
        self.m.send(Replay::Safe, |c| Ok(c.delete(&url))).await?;
        self.m.inner.paths.clear();
        Ok(())
    }

    /// Renames a file (its id changes).
    pub async fn rename(&self, id: &str, new_name: &str) -> Result<File> {
        self.m.update("files", id, UpdateItem { name: Some(new_name.into()), ..Default::default() }).await
    }

    /// Moves a file into a folder (its id changes).
    pub async fn move_to(&self, id: &str, destination: &str) -> Result<File> {
        self.m
            .update("files", id, UpdateItem { parent_folder_id: Some(destination.into()), ..Default::default() })
            .await
    }

    /// Copies a file into a folder; `new_name` renames the copy.
    pub async fn copy_to(&self, id: &str, destination: &str, new_name: Option<&str>) -> Result<File> {
        let body = UpdateItem {
            parent_folder_id: Some(destination.into()),
            clone: Some(true),
            name: new_name.map(Into::into),
        };
        self.m.update("files", id, body).await
    }
}
