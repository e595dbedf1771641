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
