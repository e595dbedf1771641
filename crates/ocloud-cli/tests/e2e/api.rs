//! The JSON endpoints of spec §3: listings and their parameters, create, rename/move/copy,
//! delete, ids, the sandbox root, quota accounting.

use serde_json::{Value, json};

use crate::harness::*;

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn sandbox_root_is_the_app_folder() {
    let s = Server::start(&[]);
    let api = s.api();
    let root = api.root("").await;
    assert_eq!(root["id"], id(APP));
    assert_eq!(root["parentId"], root["id"], "a root's parentId is its own id");
    assert_eq!(root["name"], "tests");
    assert_eq!(root["files"], json!([]));
    assert_eq!(root["subfolders"], json!([]));
    // Trailing slash accepted, restrictedmode is a no-op here.
    assert_eq!(api.root("/?restrictedmode").await, root);
    // Full read sees the real root, with the app folder inside its partners folder.
    let full = s.api_as("alice", "tests", "openid cloudfullread");
    let real = full.root("").await;
    assert_eq!(
        (real["id"].as_str(), real["parentId"].as_str(), real["name"].as_str()),
        (Some("Lw"), Some("Lw"), Some(""))
    );
    assert_eq!(names(&real, "subfolders"), ["mes dossiers partenaires"]);
    // restrictedmode forces the app folder even with full scopes.
    assert_eq!(full.root("?restrictedmode=").await["id"], id(APP));
    assert_eq!(full.root("?restrictedmode=false").await["id"], "Lw");
    let partners = full.get(&format!("/cloud/v1/folders/{}", id("mes dossiers partenaires/"))).await.ok();
    assert_eq!(names(&partners, "subfolders"), ["tests"]);
    assert_eq!(partners["parentId"], "Lw");
}

#[tokio::test]
async fn create_list_and_ids() {
    let s = Server::start(&[]);
    let api = s.api();
    let trip = api.mkdir("Trip", None).await;
    assert_eq!(trip["id"], id(&format!("{APP}Trip/")));
    assert_eq!(trip["parentId"], id(APP));
    assert_eq!(trip["files"], json!([]));
    let sub = api.mkdir("Été ☀", Some(trip["id"].as_str().unwrap())).await;
    assert_eq!(sub["id"], id(&format!("{APP}Trip/Été ☀/")));
    // Decomposed input is stored composed (NFC).
    let nfd = api.mkdir("Cafe\u{301}", None).await;
    assert_eq!(nfd["name"], "Café");
    // Trailing slash on create too (Android, iOS).
    let r = api.post_json("/cloud/v1/folders/", json!({"name": "slash"})).await;
    assert_eq!(r.status, 200);
    let up = api.upload("a.txt", b"hello", Some(trip["id"].as_str().unwrap())).await.ok();
    assert_eq!(up["fileId"], id(&format!("{APP}Trip/a.txt")));
    let listing = api.get(&format!("/cloud/v1/folders/{}/", trip["id"].as_str().unwrap())).await.ok();
    assert_eq!(names(&listing, "subfolders"), ["Été ☀"]);
    let f = &listing["files"][0];
    assert_eq!((f["name"].as_str(), f["type"].as_str(), f["size"].as_u64()), (Some("a.txt"), Some("FILE"), Some(5)));
    assert!(f.get("downloadUrl").is_none() && f.get("parentId").is_none(), "plain listings carry no URLs: {f}");
    let date = f["creationDate"].as_str().unwrap();
    assert_eq!(date.len(), 24, "{date}");
    assert!(date.ends_with("+0000") && date.as_bytes()[10] == b'T');
    let with = api.get(&format!("/cloud/v1/folders/{}?showthumbnails=True", trip["id"].as_str().unwrap())).await.ok();
    assert!(with["files"][0]["downloadUrl"].as_str().unwrap().starts_with(&s.url));
    // A duplicate name is refused.
    api.post_json("/cloud/v1/folders", json!({"name": "Trip"})).await.assert_error(400, 24);
}

