//! The CLI and server lifecycle: configuration, tokens, tags, directories,
//! moves and removals, graceful shutdown.

mod common;
use common::*;
use std::process::Command;

#[test]
fn config_example_is_valid_and_unknown_keys_are_named() {
    let out = Command::new(BIN).args(["config", "example"]).output().unwrap();
    assert_ok(&out, "config example");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("bale.toml");
    std::fs::write(&good, &out.stdout).unwrap();
    assert_ok(
        &Command::new(BIN).args(["config", "check"]).arg(&good).output().unwrap(),
        "config check example",
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:0\"\n[ingest]\nmax_bach = 3\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_bach"), "{err}");
    assert!(!dir.path().join("bale-data").exists());
}

#[test]
fn serve_uses_the_config_file_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bale.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n[ingest]\nsync = \"syncfs\"\n",
            dir.path().join("d").display()
        ),
    )
    .unwrap();
    let srv = Server::start_with(Catalog::from_env(), &["--config", cfg.to_str().unwrap()]);
    srv.run(&["mkdir", "/x"]);
    let f = dir.path().join("f.txt");
    std::fs::write(&f, b"syncfs mode").unwrap();
    srv.run(&["put", f.to_str().unwrap(), "/x"]);
    // The data dir given on the command line wins over the file.
    assert!(srv.data_dir().join("admin.token").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(srv.data_dir().join("admin.token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let mut srv = srv;
    let st = srv.terminate();
    assert!(st.success(), "exit status after SIGTERM: {st}");
    // A graceful stop commits what was queued and clears every landing note,
    // so the next start has nothing to check.
    let node = std::fs::read_to_string(srv.data_dir().join("node.id")).unwrap();
    let landing = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let c = bale_catalog::SqliteCatalog::open(&srv.data_dir().join("catalog.sqlite"))
            .await
            .unwrap();
        bale_catalog::Catalog::landing_files(&c, node.trim()).await.unwrap()
    });
    assert!(
        landing.is_empty(),
        "landing notes left after a graceful stop: {landing:?}"
    );
}

