//! Item ids (spec §3.1): unpadded URL-safe base64 of the item's path relative to the user's
//! cloud root. Folder paths end with `/`, file paths do not, and the root is `/` (`Lw`).
//!
//! ```
//! use ocloud_wire::id;
//! assert_eq!(id::encode("Music/"), "TXVzaWMv");
//! assert_eq!(id::decode("TXVzaWMvc29uZy5tcDM").unwrap(), "Music/song.mp3");
//! assert_eq!(id::encode(id::ROOT_PATH), "Lw");
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The path of the full cloud root.
pub const ROOT_PATH: &str = "/";

/// The id of the full cloud root (`/`).
pub const ROOT_ID: &str = "Lw";

/// Encodes a path into its id.
pub fn encode(path: &str) -> String {
    URL_SAFE_NO_PAD.encode(path.as_bytes())
}

/// Decodes an id into its path. Padding is tolerated; anything that is not base64url of UTF-8
/// text is `None`.
pub fn decode(id: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(id.trim_end_matches('=')).ok()?;
    String::from_utf8(bytes).ok()
}

/// The path of a folder, given its parent folder's path and its name.
pub fn folder_path(parent: &str, name: &str) -> String {
    if parent == ROOT_PATH { format!("{name}/") } else { format!("{parent}{name}/") }
}

/// The path of a file, given its folder's path and its name.
pub fn file_path(parent: &str, name: &str) -> String {
    if parent == ROOT_PATH { name.to_owned() } else { format!("{parent}{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_non_ascii() {
        let p = file_path(&folder_path(ROOT_PATH, "Été"), "café ☕.txt");
        assert_eq!(p, "Été/café ☕.txt");
        assert_eq!(decode(&encode(&p)).unwrap(), p);
        assert!(!encode(&p).contains(['+', '/', '=']));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decode("!!"), None);
        assert_eq!(decode("_w"), None); // 0xff is not UTF-8
        assert_eq!(decode("Lw==").as_deref(), Some("/"));
    }
}
