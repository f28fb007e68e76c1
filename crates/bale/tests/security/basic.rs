//! HTTP Basic for DAV clients that know only a user name and a password:
//! the password is a bale token, the user name must be its user's.

use crate::common::{assert_ok, bytes, installed, Server};
use std::process::{Command, Stdio};

/// A server where alice owns /home/alice.
fn setup() -> (Server, String) {
    let s = Server::start();
    s.run(&["mkdir", "-p", "/home/alice", "--owner", "alice", "--group", "physics"]);
    let alice = s.token_for("alice", "physics");
    (s, alice)
}

#[test]
fn curl_logs_in_with_user_and_token() {
    if !installed("curl") {
        return;
    }
    let (s, alice) = setup();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("up"), bytes(3, 10_000)).unwrap();
    let curl = |user: &str, args: &[&str]| {
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-u", user])
            .args(args)
            .output()
            .unwrap()
    };
    let code = |o: std::process::Output| String::from_utf8(o.stdout).unwrap();
    let good = format!("alice:{alice}");
    let up = dir.path().join("up");
    let out = curl(&good, &["-T", up.to_str().unwrap(), &s.url_of("/home/alice/up")]);
    assert_eq!(code(out), "201");
    let who = Command::new("curl")
        .args(["-sS", "-u", &good, &s.url_of("/api/v1/whoami")])
        .output()
        .unwrap();
    let who: serde_json::Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(who["user"], "alice");

    // A wrong password, a user name that is not the token's, an empty
    // password: 401, with both challenges, and nothing written.
    let before = s.tree();
    for bad in [
        format!("alice:{alice}x"),
        format!("bob:{alice}"),
        "alice:".to_string(),
        format!("alice:{}", s.token),
    ] {
        let out = curl(&bad, &["-T", up.to_str().unwrap(), &s.url_of("/home/alice/bad")]);
        assert_eq!(code(out), "401", "{bad}");
    }
    assert_eq!(s.tree(), before);
    let r = s
        .http()
        .get(s.url_of("/home/alice/up"))
        .basic_auth("bob", Some(&alice))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenges: Vec<&str> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic realm=\"bale\"")),
        "{challenges:?}"
    );
    assert!(
        challenges.iter().any(|c| c.starts_with("Bearer realm=\"bale\"")),
        "{challenges:?}"
    );
    assert!(r.text().unwrap().contains("not the token's user"));
}

#[test]
fn cadaver_logs_in_from_netrc() {
    if !installed("cadaver") {
        return;
    }
    let (s, alice) = setup();
    let home = tempfile::tempdir().unwrap();
    let host = s
        .url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let netrc = home.path().join(".netrc");
    std::fs::write(&netrc, format!("machine {host}\nlogin alice\npassword {alice}\n")).unwrap();
    std::fs::set_permissions(&netrc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let local = home.path().join("local.dat");
    std::fs::write(&local, bytes(4, 3_000)).unwrap();
    let run = |home: &std::path::Path, script: &str| {
        use std::io::Write;
        let mut child = Command::new("cadaver")
            .arg(s.url_of("/home/alice/"))
            .env("HOME", home)
            .current_dir(home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(home.path(), "put local.dat\nls\nquit\n");
    assert_ok(&out, "cadaver");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("local.dat") && text.contains("3000"), "{text}");
    let e: serde_json::Value = serde_json::from_str(&s.run(&["stat", "--json", "/home/alice/local.dat"])).unwrap();
    assert_eq!(e["size"], 3000);
    assert_eq!(e["owner"], "alice");

    // The wrong password: cadaver is refused (and writes nothing).
    std::fs::write(&netrc, format!("machine {host}\nlogin alice\npassword {alice}wrong\n")).unwrap();
    let out = run(home.path(), "put local.dat other.dat\nquit\n");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("401") || all.contains("uthenticat"), "{all}");
    assert!(s.tree().iter().all(|(p, _)| p != "/home/alice/other.dat"));
}
