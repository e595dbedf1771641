//! The `ocloud` command line, end to end against a real service: every command, `--json`
//! parsed, exit codes, recursive round trips by content hash, sync idempotence, resume,
//! login with a pasted redirect, and the cross-process refresh race.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::harness::*;
use crate::oauth::{Setup, admin, redirect_param};

/// A CLI environment: its own config dir, pointed at a service.
struct Cli {
    config: tempfile::TempDir,
    url: String,
    token: Option<String>,
}

impl Cli {
    fn new(s: &Server) -> Cli {
        Cli {
            config: tempfile::tempdir().unwrap(),
            url: s.url.clone(),
            token: Some(s.admin_token(&["--user", "alice", "--app", "tests"])),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("OCLOUD_CONFIG", self.config.path().join("config.toml"))
            .env("OCLOUD_API_URL", &self.url)
            .env_remove("OCLOUD_TOKEN");
        if let Some(t) = &self.token {
            c.env("OCLOUD_TOKEN", t);
        }
        c
    }

    /// `ocloud config set` with the app of a setup.
    fn configure(&self, s: &Setup) {
        self.ok(&[
            "config",
            "set",
            "--client-id",
            &s.client_id,
            "--client-secret",
            &s.secret,
            "--redirect-uri",
            crate::oauth::REDIRECT,
        ]);
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "ocloud {args:?} failed ({:?}): {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Runs and expects this exit code; returns stderr.
    #[track_caller]
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(code), "ocloud {args:?}: {err}");
        err
    }
}

fn write_tree(root: &Path, files: &[(&str, usize)]) {
    for (i, (rel, size)) in files.iter().enumerate() {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, (0..*size).map(|b| (b * 31 + i) as u8).collect::<Vec<u8>>()).unwrap();
    }
}

fn hashes(root: &Path) -> Vec<(String, String)> {
    let mut out: Vec<_> = files_under(root)
        .into_iter()
        .map(|p| (p.strip_prefix(root).unwrap().display().to_string(), sha256(&std::fs::read(&p).unwrap())))
        .collect();
    out.sort();
    out
}

#[test]
fn file_system_commands() {
    let s = Server::start(&[]);
    let c = Cli::new(&s);
    assert_eq!(c.json(&["df"])["freespace"], 5u64 << 30);
    assert!(c.ok(&["df"]).starts_with("Free: 5.00 GiB"));
    c.ok(&["mkdir", "-p", "/a/b/c"]);
    c.ok(&["mkdir", "-p", "/a/b/c"]);
    assert!(c.fails(3, &["mkdir", "/x/y"]).contains("/x: no such folder"));
    c.ok(&["mkdir", "/a/d"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "hello cli\n").unwrap();
    c.ok(&["upload", dir.path().join("note.txt").to_str().unwrap(), "/a/"]);
    assert_eq!(c.ok(&["cat", "/a/note.txt"]), "hello cli\n");

    let ls = c.json(&["ls", "/a"]);
    let paths: Vec<&str> = ls.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["b/", "d/", "note.txt"]);
    assert_eq!(ls[2]["size"], 10);
    assert_eq!(ls[2]["type"], "FILE");
    assert_eq!(ls[0]["isDir"], true);
    let rec = c.json(&["ls", "-R", "/"]);
    assert_eq!(rec.as_array().unwrap().len(), 5, "{rec}");
    assert!(c.ok(&["ls", "-l", "/a"]).lines().any(|l| l.trim_start().starts_with("10 ") && l.ends_with("note.txt")));
    let tree = c.ok(&["tree", "/a"]);
    assert!(tree.contains("└── note.txt") && tree.contains("3 folders, 1 files"), "{tree}");

    let st = c.json(&["stat", "/a/note.txt"]);
    assert_eq!((st["name"].as_str(), st["size"].as_u64()), (Some("note.txt"), Some(10)));
    assert!(st["downloadUrl"].is_string());
    let id = st["id"].as_str().unwrap().to_owned();
    assert_eq!(c.json(&["stat", &format!("id:{id}")])["name"], "note.txt");

    c.ok(&["rename", "/a/note.txt", "renamed.txt"]);
    c.ok(&["mv", "/a/renamed.txt", "/a/d"]);
    c.ok(&["cp", "/a/d/renamed.txt", "/a/b/copy.txt"]);
    c.ok(&["mv", "/a/d", "/moved"]);
    assert_eq!(c.ok(&["cat", "/moved/renamed.txt"]), "hello cli\n");
    assert_eq!(c.ok(&["cat", "/a/b/copy.txt"]), "hello cli\n");
    c.ok(&["cp", "/a", "/a-copy"]);
    assert_eq!(c.ok(&["cat", "/a-copy/b/copy.txt"]), "hello cli\n");

    // rm: a folder needs -r; missing paths are exit 4; the root is refused.
    assert!(c.fails(1, &["rm", "/a"]).contains("use rm -r"));
    c.ok(&["rm", "-r", "/a"]);
    c.fails(4, &["stat", "/a"]);
    c.fails(4, &["cat", "/nope.txt"]);
    c.ok(&["rm", "/moved/renamed.txt"]);
    assert!(c.fails(1, &["rm", "-r", "/"]).contains("root"));
    // Usage errors are exit 1; a refused token exit 7.
    c.fails(1, &["bogus"]);
    c.fails(1, &["ls", "--nope"]);
    let bad = Cli { token: Some("OFR-bad".into()), ..Cli::new(&s) };
    assert!(bad.fails(7, &["df"]).contains("Invalid credentials"));
}

