//! The emulator's control plane (`ocloud serve --emulator`): access, clock, tokens, reset, and
//! `ocloud emu`.

use std::io::BufRead as _;

use serde_json::{Value, json};

use crate::harness::*;

const ADMIN: &str = "admin-token-of-the-tests";

fn emulator() -> Server {
    Server::start(&["--emulator", "--emulator-token", ADMIN])
}

/// A control-plane call, with `token` as the admin token (none: without one).
pub async fn control(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Resp {
    let mut rb = http().request(method, format!("{}/_ocloud/v1{path}", s.url));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    Api::send(rb).await
}

#[tokio::test]
async fn the_control_plane_is_absent_without_emulator_and_guarded_with_it() {
    let plain = Server::start(&[]);
    control(&plain, reqwest::Method::GET, "/clock", None, Some(ADMIN)).await.assert_error(404, 60);
    let doc = Api::send(http().get(format!("{}/cloud/v1/openapi.json", plain.url))).await.json();
    assert!(doc["paths"].get("/_ocloud/v1/clock").is_none(), "not documented without --emulator");

    let s = emulator();
    control(&s, reqwest::Method::GET, "/clock", None, None).await.assert_error(401, 40);
    control(&s, reqwest::Method::GET, "/clock", None, Some("wrong")).await.assert_error(401, 41);
    // A wrong method too: which methods a route has is for the admin only.
    control(&s, reqwest::Method::DELETE, "/clock", None, None).await.assert_error(401, 40);
    control(&s, reqwest::Method::DELETE, "/clock", None, Some(ADMIN)).await.assert_error(405, 61);
    // An access token of the API is no admin token.
    control(&s, reqwest::Method::GET, "/clock", None, Some(&s.api().token)).await.assert_error(401, 41);
    let clock = control(&s, reqwest::Method::GET, "/clock", None, Some(ADMIN)).await.ok();
    assert_eq!(clock["frozen"], false);
    let doc = Api::send(http().get(format!("{}/cloud/v1/openapi.json", s.url))).await.json();
    assert_eq!(doc["paths"]["/_ocloud/v1/clock/advance"]["post"]["operationId"], "emu.clock.advance");
}

#[tokio::test]
async fn advancing_the_clock_expires_a_token_and_a_refresh_gets_a_new_one() {
    let s = emulator();
    let set =
        control(&s, reqwest::Method::PUT, "/clock", Some(json!({"now": "2030-01-01T00:00:00Z"})), Some(ADMIN)).await;
    assert_eq!(set.ok()["now"], "2030-01-01T00:00:00Z");
    // An app with a secret, for the refresh grant; tokens minted for it.
    let app: Value = serde_json::from_slice(
        &s.admin()
            .args(["app", "add", "emu-app", "--redirect-uri", "http://127.0.0.1:1/cb", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let minted = control(
        &s,
        reqwest::Method::POST,
        "/tokens",
        Some(json!({"user": "alice", "app": "emu-app", "ttl": 3600})),
        Some(ADMIN),
    )
    .await
    .ok();
    let api = Api::new(&s.url, minted["access_token"].as_str().unwrap());
    assert_eq!(api.get("/cloud/v1/freespace").await.status, 200);
    // Dates in answers come from the same clock.
    let up = api.upload("made-in-2030.txt", b"x", None).await.ok();
    let info = api.get(&format!("/cloud/v1/files/{}", up["fileId"].as_str().unwrap())).await.ok();
    assert!(info["creationDate"].as_str().unwrap().starts_with("2030-01-01T00:00:00"), "{info}");
    control(&s, reqwest::Method::POST, "/clock/advance", Some(json!({"seconds": 3599})), Some(ADMIN)).await.ok();
    assert_eq!(api.get("/cloud/v1/freespace").await.status, 200, "one second left");
    control(&s, reqwest::Method::POST, "/clock/advance", Some(json!({"seconds": 1})), Some(ADMIN)).await.ok();
    api.get("/cloud/v1/freespace").await.assert_error(401, 41);
    // The refresh grant gives a fresh token, valid on the same clock.
    let refreshed = http()
        .post(format!("{}/oauth/v2/token", s.url))
        .basic_auth(app["client_id"].as_str().unwrap(), app["client_secret"].as_str())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", minted["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let fresh: Value = refreshed.json().await.unwrap();
    assert_eq!(Api::new(&s.url, fresh["access_token"].as_str().unwrap()).get("/cloud/v1/freespace").await.status, 200);
    // Expire and revoke by hand.
    let t = fresh["access_token"].as_str().unwrap();
    control(&s, reqwest::Method::POST, &format!("/tokens/{t}/revoke"), None, Some(ADMIN)).await;
    Api::new(&s.url, t).get("/cloud/v1/freespace").await.assert_error(401, 41);
    control(&s, reqwest::Method::POST, "/tokens/nope/expire", None, Some(ADMIN)).await.assert_error(404, 60);
}

#[tokio::test]
async fn reset_empties_the_service_or_only_its_files() {
    let s = emulator();
    let minted =
        control(&s, reqwest::Method::POST, "/tokens", Some(json!({"user": "alice", "app": "tests"})), Some(ADMIN))
            .await
            .ok();
    let api = Api::new(&s.url, minted["access_token"].as_str().unwrap());
    api.mkdir("docs", None).await;
    api.upload("a.txt", b"content", None).await.ok();
    assert_eq!(stored_objects(&s.data).len(), 1);
    let r = control(&s, reqwest::Method::POST, "/reset?keep=accounts", None, Some(ADMIN)).await.ok();
    assert_eq!(r["contents_deleted"], 1);
    let root = api.root("").await;
    assert!(
        root["files"].as_array().unwrap().is_empty() && root["subfolders"].as_array().unwrap().is_empty(),
        "{root}"
    );
    assert_eq!(api.freespace().await, 5 << 30, "usage back to zero");
    assert!(stored_objects(&s.data).is_empty());
    control(&s, reqwest::Method::POST, "/reset?keep=everything", None, Some(ADMIN)).await.assert_error(400, 24);
    control(&s, reqwest::Method::POST, "/reset", None, Some(ADMIN)).await.ok();
    api.get("/cloud/v1/freespace").await.assert_error(401, 41);
    let out = s.admin().args(["user", "list"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "", "no user left");
}

#[tokio::test]
async fn the_emu_command_and_the_json_ready_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--emulator", "--listen", "127.0.0.1:0", "--json", "--no-dev-account", "--data-dir"])
        .arg(dir.path())
        .envs(backend_env(dir.path()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let (url, admin) = (ready["url"].as_str().unwrap().to_owned(), ready["admin_token"].as_str().unwrap().to_owned());
    assert!(admin.len() >= 32, "a random admin token");
    let emu = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("emu")
            .args(args)
            .env("OCLOUD_API_URL", &url)
            .env("OCLOUD_EMULATOR_TOKEN", &admin)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )
    };
    assert_eq!(emu(&["clock", "--set", "2031-05-06T07:08:09Z"]).1, "2031-05-06T07:08:09Z (frozen)");
    let (ok, snap, _) = emu(&["snapshot"]);
    assert!(ok && snap.starts_with("snap-"), "{snap}");
    assert_eq!(emu(&["advance", "60"]).1, "2031-05-06T07:09:09Z (frozen)");
    let (ok, token, _) = emu(&["token", "--user", "bob", "--app", "cli", "--ttl", "60"]);
    assert!(ok && token.starts_with("OFR"), "{token}");
    let api = Api::new(&url, &token);
    assert_eq!(api.get("/cloud/v1/freespace").await.status, 200);
    assert!(emu(&["advance", "61"]).0);
    api.get("/cloud/v1/freespace").await.assert_error(401, 41);
    let rules = dir.path().join("rules.json");
    std::fs::write(&rules, r#"{"rules":[{"match":{"op":"files.get"},"action":{"error":5}}]}"#).unwrap();
    assert!(emu(&["faults", "--add", rules.to_str().unwrap()]).0);
    let (_, listed, _) = emu(&["faults"]);
    assert!(listed.contains("files.get"), "{listed}");
    assert!(emu(&["faults", "--clear"]).0);
    assert!(emu(&["reset"]).0);
    assert!(emu(&["restore", &snap]).0, "back to before the token");
    api.get("/cloud/v1/freespace").await.assert_error(401, 41);
    assert!(emu(&["forget", &snap]).0);
    let (ok, _, err) = emu(&["restore", &snap]);
    assert!(!ok && err.lines().count() == 1, "{err}");
    // A clear one-line error without the admin token.
    let out = std::process::Command::new(BIN)
        .args(["emu", "clock"])
        .env("OCLOUD_API_URL", &url)
        .env("OCLOUD_EMULATOR_TOKEN", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_fixture_seeds_once_however_often_it_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = json!({
        "users": [{"name": "carol", "password": "carol-password", "quota": 10_485_760}],
        "apps": [{"name": "fixed", "client_id": "fixed-client", "client_secret": "fixed-secret",
                  "redirect_uris": ["http://127.0.0.1:1/cb"]}],
        "tokens": [{"user": "carol", "app": "fixed", "access_token": "OFRgiven-access",
                    "refresh_token": "OFRgiven-refresh", "scope": "openid cloud cloudfullread cloudfullwrite offline_access"}],
        "files": [
            {"user": "carol", "path": "/docs/"},
            {"user": "carol", "path": "/docs/readme.txt", "content": "hello"},
            {"user": "carol", "path": "/big.bin", "size": 2_500_000, "pattern": "0123456789"}
        ]
    });
    let file = dir.path().join("fixture.json");
    std::fs::write(&file, fixture.to_string()).unwrap();
    let s = Server::start(&["--emulator", "--emulator-token", ADMIN, "--emulator-file", file.to_str().unwrap()]);
    // The given token works, on the tree of the fixture.
    let api = Api::new(&s.url, "OFRgiven-access");
    let root = api.root("").await;
    let names = |v: &Value, k: &str| -> Vec<String> {
        v[k].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&root, "subfolders"), ["docs"]);
    assert_eq!(names(&root, "files"), ["big.bin"]);
    let big = api.download(root["files"][0]["id"].as_str().unwrap()).await;
    let expected: Vec<u8> = b"0123456789".iter().copied().cycle().take(2_500_000).collect();
    assert!(big[..] == expected[..], "the pattern repeated from the first byte to the last");
    assert_eq!(api.freespace().await, 10_485_760 - 2_500_005, "the user's quota, the files counted");
    // The app's fixed credentials work at the token endpoint.
    let refreshed = http()
        .post(format!("{}/oauth/v2/token", s.url))
        .basic_auth("fixed-client", Some("fixed-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "OFRgiven-refresh")])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    // Loading it again, by the control plane or at the next start, changes nothing.
    let flat = api.root("?flat=true").await;
    let again = control(&s, reqwest::Method::POST, "/seed", Some(fixture.clone()), Some(ADMIN)).await.ok();
    assert_eq!(again, json!({"users": 0, "apps": 0, "tokens": 0, "files": 0}));
    assert_eq!(api.root("?flat=true").await, flat);
    // A fixture with a mistake is refused whole, with the field named.
    let bad = control(&s, reqwest::Method::POST, "/seed", Some(json!({"users": [{"nom": "x"}]})), Some(ADMIN)).await;
    assert_eq!(bad.status, 400, "{:?}", String::from_utf8_lossy(&bad.body));
}

#[tokio::test]
async fn a_snapshot_restores_identical_listings_and_bytes() {
    let s = emulator();
    let minted = control(
        &s,
        reqwest::Method::POST,
        "/tokens",
        Some(json!({"user": "dana", "app": "tests", "scope": "openid cloud cloudfullread cloudfullwrite"})),
        Some(ADMIN),
    )
    .await
    .ok();
    let api = Api::new(&s.url, minted["access_token"].as_str().unwrap());
    let docs = api.mkdir("docs", None).await["id"].as_str().unwrap().to_owned();
    let kept = api.upload("kept.txt", b"kept bytes", Some(&docs)).await.ok()["fileId"].as_str().unwrap().to_owned();
    api.upload("doomed.txt", b"deleted after the snapshot", None).await.ok();
    let before = api.root("?flat=true").await;
    let objects_before = stored_objects(&s.data).len();
    let id = control(&s, reqwest::Method::POST, "/snapshots", None, Some(ADMIN)).await;
    assert_eq!(id.status, 201);
    let id = id.json()["id"].as_str().unwrap().to_owned();
    // Change everything: a delete, a rename, a new file, a new user; then a full reset.
    let doomed = before["files"].as_array().unwrap().iter().find(|f| f["name"] == "doomed.txt").unwrap();
    api.delete(&format!("/cloud/v1/files/{}", doomed["id"].as_str().unwrap())).await;
    api.post_json(&format!("/cloud/v1/folders/{docs}"), json!({"name": "renamed"})).await.ok();
    api.upload("new.txt", b"written after the snapshot", None).await.ok();
    control(&s, reqwest::Method::POST, "/tokens", Some(json!({"user": "erin", "app": "x"})), Some(ADMIN)).await.ok();
    control(&s, reqwest::Method::POST, "/reset", None, Some(ADMIN)).await.ok();
    api.get("/cloud/v1/freespace").await.assert_error(401, 41);
    // Restored: the same token, listing, ids and bytes; what came after is gone, content too.
    let r = control(&s, reqwest::Method::POST, &format!("/snapshots/{id}/restore"), None, Some(ADMIN)).await;
    assert_eq!(r.status, 204, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(api.root("?flat=true").await, before);
    assert_eq!(&api.download(&kept).await[..], b"kept bytes");
    assert_eq!(&api.download(doomed["id"].as_str().unwrap()).await[..], b"deleted after the snapshot");
    assert_eq!(stored_objects(&s.data).len(), objects_before, "the new file's content is gone");
    let users = String::from_utf8(s.admin().args(["user", "list"]).output().unwrap().stdout).unwrap();
    assert!(users.contains("dana") && !users.contains("erin"), "{users}");
    // Restored twice, then forgotten.
    api.upload("again.txt", b"x", None).await.ok();
    control(&s, reqwest::Method::POST, &format!("/snapshots/{id}/restore"), None, Some(ADMIN)).await;
    assert_eq!(api.root("?flat=true").await, before);
    let forgot = control(&s, reqwest::Method::DELETE, &format!("/snapshots/{id}"), None, Some(ADMIN)).await;
    assert_eq!(forgot.status, 204);
    control(&s, reqwest::Method::POST, &format!("/snapshots/{id}/restore"), None, Some(ADMIN))
        .await
        .assert_error(404, 60);
    assert_eq!(&api.download(&kept).await[..], b"kept bytes", "live content stays when its snapshot goes");
}

#[tokio::test]
async fn the_journal_tells_what_clients_sent() {
    let s = Server::start(&["--emulator", "--emulator-token", ADMIN, "--journal", "3"]);
    let minted =
        control(&s, reqwest::Method::POST, "/tokens", Some(json!({"user": "fay", "app": "tests"})), Some(ADMIN))
            .await
            .ok();
    let api = Api::new(&s.url, minted["access_token"].as_str().unwrap());
    api.upload("a.txt", b"12345", None).await.ok();
    api.get("/cloud/v1/freespace").await;
    Api::new(&s.url, "OFRunknown").get("/cloud/v1/freespace").await.assert_error(401, 41);
    api.get("/personal/content/v1?action=getContentUploadURL&token=very-secret").await;
    let list = control(&s, reqwest::Method::GET, "/requests", None, Some(ADMIN)).await.ok();
    let entries = list["requests"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "the ring keeps the last 3: {list}");
    assert_eq!(entries[0]["operation"], "freespace.get");
    assert_eq!(entries[0]["user"], "fay");
    assert_eq!(entries[0]["app"], "tests");
    assert_eq!(entries[1]["status"], 401);
    assert!(entries[1]["user"].is_null(), "an unknown token authenticates nobody");
    assert_eq!(entries[2]["query"], "action=getContentUploadURL&token=REDACTED");
    assert!(
        !list.to_string().contains("very-secret")
            && !list.to_string().contains(minted["access_token"].as_str().unwrap())
    );
    let count = |m: Value| {
        let s = &s;
        async move { control(s, reqwest::Method::POST, "/requests/count", Some(m), Some(ADMIN)).await.ok()["count"].clone() }
    };
    assert_eq!(count(json!({"op": "freespace.get"})).await, 2);
    assert_eq!(count(json!({"path": "/cloud/v1/*", "status": 401})).await, 1);
    let up = control(&s, reqwest::Method::GET, "/requests?status=200&op=freespace.get", None, Some(ADMIN)).await.ok();
    assert_eq!(up["requests"].as_array().unwrap().len(), 1);
    assert_eq!(control(&s, reqwest::Method::DELETE, "/requests", None, Some(ADMIN)).await.status, 204);
    assert_eq!(count(json!({})).await, 0);
    // The upload was journaled with its size, before the ring turned over.
    let s2 = Server::start(&["--emulator", "--emulator-token", ADMIN]);
    let t2 = control(&s2, reqwest::Method::POST, "/tokens", Some(json!({"user": "fay", "app": "tests"})), Some(ADMIN))
        .await
        .ok();
    let body = multipart_body("B", r#"{"name":"b.txt","size":"3"}"#, "b.txt", b"abc", Quirks::default());
    let n = body.len() as u64;
    Api::new(&s2.url, t2["access_token"].as_str().unwrap())
        .upload_raw("multipart/form-data; boundary=B", body)
        .await
        .ok();
    let list = control(&s2, reqwest::Method::GET, "/requests?op=files.upload", None, Some(ADMIN)).await.ok();
    assert_eq!(list["requests"][0]["bytes_in"], n);
    assert_eq!(list["requests"][0]["status"], 201);
}

#[tokio::test]
async fn fault_rules_fire_as_told_and_clients_cope() {
    let s = emulator();
    let token = |user: &str| {
        let s = &s;
        let user = user.to_owned();
        async move {
            let t =
                control(s, reqwest::Method::POST, "/tokens", Some(json!({"user": user, "app": "tests"})), Some(ADMIN))
                    .await
                    .ok();
            t["access_token"].as_str().unwrap().to_owned()
        }
    };
    let (ta, tb) = (token("gus").await, token("hal").await);
    let (a, b) = (Api::new(&s.url, &ta), Api::new(&s.url, &tb));
    let rules = json!({"rules": [
        {"name": "rate", "match": {"op": "files.upload"}, "when": {"times": 1}, "action": {"error": 53}},
        {"name": "second", "match": {"op": "freespace.get", "token": ta}, "when": {"nth": [2]}, "action": {"error": 5}},
        {"name": "expire-b", "match": {"token": tb, "test_id": "t-1"}, "action": {"token": "expired"}},
        {"name": "slow", "match": {"op": "folders.root"}, "action": {"latency": {"ms": 20, "jitter_ms": 10}}}
    ]});
    let set = control(&s, reqwest::Method::PUT, "/faults", Some(rules), Some(ADMIN)).await.ok();
    assert_eq!(set["rules"].as_array().unwrap().len(), 4);
    // The error is rendered as the service renders it, Retry-After on 53; once only.
    let r = a.upload("x.txt", b"x", None).await;
    r.assert_error(403, 53);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(a.upload("x.txt", b"x", None).await.status, 201, "the rule removed itself");
    // The n-th call of one token only.
    assert_eq!(a.get("/cloud/v1/freespace").await.status, 200);
    assert_eq!(b.get("/cloud/v1/freespace").await.status, 200, "another token is not counted");
    a.get("/cloud/v1/freespace").await.assert_error(503, 5);
    assert_eq!(a.get("/cloud/v1/freespace").await.status, 200);
    // Scoped to a token and a test id: only requests carrying both.
    let with_id = |api: &Api| api.req(reqwest::Method::GET, "/cloud/v1/freespace").header("x-ocloud-test-id", "t-1");
    Api::send(with_id(&b)).await.assert_error(401, 41);
    assert_eq!(Api::send(with_id(&a)).await.status, 200);
    assert_eq!(b.get("/cloud/v1/freespace").await.status, 200);
    // Latency, then the request served as usual; the journal names the rule.
    assert_eq!(a.root("").await["name"], "tests");
    let j = control(&s, reqwest::Method::GET, "/requests?op=folders.root", None, Some(ADMIN)).await.ok();
    assert_eq!(j["requests"][0]["fault"], "slow");
    // Accounting.
    let list = control(&s, reqwest::Method::GET, "/faults", None, Some(ADMIN)).await.ok();
    let rules = list["rules"].as_array().unwrap();
    assert_eq!(rules.iter().map(|r| r["name"].as_str().unwrap()).collect::<Vec<_>>(), ["second", "expire-b", "slow"]);
    assert_eq!((rules[0]["matched"].clone(), rules[0]["fired"].clone()), (json!(4), json!(1)));
    // A bad rule is refused whole.
    let bad = json!({"rules": [{"action": {"error": 999}}]});
    control(&s, reqwest::Method::PATCH, "/faults", Some(bad), Some(ADMIN)).await.assert_error(400, 24);
    // The CLI retries a 503/5 and succeeds.
    control(
        &s,
        reqwest::Method::PUT,
        "/faults",
        Some(json!({"rules": [
        {"match": {"op": "freespace.get"}, "when": {"times": 1}, "action": {"error": 5}}]})),
        Some(ADMIN),
    )
    .await
    .ok();
    let out = std::process::Command::new(BIN)
        .args(["df"])
        .env("OCLOUD_API_URL", &s.url)
        .env("OCLOUD_TOKEN", &ta)
        .env("OCLOUD_CONFIG", s.data.join("cli.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = control(
        &s,
        reqwest::Method::POST,
        "/requests/count",
        Some(json!({"op": "freespace.get", "status": 503})),
        Some(ADMIN),
    )
    .await;
    assert_eq!(j.ok()["count"], 2, "the fault, answered once to the CLI (and once earlier)");
    control(&s, reqwest::Method::DELETE, "/faults", None, Some(ADMIN)).await;
    assert!(
        control(&s, reqwest::Method::GET, "/faults", None, Some(ADMIN)).await.ok()["rules"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
