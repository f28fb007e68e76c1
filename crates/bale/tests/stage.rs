//! Reading back from tape: purged files come back through ONE read of
//! their package however many ask, every member checked; HEAD and stat
//! never stage; a bad package fails its readers and stays off disk;
//! `on_read_miss = "error"` refuses at once.

mod common;

use common::{bytes, Catalog, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

use common::SMALL_LIBRARY as TAPE;

fn config(dir: &Path, extra: &str) -> String {
    let p = dir.join("bale.toml");
    std::fs::write(&p, format!("{extra}\n{TAPE}")).unwrap();
    p.to_str().unwrap().to_string()
}

fn stat(s: &Server, path: &str) -> Value {
    serde_json::from_str(&s.run(&["stat", "--json", path])).unwrap()
}

/// Writes `n` files into `dir` (two flushes: two packages) and waits until
/// all are on tape. Returns (path, data).
fn archived_files(s: &Server, local: &Path, dir: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    s.run(&["mkdir", dir]);
    let mut files = Vec::new();
    for half in 0..2 {
        let src = local.join(format!("half{half}"));
        std::fs::create_dir_all(&src).unwrap();
        for i in 0..n / 2 {
            let data = bytes((half * 1000 + i) as u64, 1000 + 37 * i);
            std::fs::write(src.join(format!("f{half}-{i}.dat")), &data).unwrap();
            files.push((format!("{dir}/f{half}-{i}.dat"), data));
        }
        let list: Vec<PathBuf> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).collect();
        let mut args = vec!["put".to_string()];
        args.extend(list.iter().map(|p| p.to_str().unwrap().to_string()));
        args.push(dir.to_string());
        s.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        s.run(&["queue", "flush"]);
    }
    s.wait_for(60, "every file on tape", |s| {
        files.iter().all(|(p, _)| stat(s, p)["archive"]["state"] == "archived")
    });
    wait_purgeable(s, files.len());
    files
}

/// Waits until `n` files may be purged: on tape and settled (a file is not
/// purged while its landing note is there).
fn wait_purgeable(s: &Server, n: usize) {
    s.wait_for(30, "the files settled", |s| {
        let u: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
        u["purgeable_files"].as_u64() == Some(n as u64)
    });
}

fn info(s: &Server, paths: &[&str]) -> Vec<Value> {
    let (code, v) = s.api_post(&s.token, "archiveinfo", &json!({ "paths": paths }));
    assert_eq!(code, 200, "{v}");
    v.as_array().unwrap().clone()
}

fn reads(s: &Server) -> Vec<Value> {
    s.api_get("tape/events")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "read")
        .cloned()
        .collect()
}

