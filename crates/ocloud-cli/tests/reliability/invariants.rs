//! What must hold of a user's tree whatever happened to it: every parent chain reaches the
//! root, no id twice, the per-folder listings make up the flat listing, and the free space is
//! exactly the quota less the files' sizes.

use std::collections::{BTreeMap, BTreeSet};

use crate::harness::Api;

/// Every file of the tree under the token's root: id → (name, size).
pub type Files = BTreeMap<String, (String, u64)>;

/// Walks the tree folder by folder, checks the invariants, and returns its files.
pub async fn check(api: &Api, quota: u64) -> Files {
    let root = api.root("").await;
    let root_id = root["id"].as_str().unwrap().to_owned();
    let mut seen_folders = BTreeSet::from([root_id.clone()]);
    let mut files = Files::new();
    let mut queue = vec![(root_id.clone(), root)];
    while let Some((id, folder)) = queue.pop() {
        for f in folder["files"].as_array().unwrap() {
            let fid = f["id"].as_str().unwrap().to_owned();
            let entry = (f["name"].as_str().unwrap().to_owned(), f["size"].as_u64().unwrap());
            assert!(files.insert(fid.clone(), entry).is_none(), "file {fid} listed twice");
        }
        for sub in folder["subfolders"].as_array().unwrap() {
            let sid = sub["id"].as_str().unwrap().to_owned();
            assert_eq!(sub["parentId"].as_str(), Some(id.as_str()), "{sid}: parentId is not the folder listing it");
            assert!(seen_folders.insert(sid.clone()), "folder {sid} reached twice: a cycle or a duplicate");
            let listed = api.get(&format!("/cloud/v1/folders/{sid}")).await.ok();
            queue.push((sid, listed));
        }
    }
    // The flat listing is the same tree in one answer.
    let flat = api.get(&format!("/cloud/v1/folders/{root_id}?flat")).await.ok();
    let flat_folders: BTreeSet<String> = std::iter::once(root_id.clone())
        .chain(flat["subfolders"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(flat_folders, seen_folders, "flat listing and the walk disagree on folders");
    let flat_files: BTreeSet<String> =
        flat["files"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(flat_files, files.keys().cloned().collect(), "flat listing and the walk disagree on files");
    let used: u64 = files.values().map(|(_, size)| size).sum();
    assert_eq!(api.freespace().await, quota - used, "freespace is not quota minus the files' sizes");
    files
}

/// The id of `name` among `files`.
pub fn find<'a>(files: &'a Files, name: &str) -> Option<&'a String> {
    files.iter().find(|(_, (n, _))| n == name).map(|(id, _)| id)
}