#[tokio::test]
async fn listing_parameters() {
    let s = Server::start(&[]);
    let api = s.api();
    let a = api.mkdir("a", None).await;
    let aid = a["id"].as_str().unwrap().to_owned();
    api.mkdir("b", Some(&aid)).await;
    api.mkdir("c", None).await;
    api.upload("pic.png", &png(4, 3), None).await.ok();
    api.upload("doc.txt", b"x", None).await.ok();
    api.upload("deep.png", &png(2, 2), Some(&aid)).await.ok();
    api.upload("song.mp3", b"id3", Some(&aid)).await.ok();

    let root = api.root("").await;
    assert_eq!(names(&root, "subfolders"), ["a", "c"]);
    assert_eq!(names(&root, "files"), ["doc.txt", "pic.png"]);
    assert_eq!(root["files"][1]["metadata"], json!({"width": 4, "height": 3}));
    assert_eq!(root["files"][1]["type"], "PICTURE");

    assert_eq!(names(&api.root("?filter=image").await, "files"), ["pic.png"]);
    assert_eq!(names(&api.root("?filter=other").await, "files"), ["doc.txt"]);
    assert_eq!(names(&api.root("?filter=image").await, "subfolders"), ["a", "c"], "folders are not filtered");
    api.get("/cloud/v1/folders?filter=pdf").await.assert_error(400, 28);

    let flat = api.root("?flat=true").await;
    assert_eq!(names(&flat, "subfolders"), ["a", "b", "c"]);
    assert_eq!(names(&flat, "files"), ["deep.png", "song.mp3", "doc.txt", "pic.png"]);
    let b = flat["subfolders"].as_array().unwrap().iter().find(|f| f["name"] == "b").unwrap();
    assert_eq!(b["parentId"], aid, "flat entries carry their own parent");
    assert_eq!(names(&api.root("?flat=true&filter=audio").await, "files"), ["song.mp3"]);
    let tree = api.root("?flat&tree").await;
    assert_eq!(names(&tree, "subfolders"), ["a", "b", "c"]);
    assert_eq!(tree["files"], json!([]));
    assert_eq!(api.root("?tree=True").await["files"], json!([]));
    assert_eq!(names(&api.root("?flat=false").await, "subfolders"), ["a", "c"]);

    // limit/offset run over subfolders first, then files.
    let page = api.root("?limit=2&offset=1").await;
    assert_eq!(names(&page, "subfolders"), ["c"]);
    assert_eq!(names(&page, "files"), ["doc.txt"]);
    let page = api.root("?flat&limit=2&offset=2").await;
    assert_eq!(names(&page, "subfolders"), ["c"]);
    assert_eq!(names(&page, "files"), ["deep.png"]);
    assert_eq!(names(&api.root("?limit=0").await, "files").len(), 2, "limit 0 means no limit");
    api.get("/cloud/v1/folders?limit=-1").await.assert_error(400, 28);
    api.get("/cloud/v1/folders?offset=x").await.assert_error(400, 28);

    // showthumbnails: picture files get thumb and preview URLs.
    let shown = api.root("?showthumbnails").await;
    let pic = &shown["files"][1];
    for k in ["thumbUrl", "previewUrl", "downloadUrl"] {
        assert!(pic[k].as_str().is_some(), "{k} missing in {pic}");
    }
    assert!(shown["files"][0].get("thumbUrl").is_none());
}

