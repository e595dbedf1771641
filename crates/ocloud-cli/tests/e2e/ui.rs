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
    assert_eq!(facts["keys"].as_array().unwrap().len(), 18, "{}", facts["keys"]);
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
