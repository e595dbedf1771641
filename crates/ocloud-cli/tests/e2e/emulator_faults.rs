//! The emulator's fault actions observed end to end with the project's own client and CLI:
//! byte-level faults on downloads and uploads, rules on a user, expired tokens, 403/53 with
//! `Retry-After`, each showing the client's documented behaviour.

use ocloud_client::{ApiManager, Endpoints};
use serde_json::{Value, json};

use crate::harness::*;

const ADMIN: &str = "admin-token-of-the-fault-tests";
const CLIENT_ID: &str = "emu-client-id";
const SECRET: &str = "emu-client-secret";

/// An emulator with user `gus`, an app with fixed credentials, and a token pair for them.
async fn setup() -> Server {
    let s = Server::start(&["--emulator", "--emulator-token", ADMIN]);
    let fixture = json!({
        "users": [{"name": "gus", "password": "pw"}, {"name": "hal"}],
        "apps": [{"name": "emu-client", "client_id": CLIENT_ID, "client_secret": SECRET,
                  "redirect_uris": ["http://127.0.0.1:9/cb"]}],
        "tokens": [
            {"user": "gus", "app": "emu-client", "access_token": "OFR-gus", "refresh_token": "R-gus"},
            {"user": "hal", "app": "emu-client", "access_token": "OFR-hal"}
        ]
    });
    control(&s, reqwest::Method::POST, "/seed", Some(fixture)).await.ok();
    s
}

async fn control(s: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
    crate::emulator::control(s, method, path, body, Some(ADMIN)).await
}

async fn faults(s: &Server, rules: Value) {
    control(s, reqwest::Method::PUT, "/faults", Some(json!({ "rules": rules }))).await.ok();
}

async fn journal(s: &Server, query: &str) -> Vec<Value> {
    let v = control(s, reqwest::Method::GET, &format!("/requests?{query}"), None).await.ok();
    v["requests"].as_array().unwrap().clone()
}

/// The client for gus, starting from his refresh token (its first call refreshes).
fn client(s: &Server) -> ApiManager {
    ApiManager::builder(CLIENT_ID, SECRET, "http://127.0.0.1:9/cb")
        .endpoints(Endpoints::single(&s.url))
        .build()
        .unwrap()
}

