//! JSON bodies of the Cloud API v1 (spec §3).
//!
//! Serialisation emits the live spellings (`subfolders`, `metadata`); deserialisation also
//! accepts the early-2016 ones (`subFolders`, `metaData`), as spec §3.1 asks of a client.
//! Dates are carried as strings: the server emits `2016-07-30T14:20:26+0200`, and a client
//! may meet `2016-06-09T08:15:13.810Z` too.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// `GET /freespace` (spec §3.3): available bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FreeSpace {
    /// Bytes the user can still store.
    pub freespace: u64,
}

/// Kind of a file (spec §3.1). Folders carry no type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum FileType {
    /// Images.
    Picture,
    /// Videos.
    Video,
    /// Sound (`MUSIC` is read as this too).
    #[serde(alias = "MUSIC")]
    Audio,
    /// Anything else.
    #[serde(other)]
    File,
}

impl FileType {
    /// The `filter` query value (spec §3.4) selecting this kind.
    pub const fn filter_name(self) -> &'static str {
        match self {
            FileType::Picture => "image",
            FileType::Video => "video",
            FileType::Audio => "audio",
            FileType::File => "other",
        }
    }

    /// The kind selected by a `filter` query value, case-insensitively.
    pub fn from_filter(value: &str) -> Option<FileType> {
        [FileType::Picture, FileType::Video, FileType::Audio, FileType::File]
            .into_iter()
            .find(|t| t.filter_name().eq_ignore_ascii_case(value))
    }
}

/// A file, as listed in a folder or returned by `GET /files/{id}` (spec §3.4, §3.8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct File {
    /// Path-derived id.
    pub id: String,
    /// Name, with extension.
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub file_type: FileType,
    /// Size in bytes.
    pub size: u64,
    /// `yyyy-MM-ddTHH:mm:ss±hhmm`.
    pub creation_date: String,
    /// `yyyy-MM-ddTHH:mm:ss±hhmm`.
    pub last_update_date: String,
    /// Free-form metadata (pictures: `width`, `height`).
    #[serde(default, alias = "metaData")]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The containing folder; present on copy/move/rename results only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Thumbnail (~144×144), pictures only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_url: Option<String>,
    /// Preview (~800×800), pictures only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<String>,
    /// Content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

/// A sub-folder entry of a listing, and the answer of folder rename/move/copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubFolder {
    /// Path-derived id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Containing folder's id (a root's is its own).
    pub parent_id: String,
}

/// A folder with its content (spec §3.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Folder {
    /// Path-derived id.
    pub id: String,
    /// A root's `parentId` equals its own `id`.
    pub parent_id: String,
    /// Empty for the full root; the application name for the app folder.
    pub name: String,
    /// Files (empty with `tree`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub files: Vec<File>,
    /// Sub-folders (every descendant with `flat`).
    #[serde(default, alias = "subFolders", deserialize_with = "null_as_empty")]
    pub subfolders: Vec<SubFolder>,
}

/// `POST /folders` body (spec §3.5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateFolder {
    /// New folder's name: 1 to 255 UTF-8 bytes, no `/` nor control character, not `.` or `..`.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^/\u0000-\u001f\u007f]+$")]
    pub name: String,
    /// Parent; absent means the root the token sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9_-]*$")]
    pub parent_folder_id: Option<String>,
}

/// `POST /folders/{id}` and `POST /files/{id}` body (spec §3.6): rename, move, copy, in any
/// combination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateItem {
    /// New name (applied to the result), as for [`CreateFolder::name`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^/\u0000-\u001f\u007f]+$")]
    pub name: Option<String>,
    /// Destination folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9_-]*$")]
    pub parent_folder_id: Option<String>,
    /// `true`: copy instead of move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<bool>,
}

/// The `description` part of a multipart upload (spec §3.9). `size` is a decimal string on
/// the wire; a number is accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadDescription {
    /// File name; authoritative over the part's `filename`.
    pub name: String,
    /// Byte count, as a decimal string.
    #[serde(deserialize_with = "string_or_number")]
    pub size: String,
    /// Destination folder id; absent means the root the token sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
}

/// Upload answer (spec §3.9), 201.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadResponse {
    /// Id of the stored file.
    pub file_id: String,
    /// Name it was stored under (`stem(n).ext` after a clash).
    pub file_name: String,
}

/// `POST /session` answer (spec §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// Opaque legacy session id.
    pub esid: String,
}

/// `POST /oauth/v2/token` answer (spec §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// Always `Bearer`.
    pub token_type: String,
    /// The access token.
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Present on the code grant; may be absent on refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Granted scopes, space-separated (not sent by Orange; tolerated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        S(String),
        N(u64),
    }
    Ok(match S::deserialize(d)? {
        S::S(s) => s,
        S::N(n) => n.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_accepts_old_spellings() {
        let f: Folder = serde_json::from_str(
            r#"{"id":"Lw","parentId":"Lw","name":"","files":[{"id":"YQ","name":"a","type":"MUSIC","size":1,
            "creationDate":"2016-06-09T08:15:13.810Z","lastUpdateDate":"2016-06-09T08:15:13.810Z","metaData":{"duration":"3"}}],
            "subFolders":[{"id":"Yi8","name":"b","parentId":"Lw"}]}"#,
        )
        .unwrap();
        assert_eq!(f.subfolders.len(), 1);
        assert_eq!(f.files[0].file_type, FileType::Audio);
        assert_eq!(f.files[0].metadata["duration"], "3");
        let out = serde_json::to_value(&f).unwrap();
        assert!(out.get("subfolders").is_some() && out.get("subFolders").is_none());
    }

    #[test]
    fn upload_description_size_forms() {
        let a: UploadDescription = serde_json::from_str(r#"{"name":"a","size":"12"}"#).unwrap();
        let b: UploadDescription = serde_json::from_str(r#"{"name":"a","size":12,"folder":"Lw"}"#).unwrap();
        assert_eq!(a.size, "12");
        assert_eq!(b.size, "12");
        assert_eq!(FileType::from_filter("IMAGE"), Some(FileType::Picture));
        assert_eq!(FileType::from_filter("pdf"), None);
    }
}