#[tokio::test]
async fn rename_move_copy_delete() {
    let s = Server::start(&[]);
    let api = s.api();
    let src = api.mkdir("src", None).await;
    let dst = api.mkdir("dst", None).await;
    let (sid, did) = (src["id"].as_str().unwrap(), dst["id"].as_str().unwrap());
    let inner = api.mkdir("inner", Some(sid)).await;
    let f = api.upload("f.txt", b"0123456789", Some(inner["id"].as_str().unwrap())).await.ok();
    let fid = f["fileId"].as_str().unwrap();
    let free0 = api.freespace().await;

    // Rename a file: the id changes, the old one is gone.
    let r = api.post_json(&format!("/cloud/v1/files/{fid}"), json!({"name": "g.txt"})).await.ok();
    assert_eq!(r["id"], id(&format!("{APP}src/inner/g.txt")));
    assert_eq!(r["name"], "g.txt");
    assert_eq!(r["parentId"], inner["id"]);
    assert_eq!(r["size"], 10);
    assert!(r["downloadUrl"].is_string());
    api.get(&format!("/cloud/v1/files/{fid}")).await.assert_error(404, 60);
    let gid = r["id"].as_str().unwrap().to_owned();

    // Copy a folder recursively (the copy costs quota), then move it, then rename it.
    let c =
        api.post_json(&format!("/cloud/v1/folders/{sid}"), json!({"parentFolderId": did, "clone": true})).await.ok();
    assert_eq!(c, json!({"id": id(&format!("{APP}dst/src/")), "name": "src", "parentId": did}));
    assert_eq!(api.freespace().await, free0 - 10);
    let copied = api.get(&format!("/cloud/v1/files/{}", id(&format!("{APP}dst/src/inner/g.txt")))).await.ok();
    assert_eq!(copied["size"], 10);
    let m = api
        .post_json(
            &format!("/cloud/v1/folders/{}", c["id"].as_str().unwrap()),
            json!({"parentFolderId": id(APP), "name": "moved"}),
        )
        .await
        .ok();
    assert_eq!(m["id"], id(&format!("{APP}moved/")));
    assert_eq!(api.download(&id(&format!("{APP}moved/inner/g.txt"))).await.as_ref(), b"0123456789");
    // Copy of a file with a new name, in the same folder.
    let fc = api.post_json(&format!("/cloud/v1/files/{gid}"), json!({"name": "h.txt", "clone": true})).await.ok();
    assert_eq!(fc["id"], id(&format!("{APP}src/inner/h.txt")));
    assert_eq!(api.freespace().await, free0 - 20);

    // Refusals: into itself, onto an existing name, copy into its own parent, empty body.
    api.post_json(&format!("/cloud/v1/folders/{sid}"), json!({"parentFolderId": inner["id"]}))
        .await
        .assert_error(400, 24);
    api.post_json(&format!("/cloud/v1/folders/{sid}"), json!({"name": "dst"})).await.assert_error(400, 24);
    api.post_json(&format!("/cloud/v1/folders/{sid}"), json!({"parentFolderId": id(APP), "clone": true}))
        .await
        .assert_error(400, 24);
    api.post_json(&format!("/cloud/v1/folders/{sid}"), json!({})).await.assert_error(400, 23);
    api.post_json(&format!("/cloud/v1/folders/{sid}"), json!({"name": "../x"})).await.assert_error(400, 24);
    // The app folder itself cannot be renamed or deleted by a sandboxed app.
    api.post_json(&format!("/cloud/v1/folders/{}", id(APP)), json!({"name": "x"})).await.assert_error(403, 50);
    api.delete(&format!("/cloud/v1/folders/{}", id(APP))).await.assert_error(403, 50);

    // Recursive delete frees the space of every file in it.
    let r = api.delete(&format!("/cloud/v1/folders/{sid}")).await;
    assert_eq!((r.status, r.body.len()), (204, 0));
    api.get(&format!("/cloud/v1/folders/{sid}")).await.assert_error(404, 60);
    api.get(&format!("/cloud/v1/files/{gid}")).await.assert_error(404, 60);
    assert_eq!(api.freespace().await, free0);
    let r = api.delete(&format!("/cloud/v1/files/{}", id(&format!("{APP}moved/inner/g.txt")))).await;
    assert_eq!(r.status, 204);
    assert_eq!(api.freespace().await, free0 + 10);
}