fn cli(s: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("OCLOUD_API_URL", &s.url)
        .env("OCLOUD_TOKEN", "OFR-gus")
        .env("OCLOUD_CONFIG", s.data.join("cli.toml"))
        .output()
        .unwrap()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn a_download_reset_part_way_resumes_where_it_stopped() {
    let s = setup().await;
    let gus = Api::new(&s.url, "OFR-gus");
    let content = pattern(3 << 20);
    let id = gus.upload("big.bin", &content, None).await.ok()["fileId"].as_str().unwrap().to_owned();
    faults(
        &s,
        json!([{"name": "cut", "match": {"op": "content.get"}, "when": {"times": 1},
                       "action": {"reset": {"after": 1 << 20}}}]),
    )
    .await;
    let api = client(&s);
    api.init_with_token("R-gus").await.unwrap();
    let dest = s.data.join("big.bin");
    let size = api.files().download(&id, &dest, None).await.unwrap();
    assert_eq!(size, content.len() as u64);
    assert!(std::fs::read(&dest).unwrap() == content, "the resumed file is whole and exact");
    let gets = journal(&s, "op=content.get").await;
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!((gets[0]["fault"].as_str(), gets[1]["status"].as_u64()), (Some("cut"), Some(206)), "resumed by Range");

    // The CLI too, and a truncated answer is resumed the same way.
    faults(
        &s,
        json!([{"match": {"op": "content.get"}, "when": {"times": 1}, "action": {"truncate": {"after": 100_000}}}]),
    )
    .await;
    let out = cli(&s, &["download", "/big.bin", s.data.join("again.bin").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(s.data.join("again.bin")).unwrap() == content);
}

#[tokio::test]
async fn a_truncated_upload_gives_one_clear_line_and_a_reset_one_is_retried() {
    let s = setup().await;
    let gus = Api::new(&s.url, "OFR-gus");
    // Small through reqwest; large on a connection of the client's own, sent with `sendfile`.
    for (i, (size, after)) in [(200_000, 50_000), (3 << 20, 1 << 20)].into_iter().enumerate() {
        let content = pattern(size);
        let file = s.data.join(format!("up{i}.bin"));
        std::fs::write(&file, &content).unwrap();
        let folder = format!("/f{i}");
        let id = gus.mkdir(&folder[1..], None).await["id"].as_str().unwrap().to_owned();
        let files_in =
            async || gus.get(&format!("/cloud/v1/folders/{id}")).await.ok()["files"].as_array().unwrap().clone();
        // Cut short: the service answers the short body, the CLI says so in one line naming
        // the file, and nothing is stored.
        faults(
            &s,
            json!([{"match": {"op": "files.upload"}, "when": {"times": 1},
                           "action": {"truncate": {"after": after, "body": "request"}}}]),
        )
        .await;
        let out = cli(&s, &["upload", file.to_str().unwrap(), &folder]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "the truncated upload of {size} B did not fail");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(&format!("up{i}.bin")), "the line names the file: {err}");
        assert!(files_in().await.is_empty(), "nothing stored ({size} B)");
        // Reset part-way: the connection is lost, so the CLI sends the file again, whole.
        faults(
            &s,
            json!([{"name": "rst", "match": {"op": "files.upload"}, "when": {"times": 1},
                           "action": {"reset": {"after": after, "body": "request"}}}]),
        )
        .await;
        let out = cli(&s, &["upload", file.to_str().unwrap(), &folder]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let files = files_in().await;
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(gus.download(files[0]["id"].as_str().unwrap()).await.as_ref() == &content[..], "{size} B stored exact");
        let ups = journal(&s, "op=files.upload").await;
        assert_eq!(ups.iter().filter(|e| e["fault"] == "rst").count(), i + 1, "{ups:?}");
        assert_eq!(ups.last().unwrap()["status"], 201);
    }
}

#[tokio::test]
async fn corrupt_stall_and_bandwidth_act_on_the_exact_bytes() {
    let s = setup().await;
    let gus = Api::new(&s.url, "OFR-gus");
    let content = pattern(300_000);
    // Corrupted on the way in (past the multipart head): the service stores what it received.
    faults(
        &s,
        json!([{"match": {"op": "files.upload"}, "when": {"times": 1},
                       "action": {"corrupt": {"after": 5000, "body": "request"}}}]),
    )
    .await;
    let id = gus.upload("in.bin", &content, None).await.ok()["fileId"].as_str().unwrap().to_owned();
    let stored = gus.download(&id).await;
    assert_eq!(stored.len(), content.len());
    assert_eq!((0..content.len()).filter(|i| stored[*i] != content[*i]).count(), 1, "one byte inverted");
    faults(
        &s,
        json!([{"match": {"op": "content.get"}, "when": {"times": 1},
                       "action": {"corrupt": {"after": 1000, "bytes": 2}}}]),
    )
    .await;
    let id = gus.upload("out.bin", &content, None).await.ok()["fileId"].as_str().unwrap().to_owned();
    let got = gus.download(&id).await;
    let diff: Vec<usize> = (0..content.len()).filter(|i| got[*i] != content[*i]).collect();
    assert_eq!(diff, [1000, 1001], "exactly the two bytes at the offset");
    assert_eq!(gus.download(&id).await.as_ref(), &content[..], "once only");

    // Cut early: the head and the bytes before the offset arrive, then the body falls short
    // of its declared length (a JSON answer too), which the client sees as an error.
    for (op, path, after) in [("content.get", None, 100u64), ("freespace.get", Some("/cloud/v1/freespace"), 5)] {
        faults(&s, json!([{"match": {"op": op}, "when": {"times": 1}, "action": {"truncate": {"after": after}}}]))
            .await;
        let url = match path {
            Some(p) => format!("{}{p}", s.url),
            None => gus.get(&format!("/cloud/v1/files/{id}")).await.ok()["downloadUrl"].as_str().unwrap().to_owned(),
        };
        let resp = http().get(&url).bearer_auth("OFR-gus").send().await.unwrap();
        assert_eq!(resp.status(), 200, "{op}: the head arrived");
        let declared = resp.content_length();
        assert!(declared.is_some_and(|n| n > after), "{op}: a declared length, {declared:?}");
        let mut body = resp.bytes_stream();
        let (mut got, mut failed) = (0, false);
        while let Some(c) = futures_util::StreamExt::next(&mut body).await {
            match c {
                Ok(c) => got += c.len() as u64,
                Err(_) => failed = true,
            }
        }
        assert_eq!((got, failed), (after, true), "{op}: {after} bytes, then an error");
    }

    // A stall holds the rest back: a reader with a deadline gives up, with the head received.
    faults(&s, json!([{"match": {"op": "content.get"}, "when": {"times": 1}, "action": {"stall": {"after": 10_000}}}]))
        .await;
    let info = gus.get(&format!("/cloud/v1/files/{id}")).await.ok();
    let url = info["downloadUrl"].as_str().unwrap().to_owned();
    let resp = http().get(&url).bearer_auth("OFR-gus").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut got = 0;
    let cut = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        while let Some(c) = futures_util::StreamExt::next(&mut body).await {
            got += c.unwrap().len();
        }
    })
    .await;
    assert!(cut.is_err(), "the stalled body ended");
    assert_eq!(got, 10_000, "everything before the stall arrived");

    // A bandwidth limit paces the body (a floor of 100 ms for 100 kB at 1 MB/s), bytes intact.
    faults(
        &s,
        json!([{"match": {"op": "content.get"}, "when": {"times": 1},
                       "action": {"bandwidth": {"bytes_per_s": 1_000_000}}}]),
    )
    .await;
    let start = std::time::Instant::now();
    assert_eq!(gus.download(&id).await.as_ref(), &content[..]);
    assert!(start.elapsed() >= std::time::Duration::from_millis(250), "300 kB at 1 MB/s took {:?}", start.elapsed());
}

