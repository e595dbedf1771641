//! Schema upgrades: a data dir made before versioned migrations (tests/fixtures/datadir-v0,
//! see its README) upgrades in place on first start, and a schema newer than the binary is
//! refused with a clear message.

use serde_json::Value;

use crate::harness::*;

fn fixture_copy() -> tempfile::TempDir {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new("cp").arg("-r").arg(fixtures.join("datadir-v0")).arg(&data).output().unwrap();
    assert!(out.status.success());
    embedded(&data); // the fixture is an embedded data dir
    dir
}

#[tokio::test]
async fn a_data_dir_of_the_previous_version_upgrades_in_place() {
    let dir = fixture_copy();
    let data = dir.path().join("data");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let token = std::fs::read_to_string(fixtures.join("datadir-v0-token.txt")).unwrap().trim().to_owned();
    let s = Server::start_in(&data, &["--no-dev-account"]);
    let api = Api::new(&s.url, &token);
    // The tree, the token and the content of the old version, as they were.
    let names = |v: &Value, k: &str| -> Vec<String> {
        v[k].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
    };
    let top = api.root("").await;
    assert_eq!(names(&top, "subfolders"), ["cloud:"]);
    let root = api.get(&format!("/cloud/v1/folders/{}", top["subfolders"][0]["id"].as_str().unwrap())).await.ok();
    assert_eq!(names(&root, "subfolders"), ["photos"]);
    assert_eq!(names(&root, "files"), ["hello.txt"]);
    let hello = root["files"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(&api.download(&hello).await[..], b"hello from v0\n");
    let photos = api.get(&format!("/cloud/v1/folders/{}", root["subfolders"][0]["id"].as_str().unwrap())).await.ok();
    assert_eq!(names(&photos, "files"), ["copy.txt", "exif.jpg", "offset.jpg", "plain.jpg"]);
    // Renditions made by the old version are found under the derived keys.
    let pic = photos["files"].as_array().unwrap().iter().find(|f| f["name"] == "plain.jpg").unwrap();
    let info = api.get(&format!("/cloud/v1/files/{}", pic["id"].as_str().unwrap())).await.ok();
    let thumb = api.get(info["thumbUrl"].as_str().unwrap()).await;
    assert_eq!(thumb.status, 200);
    assert_eq!(&thumb.body[..2], b"\xff\xd8", "a JPEG");
    // Shared content keeps its reference count: deleting one copy keeps the other readable.
    api.delete(&format!("/cloud/v1/files/{hello}")).await;
    let copy = photos["files"].as_array().unwrap().iter().find(|f| f["name"] == "copy.txt").unwrap();
    assert_eq!(&api.download(copy["id"].as_str().unwrap()).await[..], b"hello from v0\n");
    // New uploads work on the migrated schema; bob's account and password survived.
    let up = api.upload("new.txt", b"after the upgrade", None).await.ok();
    assert_eq!(&api.download(up["fileId"].as_str().unwrap()).await[..], b"after the upgrade");
    let users = admin_cmd(&data).args(["user", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&users.stdout).contains("bob"));
    let fsck = admin_cmd(&data).arg("fsck").output().unwrap();
    assert!(fsck.status.success(), "fsck after the upgrade: {}", String::from_utf8_lossy(&fsck.stdout));
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_clear_message() {
    let dir = fixture_copy();
    let data = dir.path().join("data");
    database_sql(&data, "PRAGMA user_version = 99");
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schema version 99 is newer than this ocloud knows"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one readable line: {err}");
}
