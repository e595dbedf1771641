//! The service against hostile input and hostile conditions (issue 12): log injection, …

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