#[tokio::test]
async fn expired_tokens_are_refreshed_and_503_53_waits_for_retry_after() {
    let s = setup().await;
    let api = client(&s);
    api.init_with_token("R-gus").await.unwrap();
    let first = api.tokens().unwrap().access_token;
    // A rule on a user only: hal is not touched.
    faults(&s, json!([
        {"name": "expire-gus", "match": {"op": "freespace.get", "user": "gus"}, "when": {"times": 1}, "action": {"token": "expired"}},
        {"name": "busy", "match": {"op": "folders.root", "app": "emu-client"}, "when": {"times": 1}, "action": {"error": 53}}
    ]))
    .await;
    assert_eq!(Api::new(&s.url, "OFR-hal").get("/cloud/v1/freespace").await.status, 200, "hal is not gus");
    api.freespace().await.unwrap();
    assert_ne!(api.tokens().unwrap().access_token, first, "refreshed after the expired answer");
    let calls = journal(&s, "op=freespace.get&user=gus").await;
    assert_eq!(calls.iter().map(|e| e["status"].as_u64().unwrap()).collect::<Vec<_>>(), [200]);
    let refused = journal(&s, "op=freespace.get&status=401").await;
    assert_eq!(refused[0]["fault"], "expire-gus");

    // 403/53 with Retry-After: 1 is waited out, then replayed.
    api.folders().get(None, &Default::default()).await.unwrap();
    let roots = journal(&s, "op=folders.root").await;
    assert_eq!(roots.iter().map(|e| e["status"].as_u64().unwrap()).collect::<Vec<_>>(), [403, 200]);
    let gap = roots[1]["time_ms"].as_i64().unwrap() - roots[0]["time_ms"].as_i64().unwrap();
    assert!(gap >= 1000, "the retry came {gap} ms later, before Retry-After");

    // A legacy API's action is an operation to match too.
    faults(&s, json!([{"match": {"op": "getContentUploadURL"}, "when": {"times": 1}, "action": {"error": 5}}])).await;
    let legacy = |name: &str| {
        http().get(format!(
            "{}/personal/content/v1?action=getContentUploadURL&token=OFR-gus&content_name={name}&content_size=1",
            s.url
        ))
    };
    assert_eq!(legacy("a.txt").send().await.unwrap().status(), 503);
    assert_eq!(legacy("a.txt").send().await.unwrap().status(), 200);

    // Advancing the clock expires the token; the client refreshes on its own.
    let before = api.tokens().unwrap().access_token;
    control(&s, reqwest::Method::POST, "/clock/advance", Some(json!({"seconds": 3601}))).await.ok();
    api.freespace().await.unwrap();
    assert_ne!(api.tokens().unwrap().access_token, before);
}
