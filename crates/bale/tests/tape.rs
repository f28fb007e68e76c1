//! Tape through the real server: large files go straight to tape, the
//! tape files are plain tar, admin commands, faults, and a SIGKILL in the
//! middle of a tape write.

mod common;

use bale_util::Adler32;
use common::{bytes, Catalog, Server, SLOW_TAPE};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const FAST: &str = r#"
[tape]
direct_min_size = "1 MiB"
idle_unload_s = 5.0

[[tape.libraries]]
name = "lib1"
drives = 2
initial_volumes = 3
volume_capacity = "100 MB"
"#;

fn config_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn stat(s: &Server, path: &str) -> Value {
    serde_json::from_str(&s.run(&["stat", "--json", path])).unwrap()
}

fn archived(s: &Server, path: &str) -> bool {
    stat(s, path)["archive"]["state"] == "archived"
}

fn put_file(s: &Server, local: &Path, remote_dir: &str) {
    s.run(&["put", local.to_str().unwrap(), remote_dir]);
}

fn tape_file(s: &Server, volume: &str, seq: u64) -> PathBuf {
    s.data_dir().join(format!("library/{volume}/f{seq:08}.tar"))
}

/// Every volume's media agree with the catalog: as many tape files as
/// recorded, each one of the recorded size and adler32.
fn assert_media_match_catalog(s: &Server) {
    let vols = s.api_get("volumes");
    for v in vols.as_array().unwrap() {
        let label = v["label"].as_str().unwrap();
        let dir = s.data_dir().join("library").join(label);
        let on_media = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tar"))
            .count() as u64;
        assert_eq!(on_media, v["tape_files"].as_u64().unwrap(), "end of data of {label}");
        let shown = s.api_get(&format!("volumes/{label}"));
        for p in shown["tape_files"].as_array().unwrap() {
            let data = std::fs::read(tape_file(s, label, p["seq"].as_u64().unwrap())).unwrap();
            assert_eq!(data.len() as u64, p["size"].as_u64().unwrap(), "{label} {p}");
            assert_eq!(
                Adler32::of(&data).to_string(),
                p["adler32"].as_str().unwrap(),
                "{label} {p}"
            );
        }
    }
}

