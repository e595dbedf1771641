//! `ocloud admin fsck` on a live installation, on whichever backends the run uses.

use crate::harness::*;

#[tokio::test]
async fn fsck_is_clean_then_names_each_problem() {
    let s = Server::start(&[]);
    let api = s.api();
    let a = api.upload("a.txt", b"aaa", None).await.ok();
    let b = api.upload("b.txt", b"bbbb", None).await.ok();
    api.post_json(
        &format!("/cloud/v1/files/{}", a["fileId"].as_str().unwrap()),
        serde_json::json!({"name": "a2.txt", "clone": true}),
    )
    .await
    .ok();
    let fsck = || {
        let out = s.admin().arg("fsck").output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, report) = fsck();
    assert!(ok, "{report}");
    assert!(report.contains("2 file contents, 2 objects, 0 unreferenced pending cleanup, 0 problems"), "{report}");
    // A file whose content is gone.
    let b_key = etag(&api, b["fileId"].as_str().unwrap()).await;
    delete_object(&s.data, &s.env, &b_key);
    // A file row removed behind the service's back: its object is referenced by nothing, and
    // the user's usage still counts it.
    let a_key = etag(&api, a["fileId"].as_str().unwrap()).await;
    database_sql(&s.data, "DELETE FROM nodes WHERE name IN ('a.txt', 'a2.txt')");
    let (ok, report) = fsck();
    assert!(!ok, "{report}");
    assert!(report.contains(&format!("content missing: blob {b_key} (4 bytes) of a file")), "{report}");
    assert!(report.contains(&format!("unreferenced object: {a_key} (no file, not pending cleanup)")), "{report}");
    assert!(report.contains("usage of user \"alice\" is 10 bytes, its files hold 4"), "{report}");
    assert!(report.contains(", 3 problems"), "{report}");
}

/// The content key of a file: its ETag.
async fn etag(api: &Api, id: &str) -> String {
    let r = api.get(&format!("/cloud/v1/files/{id}")).await;
    r.header("etag").unwrap().trim_matches('"').to_owned()
}