#[test]
fn tokens_create_list_revoke() {
    let srv = Server::start();
    let t = srv.token_for("alice", "phys");
    assert!(t.starts_with("bale_"));
    let who = srv.bale_as(&t).args(["token", "list"]).output().unwrap();
    assert!(!who.status.success(), "a non-admin listed tokens");
    let list: Vec<serde_json::Value> = serde_json::from_str(&srv.run(&["token", "list", "--json"])).unwrap();
    assert!(list.iter().any(|x| x["user"] == "alice" && x["revoked"].is_null()));
    let id = t.split('_').nth(1).unwrap();
    srv.run(&["token", "revoke", id]);
    let out = srv.bale().args(["token", "revoke", id]).output().unwrap();
    assert!(!out.status.success(), "revoking twice succeeded");
    let out = srv.bale_as(&t).args(["ls", "/"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let bad = srv
        .bale()
        .args(["token", "create", "--user", "bad name", "--group", "g"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid user name"));
}

#[test]
fn tags_are_inherited_by_new_directories_and_recorded_by_files() {
    let srv = Server::start();
    srv.run(&["mkdir", "/mu2e"]);
    srv.run(&[
        "tag",
        "set",
        "/mu2e",
        "storage_group=mu2e",
        "file_family=raw",
        "file_family_width=2",
    ]);
    srv.run(&["mkdir", "-p", "/mu2e/run1/day1"]);
    let tags: serde_json::Value =
        serde_json::from_str(&srv.run(&["tag", "show", "--json", "/mu2e/run1/day1"])).unwrap();
    assert_eq!(tags["storage_group"], "mu2e");
    assert_eq!(tags["file_family"], "raw");
    assert_eq!(tags["file_family_width"], 2);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.art");
    std::fs::write(&f, b"event data").unwrap();
    srv.run(&["put", f.to_str().unwrap(), "/mu2e/run1/day1"]);
    // Changing the parent later changes neither existing children nor files.
    srv.run(&["tag", "set", "/mu2e/run1", "file_family=reco", "file_family_width="]);
    let e: serde_json::Value = serde_json::from_str(&srv.run(&["stat", "--json", "/mu2e/run1/day1/a.art"])).unwrap();
    assert_eq!(e["tags"]["file_family"], "raw");
    srv.run(&["mkdir", "/mu2e/run1/day2"]);
    let t2: serde_json::Value = serde_json::from_str(&srv.run(&["tag", "show", "--json", "/mu2e/run1/day2"])).unwrap();
    assert_eq!(t2["file_family"], "reco");
    assert!(t2.get("file_family_width").is_none());
    let text = srv.run(&["stat", "/mu2e/run1/day1/a.art"]);
    assert!(text.contains("file_family: raw"), "{text}");
    // Bad tags are refused and change nothing.
    for bad in ["colour=blue", "file_family_width=0", "nonsense"] {
        let out = srv.bale().args(["tag", "set", "/mu2e", bad]).output().unwrap();
        assert!(!out.status.success(), "{bad} accepted");
    }
    let out = srv
        .bale()
        .args(["tag", "set", "/mu2e/run1/day1/a.art", "file_family=x"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "tagged a file");
    let tags: serde_json::Value = serde_json::from_str(&srv.run(&["tag", "show", "--json", "/mu2e"])).unwrap();
    assert_eq!(tags["file_family"], "raw");
}

#[test]
fn mkdir_mv_rm() {
    let srv = Server::start();
    srv.run(&["mkdir", "-p", "/a/b/c"]);
    srv.run(&["mkdir", "-p", "/a/b/c"]);
    let out = srv.bale().args(["mkdir", "/a/b"]).output().unwrap();
    assert!(!out.status.success(), "mkdir of an existing directory succeeded");
    let out = srv.bale().args(["mkdir", "/nope/x"]).output().unwrap();
    assert!(!out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f.txt");
    std::fs::write(&f, b"x").unwrap();
    srv.run(&["put", f.to_str().unwrap(), "/a/b/c"]);
    // mv into an existing directory, and rename.
    srv.run(&["mv", "/a/b/c/f.txt", "/a"]);
    srv.run(&["mv", "/a/f.txt", "/a/g.txt"]);
    srv.run(&["put", f.to_str().unwrap(), "/a"]);
    let out = srv.bale().args(["mv", "/a/f.txt", "/a/g.txt"]).output().unwrap();
    assert!(!out.status.success(), "mv replaced a file without -f");
    srv.run(&["mv", "-f", "/a/f.txt", "/a/g.txt"]);
    assert_eq!(srv.run(&["ls", "/a"]), "b/\ng.txt\n");
    // rm refuses a directory without -r.
    let out = srv.bale().args(["rm", "/a/b"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rm -r"));
    srv.run(&["rm", "/a/g.txt"]);
    srv.run(&["rm", "-r", "/a"]);
    assert_eq!(srv.run(&["ls", "/"]), "");
    let out = srv.bale().args(["stat", "/a"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

/// `bale get -r /dir ./back` creates ./back as cp, scp and rclone do (the
/// directory's content lands in it); into an existing directory it lands
/// under its own name; a file can be fetched to a new name.
#[test]
fn get_creates_a_missing_target_as_cp_does() {
    let srv = Server::start();
    let src = tempfile::tempdir().unwrap();
    let data = src.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.txt"), b"alpha").unwrap();
    std::fs::write(data.join("sub/b.txt"), b"beta").unwrap();
    srv.run(&["mkdir", "/exp"]);
    srv.run(&["put", data.to_str().unwrap(), "/exp"]);
    let dst = tempfile::tempdir().unwrap();
    let back = dst.path().join("back");
    srv.run(&["get", "-r", "/exp/data", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(back.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(std::fs::read(back.join("sub/b.txt")).unwrap(), b"beta");
    // Now it exists: the directory goes into it under its own name.
    srv.run(&["get", "-r", "/exp/data", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(back.join("data/sub/b.txt")).unwrap(), b"beta");
    // A single file to a new name.
    let renamed = dst.path().join("renamed.txt");
    srv.run(&["get", "/exp/data/a.txt", renamed.to_str().unwrap()]);
    assert_eq!(std::fs::read(&renamed).unwrap(), b"alpha");
    // A target that is a file cannot take a directory.
    let out = srv
        .bale()
        .args(["get", "-r", "/exp/data", renamed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a local directory"));
}

/// A listing piped into `head` ends quietly: no panic, no backtrace.
#[test]
fn a_listing_into_a_closed_pipe_ends_quietly() {
    let srv = Server::start();
    srv.run(&["mkdir", "/many"]);
    let src = tempfile::tempdir().unwrap();
    for i in 0..1500 {
        std::fs::write(src.path().join(format!("f{i:04}")), b"x").unwrap();
    }
    let files: Vec<String> = (0..1500)
        .map(|i| src.path().join(format!("f{i:04}")).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["put".to_string(), "-j".into(), "8".into()];
    args.extend(files);
    args.push("/many".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    srv.run(&args);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("'{BIN}' ls -l /many | head -n 2"))
        .env("BALE_SERVER", &srv.url)
        .env("BALE_TOKEN", &srv.token)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}

/// `bale demo`, the README's first step: the whole cycle on a throwaway
/// server, every file verified, a report; its data dir kept on request.
#[test]
fn the_demo_runs_the_whole_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let out = Command::new(common::BIN)
        .args(["demo", "--files", "300", "--large", "1", "--keep", "--dir"])
        .arg(&keep)
        .env("BALE_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "every file is on tape only (archiveinfo: TAPE)",
        "301 files, ",
        "byte-identical",
        "301 files -> 1 package on 1 volume",
        "read back: ",
        "(1 mount, one request); one by one: ",
    ] {
        assert!(stdout.contains(want), "{want:?} missing:\n{stdout}");
    }
    assert!(keep.join("data/catalog.sqlite").exists(), "kept");
    // A directory that exists is refused (the demo would remove it).
    let out = Command::new(common::BIN)
        .args(["demo", "--files", "1", "--dir"])
        .arg(&keep)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    let out = Command::new(common::BIN)
        .args(["demo", "--files", "0", "--large", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one file"));
}