#[test]
fn large_files_go_straight_to_tape_as_tar_files_gnu_tar_reads() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&cfg_dir, "bale.toml", FAST);
    let s = Server::start_with(Catalog::from_env(), &["--config", &cfg]);
    s.run(&["mkdir", "/exp"]);
    let local = tempfile::tempdir().unwrap();
    let big = bytes(1, 2 << 20);
    let small = bytes(2, 1000);
    std::fs::write(local.path().join("big.dat"), &big).unwrap();
    std::fs::write(local.path().join("small.dat"), &small).unwrap();
    put_file(&s, &local.path().join("big.dat"), "/exp");
    put_file(&s, &local.path().join("small.dat"), "/exp");

    s.wait_for(60, "the large file on tape", |s| archived(s, "/exp/big.dat"));
    let st = stat(&s, "/exp/big.dat");
    let copy = &st["archive"]["copies"][0];
    assert_eq!(copy["volume"], "VL0001");
    assert_eq!(copy["tape_file"], 0);
    let text = s.run(&["stat", "/exp/big.dat"]);
    assert!(text.contains("archive: archived"), "{text}");
    assert!(text.contains("tape copy: volume VL0001 tape file 0"), "{text}");
    // Below the threshold: waits in a pool of the built-in policy.
    assert_eq!(stat(&s, "/exp/small.dat")["archive"]["state"], "pooled");

    // GNU tar lists the tape file (manifest first, then the member) and
    // extracts the file under its name.
    let tf = tape_file(&s, "VL0001", 0);
    let out = Command::new("tar").arg("-tvf").arg(&tf).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(lines[0].contains("bale-manifest-"), "{listing}");
    assert!(
        lines[1].ends_with("exp/big.dat") && lines[1].contains("admin/admin"),
        "{listing}"
    );
    let x = tempfile::tempdir().unwrap();
    let st_x = Command::new("tar")
        .arg("-xf")
        .arg(&tf)
        .arg("-C")
        .arg(x.path())
        .status()
        .unwrap();
    assert!(st_x.success());
    assert_eq!(std::fs::read(x.path().join("exp/big.dat")).unwrap(), big);
    let manifest_name = lines[0].rsplit(' ').next().unwrap();
    let manifest: Value = serde_json::from_slice(&std::fs::read(x.path().join(manifest_name)).unwrap()).unwrap();
    let m = &manifest["members"][0];
    assert_eq!(m["path"], "/exp/big.dat");
    assert_eq!(m["file_id"], st["file_id"]);
    assert_eq!(m["adler32"], st["adler32"]);
    assert_eq!(m["size"], big.len());
    assert_eq!(m["offset"], copy["offset"]);

    // Admin views.
    let vols = s.run(&["volumes"]);
    assert!(vols.contains("VL0001") && vols.contains("appendable") && vols.contains("default.default.tar"));
    let shown = s.run(&["volume", "show", "VL0001"]);
    assert!(shown.contains(copy["package"].as_str().unwrap()), "{shown}");
    let drives = s.run(&["drives"]);
    assert!(drives.contains("lib1-d1") && drives.contains("lib1-d2"), "{drives}");
    let added = s.run(&[
        "volumes",
        "add",
        "--library",
        "lib1",
        "--media",
        "LTO-9",
        "--count",
        "2",
        "--capacity",
        "50 MB",
    ]);
    assert!(added.contains("VL0004") && added.contains("VL0005"), "{added}");
    s.run(&["volume", "set", "VL0005", "shelf"]);
    s.run(&["drive", "offline", "lib1-d2"]);
    assert!(s.run(&["drives"]).contains("offline"));
    s.run(&["drive", "online", "lib1-d2"]);

    // Bad input changes nothing.
    let before = s.api_get("volumes");
    let user = s.token_for("alice", "users");
    let bad = [
        (
            s.token.as_str(),
            "volumes",
            json!({"library": "lib1", "media": "T10000D", "count": 1}),
            400,
        ),
        (s.token.as_str(), "volumes", json!({"library": "nope", "count": 1}), 404),
        (s.token.as_str(), "volumes", json!({"library": "lib1", "count": 0}), 400),
        (
            s.token.as_str(),
            "volumes",
            json!({"library": "lib1", "count": 1, "capacity": "lots"}),
            400,
        ),
        (user.as_str(), "volumes", json!({"library": "lib1", "count": 1}), 403),
        (s.token.as_str(), "volumes/VL0001/state", json!({"state": "bogus"}), 400),
        (
            s.token.as_str(),
            "volumes/VL0002/state",
            json!({"state": "appendable"}),
            400,
        ),
        (s.token.as_str(), "volumes/VL0001/state", json!({"state": "blank"}), 400),
        (user.as_str(), "volumes/VL0001/state", json!({"state": "full"}), 403),
        (s.token.as_str(), "drives/lib1-d9/offline", json!({}), 404),
        (s.token.as_str(), "drives/lib1-d1/explode", json!({}), 400),
        (
            s.token.as_str(),
            "tape/faults",
            json!({"kind": "write_error", "volume": "NOPE"}),
            404,
        ),
        (s.token.as_str(), "tape/faults", json!({"kind": "meteor"}), 400),
        (
            user.as_str(),
            "tape/faults",
            json!({"kind": "drive_failure", "drive": "lib1-d1"}),
            403,
        ),
    ];
    for (token, endpoint, body, want) in bad {
        let (status, resp) = s.api_post(token, endpoint, &body);
        assert_eq!(status, want, "{endpoint} {body}: {resp}");
    }
    assert_eq!(s.api_get("volumes"), before);

    // A write error: the volume goes noaccess with an alarm and the file
    // lands on another volume.
    let (status, resp) = s.api_post(
        &s.token,
        "tape/faults",
        &json!({"kind": "write_error", "volume": "VL0001"}),
    );
    assert_eq!(status, 204, "{resp}");
    let big2 = bytes(3, (1 << 20) + 5);
    std::fs::write(local.path().join("big2.dat"), &big2).unwrap();
    put_file(&s, &local.path().join("big2.dat"), "/exp");
    s.wait_for(60, "the second large file on tape", |s| archived(s, "/exp/big2.dat"));
    let copy2 = &stat(&s, "/exp/big2.dat")["archive"]["copies"][0];
    assert_ne!(copy2["volume"], "VL0001");
    let vol1 = s.api_get("volumes/VL0001");
    assert_eq!(vol1["volume"]["state"], "noaccess");
    assert_eq!(vol1["volume"]["tape_files"], 1, "the failed write was not recorded");
    let alarms = s.run(&["alarms"]);
    assert!(
        alarms.contains("volume VL0001") && alarms.contains("write error"),
        "{alarms}"
    );
    // Both files read back intact from the cache.
    let back = tempfile::tempdir().unwrap();
    s.run(&["get", "/exp/big.dat", "/exp/big2.dat", back.path().to_str().unwrap()]);
    assert_eq!(std::fs::read(back.path().join("big2.dat")).unwrap(), big2);
}

