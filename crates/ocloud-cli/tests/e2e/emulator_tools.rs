//! The emulator's settings, OAuth helpers, `--seed`, journal views (unmatched, HAR, live
//! tail), snapshot archives and `--emulator-file`.

use serde_json::{Value, json};

use crate::harness::*;

const ADMIN: &str = "admin-token-of-the-tool-tests";

fn emulator(extra: &[&str]) -> Server {
    let mut args = vec!["--emulator", "--emulator-token", ADMIN];
    args.extend_from_slice(extra);
    Server::start(&args)
}

async fn control(s: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
    crate::emulator::control(s, method, path, body, Some(ADMIN)).await
}

async fn mint(s: &Server, user: &str) -> Api {
    let t = control(s, reqwest::Method::POST, "/tokens", Some(json!({"user": user, "app": "tests"}))).await.ok();
    Api::new(&s.url, t["access_token"].as_str().unwrap())
}

fn emu(s: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("emu")
        .args(args)
        .env("OCLOUD_API_URL", &s.url)
        .env("OCLOUD_EMULATOR_TOKEN", ADMIN)
        .env("OCLOUD_CONFIG", s.data.join("cli.toml"))
        .output()
        .unwrap()
}

#[tokio::test]
async fn settings_change_the_service_at_once_all_or_nothing() {
    let s = emulator(&[]);
    let api = mint(&s, "ivy").await;
    let patch = json!({"quota": 1_000_000, "max_upload_size": 1000, "error_shape": "flat", "token_ttl": 60});
    let now = control(&s, reqwest::Method::PATCH, "/settings", Some(patch)).await.ok();
    assert_eq!((now["quota"].clone(), now["error_shape"].clone()), (json!(1_000_000), json!("flat")));
    assert_eq!(api.freespace().await, 1_000_000);
    let r = api.upload("big.bin", &[0u8; 2000], None).await;
    assert_eq!(r.status, 413);
    let body = r.json();
    assert!(body.get("error").is_none() && body["code"] == 66, "flat shape: {body}");
    let t = control(&s, reqwest::Method::POST, "/tokens", Some(json!({"user": "ivy", "app": "tests"}))).await.ok();
    assert_eq!(t["expires_in"], 60);
    // A bad value is refused and nothing of the patch applies.
    let bad = control(&s, reqwest::Method::PATCH, "/settings", Some(json!({"quota": 5, "error_shape": "round"}))).await;
    // (in the flat shape set just before)
    assert_eq!((bad.status, bad.json()["code"].clone()), (400, json!(24)));
    assert_eq!(control(&s, reqwest::Method::GET, "/settings", None).await.ok()["quota"], 1_000_000);
    // The CLI: KEY=VALUE pairs.
    let out = emu(&s, &["settings", "quota=2000000", "error_shape=both"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(api.freespace().await, 2_000_000);
}

#[tokio::test]
async fn auto_login_and_consent_redirect_at_once_and_the_code_is_readable() {
    let s = emulator(&[]);
    let fixture = json!({
        "users": [{"name": "jon", "password": "pw"}],
        "apps": [{"name": "headless", "client_id": "headless-id", "client_secret": "headless-secret",
                  "redirect_uris": ["http://127.0.0.1:9/cb"]}]
    });
    control(&s, reqwest::Method::POST, "/seed", Some(fixture)).await.ok();
    control(&s, reqwest::Method::GET, "/oauth/codes?client_id=headless-id", None).await.assert_error(404, 60);
    let authorize = format!(
        "{}/oauth/v2/authorize?response_type=code&client_id=headless-id&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid%20cloud&state=s1",
        s.url
    );
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = browser.get(&authorize).send().await.unwrap();
    assert_eq!(page.status(), 200, "without the settings: the login page");
    control(&s, reqwest::Method::PATCH, "/settings", Some(json!({"auto_login": "jon", "auto_consent": true})))
        .await
        .ok();
    let res = browser.get(&authorize).send().await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("http://127.0.0.1:9/cb?code="), "{location}");
    assert!(location.ends_with("&state=s1"), "{location}");
    let code = location.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let seen = control(&s, reqwest::Method::GET, "/oauth/codes?client_id=headless-id", None).await.ok();
    assert_eq!(seen["code"], code);
    let out = emu(&s, &["code", "headless-id"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), code);
    let token = http()
        .post(format!("{}/oauth/v2/token", s.url))
        .basic_auth("headless-id", Some("headless-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://127.0.0.1:9/cb")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let token: Value = token.json().await.unwrap();
    let jon = Api::new(&s.url, token["access_token"].as_str().unwrap());
    assert_eq!(jon.freespace().await, 5 << 30);
    // Off again: the login page.
    control(&s, reqwest::Method::PATCH, "/settings", Some(json!({"auto_login": null, "auto_consent": false})))
        .await
        .ok();
    assert_eq!(browser.get(&authorize).send().await.unwrap().status(), 200);
}

/// The same requests, one after the other, on a fresh emulator seeded with `seed`: every
/// answer, the journal (without durations) and the stored keys.
async fn seeded_run(seed: &str) -> (Vec<String>, Vec<Value>, Vec<String>) {
    let s = emulator(&["--seed", seed]);
    control(&s, reqwest::Method::PUT, "/clock", Some(json!({"now": "2031-02-03T04:05:06Z"}))).await.ok();
    let mut answers = Vec::new();
    let t = control(&s, reqwest::Method::POST, "/tokens", Some(json!({"user": "kim", "app": "det"}))).await.ok();
    answers.push(t.to_string());
    let api = Api::new(&s.url, t["access_token"].as_str().unwrap());
    let up = api.upload("a.txt", b"alpha", None).await.ok();
    answers.push(up.to_string());
    answers.push(api.mkdir("d", None).await.to_string());
    answers.push(api.root("").await.to_string());
    answers.push(api.get(&format!("/cloud/v1/files/{}", up["fileId"].as_str().unwrap())).await.ok().to_string());
    answers.push(Api::send(api.req(reqwest::Method::POST, "/cloud/v1/session")).await.ok().to_string());
    let token = t["access_token"].as_str().unwrap();
    let legacy = http()
        .get(format!(
            "{}/personal/content/v1?action=getContentUploadURL&token={token}&content_name=b.txt&content_size=1",
            s.url
        ))
        .send()
        .await
        .unwrap();
    answers.push(legacy.text().await.unwrap());
    let mut journal =
        control(&s, reqwest::Method::GET, "/requests", None).await.ok()["requests"].as_array().unwrap().clone();
    for e in &mut journal {
        e.as_object_mut().unwrap().remove("duration_ms");
    }
    let mut keys = stored_objects(&s.data);
    keys.sort();
    // The port differs from run to run.
    let answers = answers.iter().map(|a| a.replace(&s.url, "URL")).collect();
    (answers, journal, keys)
}

#[tokio::test]
async fn two_runs_with_the_same_seed_answer_the_same_bytes() {
    let (a, b, c) = (seeded_run("42").await, seeded_run("42").await, seeded_run("43").await);
    assert_eq!(a.0, b.0, "answers");
    assert_eq!(a.1, b.1, "journals");
    assert_eq!(a.2, b.2, "content keys");
    assert!(!a.2.is_empty());
    assert_ne!(a.0[0], c.0[0], "another seed, other tokens");
}

#[tokio::test]
async fn the_journal_shows_unmatched_routes_a_har_and_a_live_tail() {
    let s = emulator(&[]);
    let api = mint(&s, "lea").await;
    assert_eq!(api.get("/cloud/v1/folder/abc").await.status, 404);
    let un = control(&s, reqwest::Method::GET, "/requests/unmatched", None).await.ok();
    let un = un["requests"].as_array().unwrap();
    assert_eq!(un.len(), 1, "{un:?}");
    assert_eq!(un[0]["nearest"], "GET /cloud/v1/folders/{id}");
    let out = emu(&s, &["requests", "--unmatched"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nearest: GET /cloud/v1/folders/{id}"));

    api.freespace().await;
    let har = control(&s, reqwest::Method::GET, "/requests/har?op=freespace.get", None).await.ok();
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["request"]["url"], format!("{}/cloud/v1/freespace", s.url));
    assert_eq!(entries[0]["response"]["status"], 200);
    let file = s.data.join("j.har");
    let out = emu(&s, &["requests", "--har", file.to_str().unwrap()]);
    assert!(out.status.success());
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written["log"]["entries"].as_array().unwrap().len(), 2);

    // The tail: once subscribed (the answer's head has come), each request is one event.
    let tail = http()
        .get(format!("{}/_ocloud/v1/requests/tail?op=folders.root", s.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(tail.headers()["content-type"], "text/event-stream");
    api.freespace().await;
    api.root("").await;
    let mut stream = tail.bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = futures_util::StreamExt::next(&mut stream).await.unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("event: request\ndata: {"), "{text}");
    let data: Value = serde_json::from_str(text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!((data["operation"].as_str(), data["status"].as_u64()), (Some("folders.root"), Some(200)));
}

#[tokio::test]
async fn a_snapshot_archive_restores_on_a_fresh_service() {
    let s = emulator(&[]);
    let api = mint(&s, "max").await;
    let folder = api.mkdir("keep", None).await;
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    api.upload("big.bin", &content, Some(folder["id"].as_str().unwrap())).await.ok();
    api.upload("small.txt", b"hello", None).await.ok();
    let id = control(&s, reqwest::Method::POST, "/snapshots", None).await.ok()["id"].as_str().unwrap().to_owned();
    let archive = s.data.join("snap.tar");
    let out = emu(&s, &["export", &id, archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = api.root("").await;

    // Another service: import, restore, and the same tree, ids, token and bytes.
    let t = emulator(&[]);
    let out = emu(&t, &["import", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let imported = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    control(&t, reqwest::Method::POST, &format!("/snapshots/{imported}/restore"), None).await;
    let there = Api::new(&t.url, &api.token);
    assert_eq!(there.root("").await, before.clone().tap_urls(&s.url, &t.url));
    let sub = there.get(&format!("/cloud/v1/folders/{}", folder["id"].as_str().unwrap())).await.ok();
    assert_eq!(there.download(sub["files"][0]["id"].as_str().unwrap()).await.as_ref(), &content[..]);
    // The same archive again: its blobs are there already, large and small, and are written
    // over (a small one is linked under its key, which is taken: it replaces it).
    let out = emu(&t, &["import", archive.to_str().unwrap()]);
    assert!(out.status.success(), "a second import: {}", String::from_utf8_lossy(&out.stderr));
    let small = there.root("").await["files"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(there.download(&small).await.as_ref(), b"hello");

    // Not an archive: 400/24 naming what is wrong, nothing changed.
    let r = Api::send(
        http().post(format!("{}/_ocloud/v1/snapshots/import", t.url)).bearer_auth(ADMIN).body(vec![7u8; 1024]),
    )
    .await;
    r.assert_error(400, 24);
    assert_eq!(there.root("").await["files"].as_array().unwrap().len(), 1);
}

/// Replaces the public URL of one service by another's in a listing.
trait TapUrls {
    fn tap_urls(self, from: &str, to: &str) -> Value;
}

impl TapUrls for Value {
    fn tap_urls(self, from: &str, to: &str) -> Value {
        serde_json::from_str(&self.to_string().replace(from, to)).unwrap()
    }
}

#[tokio::test]
async fn an_emulator_file_brings_settings_and_faults_and_loads_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("emu.json");
    std::fs::write(
        &file,
        json!({
            "settings": {"quota": 3_000_000},
            "faults": [{"name": "boot-rule", "match": {"op": "folders.root"}, "when": {"times": 1}, "action": {"error": 5}}],
            "users": [{"name": "ned"}],
            "apps": [{"name": "boot", "client_id": "boot-id", "client_secret": "boot-secret"}],
            "tokens": [{"user": "ned", "app": "boot", "access_token": "OFR-ned"}]
        })
        .to_string(),
    )
    .unwrap();
    let s = emulator(&["--emulator-file", file.to_str().unwrap()]);
    let ned = Api::new(&s.url, "OFR-ned");
    assert_eq!(ned.freespace().await, 3_000_000);
    ned.get("/cloud/v1/folders").await.assert_error(503, 5);
    assert_eq!(ned.get("/cloud/v1/folders").await.status, 200);
    // Loaded again (as a seed): the rule is back once, nothing else doubles.
    let text: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let done = control(&s, reqwest::Method::POST, "/seed", Some(text)).await.ok();
    assert_eq!((done["users"].clone(), done["tokens"].clone()), (json!(0), json!(0)));
    let rules = control(&s, reqwest::Method::GET, "/faults", None).await.ok();
    assert_eq!(rules["rules"].as_array().unwrap().len(), 1);
}