#[test]
fn help_and_completions() {
    let s = Server::start(&[]);
    let c = Cli::new(&s);
    let help = c.ok(&["--help"]);
    assert!(help.contains("Exit codes") && help.contains("6 some files failed"));
    for cmd in [
        "df",
        "ls",
        "tree",
        "stat",
        "mkdir",
        "rm",
        "mv",
        "cp",
        "rename",
        "cat",
        "upload",
        "download",
        "sync",
        "check",
        "completions",
        "login",
    ] {
        let h = c.ok(&[cmd, "--help"]);
        assert!(h.contains("Example"), "{cmd} --help has no example");
    }
    for shell in ["bash", "zsh", "fish"] {
        let script = c.ok(&["completions", shell]);
        assert!(script.contains("ocloud") && script.contains("upload"), "{shell}");
    }
}

#[test]
fn recursive_round_trip_and_skips() {
    let s = Server::start(&[]);
    let c = Cli::new(&s);
    let src = tempfile::tempdir().unwrap();
    write_tree(
        src.path(),
        &[("a.txt", 10), ("sub/b.bin", 300_000), ("sub/deep/c.bin", 5), ("sub/deep/été ☃.txt", 7), ("empty.txt", 0)],
    );
    std::fs::create_dir_all(src.path().join("emptydir")).unwrap();
    let up = c.json(&["upload", src.path().to_str().unwrap(), "/backup/2024", "--transfers", "3"]);
    assert_eq!(up["copied"].as_array().unwrap().len(), 5);
    assert_eq!(up["bytes"], 300_022);
    let again = c.json(&["upload", src.path().to_str().unwrap(), "/backup/2024"]);
    assert_eq!(
        (again["copied"].as_array().unwrap().len(), again["skipped"].as_u64()),
        (0, Some(5)),
        "same name and size: skipped"
    );
    let forced = c.json(&["upload", src.path().to_str().unwrap(), "/backup/2024", "--force"]);
    assert_eq!(forced["copied"].as_array().unwrap().len(), 5);
    assert!(!c.ok(&["ls", "-R", "/backup"]).contains("(1)"), "a forced upload replaces, never leaves name(1)");
    assert!(c.ok(&["ls", "/backup/2024"]).contains("emptydir/"));

    let dst = tempfile::tempdir().unwrap();
    let down = c.json(&["download", "/backup/2024", dst.path().to_str().unwrap()]);
    assert_eq!(down["copied"].as_array().unwrap().len(), 5);
    assert_eq!(hashes(dst.path()), hashes(src.path()));
    assert!(dst.path().join("emptydir").is_dir());
    let again = c.json(&["download", "/backup/2024", dst.path().to_str().unwrap()]);
    assert_eq!(again["skipped"], 5);

    // A single file: into an existing folder, or to a new path.
    c.ok(&["download", "/backup/2024/a.txt", dst.path().to_str().unwrap(), "--force"]);
    let single = dst.path().join("renamed.txt");
    c.ok(&["download", "/backup/2024/a.txt", single.to_str().unwrap()]);
    assert_eq!(std::fs::read(&single).unwrap(), std::fs::read(src.path().join("a.txt")).unwrap());
    c.ok(&["upload", src.path().join("a.txt").to_str().unwrap(), "/new/place/z.txt"]);
    assert_eq!(c.json(&["stat", "/new/place/z.txt"])["size"], 10);
    c.ok(&["upload", src.path().join("a.txt").to_str().unwrap(), "/into/this/"]);
    assert_eq!(c.json(&["stat", "/into/this/a.txt"])["size"], 10, "a trailing slash names a folder");
    let into = dst.path().join("fresh/");
    c.ok(&["download", "/into/this/a.txt", &format!("{}/", into.display())]);
    assert!(into.join("a.txt").is_file());
    // Replacing a file of another size keeps one file of that name.
    std::fs::write(src.path().join("a.txt"), b"changed").unwrap();
    c.ok(&["upload", src.path().join("a.txt").to_str().unwrap(), "/new/place/z.txt"]);
    assert_eq!(c.ok(&["cat", "/new/place/z.txt"]), "changed");
    assert_eq!(c.json(&["ls", "/new/place"]).as_array().unwrap().len(), 1);
    // Missing sources.
    c.fails(4, &["download", "/nope", dst.path().to_str().unwrap()]);
    c.fails(2, &["upload", "/definitely/not/here", "/x"]);
}

