//! Test harness: the real `ocloud` binary serving on an ephemeral loopback port, a temp data
//! dir, and a small HTTP helper that keeps status, headers and body together.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_ocloud");

/// The backends the suite runs on: the embedded default (SQLite + files in the data dir), or
/// with `OCLOUD_TEST_BACKEND=pg-s3`, PostgreSQL + S3 started by `tests/setup-backends.sh`
/// (`OCLOUD_TEST_PG`: a server URL without a database; `AWS_*`: the S3 endpoint; bucket
/// `ocloud-test`). One suite, run once per backend pair.
pub fn remote_backends() -> bool {
    match std::env::var("OCLOUD_TEST_BACKEND").as_deref() {
        Ok("pg-s3") => true,
        Ok("embedded") | Err(_) => false,
        Ok(other) => panic!("OCLOUD_TEST_BACKEND={other:?}: embedded or pg-s3"),
    }
}

/// Data dirs whose tests inspect the embedded backends' files (SQLite, temp files, a tmpfs):
/// they stay on the embedded backends in every run.
static EMBEDDED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// The environment that points `ocloud` at this data dir's backends: in a pg-s3 run, a
/// database and an S3 prefix of its own (named after the data dir, so a restart on the same
/// dir finds its data again), created on first use.
pub fn backend_env(data: &Path) -> Vec<(&'static str, String)> {
    if !remote_backends() || EMBEDDED.lock().unwrap().iter().any(|d| d == data) {
        return Vec::new();
    }
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    let id = format!("t{:016x}", h.finish());
    let base = std::env::var("OCLOUD_TEST_PG").expect("OCLOUD_TEST_PG (tests/setup-backends.sh sets it)");
    let marker = data.join(".test-database");
    if !marker.exists() {
        let out = Command::new("psql")
            .arg(format!("{base}/postgres"))
            .args(["-qAtc", &format!("CREATE DATABASE {id}")])
            .output()
            .expect("psql");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() || err.contains("already exists"), "creating database {id}: {err}");
        std::fs::create_dir_all(data).unwrap();
        std::fs::write(&marker, &id).unwrap();
    }
    vec![("OCLOUD_DATABASE", format!("{base}/{id}")), ("OCLOUD_BLOBS", format!("s3://ocloud-test/{id}"))]
}

