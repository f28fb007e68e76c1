//! What a new user reads: sizes travel as exact bytes, a command refused
//! in part says so and exits non-zero, summaries instead of floods,
//! reasons for what was not done, help without stray options or doubled
//! usage, one unit system and plurals, an aligned alarm table to the
//! second, a clear word when no server runs, no colour codes off a
//! terminal, and completions and a manual page.

use crate::common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};

fn out(c: &mut Command) -> (bool, String, String) {
    let o = c.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn sizes_are_exact_and_partial_refusals_say_so() {
    let s = Server::start_on(Catalog::Sqlite);
    // 10 GB is 10,000,000,000 bytes, not a rounded 9.99 GB.
    s.run(&[
        "volumes",
        "add",
        "--library",
        "lib1",
        "--count",
        "1",
        "--capacity",
        "10 GB",
    ]);
    let vols: Value = serde_json::from_str(&s.run(&["volumes", "--json"])).unwrap();
    let added = vols
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["state"] == "blank" && v["capacity"].as_u64() != Some(vols[0]["capacity"].as_u64().unwrap()))
        .cloned()
        .unwrap_or_else(|| vols.as_array().unwrap().last().unwrap().clone());
    assert_eq!(added["capacity"].as_u64(), Some(10_000_000_000), "{added}");
    // The wire takes bytes only: a size as text is refused, nothing added.
    let before = s.api_get("volumes").as_array().unwrap().len();
    let (code, body) = s.api_post(
        &s.token,
        "volumes",
        &json!({"library": "lib1", "count": 1, "capacity": "10 GB"}),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(s.api_get("volumes").as_array().unwrap().len(), before);

    // A stage of a file that does not exist: said, and exit status 1.
    s.run(&["mkdir", "/d"]);
    let (code, _) = s.put_data("/d/here.dat", b"here");
    assert_eq!(code, 201);
    let (ok, stdout, _) = out(s.bale().args(["stage", "/nonexistent", "/d/here.dat"]));
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("FAILED") && stdout.contains("/nonexistent"), "{stdout}");
    let (ok, stdout, stderr) = out(s.bale().args(["stage", "/d/here.dat", "--wait"]));
    assert!(ok, "{stdout}{stderr}");
    assert!(
        !stderr.contains("about  left") && !stderr.contains("(0s, about"),
        "{stderr}"
    );

    // A policy whose direct rule takes small files is loaded with a
    // warning, and a check of a small file it sends to tape alone says so.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/mu2e-sfa.toml");
    let (ok, _, err) = out(s.bale().args(["policy", "load", example]));
    assert!(ok && err.contains("warning") && err.contains("\"default\""), "{err}");
    let check = s.run(&["policy", "check", "/d/small.root", "--size", "5 MB"]);
    assert!(check.contains("rule default") && check.contains("warning"), "{check}");
    let big = s.run(&["policy", "check", "/d/big.root", "--size", "300 MB"]);
    assert!(!big.contains("warning"), "{big}");
    assert!(s.run(&["policy", "show"]).contains("# warning"));

    // fsck says why files were not judged.
    let (_, stdout, _) = out(s.bale().args(["fsck", "--checksums"]));
    assert!(
        stdout.contains("not judged") && stdout.contains("fsck_settle_s"),
        "{stdout}"
    );
}

#[test]
fn the_queue_is_summed_up() {
    // Files from 1 kB go to tape alone: a job each.
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(cfg.path(), "bale.toml", "[tape]\ndirect_min_size = \"1 kB\"\n");
    let s = Server::start_with(Catalog::Sqlite, &["--config", &config]);
    // The drives off: the jobs stay queued.
    for d in ["lib1-d1", "lib1-d2"] {
        s.run(&["drive", "offline", d]);
    }
    s.run(&["mkdir", "/f"]);
    for i in 0..12 {
        let (code, _) = s.put_data(&format!("/f/{i}.dat"), &[7u8; 2000]);
        assert_eq!(code, 201);
    }
    let summary = s.run(&["queue"]);
    assert!(summary.contains("ARCHIVE JOBS: 12 queued, 0 failed"), "{summary}");
    assert!(summary.contains("bale queue --all"), "{summary}");
    let all = s.run(&["queue", "--all"]);
    let rows = |t: &str| t.lines().filter(|l| l.contains(" queued ")).count();
    assert_eq!(rows(&all), 12, "{all}");
    assert!(summary.lines().count() < all.lines().count(), "{summary}\n{all}");
}

