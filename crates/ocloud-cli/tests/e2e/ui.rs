//! The web interface in a real browser (headless Chromium through playwright-core:
//! `tests/browser/ui.mjs`), and what the browser brought back checked here: the downloaded file
//! and zip, the first paint of a 10,000-entry folder, axe-core's findings, the quota error.
//! Screenshots go to `target/ui-screenshots`. The gateway's CSRF checks and the zip stream are
//! also tested without a browser (`ui_gateway_*`).

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use crate::harness::*;
use crate::oauth::{REDIRECT, Setup, admin};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

fn browser_ready() -> bool {
    let ready = browser_dir().join("node_modules/playwright-core").exists()
        && browser_dir().join("node_modules/axe-core").exists()
        && std::path::Path::new("/usr/bin/chromium").exists();
    if !ready {
        assert!(std::env::var_os("CI").is_none(), "CI must install Chromium and tests/browser (see tests/setup.sh)");
        eprintln!("skipped: no Chromium or tests/browser/node_modules (run: bash tests/setup.sh)");
    }
    ready
}

fn b64(path: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(path)
}

/// Alice has allowed the app `tests` (so the account page has a grant to revoke).
async fn allow_tests_app(s: &Setup) {
    let mut b = s.browser();
    let page = b.get(&s.authorize_url(&[("scope", "openid cloud offline_access")])).await;
    let page = b.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    let done = b.submit(&page, "/oauth/v2/consent", &[("decision", "allow")]).await;
    assert!(done.header("location").is_some_and(|l| l.starts_with(REDIRECT)), "consent given");
}