#[test]
fn interrupted_download_resumes() {
    let s = Server::start(&[]);
    let c = Cli::new(&s);
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), &[("big.bin", 2_000_000)]);
    c.ok(&["upload", src.path().join("big.bin").to_str().unwrap(), "/"]);
    let dst = tempfile::tempdir().unwrap();
    let target = dst.path().join("big.bin");
    // What an interrupted run leaves: the first part in the temp file, no target. The part is
    // marked (0xEE bytes, not the content's): if the CLI fetched the whole file again instead
    // of the missing range only, the mark would be gone.
    let data = std::fs::read(src.path().join("big.bin")).unwrap();
    std::fs::write(dst.path().join(".big.bin.ocloud-part"), vec![0xEE; 700_000]).unwrap();
    c.ok(&["download", "/big.bin", target.to_str().unwrap()]);
    let got = std::fs::read(&target).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got[..700_000].iter().all(|&b| b == 0xEE), "the part already there was fetched again");
    assert_eq!(sha256(&got[700_000..]), sha256(&data[700_000..]));
    assert!(!dst.path().join(".big.bin.ocloud-part").exists());
}

#[tokio::test]
async fn names_at_the_length_limit() {
    let s = Server::start(&[]);
    let c = Cli::new(&s);
    let src = tempfile::tempdir().unwrap();
    // 255 bytes, the longest name: a clash must not lengthen it, and the CLI's temp file beside
    // the download must fit too.
    let long = format!("{}.bin", "é".repeat(125)); // 254 bytes
    let long = format!("x{long}");
    std::fs::write(src.path().join(&long), b"first").unwrap();
    c.ok(&["upload", src.path().join(&long).to_str().unwrap(), "/"]);
    let api = s.api();
    let r = api.upload(&long, b"second", None).await.ok();
    let renamed = r["fileName"].as_str().unwrap();
    assert!(renamed.len() <= 255 && renamed.ends_with("(1).bin"), "{renamed} ({} bytes)", renamed.len());
    let dst = tempfile::tempdir().unwrap();
    c.ok(&["download", &format!("/{long}"), dst.path().to_str().unwrap()]);
    assert_eq!(std::fs::read(dst.path().join(&long)).unwrap(), b"first");
    // Control characters are refused (400/24), as everywhere a name is given.
    for bad in ["a\nb.txt", "esc\u{1b}[31m.txt", "del\u{7f}"] {
        api.upload(bad, b"x", None).await.assert_error(400, 24);
    }
}