#[test]
fn output_reads_well() {
    let s = Server::start_on(Catalog::Sqlite);
    // No client options on commands that are not clients; usage once.
    for cmd in [["serve", "--help"], ["demo", "--help"], ["recover", "--help"]] {
        let (_, help, _) = out(Command::new(BIN).args(cmd));
        assert!(!help.contains("--server") && !help.contains("--token"), "{help}");
    }
    let (_, help, _) = out(Command::new(BIN).args(["put", "--help"]));
    assert!(help.contains("--server"), "{help}");
    let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert_eq!(usage, "Usage: bale put [OPTIONS] <LOCAL>... <REMOTE_DIR>");
    // Completions and a manual page, from clap's own generators.
    let (ok, script, _) = out(Command::new(BIN).args(["completions", "bash"]));
    assert!(ok && script.contains("_bale()"), "{}", &script[..script.len().min(200)]);
    let (ok, man, _) = out(Command::new(BIN).arg("man"));
    assert!(ok && man.contains(".TH bale"), "{}", &man[..man.len().min(200)]);

    // No server there: said plainly.
    let (ok, _, err) = out(s.bale().env("BALE_SERVER", "http://127.0.0.1:1").args(["ls", "/"]));
    assert!(!ok);
    assert!(err.contains("is the server running at http://127.0.0.1:1?"), "{err}");

    // One unit system (decimal) and plurals.
    let dir = tempfile::tempdir().unwrap();
    let one = write_file(dir.path(), "one.dat", &"x".repeat(5000));
    s.run(&["mkdir", "/u"]);
    let (ok, _, err) = out(s.bale().args(["put", &one, "/u"]));
    assert!(ok, "{err}");
    assert!(err.contains("1 file,") && err.contains("5.00 kB"), "{err}");
    assert!(
        !err.contains("MiB") && !err.contains("KiB") && !err.contains("(s)"),
        "{err}"
    );

    // An aligned alarm table, times to the second.
    let (code, body) = s.api_post(
        &s.token,
        "tape/faults",
        &json!({"kind": "worker_panic", "worker": "on-way check"}),
    );
    assert_eq!(code, 204, "{body}");
    s.wait_for(10, "the alarm", |s| !s.api_get("alarms").as_array().unwrap().is_empty());
    let table = s.run(&["alarms"]);
    let lines: Vec<&str> = table.lines().collect();
    let at = |l: &str| l.find("MESSAGE").or_else(|| l.find("worker on-way check died"));
    assert_eq!(at(lines[0]), at(lines[1]), "{table}");
    let stamp = regex_like_stamp(lines[1]);
    assert!(stamp, "a time to the second in {:?}", lines[1]);

    // No colour codes when stderr is not a terminal.
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("BALE_LOG", "info")
        .env_remove("BALE_CATALOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    child.kill().unwrap();
    let o = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in {log:?}");
}

/// Whether the line has a time "YYYY-MM-DD HH:MM:SSZ" (and no fraction).
fn regex_like_stamp(line: &str) -> bool {
    line.split("  ").map(str::trim).any(|f| {
        let b = f.as_bytes();
        b.len() == 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b' '
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'Z'
    })
}

/// A family with no volume to write to: an alarm says so (once), and
/// `queue flush --wait` shows it instead of waiting in silence.
#[test]
fn a_family_with_no_volume_is_said() {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(
        cfg.path(),
        "bale.toml",
        "[[tape.libraries]]\nname = \"lib1\"\ndrives = 1\ninitial_volumes = 1\nvolume_capacity = \"100 MB\"\n",
    );
    let s = Server::start_with(Catalog::Sqlite, &["--config", &config]);
    for ff in ["one", "two"] {
        s.run(&["mkdir", &format!("/{ff}")]);
        s.run(&["tag", "set", &format!("/{ff}"), &format!("file_family={ff}")]);
        let (code, _) = s.put_data(&format!("/{ff}/f.dat"), b"data");
        assert_eq!(code, 201);
    }
    let mut wait = s
        .bale()
        .args(["queue", "flush", "--wait"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    s.wait_for(30, "the alarm", |s| {
        s.api_get("alarms")
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["message"].as_str().unwrap_or("").contains("no blank volume"))
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    wait.kill().unwrap();
    let o = wait.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("alarm:") && err.contains("bale volumes add"), "{err}");
    // One alarm, however often the drive looked.
    let alarms = s.api_get("alarms");
    let ours: Vec<_> = alarms
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["message"].as_str().unwrap_or("").contains("no blank volume"))
        .collect();
    assert_eq!(ours.len(), 1, "{alarms}");
    assert_eq!(ours[0]["count"], 1, "{alarms}");
    // A volume added: the family is written.
    s.run(&["volumes", "add", "--library", "lib1", "--count", "1"]);
    let out = s.run(&["queue", "flush", "--wait"]);
    assert!(out.contains("every archive job is on tape"), "{out}");
}
