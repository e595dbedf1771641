//! The service against hostile input and hostile conditions (issue 12): log injection, file
//! modes, …

use crate::harness::*;

#[tokio::test]
async fn client_text_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut s = Server::start_logged(&[], "debug", &log);
    let api = s.api();
    // C0 controls are refused in names; C1 ones (NEL, U+0085, a line break to many viewers) are
    // legal Unicode in a name, and the name is logged when the file is stored.
    let name = "a\u{85}2001-01-01T00:00:00.000000Z  INFO forged: granted.txt";
    api.upload(name, b"x", None).await.ok();
    s.kill();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("a\\u{85}2001-01-01T00:00:00.000000Z  INFO forged"), "the name is logged, escaped:\n{text}");
    assert!(!text.contains('\u{85}'), "a raw line break:\n{text}");
    assert!(!text.contains('\u{1b}'), "no escape codes when stderr is not a terminal:\n{text}");
}

#[tokio::test]
async fn data_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // A data dir of an earlier version, open to everyone, is tightened on start.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = Server::start_in(&data, &[]);
    s.api().upload("secret.txt", b"private", None).await.ok();
    assert_eq!(mode(&data), 0o700);
    let mut files = 0;
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
                files += 1;
            }
        }
    }
    assert!(files >= 3, "the database, its WAL and the content were checked ({files} files)");
}

/// A broken store (here a dropped table) gives 500 with the fixed texts of each surface; the
/// cause is logged, never answered.
#[tokio::test]
async fn internal_errors_never_leak() {
    let s = crate::oauth::Setup::new(&[], "openid cloud offline_access", None);
    let mut b = s.browser();
    let code = s.code(&mut b, &[]).await;
    let pair = s.exchange(&code).await.ok();
    let token = pair["access_token"].as_str().unwrap().to_owned();
    let db = rusqlite::Connection::open(s.server.data.join("ocloud.db")).unwrap();
    db.execute_batch("DROP TABLE tokens").unwrap();
    let leaks = |r: &Resp| {
        let body = String::from_utf8_lossy(&r.body).to_lowercase();
        assert!(!body.contains("table") && !body.contains("sql"), "internals in {body}");
        assert!(r.header("x-ocloud-detail").is_none());
    };
    let r =
        s.token(&[("grant_type", "refresh_token"), ("refresh_token", pair["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(
        (r.status, r.json()),
        (500, serde_json::json!({"error": "server_error", "error_description": "internal error"}))
    );
    leaks(&r);
    let r = Api::new(&s.server.url, &token).get("/cloud/v1/freespace").await;
    r.assert_error(500, 1);
    leaks(&r);
    let r = Api::send(reqwest::Client::new().get(format!(
        "{}/personal/content/v1?action=getContentUploadURL&token={token}&content_name=a.txt&content_size=3",
        s.server.url
    )))
    .await;
    assert_eq!(r.status, 500);
    assert!(
        String::from_utf8_lossy(&r.body).contains("<detail>Personal Content API internal error</detail>"),
        "{:?}",
        r.body
    );
    leaks(&r);
    let r = Api::send(
        reqwest::Client::new().get(format!("{}/personal/photos/v1?action=GetAlbumsList&token={token}", s.server.url)),
    )
    .await;
    assert_eq!(r.status, 500);
    leaks(&r);
}