/// Waits until stage request `id` is complete; on a timeout the panic
/// shows the request, the tape events and the workers.
fn wait_request_done(s: &Server, id: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = s.api_get(&format!("stage/{id}"));
        if r["completedAt"].is_string() {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "stage request {id} not done after 60 s: {r}\nevents: {}\nworkers: {}",
                s.api_get("tape/events"),
                s.api_get("workers")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn get(s: &Server, path: &str) -> (u16, Vec<u8>) {
    let r = s.http().get(s.url_of(path)).bearer_auth(&s.token).send().unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

fn purged_files_come_back_with_one_read_per_package(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(catalog, &["--config", &config(cfg_dir.path(), "")]);
    let local = tempfile::tempdir().unwrap();
    let files = archived_files(&s, local.path(), "/raw", 40);
    let packages = s.api_get("packages");
    assert_eq!(packages.as_array().unwrap().len(), 2, "{packages}");

    let usage: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    assert_eq!(
        (usage["cached_files"].as_u64(), usage["purgeable_files"].as_u64()),
        (Some(40), Some(40))
    );
    // Plan first: nothing changes.
    let dry = s.run(&["purge", "--all", "--dry-run"]);
    assert!(dry.contains("would purge 40 cache copies"), "{dry}");
    assert_eq!(get(&s, &files[0].0).0, 200);
    // A file not on tape is kept, with the reason.
    std::fs::write(local.path().join("new.dat"), b"not yet on tape").unwrap();
    s.run(&["put", local.path().join("new.dat").to_str().unwrap(), "/raw"]);
    let kept = s.run(&["purge", "/raw/new.dat"]);
    assert!(
        kept.contains("kept /raw/new.dat: not on tape yet") && kept.contains("purged 0"),
        "{kept}"
    );
    // Only administrators purge.
    let alice = s.token_for("alice", "phys");
    let out = s.bale_as(&alice).args(["purge", "--all"]).output().unwrap();
    assert!(!out.status.success());

    // archiveinfo before the purge: on disk and on tape; not yet on tape; empty.
    std::fs::write(local.path().join("empty.dat"), b"").unwrap();
    s.run(&["put", local.path().join("empty.dat").to_str().unwrap(), "/raw"]);
    let got = info(
        &s,
        &[
            &files[0].0,
            "/raw/new.dat",
            "/raw/empty.dat",
            "/raw",
            "/raw/nope",
            "not//a path",
        ],
    );
    assert_eq!(got[0], json!({"path": files[0].0, "locality": "DISK_AND_TAPE"}));
    assert_eq!(got[1], json!({"path": "/raw/new.dat", "locality": "DISK"}));
    assert_eq!(got[2], json!({"path": "/raw/empty.dat", "locality": "NONE"}));
    for (i, p) in [(3, "/raw"), (4, "/raw/nope"), (5, "not//a path")] {
        assert_eq!(got[i]["path"], p, "echoed as sent");
        assert!(
            got[i]["error"].is_string() && got[i].get("locality").is_none(),
            "{}",
            got[i]
        );
    }
    let done = s.run(&["purge", "--all"]);
    assert!(done.contains("purged 40 cache copies"), "{done}");
    let all: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert!(info(&s, &all).iter().all(|f| f["locality"] == "TAPE"));
    let cli = s.run(&["archiveinfo", &files[1].0]);
    assert!(cli.starts_with("TAPE"), "{cli}");
    let usage: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    assert_eq!(
        usage["cached_files"].as_u64(),
        Some(2),
        "only new.dat and empty.dat: {usage}"
    );
    let before = reads(&s).len();
    // HEAD and stat do not stage.
    let head = s
        .http()
        .head(s.url_of(&files[0].0))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(stat(&s, &files[0].0)["size"].as_u64(), Some(files[0].1.len() as u64));
    assert_eq!(reads(&s).len(), before);

    // 60 concurrent GETs of every file (some twice): one tape read per package.
    let s = std::sync::Arc::new(s);
    let handles: Vec<_> = (0..60)
        .map(|i| {
            let (s, (path, data)) = (s.clone(), files[i % files.len()].clone());
            std::thread::spawn(move || {
                let (code, body) = get(&s, &path);
                assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
                assert!(body == data, "{path}: bytes differ");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let after = reads(&s);
    assert_eq!(after.len() - before, 2, "one read per package: {:?}", &after[before..]);
    let usage: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    assert_eq!(usage["cached_files"].as_u64(), Some(42), "every member cached: {usage}");
    assert!(info(&s, &all).iter().all(|f| f["locality"] == "DISK_AND_TAPE"));
    // Cached now: no more tape reads.
    assert_eq!(get(&s, &files[5].0).0, 200);
    assert_eq!(reads(&s).len(), after.len());
    let stage_dir = s.data_dir().join("cache/stage");
    assert_eq!(std::fs::read_dir(&stage_dir).unwrap().count(), 0, "stage area empty");
}

fn a_bad_package_fails_its_readers_and_stays_off_disk(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(catalog, &["--config", &config(cfg_dir.path(), "")]);
    let local = tempfile::tempdir().unwrap();
    let files = archived_files(&s, local.path(), "/raw", 10);
    s.run(&["purge", "--all"]);
    // One byte of the first package's first member changes on tape.
    let pkg = &s.api_get("packages")[0];
    let (vol, seq) = (pkg["volume"].as_str().unwrap(), pkg["seq"].as_u64().unwrap());
    let shown = s.run(&["package", "show", "--json", pkg["id"].as_str().unwrap()]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let member = &shown["members"][0];
    let tape_file = s.data_dir().join(format!("library/{vol}/f{seq:08}.tar"));
    let mut data = std::fs::read(&tape_file).unwrap();
    let at = member["offset"].as_u64().unwrap() as usize + 10;
    data[at] ^= 0xff;
    std::fs::write(&tape_file, &data).unwrap();
    let path = member["path"].as_str().unwrap();
    let (code, body) = get(&s, path);
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("adler32"), "{problem}");
    // Nothing of that package became readable: all its members stay on tape only.
    let usage: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    let same_pkg = files
        .iter()
        .filter(|(p, _)| shown["members"].as_array().unwrap().iter().any(|m| m["path"] == *p))
        .count();
    assert!(same_pkg > 1);
    assert_eq!(usage["cached_files"].as_u64(), Some(0), "{usage}");
    assert!(s
        .api_get("alarms")
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["message"].as_str().unwrap().contains("adler32")));
    let stage_dir = s.data_dir().join("cache/stage");
    assert_eq!(std::fs::read_dir(&stage_dir).unwrap().count(), 0, "stage area cleaned");
    // The other package still stages.
    let other = files
        .iter()
        .find(|(p, _)| !shown["members"].as_array().unwrap().iter().any(|m| m["path"] == *p))
        .unwrap();
    let (code, body) = get(&s, &other.0);
    assert_eq!(code, 200);
    assert!(body == other.1);
}

fn on_read_miss_error_refuses_at_once(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        catalog,
        &["--config", &config(cfg_dir.path(), "[stage]\non_read_miss = \"error\"")],
    );
    let local = tempfile::tempdir().unwrap();
    let files = archived_files(&s, local.path(), "/raw", 4);
    s.run(&["purge", "--all"]);
    let before = reads(&s).len();
    let (code, body) = get(&s, &files[0].0);
    assert_eq!(code, 409);
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("on tape only"),
        "{problem}"
    );
    assert_eq!(reads(&s).len(), before);
    // Bad input to purge changes nothing.
    let (code, _) = s.api_post(
        &s.token,
        "cache/purge",
        &json!({"paths": ["/raw/f0-0.dat"], "all": true}),
    );
    assert_eq!(code, 400);
    let (code, _) = s.api_post(&s.token, "cache/purge", &json!({"paths": ["/nope"]}));
    assert_eq!(code, 404);
    let (code, _) = s.api_post(&s.token, "cache/purge", &json!({"paths": ["relative"]}));
    assert_eq!(code, 400);
    let (code, _) = s.api_post(&s.token, "cache/purge", &json!({"paths": [], "bogus": 1}));
    assert_eq!(code, 400);
}

fn pins_hold_files_against_purges(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(catalog, &["--config", &config(cfg_dir.path(), "")]);
    let local = tempfile::tempdir().unwrap();
    let files = archived_files(&s, local.path(), "/raw", 4);
    let (f00, f01) = (files[0].0.as_str(), files[1].0.as_str());
    let alice = s.token_for("alice", "phys");
    let out = s
        .bale_as(&alice)
        .args(["pin", f00, "--lifetime", "1h"])
        .output()
        .unwrap();
    common::assert_ok(&out, "pin");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pinned 1 file for 1 hour"));
    // A user pins under their own name only.
    let out = s
        .bale_as(&alice)
        .args(["pin", f01, "--lifetime", "1h", "--owner", "sam"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    s.run(&["pin", f01, "--lifetime", "1s", "--owner", "sam"]);
    let shown = s.run(&["pins", f00]);
    assert!(shown.contains("alice"), "{shown}");
    let done = s.run(&["purge", "--all"]);
    assert!(done.contains("purged 2 cache copies"), "{done}");
    let usage: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    assert_eq!(usage["pinned_files"].as_u64(), Some(2), "{usage}");
    let kept = s.run(&["purge", f00]);
    assert!(kept.contains(&format!("kept {f00}: pinned")), "{kept}");
    // An expired pin stops protecting.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let done = s.run(&["purge", "--all"]);
    assert!(done.contains("purged 1 cache copy"), "{done}");
    // A released pin too.
    let out = s.bale_as(&alice).args(["unpin", f00]).output().unwrap();
    common::assert_ok(&out, "unpin");
    assert!(String::from_utf8_lossy(&out.stdout).contains("released 1 pin"));
    let done = s.run(&["purge", "--all"]);
    assert!(done.contains("purged 1 cache copy"), "{done}");
    // Bad input changes nothing.
    for (body, code) in [
        (json!({"paths": [f00], "lifetime_s": 0}), 400),
        (json!({"paths": [], "lifetime_s": 60}), 400),
        (json!({"paths": ["/raw/nope"], "lifetime_s": 60}), 404),
        (json!({"paths": ["/raw"], "lifetime_s": 60}), 409),
        (json!({"paths": [f00]}), 400),
        (json!({"paths": [f00], "lifetime_s": 60, "colour": "red"}), 400),
    ] {
        let (got, answer) = s.api_post(&s.token, "pins", &body);
        assert_eq!(got, code, "{body}: {answer}");
    }
    assert!(s.run(&["pins", f00]).trim().is_empty());
}

/// Files of two families (two volumes), three packages each.
/// 3,000 small files in two file families, three flushes each: six
/// packages over two volumes, each in position order 0, 1, 2.
fn two_volumes_of_packages(s: &Server, local: &Path) -> Vec<(String, Vec<u8>)> {
    const PER_ROUND: usize = 500;
    let mut files = Vec::new();
    for ff in ["ffa", "ffb"] {
        let dir = format!("/{ff}");
        s.run(&["mkdir", &dir]);
        s.run(&["tag", "set", &dir, "storage_group=mu2e", &format!("file_family={ff}")]);
        for round in 0..3 {
            let src = local.join(format!("{ff}-{round}"));
            std::fs::create_dir_all(&src).unwrap();
            for i in 0..PER_ROUND {
                let data = bytes((round * 1000 + i) as u64 + ff.len() as u64 * 7, 200 + 13 * (i % 150));
                std::fs::write(src.join(format!("r{round}-{i}.dat")), &data).unwrap();
                files.push((format!("{dir}/{ff}-{round}/r{round}-{i}.dat"), data));
            }
            s.run(&["put", "-j", "4", src.to_str().unwrap(), &dir]);
            s.run(&["queue", "flush"]);
            s.wait_for(120, "the round on tape", |s| {
                let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
                info(s, &paths).iter().all(|f| f["locality"] == "DISK_AND_TAPE")
            });
        }
    }
    wait_purgeable(s, files.len());
    files
}

fn one_bulk_stage_mounts_each_volume_once_and_reads_in_tape_order(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(catalog, &["--config", &config(cfg_dir.path(), "")]);
    let local = tempfile::tempdir().unwrap();
    let files = two_volumes_of_packages(&s, local.path());
    let packages = s.api_get("packages");
    let vols: std::collections::BTreeSet<&str> = packages
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["volume"].as_str().unwrap())
        .collect();
    assert_eq!((packages.as_array().unwrap().len(), vols.len()), (6, 2), "{packages}");
    s.run(&["purge", "--all"]);
    let all: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert!(
        info(&s, &all).iter().all(|f| f["locality"] == "TAPE"),
        "every file on tape only"
    );
    // Let the drives unload, so that the stage must mount.
    s.wait_for(30, "the drives idle and empty", |s| {
        s.api_get("drives")
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["volume"].is_null())
    });
    let seq0 = s.api_get("tape/events").as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    // One request for every file (shuffled), plus a missing one and a directory.
    let mut paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    paths.reverse();
    paths.push("/ffa/nope.dat".into());
    paths.push("/ffb".into());
    let list = local.path().join("list.txt");
    std::fs::write(&list, paths.join("\n")).unwrap();
    let out = s
        .bale()
        .args(["stage", "--from-file", list.to_str().unwrap(), "--wait"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "two files fail: {text}");
    assert!(text.contains("3000 completed, 2 failed"), "{text}");
    assert!(text.contains("/ffa/nope.dat") && text.contains("/ffb"), "{text}");
    let events: Vec<Value> = s
        .api_get(&format!("tape/events?after={seq0}"))
        .as_array()
        .unwrap()
        .clone();
    let mounts: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "mount")
        .map(|e| e["volume"].as_str().unwrap())
        .collect();
    let mut sorted = mounts.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(mounts.len(), sorted.len(), "each volume mounted once: {mounts:?}");
    assert_eq!(mounts.len(), 2);
    for v in &vols {
        let order: Vec<u64> = events
            .iter()
            .filter(|e| e["kind"] == "read" && e["volume"] == *v)
            .map(|e| e["tape_file"].as_u64().unwrap())
            .collect();
        assert_eq!(order, [0, 1, 2], "volume {v}: each package once, in position order");
    }
    // Every file back, byte-identical, no more tape reads.
    let n = reads(&s).len();
    for (p, d) in &files {
        let (code, body) = get(&s, p);
        assert_eq!(code, 200);
        assert!(body == *d, "{p}");
    }
    assert_eq!(reads(&s).len(), n);
    assert!(info(&s, &all).iter().all(|f| f["locality"] == "DISK_AND_TAPE"));
    // The request: its files echoed as sent, errors only where there are any.
    let id: i64 = {
        let listing = s.api_get("stage/1");
        assert_eq!(listing["owner"], "admin");
        assert_eq!(listing["files"][0]["path"], paths[0].as_str());
        assert!(listing["files"][0].get("error").is_none());
        assert_eq!(listing["files"][3000]["state"], "FAILED");
        assert!(listing["files"][3000]["error"].is_string());
        assert!(listing["completedAt"].is_string());
        1
    };
    let p = s.api_get(&format!("stage/{id}/progress"));
    let bytes: usize = files.iter().map(|(_, d)| d.len()).sum();
    assert_eq!(
        (&p["files_done"], &p["files_failed"], &p["bytes_done"]),
        (&json!(3000), &json!(2), &json!(bytes)),
        "{p}"
    );
    assert_eq!(
        (&p["packages_done"], &p["volumes_done"], &p["mounts_left"]),
        (&json!(6), &json!(2), &json!(0)),
        "{p}"
    );
    // Only its requester or an administrator sees it; bad ids and paths.
    let alice = s.token_for("alice", "phys");
    let r = s
        .http()
        .get(s.url_of(&format!("/api/v1/stage/{id}")))
        .bearer_auth(&alice)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = s
        .http()
        .get(s.url_of("/api/v1/stage/999"))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = s
        .http()
        .get(s.url_of("/api/v1/stage/abc"))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (code, _) = s.api_post(
        &s.token,
        &format!("stage/{id}/cancel"),
        &json!({"paths": ["/not/in/it"]}),
    );
    assert_eq!(code, 400);
    let (code, _) = s.api_post(&s.token, "stage", &json!({"paths": []}));
    assert_eq!(code, 400);
    let (code, _) = s.api_post(&s.token, "stage", &json!({"files": ["/ffa"]}));
    assert_eq!(code, 400);
    // The request pins its files until released.
    let usage: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    assert_eq!(usage["pinned_files"].as_u64(), Some(3000), "{usage}");
    let (code, v) = s.api_post(&s.token, &format!("stage/{id}/release"), &json!({}));
    assert_eq!((code, v["released"].as_u64()), (200, Some(3000)));
    let usage: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    assert_eq!(usage["pinned_files"].as_u64(), Some(0), "{usage}");
}

fn a_bulk_stage_killed_midway_resumes_after_restart(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let slow = cfg_dir.path().join("slow.toml");
    std::fs::write(&slow, common::SLOW_TAPE).unwrap();
    let fast = cfg_dir.path().join("fast.toml");
    std::fs::write(&fast, common::SLOW_TAPE.replace("time_scale = 1.0", "time_scale = 0.0")).unwrap();
    let mut s = Server::start_with(catalog, &["--config", fast.to_str().unwrap()]);
    let local = tempfile::tempdir().unwrap();
    s.run(&["mkdir", "/raw"]);
    let mut files = Vec::new();
    for round in 0..3 {
        let mut args = vec!["put".to_string()];
        for i in 0..5 {
            let data = bytes(round * 10 + i, 400_000);
            let p = local.path().join(format!("k{round}-{i}.dat"));
            std::fs::write(&p, &data).unwrap();
            args.push(p.to_str().unwrap().to_string());
            files.push((format!("/raw/k{round}-{i}.dat"), data));
        }
        args.push("/raw".into());
        s.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        s.run(&["queue", "flush"]);
        s.wait_for(60, "on tape", |s| {
            files.iter().all(|(p, _)| stat(s, p)["archive"]["state"] == "archived")
        });
    }
    wait_purgeable(&s, files.len());
    s.run(&["purge", "--all"]);
    let package_of: std::collections::HashMap<String, String> = files
        .iter()
        .map(|(p, _)| {
            let pkg = stat(&s, p)["archive"]["copies"][0]["package"]
                .as_str()
                .unwrap()
                .to_string();
            (p.clone(), pkg)
        })
        .collect();
    // Slow drives (2 MB/s: 1 s per package) for the stage, killed midway.
    s.restart_with(&["--config", slow.to_str().unwrap()]);
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    let (code, v) = s.api_post(&s.token, "stage", &json!({ "paths": paths }));
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_i64().unwrap();
    // Killed after a first package is in, while another is being read.
    s.wait_for(30, "one package staged and another under way", |s| {
        let c = &s.api_get(&format!("stage/{id}"))["counts"];
        c["COMPLETED"].as_u64().unwrap() >= 5 && c["STARTED"].as_u64().unwrap() > 0
    });
    let r = s.api_get(&format!("stage/{id}"));
    // No member of a package under way is on disk before the whole package
    // checked out.
    let started: Vec<&str> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["state"] == "STARTED")
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    let on_disk: Vec<Value> = info(&s, &started)
        .into_iter()
        .filter(|f| f["locality"] != "TAPE")
        .collect();
    let now = s.api_get(&format!("stage/{id}"));
    for f in &on_disk {
        let entry = now["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == f["path"])
            .unwrap();
        assert_eq!(
            entry["state"], "COMPLETED",
            "on disk only once its package checked out: {f}"
        );
    }
    s.kill9();
    let done_before: std::collections::BTreeSet<&str> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["state"] == "COMPLETED")
        .map(|f| package_of[f["path"].as_str().unwrap()].as_str())
        .collect();
    assert!(!done_before.is_empty() && done_before.len() < 3, "{done_before:?}");
    s.restart_with(&["--config", fast.to_str().unwrap()]);
    wait_request_done(&s, id);
    let r = s.api_get(&format!("stage/{id}"));
    assert_eq!(r["counts"]["COMPLETED"].as_u64(), Some(15), "{r}");
    // The packages finished before the kill were not read again.
    let reread: Vec<String> = reads(&s)
        .iter()
        .map(|e| e["detail"].as_str().unwrap().trim_start_matches("package ").to_string())
        .collect();
    // (A package that finished between the poll and the kill is neither.)
    let once: std::collections::BTreeSet<&String> = reread.iter().collect();
    assert_eq!(once.len(), reread.len(), "each package read once: {reread:?}");
    assert!(reread.len() + done_before.len() <= 3, "{reread:?} {done_before:?}");
    assert!(
        reread.iter().all(|p| !done_before.contains(p.as_str())),
        "{reread:?} {done_before:?}"
    );
    assert_eq!(std::fs::read_dir(s.data_dir().join("cache/stage")).unwrap().count(), 0);
    let n = reads(&s).len();
    for (p, d) in &files {
        let (code, body) = get(&s, p);
        assert_eq!(code, 200);
        assert!(body == *d, "{p}");
    }
    assert_eq!(reads(&s).len(), n, "all cached by the resumed request");
}

fn two_bulk_requests_share_their_package_reads(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(catalog, &["--config", &config(cfg_dir.path(), "")]);
    let local = tempfile::tempdir().unwrap();
    let files = archived_files(&s, local.path(), "/raw", 20);
    s.run(&["purge", "--all"]);
    let before = reads(&s).len();
    // Overlapping halves, submitted together: every package read once.
    let all: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    let (a, b) = (&all[..14], &all[6..]);
    let (ca, va) = s.api_post(&s.token, "stage", &json!({ "paths": a }));
    let (cb, vb) = s.api_post(&s.token, "stage", &json!({ "paths": b }));
    assert_eq!((ca, cb), (201, 201), "{va} {vb}");
    for v in [&va, &vb] {
        let id = v["id"].as_i64().unwrap();
        wait_request_done(&s, id);
        let r = s.api_get(&format!("stage/{id}"));
        assert_eq!(r["counts"]["FAILED"], 0, "{r}");
    }
    assert_eq!(reads(&s).len() - before, 2, "two packages, one read each");
    // Deleting the requests releases their pins: the files may go again.
    for v in [&va, &vb] {
        let r = s
            .http()
            .delete(s.url_of(&format!("/api/v1/stage/{}", v["id"])))
            .bearer_auth(&s.token)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
    }
    // A bad package: the request ends FAILED for its files, not stuck.
    wait_purgeable(&s, 20);
    s.run(&["purge", "--all"]);
    let pkg = &s.api_get("packages")[0];
    let (vol, seq) = (pkg["volume"].as_str().unwrap(), pkg["seq"].as_u64().unwrap());
    let tape_file = s.data_dir().join(format!("library/{vol}/f{seq:08}.tar"));
    let mut data = std::fs::read(&tape_file).unwrap();
    let n = data.len();
    data[n / 2] ^= 0x55;
    std::fs::write(&tape_file, &data).unwrap();
    let (code, v) = s.api_post(&s.token, "stage", &json!({ "paths": all }));
    assert_eq!(code, 201);
    let id = v["id"].as_i64().unwrap();
    wait_request_done(&s, id);
    let r = s.api_get(&format!("stage/{id}"));
    let (done, failed) = (
        r["counts"]["COMPLETED"].as_u64().unwrap(),
        r["counts"]["FAILED"].as_u64().unwrap(),
    );
    assert_eq!((done, failed), (10, 10), "one package good, one bad: {r}");
    let f = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["state"] == "FAILED")
        .unwrap();
    assert!(f["error"].as_str().unwrap().contains("staging package"), "{f}");
    // Nothing of the bad package is left in the stage area, not even a
    // member cut short.
    assert_eq!(std::fs::read_dir(s.data_dir().join("cache/stage")).unwrap().count(), 0);
}

fn a_policy_rule_decides_the_read_miss(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let policy = cfg_dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"
[[rule]]
name = "mu2e"
match = { path = "/mu2e/**" }
action = "aggregate"
on_read_miss = "error"
max_member_size = "1 GB"
target_size = "8 GB"
max_files = 2000
max_wait_s = 86400

[[rule]]
name = "rest"
action = "aggregate"
max_member_size = "1 GB"
target_size = "8 GB"
max_files = 2000
max_wait_s = 86400
"#,
    )
    .unwrap();
    let s = Server::start_with(
        catalog,
        &[
            "--config",
            &config(cfg_dir.path(), ""),
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    let local = tempfile::tempdir().unwrap();
    let mu2e = archived_files(&s, local.path(), "/mu2e", 2);
    let other = archived_files(&s, &local.path().join("o"), "/other", 2);
    s.run(&["purge", "--all"]);
    // The rule says "error" for /mu2e; the server's default stages the rest.
    let (code, body) = get(&s, &mu2e[0].0);
    assert_eq!(code, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("on tape only"));
    let (code, body) = get(&s, &other[0].0);
    assert_eq!(code, 200);
    assert!(body == other[0].1);
}

/// A cancel stops the package reads no other request needs: queued ones
/// are dropped before the drive gets to them; a package another request
/// still wants is read for it.
fn a_cancel_stops_the_reads_no_one_needs(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let slow = cfg_dir.path().join("slow.toml");
    std::fs::write(&slow, common::SLOW_TAPE).unwrap();
    let fast = cfg_dir.path().join("fast.toml");
    std::fs::write(&fast, common::SLOW_TAPE.replace("time_scale = 1.0", "time_scale = 0.0")).unwrap();
    let mut s = Server::start_with(catalog, &["--config", fast.to_str().unwrap()]);
    let local = tempfile::tempdir().unwrap();
    s.run(&["mkdir", "/raw"]);
    // Four packages of 2 MB on one volume: a second each at 2 MB/s.
    let mut rounds: Vec<Vec<String>> = Vec::new();
    for round in 0..4 {
        let mut args = vec!["put".to_string()];
        let mut paths = Vec::new();
        for i in 0..5 {
            let p = local.path().join(format!("c{round}-{i}.dat"));
            std::fs::write(&p, bytes(round * 10 + i, 400_000)).unwrap();
            args.push(p.to_str().unwrap().to_string());
            paths.push(format!("/raw/c{round}-{i}.dat"));
        }
        args.push("/raw".into());
        s.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        s.run(&["queue", "flush"]);
        s.wait_for(60, "on tape", |s| {
            paths.iter().all(|p| stat(s, p)["archive"]["state"] == "archived")
        });
        rounds.push(paths);
    }
    wait_purgeable(&s, 20);
    s.run(&["purge", "--all"]);
    let package_of = |paths: &[String]| {
        stat(&s, &paths[0])["archive"]["copies"][0]["package"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let packages: Vec<String> = rounds.iter().map(|r| package_of(r)).collect();
    s.restart_with(&["--config", slow.to_str().unwrap()]);
    // A wants everything; B only the last package.
    let all: Vec<&str> = rounds.iter().flatten().map(String::as_str).collect();
    let (code, a) = s.api_post(&s.token, "stage", &json!({ "paths": all }));
    assert_eq!(code, 201, "{a}");
    let (code, b) = s.api_post(&s.token, "stage", &json!({ "paths": rounds[3] }));
    assert_eq!(code, 201, "{b}");
    let (a, b) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    // Time left from the timing model: 8 MB at 2 MB/s, a mount and locates
    // of a 1 GB tape (0.1 s end to end) at most.
    let p = s.api_get(&format!("stage/{a}/progress"));
    assert_eq!(
        (p["files"].as_u64(), p["bytes"].as_u64()),
        (Some(20), Some(8_000_000)),
        "{p}"
    );
    assert_eq!(
        (p["packages"].as_u64(), p["volumes"].as_u64()),
        (Some(4), Some(1)),
        "{p}"
    );
    if p["packages_done"] == 0 {
        let sizes: u64 = s
            .api_get("packages")
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["size"].as_u64().unwrap())
            .sum();
        let bytes_s = sizes as f64 / 2_000_000.0;
        let left = p["modelled_s_left"].as_f64().unwrap();
        assert!(
            left >= bytes_s && left <= bytes_s + 0.3,
            "{left} for {bytes_s} s of bytes: {p}"
        );
        assert_eq!(p["time_left_s"], p["modelled_s_left"], "time scale 1");
    }
    s.wait_for(30, "A's first package in", |s| {
        s.api_get(&format!("stage/{a}"))["counts"]["COMPLETED"]
            .as_u64()
            .unwrap()
            >= 5
    });
    let (code, v) = s.api_post(&s.token, &format!("stage/{a}/cancel"), &json!({}));
    assert_eq!(code, 200, "{v}");
    wait_request_done(&s, a);
    wait_request_done(&s, b);
    let rb = s.api_get(&format!("stage/{b}"));
    assert_eq!(
        rb["counts"]["COMPLETED"].as_u64(),
        Some(5),
        "B's package read for B: {rb}"
    );
    let ra = s.api_get(&format!("stage/{a}"));
    let cancelled = ra["counts"]["CANCELLED"].as_u64().unwrap();
    let p = s.api_get(&format!("stage/{a}/progress"));
    assert_eq!(p["files_cancelled"].as_u64(), Some(cancelled), "{p}");
    assert_eq!(
        (p["volumes_done"].as_u64(), p["time_left_s"].as_f64()),
        (Some(1), Some(0.0)),
        "{p}"
    );
    let out = s.run(&["stage", "status", &a.to_string()]);
    assert!(out.contains("4/4 packages and 1/1 volumes done"), "{out}");
    assert!(cancelled >= 5, "{ra}");
    // The drive idles: nothing more is read.
    s.wait_for(30, "the drives idle", |s| {
        s.api_get("workers")
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["name"].as_str().unwrap().starts_with("drive "))
            .all(|w| w["state"] == "idle")
    });
    let read: Vec<String> = reads(&s)
        .iter()
        .map(|e| e["detail"].as_str().unwrap().trim_start_matches("package ").to_string())
        .collect();
    assert!(read.contains(&packages[0]) && read.contains(&packages[3]), "{read:?}");
    assert!(!read.contains(&packages[2]), "package 2 was needed by no one: {read:?}");
    let abandoned: u64 = s
        .api_get("workers")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["counters"]["reads_abandoned"].as_u64())
        .sum();
    assert!(abandoned >= 1, "the drive dropped the reads no one waited for");
    // What was cancelled is on tape only, nothing left in the stage area.
    assert!(info(&s, &rounds[2].iter().map(String::as_str).collect::<Vec<_>>())
        .iter()
        .all(|f| f["locality"] == "TAPE"));
    assert_eq!(std::fs::read_dir(s.data_dir().join("cache/stage")).unwrap().count(), 0);
}

/// Bulk requests larger than an ordinary JSON body (50,000 paths, 2.6 MB)
/// are taken in: every path resolved, missing ones failed with their
/// reason, cached ones completed at once; archiveinfo of as many answers.
fn a_request_of_fifty_thousand_paths_is_taken_in(catalog: Catalog) {
    let s = Server::start_on(catalog);
    s.run(&["mkdir", "/big"]);
    let local = tempfile::tempdir().unwrap();
    for i in 0..3 {
        std::fs::write(local.path().join(format!("r{i}.dat")), bytes(i, 100)).unwrap();
    }
    s.run(&["put", local.path().to_str().unwrap(), "/big"]);
    let real = s.run(&["ls", "/big"]);
    let dir = real.lines().next().unwrap().trim().trim_end_matches('/').to_string();
    let mut paths: Vec<String> = (0..50_000).map(|i| format!("/big/{dir}/missing-{i:06}.dat")).collect();
    for i in 0..3 {
        paths.insert(i * 20_000, format!("/big/{dir}/r{i}.dat"));
    }
    let (code, v) = s.api_post(&s.token, "stage", &json!({ "paths": paths }));
    assert_eq!(code, 201, "{v}");
    let r = s.api_get(&format!("stage/{}", v["id"]));
    assert_eq!(r["counts"]["COMPLETED"], 3, "{}", r["counts"]);
    assert_eq!(r["counts"]["FAILED"], 50_000);
    assert!(r["completedAt"].is_string());
    assert_eq!(r["files"][20_000]["state"], "COMPLETED");
    // The reason beside the path (not the path again: a million missing
    // files would be a million copies of their paths).
    let e = r["files"][1]["error"].as_str().unwrap();
    assert_eq!(r["files"][1]["path"], paths[1]);
    assert_eq!(e, "does not exist");
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let answer = info(&s, &refs);
    assert_eq!(answer.len(), 50_003);
    assert_eq!(answer[40_000]["locality"], "DISK");
    assert!(answer[40_001]["error"].is_string());
}

on_both_catalogs!(
    a_request_of_fifty_thousand_paths_is_taken_in,
    a_cancel_stops_the_reads_no_one_needs,
    a_policy_rule_decides_the_read_miss,
    two_bulk_requests_share_their_package_reads,
    a_bulk_stage_killed_midway_resumes_after_restart,
    one_bulk_stage_mounts_each_volume_once_and_reads_in_tape_order,
    pins_hold_files_against_purges,
    purged_files_come_back_with_one_read_per_package,
    a_bad_package_fails_its_readers_and_stays_off_disk,
    on_read_miss_error_refuses_at_once,
    the_purger_keeps_use_between_the_marks_and_the_recently_read
);

fn the_purger_keeps_use_between_the_marks_and_the_recently_read(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let extra = "[cache]\ncapacity = \"100 KB\"\npurge_high = 0.8\npurge_low = 0.5\npurge_check_ms = 200\n\n\
                 [namespace]\naccess_time_flush_ms = 50\n";
    let s = Server::start_with(catalog, &["--config", &config(cfg_dir.path(), extra)]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mut files = Vec::new();
    for i in 0..20 {
        let data = bytes(i, 10_000);
        std::fs::write(src.join(format!("f{i:02}.dat")), &data).unwrap();
        files.push((format!("/src/f{i:02}.dat"), data));
    }
    s.run(&["put", "-j", "4", src.to_str().unwrap(), "/"]);
    // Not on tape yet: nothing may go, however full the cache is.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let usage: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    assert_eq!(usage["cached_bytes"].as_u64(), Some(200_000), "{usage}");
    // The operator is told, once, with each round's repeat counted.
    let cache_alarms = |s: &Server| -> Vec<Value> {
        s.api_get("alarms")
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["source"] == "cache")
            .cloned()
            .collect()
    };
    s.wait_for(10, "the cache alarm repeated", |s| {
        cache_alarms(s)
            .first()
            .is_some_and(|a| a["count"].as_u64().unwrap() >= 2)
    });
    let alarm = &cache_alarms(&s)[0];
    assert_eq!(cache_alarms(&s).len(), 1, "repeats fold into one alarm");
    assert_eq!(alarm["severity"], "warning");
    assert!(alarm["message"].as_str().unwrap().contains("high mark"), "{alarm}");
    // Three files are read: they are the most recently read.
    std::thread::sleep(std::time::Duration::from_millis(20));
    for (p, d) in &files[..3] {
        let (code, body) = get(&s, p);
        assert_eq!(code, 200);
        assert!(body == *d);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.run(&["queue", "flush"]);
    s.wait_for(60, "use under the low mark", |s| {
        let u: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
        u["cached_bytes"].as_u64().unwrap() <= 50_000
    });
    let usage: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    // Purged down to the low mark, not further.
    assert!(usage["cached_bytes"].as_u64().unwrap() >= 40_000, "{usage}");
    let purger = s.api_get("workers");
    let purger = purger
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "purger")
        .unwrap()
        .clone();
    assert!(purger["counters"]["files"].as_u64().unwrap() >= 15, "{purger}");
    // The three read last survived: reading them needs no tape read.
    let before = reads(&s).len();
    for (p, d) in &files[..3] {
        let (code, body) = get(&s, p);
        assert_eq!(code, 200);
        assert!(body == *d);
    }
    assert_eq!(reads(&s).len(), before, "the recently read were kept");
    // An older one was purged and comes back from tape.
    let (code, body) = get(&s, &files[10].0);
    assert_eq!(code, 200);
    assert!(body == files[10].1);
    assert_eq!(reads(&s).len(), before + 1);
}

/// Times that belong to the data: `bale put` sends each local file's
/// modification time, the server keeps it through packing, purge and
/// stage, and `bale get` restores it, to the nanosecond.
#[test]
fn local_mtimes_survive_put_purge_stage_get() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(Catalog::Sqlite, &["--config", &config(cfg_dir.path(), "")]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mut want = Vec::new();
    for i in 0..4u64 {
        let p = src.join(format!("m{i}.dat"));
        std::fs::write(&p, bytes(i, 2000 + i as usize)).unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_300_000_000 + i * 86_400, 123_456_789 * i as u32);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
        want.push((format!("m{i}.dat"), t));
    }
    s.run(&["mkdir", "/times"]);
    let mut args = vec!["put".to_string()];
    args.extend(want.iter().map(|(n, _)| src.join(n).to_str().unwrap().to_string()));
    args.push("/times".into());
    s.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let v = stat(&s, "/times/m1.dat");
    assert_eq!(v["mtime"], "2011-03-14T07:06:40.123456789Z", "{v}");
    s.run(&["queue", "flush"]);
    s.wait_for(60, "every file on tape", |s| {
        want.iter()
            .all(|(n, _)| stat(s, &format!("/times/{n}"))["archive"]["state"] == "archived")
    });
    wait_purgeable(&s, want.len());
    s.run(&["purge", "--all"]);
    let usage: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    assert_eq!(usage["cached_files"], 0, "{usage}");
    // `bale get -r` stages them back and sets each local file's time.
    let back = local.path().join("back");
    s.run(&["get", "-r", "/times", back.to_str().unwrap()]);
    for (n, t) in &want {
        let m = std::fs::metadata(back.join(n)).unwrap();
        assert_eq!(m.modified().unwrap(), *t, "{n}");
    }
    assert_eq!(stat(&s, "/times/m1.dat")["mtime"], "2011-03-14T07:06:40.123456789Z");
}
