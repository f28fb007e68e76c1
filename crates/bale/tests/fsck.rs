//! `bale fsck`: the catalog and the cache checked against each other.
//! Damage made on purpose (an archived file's data deleted, another's cut
//! short, an unarchived file's byte flipped, data no file claims) is
//! reported, nothing changes without `--repair`; with it the archived
//! files read back from tape byte-identical, the orphans are set aside,
//! and the damaged file with no tape copy is reported lost with an alarm
//! and left as it is.

mod common;
use common::*;
use serde_json::Value;
use std::path::PathBuf;

const CONFIG: &str = "[cache]\nfsck_settle_s = 0\n";

fn config(dir: &std::path::Path) -> String {
    let p = dir.join("bale.toml");
    std::fs::write(&p, format!("{CONFIG}\n{SMALL_LIBRARY}")).unwrap();
    p.to_str().unwrap().to_string()
}

fn state(s: &Server, path: &str) -> Value {
    serde_json::from_str::<Value>(&s.run(&["stat", "--json", path])).unwrap()["archive"]["state"].clone()
}

fn data_path(s: &Server, path: &str) -> PathBuf {
    let id = s.file_id(path);
    s.data_dir().join("cache/files").join(&id[id.len() - 2..]).join(&id)
}

fn fsck(s: &Server, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["fsck", "--json"];
    all.extend_from_slice(args);
    let out = s.bale().args(&all).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bale {all:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), report)
}

fn kinds(report: &Value) -> Vec<(String, String)> {
    let mut k: Vec<(String, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["path"].as_str().or(p["file_id"].as_str()).unwrap_or("").to_string(),
            )
        })
        .collect();
    k.sort();
    k
}

fn put(s: &Server, path: &str, data: &[u8]) {
    let (code, body) = s.put_data(path, data);
    assert_eq!(code, 201, "PUT {path}: {body}");
}

/// Where the data of the two damaged archived files is, as archiveinfo says.
fn locality(s: &Server) -> Vec<String> {
    let (code, v) = s.api_post(
        &s.token,
        "archiveinfo",
        &serde_json::json!({"paths": ["/d/f0.dat", "/d/f1.dat"]}),
    );
    assert_eq!(code, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| f["locality"].as_str().unwrap().to_string())
        .collect()
}

fn get(s: &Server, path: &str) -> Vec<u8> {
    let r = s.http().get(s.url_of(path)).bearer_auth(&s.token).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "GET {path}");
    r.bytes().unwrap().to_vec()
}

