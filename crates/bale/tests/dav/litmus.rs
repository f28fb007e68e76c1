//! litmus (Debian's WebDAV server test suite) against bale, logging in
//! with HTTP Basic as a user: its basic, copymove, props and http suites
//! must pass whole. Its locks suite is not run: bale has no LOCK, and its
//! OPTIONS says so (no DAV class 2).

use crate::common::*;
use crate::tool;
use std::process::Command;

#[test]
fn litmus_passes_basic_copymove_props_http() {
    let Some(litmus) = tool("litmus") else { return };
    let s = Server::start();
    s.run(&["mkdir", "-p", "/home/alice", "--owner", "alice", "--group", "physics"]);
    let alice = s.token_for("alice", "physics");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(litmus)
        .current_dir(dir.path())
        .env("TESTS", "basic copymove props http")
        .args([&s.url_of("/home/alice/"), "alice", &alice])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.path().join("debug.log")).unwrap_or_default();
    let failed: Vec<&str> = text.lines().filter(|l| l.contains("FAIL")).collect();
    assert!(
        out.status.success() && failed.is_empty(),
        "litmus failed:\n{text}\n{}\n--- the end of debug.log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        &log[log.len().saturating_sub(6000)..]
    );
    for suite in ["basic", "copymove", "props", "http"] {
        assert!(
            text.lines().any(|l| l.contains(&format!("summary for `{suite}'"))
                && l.contains("0 failed")
                && l.contains("100.0%")),
            "suite {suite} did not pass whole:\n{text}"
        );
    }
}