#[tokio::test]
async fn the_web_interface_in_chromium() {
    if !browser_ready() {
        return;
    }
    let s = Setup::new(&["--quota", "20MB"], "openid cloud offline_access", None);
    allow_tests_app(&s).await;
    admin(&s.server, &["fill", "--user", "alice", "--folder", "big", "--count", "10000", "--size", "1"], None);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir_all(w.join("tree/sub")).unwrap();
    std::fs::write(w.join("tree/a.txt"), "alpha").unwrap();
    std::fs::write(w.join("tree/sub/b.txt"), "bravo").unwrap();
    std::fs::write(w.join("a.png"), png(40, 30)).unwrap();
    std::fs::write(w.join("b.png"), png(30, 40)).unwrap();
    std::fs::write(w.join("note.txt"), "a note").unwrap();
    std::fs::write(w.join("too-big.bin"), vec![7u8; 21_000_000]).unwrap();
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(browser_dir().join("ui.mjs"))
        .env("BASE_URL", &s.server.url)
        .env("OCLOUD_USER", "alice")
        .env("OCLOUD_PASSWORD", "correct horse")
        .env("WORK", w)
        .env("BIG_FOLDER", b64("big/"))
        .env("SHOTS", &shots)
        .output()
        .unwrap();
    assert!(out.status.success(), "browser run failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let facts: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();

    assert_eq!(std::fs::read_to_string(w.join("got-note.txt")).unwrap(), "a note");
    // The zip, read by Python's zipfile: the selection, folders keeping their tree.
    let listing = Command::new("python3")
        .args(["-c", "import sys,zipfile,json; z=zipfile.ZipFile(sys.argv[1]); print(json.dumps({n: z.read(n).decode() for n in z.namelist() if not n.endswith('/')}))"])
        .arg(w.join("got.zip"))
        .output()
        .unwrap();
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    let entries: Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(entries, serde_json::json!({"tree/a.txt": "alpha", "tree/sub/b.txt": "bravo", "note.txt": "a note"}));
    assert!(facts["zip_name"].as_str().unwrap().ends_with(".zip"));
    let lightbox = facts["lightbox"].as_array().unwrap();
    assert!(lightbox[0] != lightbox[1], "the arrow key moved to another picture: {lightbox:?}");
    assert_eq!(facts["keys"].as_array().unwrap().len(), 20, "{}", facts["keys"]);
    let paint = facts["first_paint_ms"].as_u64().unwrap();
    assert!(paint < 1000, "first paint of the 10,000-entry folder took {paint} ms");
    assert_eq!(facts["big_first_page"], 200, "the first page only");
    assert_eq!(facts["axe"], serde_json::json!([]), "serious or critical accessibility violations");
    let quota = facts["quota_message"].as_str().unwrap();
    assert!(quota.contains("not enough free space"), "the service's words: {quota}");
    assert_eq!(facts["grants_before"], serde_json::json!(["tests"]));
    // Revoked: the app's consent is gone, so it must ask again.
    let mut b = s.browser();
    let page = b.get(&s.authorize_url(&[("scope", "openid cloud offline_access")])).await;
    let page = b.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    assert!(String::from_utf8_lossy(&page.body).contains("value=\"allow\""), "the consent page again");
    for shot in ["desktop.png", "dark.png", "phone.png"] {
        assert!(shots.join(shot).metadata().unwrap().len() > 1000, "{shot}");
    }
}

/// Signs `alice` in to the web interface over plain HTTP, as a browser would.
async fn ui_session(s: &Setup) -> crate::oauth::Browser {
    let mut b = s.browser();
    let to_authorize = b.get("/ui/signin").await;
    let authorize = to_authorize.header("location").expect("to the authorization server").to_owned();
    let login = b.get(&authorize).await;
    assert_eq!(login.status, 200, "the login page");
    let back = b.submit(&login, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    let callback = back.header("location").expect("a code for the web interface, no consent page").to_owned();
    let callback = callback.strip_prefix(&s.server.url).unwrap_or(&callback).to_owned();
    let home = b.get(&callback).await;
    assert_eq!(home.header("location"), Some("/"));
    assert!(b.cookie("ocloud_ui").is_some() && b.cookie("ocloud_ui_csrf").is_some());
    b
}

#[tokio::test]
async fn ui_gateway_refuses_changes_without_origin_and_csrf_token() {
    let mut s = Setup::new(&[], "openid cloud offline_access", None);
    let mut b = ui_session(&s).await;
    let csrf = b.cookie("ocloud_ui_csrf").unwrap();
    let origin = s.server.url.clone();
    let mkdir = |b: &crate::oauth::Browser, origin: Option<&str>, token: Option<&str>| {
        let mut rb = b.request(reqwest::Method::POST, "/ui/api/folders").json(&serde_json::json!({"name": "x"}));
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        if let Some(t) = token {
            rb = rb.header("x-csrf-token", t);
        }
        Api::send(rb)
    };
    mkdir(&b, None, Some(&csrf)).await.assert_error(403, 50);
    mkdir(&b, Some(&origin), None).await.assert_error(403, 50);
    mkdir(&b, Some(&origin), Some("forged")).await.assert_error(403, 50);
    mkdir(&b, Some("http://evil.example"), Some(&csrf)).await.assert_error(403, 50);
    let made = mkdir(&b, Some(&origin), Some(&csrf)).await;
    assert!(made.status == 200 || made.status == 201, "{} {}", made.status, String::from_utf8_lossy(&made.body));
    // Reads need the session only; no session, no access; the API's own bodies throughout.
    assert_eq!(Api::send(b.request(reqwest::Method::GET, "/ui/api/freespace")).await.status, 200);
    Api::send(http().get(format!("{}/ui/api/freespace", s.server.url))).await.assert_error(401, 40);
    // The page itself: a CSP with no inline script, and the signed-out visitor sent to sign in.
    let page = Api::send(b.request(reqwest::Method::GET, "/")).await;
    assert!(page.header("content-security-policy").unwrap().contains("script-src 'self'"));
    let anon = Api::send(http().get(format!("{}/", s.server.url))).await;
    assert!(String::from_utf8_lossy(&anon.body).contains("username"), "the login page after the redirects");
    // Sign-out needs the token too.
    let out = Api::send(
        b.request(reqwest::Method::POST, "/ui/signout").header("origin", &origin).form(&[("csrf", "forged")]),
    )
    .await;
    assert_eq!(out.status, 403);
    // The session outlives a restart of the service: its tokens are in the database.
    let addr = s.server.addr();
    s.server.kill();
    let _again = Server::start_in(&s.server.data, &["--listen", &addr]);
    b.reconnect();
    assert_eq!(Api::send(b.request(reqwest::Method::GET, "/ui/api/freespace")).await.status, 200);
    let after = Api::send(
        b.request(reqwest::Method::POST, "/ui/api/folders")
            .header("origin", &origin)
            .header("x-csrf-token", &csrf)
            .json(&serde_json::json!({"name": "after the restart"})),
    )
    .await;
    assert!(after.status == 200 || after.status == 201, "a change after the restart: {}", after.status);
}

#[tokio::test]
async fn ui_zip_streams_a_folder_and_a_file() {
    let s = Setup::new(&[], "openid cloud offline_access", None);
    let b = ui_session(&s).await;
    let api = s.server.api_as("alice", "tests", "openid cloud cloudfullwrite");
    let dir = api.mkdir("album", None).await;
    let dir_id = dir["id"].as_str().unwrap();
    let sub = api.mkdir("inner", Some(dir_id)).await;
    let big: Vec<u8> = (0..12_000_000u32).map(|i| (i % 239) as u8).collect();
    api.upload("big.bin", &big, Some(dir_id)).await.ok();
    api.upload("deep.txt", b"deep", Some(sub["id"].as_str().unwrap())).await.ok();
    let lone = api.upload("lone.txt", b"lone", None).await.ok();
    let q = format!("/ui/zip?d={dir_id}&f={}&name=mine", lone["fileId"].as_str().unwrap());
    let res = b.request(reqwest::Method::GET, &q).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    assert!(res.headers().get("content-length").is_none(), "streamed, not built first");
    assert!(res.headers()["content-disposition"].to_str().unwrap().contains("mine.zip"));
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("z.zip");
    std::fs::write(&file, res.bytes().await.unwrap()).unwrap();
    let check = Command::new("python3")
        .args(["-c", "import sys,zipfile,hashlib,json; z=zipfile.ZipFile(sys.argv[1]); print(json.dumps({n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist() if not n.endswith('/')}))"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let got: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(
        got,
        serde_json::json!({
            "lone.txt": sha256(b"lone"), "album/big.bin": sha256(&big), "album/inner/deep.txt": sha256(b"deep"),
        })
    );
    // An id it cannot see: a clear error before any byte of a zip.
    let bad = Api::send(b.request(reqwest::Method::GET, "/ui/zip?f=bm9wZQ")).await;
    assert_eq!(bad.status, 404);
}