#[tokio::test]
async fn names_are_checked() {
    let s = Server::start(&[]);
    let api = s.api();
    let long = "é".repeat(128);
    for bad in ["", ".", "..", "a/b", "a\u{0}b", long.as_str()] {
        api.post_json("/cloud/v1/folders", json!({"name": bad})).await.assert_error(400, 24);
        api.upload(bad, b"x", None).await.assert_error(400, 24);
    }
    let ok = "é".repeat(127);
    assert_eq!(api.mkdir(&ok, None).await["name"], ok);
    assert_eq!(api.mkdir("..hidden", None).await["name"], "..hidden");
    // Nothing escaped the content store: objects are named by key only.
    assert_eq!(stored_objects(&s.data), Vec::<String>::new(), "refused uploads stored nothing");
}

#[tokio::test]
async fn users_and_apps_are_isolated() {
    let s = Server::start(&[]);
    let alice = s.api();
    let f = alice.upload("secret.txt", b"alice", None).await.ok();
    let fid = f["fileId"].as_str().unwrap();
    let bob = s.api_as("bob", "tests", "openid cloud");
    bob.get(&format!("/cloud/v1/files/{fid}")).await.assert_error(404, 60);
    bob.delete(&format!("/cloud/v1/files/{fid}")).await.assert_error(404, 60);
    assert_eq!(bob.root("").await["files"], json!([]));
    let bob_full = s.api_as("bob", "other", "openid cloudfullwrite");
    bob_full.get(&format!("/cloud/v1/files/{fid}")).await.assert_error(404, 60);
    // Another app of the same user does not see the first app's folder…
    let other = s.api_as("alice", "other", "openid cloud");
    other.get(&format!("/cloud/v1/files/{fid}")).await.assert_error(404, 60);
    other.get(&format!("/cloud/v1/folders/{}", id(APP))).await.assert_error(404, 60);
    // …but full read does, and writing outside the app folder needs cloudfullwrite.
    let reader = s.api_as("alice", "other", "openid cloudfullread");
    assert_eq!(reader.get(&format!("/cloud/v1/files/{fid}")).await.ok()["name"], "secret.txt");
    reader.post_json(&format!("/cloud/v1/files/{fid}"), json!({"name": "x.txt"})).await.assert_error(403, 50);
    reader.delete(&format!("/cloud/v1/files/{fid}")).await.assert_error(403, 50);
    reader.post_json("/cloud/v1/folders", json!({"name": "top", "parentFolderId": "Lw"})).await.assert_error(403, 50);
    let writer = s.api_as("alice", "other", "openid cloudfullwrite");
    assert_eq!(writer.mkdir("top", Some("Lw")).await["id"], id("top/"));
    let up = writer.upload("root.txt", b"r", None).await.ok();
    assert_eq!(up["fileId"], id("root.txt"), "full write uploads to the real root by default");
}

#[tokio::test]
async fn quota_is_exact() {
    let s = Server::start(&["--quota", "100"]);
    let api = s.api();
    assert_eq!(api.freespace().await, 100);
    api.upload("a.bin", &[1; 60], None).await.ok();
    assert_eq!(api.freespace().await, 40);
    // Refused before anything is stored: 413/66 (README: Quota).
    let r = api.upload("b.bin", &[2; 41], None).await;
    r.assert_error(413, 66);
    assert!(r.header("x-ocloud-detail").unwrap().contains("free"));
    assert_eq!(api.freespace().await, 40);
    let b = api.upload("b.bin", &[2; 40], None).await.ok();
    assert_eq!(api.freespace().await, 0);
    // A copy that cannot fit is refused too.
    api.post_json(
        &format!("/cloud/v1/files/{}", b["fileId"].as_str().unwrap()),
        json!({"name": "c.bin", "clone": true}),
    )
    .await
    .assert_error(413, 66);
    api.delete(&format!("/cloud/v1/files/{}", b["fileId"].as_str().unwrap())).await;
    assert_eq!(api.freespace().await, 40);
    // Clash renaming keeps both files and counts both.
    let again = api.upload("a.bin", &[3; 30], None).await.ok();
    assert_eq!(again["fileName"], "a(1).bin");
    assert_eq!(api.freespace().await, 10);
    // A raw upload over the limit is refused from its Content-Length.
    let r = Api::send(api.req(reqwest::Method::POST, "/cloud/v1/files/content?name=big.bin").body(vec![0u8; 11])).await;
    r.assert_error(413, 66);
    assert_eq!(temp_files(&s.data).len(), 0, "no temp file left");
}