#[test]
fn sync_both_ways_idempotent_with_filters() {
    let s = Server::start(&[]);
    let c = Cli::new(&s);
    let local = tempfile::tempdir().unwrap();
    write_tree(local.path(), &[("keep.txt", 5), ("x/y.txt", 6), ("skip.tmp", 7), ("big.bin", 50_000)]);
    let l = local.path().to_str().unwrap();
    let dry = c.json(&["sync", l, "cloud:/mirror", "--dry-run"]);
    assert_eq!(dry["copied"].as_array().unwrap().len(), 4);
    c.fails(4, &["stat", "/mirror"]);
    let first = c.json(&["sync", l, "cloud:/mirror", "--exclude", "*.tmp", "--max-size", "10K"]);
    let mut copied: Vec<&str> = first["copied"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    copied.sort();
    assert_eq!(copied, ["keep.txt", "x/y.txt"]);
    let second = c.json(&["sync", l, "cloud:/mirror", "--exclude", "*.tmp", "--max-size", "10K"]);
    assert_eq!((second["copied"].as_array().unwrap().len(), second["skipped"].as_u64()), (0, Some(2)), "idempotent");
    // --delete removes what the source no longer has, and nothing without it.
    std::fs::remove_file(local.path().join("keep.txt")).unwrap();
    let kept = c.json(&["sync", l, "cloud:/mirror", "--exclude", "*.tmp", "--max-size", "10K"]);
    assert_eq!(kept["deleted"].as_array().unwrap().len(), 0);
    let del = c.json(&["sync", l, "cloud:/mirror", "--exclude", "*.tmp", "--max-size", "10K", "--delete"]);
    assert_eq!(del["deleted"], serde_json::json!(["keep.txt"]));
    // Down: into an empty folder, then idempotent; --include.
    let back = tempfile::tempdir().unwrap();
    let b = back.path().to_str().unwrap();
    c.json(&["sync", "cloud:/mirror", b]);
    assert_eq!(
        hashes(back.path()),
        vec![("x/y.txt".to_owned(), sha256(&std::fs::read(local.path().join("x/y.txt")).unwrap()))]
    );
    assert_eq!(c.json(&["sync", "cloud:/mirror", b])["copied"].as_array().unwrap().len(), 0);
    // check: by size, then by content.
    let same = c.json(&["check", b, "cloud:/mirror", "--download"]);
    assert_eq!(same["identical"], true);
    std::fs::write(back.path().join("x/y.txt"), b"XXXXXX").unwrap();
    c.fails(0, &["check", b, "cloud:/mirror"]);
    let out = c.run(&["--json", "check", b, "cloud:/mirror", "--download"]);
    assert_eq!(out.status.code(), Some(2));
    let diff: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diff["differences"][0]["difference"], "contents differ");
    c.fails(1, &["sync", l, b]);
}

#[test]
fn partial_failure_names_the_files_and_exits_6() {
    let s = Server::start(&["--quota", "1000"]);
    let c = Cli::new(&s);
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), &[("small1.txt", 100), ("small2.txt", 100), ("huge.bin", 5000)]);
    let err = c.fails(6, &["upload", src.path().to_str().unwrap(), "/q", "--transfers", "1"]);
    assert!(err.contains("failed: huge.bin"), "{err}");
    assert!(err.contains("1 of 3 files failed"), "{err}");
    let names = c.ok(&["ls", "/q"]);
    assert!(names.contains("small1.txt") && names.contains("small2.txt") && !names.contains("huge.bin"));
}