#[test]
fn sigkill_in_the_middle_of_a_tape_write_is_redone_after_restart_sqlite() {
    sigkill_during_tape_write(Catalog::Sqlite);
}

#[test]
fn sigkill_in_the_middle_of_a_tape_write_is_redone_after_restart_postgres() {
    sigkill_during_tape_write(Catalog::Postgres);
}

fn sigkill_during_tape_write(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let slow = config_file(&cfg_dir, "slow.toml", SLOW_TAPE);
    // The same library after the restart, without real-time pacing.
    let fast = config_file(
        &cfg_dir,
        "fast.toml",
        &SLOW_TAPE.replace("time_scale = 1.0", "time_scale = 0.0"),
    );
    let mut s = Server::start_with(catalog, &["--config", &slow]);
    s.run(&["mkdir", "/raw"]);
    let local = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..3 {
        let data = bytes(10 + i, 3_000_000);
        let p = local.path().join(format!("run{i}.dat"));
        std::fs::write(&p, &data).unwrap();
        files.push((format!("/raw/run{i}.dat"), data));
    }
    s.run(&[
        "put",
        local.path().join("run0.dat").to_str().unwrap(),
        local.path().join("run1.dat").to_str().unwrap(),
        local.path().join("run2.dat").to_str().unwrap(),
        "/raw",
    ]);
    // Wait until a tape file is partly written, then pull the plug.
    let partial = |s: &Server| {
        let lib = s.data_dir().join("library");
        std::fs::read_dir(&lib).unwrap().any(|v| {
            std::fs::read_dir(v.unwrap().path()).unwrap().any(|f| {
                let f = f.unwrap();
                let len = f.metadata().unwrap().len();
                f.file_name().to_string_lossy().ends_with(".tar") && len > 100_000 && len < 2_500_000
            })
        })
    };
    s.wait_for(60, "a tape write in progress", partial);
    s.kill9();

    s.restart_with(&["--config", &fast]);
    s.wait_for(120, "every file on tape", |s| files.iter().all(|(p, _)| archived(s, p)));
    assert_media_match_catalog(&s);
    let mut seen = std::collections::BTreeSet::new();
    for (p, data) in &files {
        let st = stat(&s, p);
        let copies = st["archive"]["copies"].as_array().unwrap();
        assert_eq!(copies.len(), 1, "exactly one tape copy of {p}: {st}");
        let c = &copies[0];
        let key = (
            c["volume"].as_str().unwrap().to_string(),
            c["tape_file"].as_u64().unwrap(),
        );
        assert!(seen.insert(key.clone()), "two files on one tape file: {key:?}");
        // The tape file holds the file's bytes at the recorded offset.
        let tf = std::fs::read(tape_file(&s, &key.0, key.1)).unwrap();
        let off = c["offset"].as_u64().unwrap() as usize;
        assert_eq!(&tf[off..off + data.len()], &data[..], "{p}");
    }
}