#[tokio::test]
async fn session_openapi_health() {
    let s = Server::start(&[]);
    let api = s.api();
    let r = Api::send(api.req(reqwest::Method::POST, "/cloud/v1/session/").header("X-Orange-CA-ESID", "whatever"))
        .await
        .ok();
    assert_eq!(r["esid"].as_str().unwrap().len(), 64);
    let r = Api::send(
        api.req(reqwest::Method::GET, "/cloud/v1/freespace")
            .header("X-Orange-CA-ESID", "x")
            .header("X-OAPI-Agent", "Android-1.0.7"),
    )
    .await;
    assert_eq!(r.status, 200);
    let doc = api.get("/cloud/v1/openapi.json").await.ok();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in ["/cloud/v1/freespace", "/cloud/v1/folders/{id}", "/cloud/v1/files/content", "/cloud/v1/files/{id}"] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from the OpenAPI document");
    }
    assert_eq!(reqwest::get(format!("{}/healthz", s.url)).await.unwrap().status(), 200);
}

#[tokio::test]
async fn public_url_bases_content_urls() {
    let s = Server::start(&["--public-url", "https://cloud.example.org/"]);
    let api = s.api();
    let up = api.upload("p.png", &png(3, 3), None).await.ok();
    let f = api.get(&format!("/cloud/v1/files/{}", up["fileId"].as_str().unwrap())).await.ok();
    for k in ["downloadUrl", "thumbUrl", "previewUrl"] {
        assert!(f[k].as_str().unwrap().starts_with("https://cloud.example.org/cloud/v1/files/"), "{k}: {}", f[k]);
    }
}

/// Metadata as Orange gave it (spec §3.1), read from the headers in the background after the
/// upload; a damaged header gives none, never an error.
#[tokio::test]
async fn media_metadata_from_headers() {
    let s = Server::start(&[]);
    let api = s.api();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ocloud-server/fixtures/media");
    let read = |name: &str| std::fs::read(fixtures.join(name)).unwrap();
    let cases = [
        (
            "photo.jpg",
            read("exif.jpg"),
            json!({"width": 1, "height": 1, "shootingDate": "2016-04-30T18:00:00+0000", "rotationAngle": "NINETY"}),
        ),
        (
            "song.mp3",
            read("tags.mp3"),
            json!({"duration": 3, "albumName": "Ninja Tuna", "trackName": "Kalimba", "artistName": "Mr. Scruff", "hasCover": true}),
        ),
        ("clip.mp4", read("video.mp4"), json!({"duration": 2, "width": 320, "height": 240})),
    ];
    // Damaged files first: their jobs take the (fair) job queue before the good ones, so they
    // are done when the good ones are.
    let broken_mp3 = api.upload("broken.mp3", &read("tags.mp3")[..40], None).await.ok();
    let broken_mp4 = api.upload("broken.mp4", b"\0\0\0\x08moov\xff\xff\xff\xffjunk", None).await.ok();
    let mut ids = Vec::new();
    for (name, bytes, expected) in &cases {
        let id = api.upload(name, bytes, None).await.ok()["fileId"].as_str().unwrap().to_owned();
        ids.push((id, expected.clone()));
    }
    // The job runs after the answer: wait (bounded) until it has written each.
    for (id, expected) in ids {
        let mut got = serde_json::Value::Null;
        for _ in 0..500 {
            got = api.get(&format!("/cloud/v1/files/{id}")).await.ok()["metadata"].clone();
            if got == expected {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(got, expected, "{id}");
    }
    for f in [broken_mp3, broken_mp4] {
        let info = api.get(&format!("/cloud/v1/files/{}", f["fileId"].as_str().unwrap())).await.ok();
        assert!(info["metadata"].is_null() || info["metadata"] == json!({}), "{info}");
    }
}