#[tokio::test]
async fn login_with_pasted_redirect_then_logout() {
    let s = Setup::new(&[], "openid cloud offline_access", None);
    let c = Cli { token: None, ..Cli::new(&s.server) };
    c.configure(&s);
    let shown = c.json(&["config", "show"]);
    assert_eq!(shown["settings"]["client_secret"], "********");
    assert!(c.fails(7, &["df"]).contains("log in"));
    let mut child = c
        .cmd(&["login", "--no-browser"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut url = String::new();
    while !url.contains("/oauth/v2/authorize") {
        url.clear();
        stderr.read_line(&mut url).unwrap();
    }
    let path = url.trim().strip_prefix(&s.server.url).unwrap().to_owned();
    let mut b = s.browser();
    let mut page = b.get(&path).await;
    page = b.submit(&page, "/oauth/v2/login", &[("username", "alice"), ("password", "correct horse")]).await;
    page = b.submit(&page, "/oauth/v2/consent", &[("decision", "allow")]).await;
    assert!(redirect_param(&page, "code").is_some());
    let landed = page.header("location").unwrap().to_owned();
    writeln!(child.stdin.take().unwrap(), "{landed}").unwrap();
    assert!(child.wait().unwrap().success());
    let who = c.json(&["whoami"]);
    assert_eq!((who["root"]["name"].as_str(), who["token"].as_str()), (Some("tests"), Some("stored")));
    let token_file = c.config.path().join("tokens/default.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    c.ok(&["logout"]);
    assert!(!token_file.exists());
    c.fails(7, &["df"]);
}

#[tokio::test]
async fn concurrent_processes_share_one_token_file() {
    // Rotated refresh tokens and 5-second access tokens: every run refreshes, and a process
    // that refreshed with a stale refresh token would fail with invalid_grant.
    let s = Setup::new(&["--rotate-refresh-tokens", "--token-ttl", "5"], "openid cloud offline_access", None);
    let c = Cli { token: None, ..Cli::new(&s.server) };
    c.configure(&s);
    let mut b = s.browser();
    let t = s.exchange(&s.code(&mut b, &[]).await).await.ok();
    let tokens =
        serde_json::json!({"access_token": t["access_token"], "refresh_token": t["refresh_token"], "expires_at": 1});
    std::fs::create_dir_all(c.config.path().join("tokens")).unwrap();
    std::fs::write(c.config.path().join("tokens/default.json"), tokens.to_string()).unwrap();
    for round in 0..3 {
        let children: Vec<_> =
            (0..4).map(|_| c.cmd(&["df"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()).collect();
        for ch in children {
            let o = ch.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let _ = admin;
}

#[tokio::test]
async fn the_command_serve_prints_points_the_cli_and_login_uses_the_local_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .envs(backend_env(dir.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("ocloud login")) {
        let mut l = String::new();
        assert!(reader.read_line(&mut l).unwrap() > 0, "serve stopped printing: {lines:?}");
        lines.push(l);
    }
    let url = lines[0].split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
    assert!(lines.iter().any(|l| l.contains("created the dev account")), "{lines:?}");
    let password = lines.iter().find_map(|l| l.split("password ").nth(1)).unwrap().trim().to_owned();
    let command = lines.last().unwrap().trim().to_owned();
    // Run the printed command as a user would (without the `&& ocloud login` part).
    let config = tempfile::tempdir().unwrap();
    let set = command.split(" && ").next().unwrap();
    let args: Vec<&str> = set.split_whitespace().skip(1).collect();
    let out = Command::new(BIN)
        .args(&args)
        .env("OCLOUD_CONFIG", config.path().join("c.toml"))
        .env_remove("OCLOUD_API_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // `ocloud login`: the local listener of the dev app's redirect URI receives the code.
    let mut login = Command::new(BIN)
        .args(["login", "--timeout", "60"])
        .env("OCLOUD_CONFIG", config.path().join("c.toml"))
        .env_remove("OCLOUD_API_URL")
        .env("PATH", "/nonexistent") // no xdg-open: the URL is only printed
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(login.stderr.take().unwrap());
    let mut authorize = String::new();
    while !authorize.contains("/oauth/v2/authorize") {
        authorize.clear();
        assert!(err.read_line(&mut authorize).unwrap() > 0);
    }
    let path = authorize.trim().strip_prefix(&url).unwrap().to_owned();
    let mut b = crate::oauth::Browser::new(&url);
    let mut page = b.get(&path).await;
    page = b.submit(&page, "/oauth/v2/login", &[("username", "dev"), ("password", &password)]).await;
    page = b.submit(&page, "/oauth/v2/consent", &[("decision", "allow")]).await;
    let callback = page.header("location").unwrap().to_owned();
    assert!(callback.starts_with("http://127.0.0.1:8910/callback?"), "{callback}");
    let answer = reqwest::get(&callback).await.unwrap().text().await.unwrap();
    assert!(answer.contains("\"code\""));
    assert!(login.wait().unwrap().success());
    let who = Command::new(BIN)
        .args(["--json", "whoami"])
        .env("OCLOUD_CONFIG", config.path().join("c.toml"))
        .env_remove("OCLOUD_API_URL")
        .env_remove("OCLOUD_TOKEN")
        .output()
        .unwrap();
    assert!(who.status.success(), "{}", String::from_utf8_lossy(&who.stderr));
    let who: Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(who["api_url"], url);
    child.kill().unwrap();
    child.wait().unwrap();
}