/// A running `ocloud serve`, killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub data: PathBuf,
    /// Variables given to [`Server::start_env`], also given to its admin commands.
    pub env: Vec<(&'static str, String)>,
    _stdout: BufReader<std::process::ChildStdout>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A fresh service with its own temp data dir.
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Server::start_in(dir.path(), extra);
        s._dir = Some(dir);
        s
    }

    /// A service on an existing data dir.
    pub fn start_in(data: &Path, extra: &[&str]) -> Server {
        Server::spawn(data, extra, "warn", Stdio::inherit())
    }

    /// A fresh service on the embedded backends whatever the run (for tests of SQLite and
    /// local-file behaviour).
    pub fn start_embedded(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        embedded(dir.path());
        let mut s = Server::start_in(dir.path(), extra);
        s._dir = Some(dir);
        s
    }

    /// A fresh service logging at `level` into `log`.
    pub fn start_logged(extra: &[&str], level: &str, log: &Path) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Server::spawn(dir.path(), extra, level, std::fs::File::create(log).unwrap().into());
        s._dir = Some(dir);
        s
    }

    /// A fresh service limited to `nofile` open descriptors (`ulimit -n`).
    pub fn start_limited(nofile: u32, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""), BIN]);
        let mut s = Server::spawn_cmd(cmd, dir.path(), extra, "warn", Stdio::inherit());
        s._dir = Some(dir);
        s
    }

    fn spawn(data: &Path, extra: &[&str], level: &str, stderr: Stdio) -> Server {
        Server::spawn_cmd(Command::new(BIN), data, extra, level, stderr)
    }

    /// A service on a data dir with these environment variables on top (e.g. the backends
    /// of [`fresh_remote`], shared by several instances).
    pub fn start_env(data: &Path, extra: &[&str], env: &[(&'static str, String)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.envs(backend_env(data)).envs(env.iter().cloned());
        let mut s = Server::spawn_cmd(cmd, data, extra, "warn", Stdio::inherit());
        s.env = env.to_vec();
        s
    }

    fn spawn_cmd(mut cmd: Command, data: &Path, extra: &[&str], level: &str, stderr: Stdio) -> Server {
        // Explicit variables set on `cmd` (start_env) win over the run's backends.
        let explicit: Vec<_> = cmd.get_envs().map(|(k, _)| k.to_owned()).collect();
        cmd.envs(backend_env(data).into_iter().filter(|(k, _)| !explicit.iter().any(|e| e == k)));
        cmd.arg("serve");
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn ocloud serve");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        Server { child, url, data: data.to_owned(), env: Vec::new(), _stdout: stdout, _dir: None }
    }

    /// `ocloud admin token` with these extra arguments.
    pub fn admin_token(&self, args: &[&str]) -> String {
        let out = self.admin().arg("token").args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `ocloud admin` on this service's backends; the subcommand follows.
    pub fn admin(&self) -> Command {
        let mut c = admin_cmd(&self.data);
        c.envs(self.env.iter().cloned());
        c
    }

    /// A client for `user` through app `app` with `scope`.
    pub fn api_as(&self, user: &str, app: &str, scope: &str) -> Api {
        let token = self.admin_token(&["--user", user, "--app", app, "--scope", scope]);
        Api::new(&self.url, &token)
    }

    /// A sandboxed client (scope `openid cloud`) of user `alice`, app `tests`.
    pub fn api(&self) -> Api {
        self.api_as("alice", "tests", "openid cloud")
    }

    /// Kills the service at once (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, then waits (bounded) until the listener is closed.
    pub fn signal_term(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        for _ in 0..500 {
            if std::net::TcpStream::connect(self.addr()).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the service still accepts connections 5 s after SIGTERM");
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// host:port.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("https://").trim_start_matches("http://").to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the exact spec error in the default shape (`both`): status and the whole body,
    /// byte for byte.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: u16) {
        assert_eq!(self.status, status, "body {:?}", String::from_utf8_lossy(&self.body));
        let c = ocloud_wire::ErrorCode::from_code(code).unwrap();
        assert_eq!(c.status(), status);
        assert_eq!(String::from_utf8_lossy(&self.body), dual_body(c));
    }

    #[track_caller]
    pub fn ok(&self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "status {} body {:?}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }
}

/// A fresh PostgreSQL database and S3 prefix on the servers of `tests/with-backends.sh`, as
/// `OCLOUD_DATABASE` and `OCLOUD_BLOBS` (tests of several instances on one installation).
pub fn fresh_remote() -> Vec<(&'static str, String)> {
    let id = format!("s{}", uuid_like());
    let base = std::env::var("OCLOUD_TEST_PG").expect("OCLOUD_TEST_PG: run under tests/with-backends.sh");
    let out = Command::new("psql")
        .arg(format!("{base}/postgres"))
        .args(["-qAtc", &format!("CREATE DATABASE {id}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "creating database {id}: {}", String::from_utf8_lossy(&out.stderr));
    vec![("OCLOUD_DATABASE", format!("{base}/{id}")), ("OCLOUD_BLOBS", format!("s3://ocloud-test/{id}"))]
}

/// 16 random-enough hex digits (time and a counter: names of test databases).
fn uuid_like() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    format!("{:016x}", t ^ (u64::from(std::process::id()) << 32) ^ N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// `curl` signed for the S3 server of the run (SigV4 with its test credentials).
fn s3_curl() -> Command {
    let mut c = Command::new("curl");
    c.args(["-fsS", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "test:test"]);
    c
}

/// Deletes one stored object of this data dir's content store (tests of fsck).
pub fn delete_object(data: &Path, env: &[(&'static str, String)], key: &str) {
    let all: Vec<_> = backend_env(data).into_iter().chain(env.iter().cloned()).collect();
    match all.iter().rev().find(|(k, _)| *k == "OCLOUD_BLOBS") {
        Some((_, blobs)) => {
            let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
            let out = s3_curl()
                .args(["-X", "DELETE", &format!("{endpoint}/{}/{key}", blobs.trim_start_matches("s3://"))])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        None => std::fs::remove_file(data.join("blobs").join(&key[..2]).join(key)).unwrap(),
    }
}

/// Keeps this data dir on the embedded backends in every run (see [`backend_env`]).
pub fn embedded(data: &Path) {
    EMBEDDED.lock().unwrap().push(data.to_owned());
}

/// `ocloud admin` on this data dir's backends; the subcommand and its arguments follow.
pub fn admin_cmd(data: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("admin").env("OCLOUD_DATA_DIR", data).envs(backend_env(data));
    c
}

/// A raw connection with read and write timeouts: a regression that hangs the service fails
/// the test instead of hanging the run.
pub fn connect(addr: &str) -> std::net::TcpStream {
    let c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(TEST_TIMEOUT)).unwrap();
    c.set_write_timeout(Some(TEST_TIMEOUT)).unwrap();
    c
}

/// An HTTP client whose requests time out (see [`TEST_TIMEOUT`]).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(TEST_TIMEOUT).build().unwrap()
}

/// The longest any one exchange of a test may take.
pub const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The default error body: the table's fields at the top level and under `"error"`.
pub fn dual_body(c: ocloud_wire::ErrorCode) -> String {
    let inner = format!(r#"{{"code":{},"message":{:?},"description":{:?}}}"#, c.code(), c.message(), c.description());
    format!(r#"{},"error":{inner}}}"#, &inner[..inner.len() - 1])
}

/// A bearer-token HTTP client for one service.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Api {
        Api { http: http(), base: base.to_owned(), token: token.to_owned() }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) }
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(&self.token)
    }

    pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.unwrap_or_else(|e| panic!("request failed: {}", e.without_url()));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.unwrap();
        Resp { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        Api::send(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        Api::send(self.req(reqwest::Method::DELETE, path)).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Resp {
        Api::send(self.req(reqwest::Method::POST, path).json(&body)).await
    }

    /// Form A upload, as the reference client sends it.
    pub async fn upload(&self, name: &str, content: &[u8], folder: Option<&str>) -> Resp {
        let mut desc = serde_json::json!({"name": name, "size": content.len().to_string()});
        if let Some(f) = folder {
            desc["folder"] = f.into();
        }
        let body = multipart_body("UploadBoundary", &desc.to_string(), name, content, Quirks::default());
        self.upload_raw("multipart/form-data; boundary=UploadBoundary", body).await
    }

    pub async fn upload_raw(&self, content_type: &str, body: Vec<u8>) -> Resp {
        Api::send(
            self.req(reqwest::Method::POST, "/cloud/v1/files/content").header("content-type", content_type).body(body),
        )
        .await
    }

    /// The root the token sees, with the given query.
    pub async fn root(&self, query: &str) -> Value {
        self.get(&format!("/cloud/v1/folders{query}")).await.ok()
    }

    pub async fn mkdir(&self, name: &str, parent: Option<&str>) -> Value {
        let mut body = serde_json::json!({"name": name});
        if let Some(p) = parent {
            body["parentFolderId"] = p.into();
        }
        self.post_json("/cloud/v1/folders", body).await.ok()
    }

    pub async fn freespace(&self) -> u64 {
        self.get("/cloud/v1/freespace").await.ok()["freespace"].as_u64().unwrap()
    }

    pub async fn download(&self, file_id: &str) -> Bytes {
        let info = self.get(&format!("/cloud/v1/files/{file_id}")).await.ok();
        let r = self.get(info["downloadUrl"].as_str().unwrap()).await;
        assert_eq!(r.status, 200);
        r.body
    }
}

/// The client quirks of spec §3.9.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quirks {
    /// iOS / old Android: CRLF before the first boundary.
    pub leading_crlf: bool,
    /// Old Android: no closing delimiter at all.
    pub no_closing: bool,
    /// Before pyorangecloud's fix: no CRLF before the closing delimiter.
    pub no_crlf_before_closing: bool,
}

pub fn multipart_body(boundary: &str, description: &str, filename: &str, content: &[u8], q: Quirks) -> Vec<u8> {
    let mut b = Vec::new();
    if q.leading_crlf {
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{description}\r\n")
            .as_bytes(),
    );
    b.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
            .as_bytes(),
    );
    b.extend_from_slice(content);
    if !q.no_closing {
        if !q.no_crlf_before_closing {
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    }
    b
}

/// The keys of the objects stored for this data dir (blobs and renditions), on whichever
/// content backend it runs.
pub fn stored_objects(data: &Path) -> Vec<String> {
    let env = backend_env(data);
    let Some((_, blobs)) = env.iter().find(|(k, _)| *k == "OCLOUD_BLOBS") else {
        let root = data.join("blobs");
        if !root.exists() {
            return Vec::new();
        }
        return files_under(&root).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    };
    let (bucket, prefix) = blobs.trim_start_matches("s3://").split_once('/').unwrap();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let out =
        s3_curl().arg(format!("{endpoint}/{bucket}?list-type=2&max-keys=1000&prefix={prefix}/")).output().unwrap();
    assert!(out.status.success(), "listing the bucket: {}", String::from_utf8_lossy(&out.stderr));
    let xml = String::from_utf8(out.stdout).unwrap();
    xml.split("<Key>")
        .skip(1)
        .map(|k| k.split("</Key>").next().unwrap().rsplit('/').next().unwrap().to_owned())
        .collect()
}

/// Runs SQL on this data dir's database, whichever it is (tests that break the store).
pub fn database_sql(data: &Path, sql: &str) -> String {
    let env = backend_env(data);
    match env.iter().find(|(k, _)| *k == "OCLOUD_DATABASE") {
        Some((_, url)) => {
            let out = Command::new("psql").args([url.as_str(), "-qAtc", sql]).output().unwrap();
            assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        }
        None => {
            let db = rusqlite::Connection::open(data.join("ocloud.db")).unwrap();
            db.execute_batch(sql).unwrap();
            String::new()
        }
    }
}

/// Everything the database holds, as text (to check that secrets are stored hashed).
pub fn database_dump(data: &Path) -> String {
    let env = backend_env(data);
    match env.iter().find(|(k, _)| *k == "OCLOUD_DATABASE") {
        Some((_, url)) => {
            let out = Command::new("pg_dump").args(["--data-only", url.as_str()]).output().unwrap();
            assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        None => {
            let db = std::fs::read(data.join("ocloud.db")).unwrap();
            let wal = std::fs::read(data.join("ocloud.db-wal")).unwrap_or_default();
            format!("{}{}", String::from_utf8_lossy(&db), String::from_utf8_lossy(&wal))
        }
    }
}

/// Every file under `root`, recursively.
/// Partial uploads left in a data dir's temp dirs (each instance's `lock` file is not one).
pub fn temp_files(data: &Path) -> Vec<PathBuf> {
    if !data.join("tmp").exists() {
        return Vec::new(); // an object store: no temp files at all
    }
    files_under(&data.join("tmp")).into_iter().filter(|p| p.file_name().is_none_or(|n| n != "lock")).collect()
}

pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(b))
}

pub fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

pub fn id(path: &str) -> String {
    ocloud_wire::id::encode(path)
}

/// The app folder path of app `tests`.
pub const APP: &str = "mes dossiers partenaires/tests/";
