//! Running under systemd: `READY=1` once requests are answered, watchdog
//! pings, SIGHUP reloading the policy file, and the example unit verified
//! by `systemd-analyze`.

use crate::common::*;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

#[test]
fn ready_once_answering_then_watchdog_pings() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut s = Server::start();
    s.set_env(vec![
        ("NOTIFY_SOCKET".into(), sock_path.to_str().unwrap().into()),
        ("WATCHDOG_USEC".into(), "400000".into()),
    ]);
    s.restart();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.contains("READY=1"), "{msg:?}");
    // Ready means answering: the very next request is served.
    assert_eq!(s.http().get(s.url_of("/healthz")).send().unwrap().status(), 200);
    // Then the watchdog, at half its interval.
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1"));
}

#[test]
fn sighup_reloads_the_policy_file() {
    let cfg = tempfile::tempdir().unwrap();
    let rule = |name: &str| {
        format!(
            "[[rule]]\nname = \"{name}\"\naction = \"aggregate\"\nmax_member_size = \"1 MiB\"\n\
             target_size = \"1 GB\"\nmax_files = 10\nmax_wait_s = 60\n"
        )
    };
    let policy = write_file(cfg.path(), "policy.toml", &rule("first"));
    let s = Server::start_with(Catalog::Sqlite, &["--policy", &policy]);
    assert!(s.run(&["policy", "show"]).contains("first"));
    std::fs::write(&policy, rule("second")).unwrap();
    let hup = |s: &Server| {
        let st = Command::new("kill")
            .args(["-HUP", &s.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    hup(&s);
    s.wait_for(10, "the new policy", |s| s.run(&["policy", "show"]).contains("second"));
    // A bad file is refused: the running policy stays, and the server too.
    std::fs::write(&policy, "[[rule]]\nname = ").unwrap();
    hup(&s);
    std::thread::sleep(Duration::from_millis(500));
    let shown = s.run(&["policy", "show"]);
    assert!(shown.contains("second"), "{shown}");
    assert_eq!(s.http().get(s.url_of("/healthz")).send().unwrap().status(), 200);
}

#[test]
fn the_example_unit_verifies() {
    if !installed("systemd-analyze") {
        return;
    }
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/bale.service")).unwrap();
    // The binary of this build stands where the unit expects it.
    let unit = unit.replace("/usr/local/bin/bale", env!("CARGO_BIN_EXE_bale"));
    assert!(unit.contains("Type=notify") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bale.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
