//! Several instances on one PostgreSQL and one S3: what a deployment behind a load balancer
//! relies on. Each test gets a database and an S3 prefix of its own on the servers of
//! `tests/with-backends.sh`, which `tests/run.sh` starts for this suite (it is not part of a
//! bare `cargo test`: `test = false` in Cargo.toml; run it with
//! `bash tests/with-backends.sh cargo test -p ocloud-cli --test scale`).

#[path = "../e2e/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../reliability/invariants.rs"]
#[allow(dead_code)]
mod invariants;

use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::{Value, json};

use harness::*;

/// Two instances on one fresh installation, and a token valid on both.
struct Pair {
    a: Server,
    b: Server,
    env: Vec<(&'static str, String)>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Pair {
    fn start(extra: &[&str]) -> Pair {
        let env = fresh_remote();
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Server::start_env(da.path(), extra, &env);
        let b = Server::start_env(db.path(), extra, &env);
        Pair { a, b, env, _dirs: (da, db) }
    }

    /// Clients of alice (app `tests`, sandboxed) on each instance, with one token.
    fn apis(&self) -> (Api, Api) {
        let token = self.a.admin_token(&["--user", "alice", "--app", "tests", "--expires-in", "86400"]);
        (Api::new(&self.a.url, &token), Api::new(&self.b.url, &token))
    }

    fn fsck(&self) -> (bool, String) {
        let out = self.a.admin().arg("fsck").output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn names(v: &Value, k: &str) -> Vec<String> {
    v[k].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn what_one_instance_does_the_other_sees_at_once() {
    let p = Pair::start(&[]);
    let (a, b) = p.apis();
    // An upload on one is listed and downloaded on the other.
    let up = a.upload("shared.txt", b"written through A", None).await.ok();
    let fid = up["fileId"].as_str().unwrap();
    assert_eq!(names(&b.root("").await, "files"), ["shared.txt"]);
    assert_eq!(&b.download(fid).await[..], b"written through A");
    // Listings are cached per instance: a rename on B is seen by A's very next listing.
    assert_eq!(names(&a.root("").await, "files"), ["shared.txt"], "A's listing is cached now");
    b.post_json(&format!("/cloud/v1/files/{fid}"), json!({"name": "renamed.txt"})).await.ok();
    assert_eq!(names(&a.root("").await, "files"), ["renamed.txt"]);
    // A user disabled through one instance is refused by both on their next request, and
    // let back in the same way.
    assert_eq!(a.get("/cloud/v1/freespace").await.status, 200, "A caches the token now");
    let admin = |args: &[&str]| assert!(p.b.admin().args(args).status().unwrap().success());
    admin(&["user", "disable", "alice"]);
    a.get("/cloud/v1/freespace").await.assert_error(403, 52);
    b.get("/cloud/v1/freespace").await.assert_error(403, 52);
    admin(&["user", "enable", "alice"]);
    assert_eq!(a.get("/cloud/v1/freespace").await.status, 200);
    // A token revoked on B (its user removed with it) is refused by A.
    let other = p.a.admin_token(&["--user", "bob", "--app", "tests"]);
    let bob_a = Api::new(&p.a.url, &other);
    assert_eq!(bob_a.get("/cloud/v1/freespace").await.status, 200);
    admin(&["user", "remove", "bob"]);
    bob_a.get("/cloud/v1/freespace").await.assert_error(401, 41);
    // A token revoked (RFC 7009) through B is refused by A, which had it cached.
    let app: Value = serde_json::from_slice(
        &p.a.admin()
            .args(["app", "add", "revoking", "--redirect-uri", "http://127.0.0.1:1/cb", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let token = p.a.admin_token(&["--user", "alice", "--app", "revoking"]);
    let via_a = Api::new(&p.a.url, &token);
    assert_eq!(via_a.get("/cloud/v1/freespace").await.status, 200, "A caches the token now");
    let revoked = http()
        .post(format!("{}/oauth/v2/revoke", p.b.url))
        .basic_auth(app["client_id"].as_str().unwrap(), app["client_secret"].as_str())
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    via_a.get("/cloud/v1/freespace").await.assert_error(401, 41);
    let (ok, report) = p.fsck();
    assert!(ok, "{report}");
}

#[tokio::test]
async fn concurrent_uploads_near_the_quota_through_both_never_overshoot_it() {
    const QUOTA: u64 = 1 << 20;
    let p = Pair::start(&["--quota", "1MiB"]);
    let (a, b) = p.apis();
    let chunk = vec![7u8; 100_000];
    let uploads = (0..24).map(|i| {
        let api = if i % 2 == 0 { a.clone() } else { b.clone() };
        let chunk = chunk.clone();
        async move { api.upload(&format!("f{i:02}.bin"), &chunk, None).await.status }
    });
    let statuses = join_all(uploads).await;
    let stored = statuses.iter().filter(|s| **s == 201 || **s == 200).count();
    assert_eq!(stored, 10, "exactly what fits in 1 MiB: {statuses:?}");
    assert!(statuses.iter().all(|s| [200, 201, 413].contains(s)), "{statuses:?}");
    let files = invariants::check(&a, QUOTA).await;
    assert_eq!(files.len(), 10);
    assert_eq!(b.freespace().await, QUOTA - 10 * 100_000);
    let (ok, report) = p.fsck();
    assert!(ok, "{report}");
}

#[tokio::test]
async fn rename_move_and_delete_races_through_both_leave_a_valid_tree() {
    let p = Pair::start(&[]);
    let (a, b) = p.apis();
    let folder = |api: &Api, name: String| {
        let api = api.clone();
        async move { api.mkdir(&name, None).await["id"].as_str().unwrap().to_owned() }
    };
    for round in 0..4 {
        // x into y and y into x at once, through different instances: at most one may win
        // (ids are paths: the loser's folder has moved, or the target has).
        let (x, y) = (folder(&a, format!("x{round}")).await, folder(&b, format!("y{round}")).await);
        a.upload("inside.txt", b"x", Some(&x)).await.ok();
        let (px, py) = (format!("/cloud/v1/folders/{x}"), format!("/cloud/v1/folders/{y}"));
        let (m1, m2) = tokio::join!(
            b.post_json(&px, json!({"parentFolderId": y})),
            a.post_json(&py, json!({"parentFolderId": x}))
        );
        assert!([m1.status, m2.status].iter().filter(|s| **s == 200).count() <= 1, "{} {}", m1.status, m2.status);
        // Two folders renamed to one name at once: one wins, the other is refused.
        let (p1, p2) = (folder(&a, format!("p{round}")).await, folder(&b, format!("q{round}")).await);
        let same = json!({"name": format!("same{round}")});
        let (pp1, pp2) = (format!("/cloud/v1/folders/{p1}"), format!("/cloud/v1/folders/{p2}"));
        let (r1, r2) = tokio::join!(a.post_json(&pp1, same.clone()), b.post_json(&pp2, same.clone()));
        let mut answers = [r1.status, r2.status];
        answers.sort();
        assert_eq!(answers, [200, 400], "one name, one folder: the other is refused as name taken");
        // A delete races a copy of the same folder.
        let c = folder(&a, format!("c{round}")).await;
        for i in 0..3 {
            b.upload(&format!("f{i}.txt"), b"content", Some(&c)).await.ok();
        }
        let pc = format!("/cloud/v1/folders/{c}");
        let (copied, deleted) =
            tokio::join!(b.post_json(&pc, json!({"clone": true, "name": format!("copy{round}")})), a.delete(&pc));
        assert!([200, 204].contains(&deleted.status), "{}", deleted.status);
        assert!([200, 404].contains(&copied.status), "{}", copied.status);
    }
    invariants::check(&a, 5 << 30).await;
    invariants::check(&b, 5 << 30).await;
    let (ok, report) = p.fsck();
    assert!(ok, "{report}");
}

#[tokio::test]
async fn the_rate_limit_is_counted_across_instances() {
    let p = Pair::start(&["--rate-limit", "4"]);
    let (a, b) = p.apis();
    for api in [&a, &b, &a, &b] {
        assert_eq!(api.get("/cloud/v1/freespace").await.status, 200);
    }
    for api in [&a, &b] {
        let r = api.get("/cloud/v1/freespace").await;
        r.assert_error(403, 53);
        assert_eq!(r.header("retry-after"), Some("15"), "one request every 15 s");
    }
}

#[tokio::test]
async fn killing_one_instance_mid_uploads_loses_nothing_acknowledged() {
    let mut p = Pair::start(&[]);
    let (a, b) = p.apis();
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<(&'static str, String, Vec<u8>)>::new()));
    let writer = |api: Api, tag: &'static str| {
        let acknowledged = acknowledged.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let body: Vec<u8> = (0..300_000u32).map(|j| (j as u8) ^ (i as u8)).collect();
                let desc = json!({"name": format!("{tag}-{i}.bin"), "size": body.len().to_string()});
                let form = multipart_body("B", &desc.to_string(), "x", &body, Quirks::default());
                let sent = api
                    .req(reqwest::Method::POST, "/cloud/v1/files/content")
                    .header("content-type", "multipart/form-data; boundary=B")
                    .body(form)
                    .send()
                    .await;
                let Ok(r) = sent else { continue };
                if r.status().is_success()
                    && let Ok(v) = r.json::<Value>().await
                {
                    acknowledged.lock().unwrap().push((tag, v["fileId"].as_str().unwrap().to_owned(), body));
                }
            }
        })
    };
    let on_a = writer(a.clone(), "a");
    let on_b = writer(b.clone(), "b");
    // Kill A once some of its uploads went through.
    for _ in 0..600 {
        if acknowledged.lock().unwrap().iter().filter(|(t, _, _)| *t == "a").count() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    p.a.kill();
    on_a.await.unwrap();
    on_b.await.unwrap();
    // B kept serving: every upload it acknowledged, and A's, is whole.
    let acked = acknowledged.lock().unwrap().clone();
    assert_eq!(acked.iter().filter(|(t, _, _)| *t == "b").count(), 40, "B acknowledged all of its uploads");
    assert!(acked.iter().filter(|(t, _, _)| *t == "a").count() >= 3);
    for (_, fid, body) in &acked {
        assert_eq!(sha256(&b.download(fid).await), sha256(body), "file {fid}");
    }
    let files = invariants::check(&b, 5 << 30).await;
    assert_eq!(files.len(), acked.len(), "nothing partial, nothing unacknowledged listed");
    // A restarts on the same installation; fsck is clean (an upload cut by the kill left at
    // most a claimed key, pending cleanup).
    let dir = tempfile::tempdir().unwrap();
    let a2 = Server::start_env(dir.path(), &[], &p.env);
    let a2_api = Api::new(&a2.url, &b.token);
    assert_eq!(names(&a2_api.root("").await, "files").len(), acked.len());
    let (ok, report) = p.fsck();
    assert!(ok, "{report}");
}

#[tokio::test]
async fn an_embedded_installation_migrated_to_postgres_and_s3_serves_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    embedded(&data);
    let mut s = Server::start_in(&data, &[]);
    let api = s.api();
    let docs = api.mkdir("docs", None).await["id"].as_str().unwrap().to_owned();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut fids = Vec::new();
    for (name, body, folder) in
        [("big.bin", big.as_slice(), Some(docs.as_str())), ("a.txt", b"aaa", None), ("pic.png", &png(40, 30), None)]
    {
        fids.push((api.upload(name, body, folder).await.ok()["fileId"].as_str().unwrap().to_owned(), body.to_vec()));
    }
    let flat_before = api.root("?flat=true").await;
    s.kill();
    let target = fresh_remote();
    let db = &target[0].1;
    let blobs = &target[1].1;
    let out = admin_cmd(&data).args(["migrate", "--to-database", db, "--to-blobs", blobs]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("nodes: ") && progress.contains("content: "), "{progress}");
    // The same token, the same ids, listings and bytes, on the new backends.
    let moved_dir = tempfile::tempdir().unwrap();
    let moved = Server::start_env(moved_dir.path(), &[], &target);
    let api2 = Api::new(&moved.url, &api.token);
    assert_eq!(api2.root("?flat=true").await, flat_before);
    for (fid, body) in &fids {
        assert_eq!(sha256(&api2.download(fid).await), sha256(body));
    }
    let info = api2.get(&format!("/cloud/v1/files/{}", fids[2].0)).await.ok();
    assert_eq!(api2.get(info["thumbUrl"].as_str().unwrap()).await.status, 200);
    let out = moved.admin().arg("fsck").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // Migrating again into the now populated target is refused.
    let again = admin_cmd(&data).args(["migrate", "--to-database", db, "--to-blobs", blobs]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));
}

/// A PostgreSQL cluster of one test's own, to stop and start under a running service.
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
}

fn as_postgres(cmd: &str, args: &[&str]) -> std::process::Command {
    let bin = format!("/usr/lib/postgresql/15/bin/{cmd}");
    let root = std::process::Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut c = if root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--", &bin]);
        c
    } else {
        std::process::Command::new(bin)
    };
    c.args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    c
}

impl PrivatePg {
    fn start() -> PrivatePg {
        let dir = tempfile::tempdir().unwrap();
        let _ = std::process::Command::new("chown").args(["postgres:postgres"]).arg(dir.path()).status();
        let data = dir.path().to_str().unwrap().to_owned();
        assert!(
            as_postgres("initdb", &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"])
                .status()
                .unwrap()
                .success()
        );
        let pg = PrivatePg { dir, port: free_port() };
        pg.up();
        pg
    }

    fn up(&self) {
        let data = self.dir.path().to_str().unwrap();
        let opts = format!("-c listen_addresses=127.0.0.1 -p {} -k {data} -c fsync=off", self.port);
        let log = format!("{data}/log");
        assert!(
            as_postgres("pg_ctl", &["-D", data, "-l", &log, "-w", "-o", &opts, "start"]).status().unwrap().success()
        );
    }

    fn down(&self) {
        let data = self.dir.path().to_str().unwrap();
        assert!(as_postgres("pg_ctl", &["-D", data, "-m", "immediate", "-w", "stop"]).status().unwrap().success());
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.dir.path().to_str().unwrap();
        let _ = as_postgres("pg_ctl", &["-D", data, "-m", "immediate", "-w", "stop"]).status();
    }
}

/// A moto_server of one test's own (in memory: a restart starts empty).
struct PrivateS3 {
    child: std::process::Child,
}

impl PrivateS3 {
    fn start(port: u16) -> PrivateS3 {
        let child = std::process::Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let s3 = PrivateS3 { child };
        let url = format!("http://127.0.0.1:{port}/moto-api/");
        assert!(wait_until(|| std::process::Command::new("curl")
            .args(["-fsS", "-o", "/dev/null", &url])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()));
        let bucket = format!("http://127.0.0.1:{port}/private");
        assert!(
            std::process::Command::new("curl")
                .args(["-fsS", "-X", "PUT", "-o", "/dev/null", &bucket])
                .status()
                .unwrap()
                .success()
        );
        s3
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `ready` every 50 ms for up to 20 s (a wait for a process to come up, not a timing).
fn wait_until(mut ready: impl FnMut() -> bool) -> bool {
    for _ in 0..400 {
        if ready() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

async fn health(url: &str) -> Resp {
    Api::send(http().get(format!("{url}/healthz"))).await
}

#[tokio::test]
async fn a_database_outage_answers_503_and_the_service_recovers() {
    let pg = PrivatePg::start();
    let mut env = fresh_remote();
    env[0].1 = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(dir.path(), &[], &env);
    let api = s.api();
    let fid = api.upload("kept.txt", b"kept", None).await.ok()["fileId"].as_str().unwrap().to_owned();
    assert_eq!(health(&s.url).await.status, 200);
    pg.down();
    health(&s.url).await.assert_error(503, 5);
    api.get("/cloud/v1/folders").await.assert_error(503, 5);
    api.upload("lost.txt", b"x", None).await.assert_error(503, 5);
    pg.up();
    let url = s.url.clone();
    let back = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        wait_until(|| rt.block_on(health(&url)).status == 200)
    });
    assert!(back.await.unwrap(), "healthy again once the database is back");
    assert_eq!(&api.download(&fid).await[..], b"kept");
    assert_eq!(names(&api.root("").await, "files"), ["kept.txt"]);
}

#[tokio::test]
async fn an_object_store_outage_answers_503_and_the_service_recovers() {
    let port = free_port();
    let s3 = PrivateS3::start(port);
    let mut env = fresh_remote();
    env[1].1 = "s3://private/p".to_owned();
    env.push(("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")));
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(dir.path(), &[], &env);
    let api = s.api();
    let fid = api.upload("a.txt", b"before", None).await.ok()["fileId"].as_str().unwrap().to_owned();
    drop(s3);
    health(&s.url).await.assert_error(503, 5);
    let info = api.get(&format!("/cloud/v1/files/{fid}")).await.ok();
    api.get(info["downloadUrl"].as_str().unwrap()).await.assert_error(503, 5);
    api.upload("b.txt", b"during", None).await.assert_error(503, 5);
    // The store comes back (empty: moto keeps nothing), and so does the service.
    let _s3 = PrivateS3::start(port);
    assert_eq!(health(&s.url).await.status, 200);
    let up = api.upload("c.txt", b"after", None).await.ok();
    assert_eq!(&api.download(up["fileId"].as_str().unwrap()).await[..], b"after");
}

/// The metadata contract suite of the server crate, on a fresh PostgreSQL database (the
/// SQLite unit tests run the same suite).
#[tokio::test]
async fn the_metadata_contract_holds_on_postgres() {
    let env = fresh_remote();
    let db = ocloud_server::store::postgres::Postgres::connect(&env[0].1, ocloud_server::clock::Clock::system())
        .await
        .unwrap();
    ocloud_server::store::conformance::run(&db).await;
}