fn damage_is_found_and_repaired_from_tape(catalog: Catalog) {
    let cfg = tempfile::tempdir().unwrap();
    let s = Server::start_with(catalog, &["--config", &config(cfg.path())]);
    s.run(&["mkdir", "/d"]);
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("/d/f{i}.dat"), bytes(i, 5000 + i as usize)))
        .collect();
    for (p, d) in &files {
        put(&s, p, d);
    }
    s.run(&["queue", "flush"]);
    s.wait_for(60, "on tape", |s| files.iter().all(|(p, _)| state(s, p) == "archived"));
    // Not on tape: stays pooled (the built-in policy waits a day).
    let local_only = bytes(9, 3000);
    put(&s, "/d/local.dat", &local_only);
    s.wait_for(30, "the files settled", |s| {
        let u: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
        u["purgeable_files"].as_u64() == Some(3)
    });
    // Healthy: nothing to report, once every copy is settled and old
    // enough to be judged.
    s.wait_for(20, "all four files checked and checksummed", |s| {
        let (code, report) = fsck(s, &["--checksums"]);
        assert_eq!((code, kinds(&report)), (0, vec![]), "{report}");
        report["files_checked"] == 4 && report["files_checksummed"] == 4
    });

    // The damage.
    std::fs::remove_file(data_path(&s, "/d/f0.dat")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(data_path(&s, "/d/f1.dat"))
        .unwrap()
        .set_len(100)
        .unwrap();
    let lp = data_path(&s, "/d/local.dat");
    let mut bad = std::fs::read(&lp).unwrap();
    bad[10] ^= 0xff;
    std::fs::write(&lp, &bad).unwrap();
    let stray_id = bale_util::FileId::generate().to_string();
    let stray = s
        .data_dir()
        .join("cache/files")
        .join(&stray_id[stray_id.len() - 2..])
        .join(&stray_id);
    std::fs::write(&stray, b"nobody's").unwrap();
    let junk = s.data_dir().join("cache/files/00/junk.txt");
    std::fs::write(&junk, b"junk").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));

    // The plan: reported, nothing changed.
    let tree = s.tree();
    let (code, report) = fsck(&s, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        kinds(&report),
        vec![
            ("missing".to_string(), "/d/f0.dat".to_string()),
            ("orphan".to_string(), String::new()),
            ("orphan".to_string(), stray_id.clone()),
            ("wrong size".to_string(), "/d/f1.dat".to_string()),
        ],
        "{report}"
    );
    let (code, report) = fsck(&s, &["--checksums"]);
    assert_eq!(code, 1);
    assert!(
        kinds(&report).contains(&("bad checksum".to_string(), "/d/local.dat".to_string())),
        "{report}"
    );
    assert!(stray.exists() && junk.exists());
    assert_eq!(s.tree(), tree);
    assert_eq!(locality(&s), ["DISK_AND_TAPE", "DISK_AND_TAPE"], "nothing changed yet");
    // Not for users.
    let alice = s.token_for("alice", "phys");
    let out = s.bale_as(&alice).args(["fsck"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("administrator"));

    // The repair.
    let (code, report) = fsck(&s, &["--repair", "--checksums"]);
    assert_eq!(code, 1, "the file with no tape copy cannot be repaired: {report}");
    let unrepaired: Vec<&Value> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["repaired"] != true)
        .collect();
    assert_eq!(unrepaired.len(), 1, "{report}");
    assert_eq!(unrepaired[0]["path"], "/d/local.dat");
    assert!(!stray.exists() && !junk.exists());
    let lost_found = s.data_dir().join("cache/lost+found");
    assert_eq!(std::fs::read(lost_found.join(&stray_id)).unwrap(), b"nobody's");
    assert_eq!(std::fs::read(lost_found.join("junk.txt")).unwrap(), b"junk");
    let alarms = s.api_get("alarms");
    assert!(
        alarms.as_array().unwrap().iter().any(|a| a["source"] == "cache"
            && a["message"].as_str().unwrap().contains("/d/local.dat")
            && a["message"].as_str().unwrap().contains("lost")),
        "{alarms}"
    );
    // The damaged copy with no other copy is left as it was.
    assert_eq!(std::fs::read(&lp).unwrap(), bad);
    assert_eq!(locality(&s), ["TAPE", "TAPE"], "recorded as not cached");
    // The archived files come back from tape, byte-identical.
    for (p, d) in &files {
        assert!(get(&s, p) == *d, "{p}");
    }
    let (code, report) = fsck(&s, &[]);
    assert_eq!((code, kinds(&report)), (0, vec![]), "{report}");
    let (code, report) = fsck(&s, &["--checksums"]);
    assert_eq!(code, 1);
    assert_eq!(
        kinds(&report),
        vec![("bad checksum".to_string(), "/d/local.dat".to_string())]
    );
}

on_both_catalogs!(damage_is_found_and_repaired_from_tape);

/// A cache copy cut short or lost (what a power cut does to data that
/// never reached the disk) is never served: a read of a file on tape
/// records it as not cached, stages it again and serves it whole (a
/// warning alarm says so); a read of a file with no tape copy fails and an
/// error alarm says the file is lost.
fn a_short_cache_copy_is_never_served(catalog: Catalog) {
    let cfg = tempfile::tempdir().unwrap();
    let s = Server::start_with(catalog, &["--config", &config(cfg.path())]);
    s.run(&["mkdir", "/d"]);
    let files: Vec<(String, Vec<u8>)> = (0..2)
        .map(|i| (format!("/d/f{i}.dat"), bytes(40 + i, 7000 + i as usize)))
        .collect();
    for (p, d) in &files {
        put(&s, p, d);
    }
    s.run(&["queue", "flush"]);
    s.wait_for(60, "on tape", |s| files.iter().all(|(p, _)| state(s, p) == "archived"));
    put(&s, "/d/local.dat", &bytes(49, 3000));
    // One copy cut short, one gone, one of a file not on tape cut short.
    let cut = |p: &str| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(data_path(&s, p))
            .unwrap()
            .set_len(10)
            .unwrap()
    };
    cut("/d/f0.dat");
    std::fs::remove_file(data_path(&s, "/d/f1.dat")).unwrap();
    cut("/d/local.dat");
    for (p, d) in &files {
        assert!(get(&s, p) == *d, "{p} differs");
    }
    assert_eq!(locality(&s), vec!["DISK_AND_TAPE", "DISK_AND_TAPE"]);
    let r = s
        .http()
        .get(s.url_of("/d/local.dat"))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 500, "a short copy with no tape copy is an error");
    let alarms = s.run(&["alarms"]);
    assert!(
        alarms.contains("/d/f0.dat") && alarms.contains("staged again from tape"),
        "{alarms}"
    );
    assert!(alarms.contains("/d/f1.dat"), "{alarms}");
    assert!(
        alarms.contains("/d/local.dat") && alarms.contains("the file is lost"),
        "{alarms}"
    );
}

on_both_catalogs!(a_short_cache_copy_is_never_served);
