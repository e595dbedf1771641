//! The login and consent pages driven by a real browser: headless Chromium through
//! playwright-core (`tests/browser`, installed by `.ci/run`). Outside CI the test is skipped,
//! with a note, when Chromium or playwright-core is missing; in CI it must run.

use std::path::PathBuf;
use std::process::Command;

use crate::oauth::{REDIRECT, Setup, redirect_param};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

#[tokio::test]
async fn login_and_consent_in_chromium() {
    let dir = browser_dir();
    let ready = dir.join("node_modules/playwright-core").exists() && std::path::Path::new("/usr/bin/chromium").exists();
    if !ready {
        assert!(std::env::var_os("CI").is_none(), "CI must install Chromium and tests/browser (see .ci/run)");
        eprintln!(
            "skipped: no Chromium or playwright-core (run: apt-get install chromium; npm install --prefix tests/browser)"
        );
        return;
    }
    let s = Setup::new(&[], "openid cloud offline_access", None);
    let url = format!("{}{}", s.server.url, s.authorize_url(&[("scope", "openid cloud offline_access")]));
    let shots = std::env::var("OCLOUD_SCREENSHOTS").unwrap_or_default();
    let out = Command::new("node")
        .arg(dir.join("login.mjs"))
        .env("AUTHORIZE_URL", &url)
        .env("REDIRECT_URI", REDIRECT)
        .env("OCLOUD_USER", "alice")
        .env("OCLOUD_PASSWORD", "correct horse")
        .env("SCREENSHOT_DIR", shots)
        .output()
        .unwrap();
    assert!(out.status.success(), "browser run failed: {}", String::from_utf8_lossy(&out.stderr));
    let landed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // Reuse the redirect parser on the landing URL.
    let fake = crate::harness::Resp {
        status: 302,
        headers: {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert("location", landed.parse().unwrap());
            h
        },
        body: Default::default(),
    };
    let code = redirect_param(&fake, "code").expect("the browser landed on the redirect URI with a code");
    assert_eq!(redirect_param(&fake, "state").as_deref(), Some("s t&ate=1"));
    let t = s.exchange(&code).await.ok();
    assert!(t["access_token"].as_str().unwrap().starts_with("OFR-"));
}
