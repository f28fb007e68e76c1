//! Disk full: the data directory (cache and SQLite catalog) on a small
//! loop-mounted ext4 filesystem. A PUT that does not fit is answered 507
//! Insufficient Storage (retryable), nothing of it is kept, every file
//! acknowledged before reads back, the same PUT succeeds by itself once
//! space is freed, and the catalog survives a restart intact.
//!
//! Needs root (mount) and a loop device, as CI has; outside CI the test
//! says so and passes without running when it cannot mount.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small ext4 filesystem mounted at a path; unmounted when dropped.
struct SmallFs {
    mount: PathBuf,
    _image: tempfile::TempDir,
}

impl SmallFs {
    /// 64 MiB mounted at `at`; `None` (said on stderr) where mounting is
    /// not possible, which CI must never be.
    fn mount_or_skip(at: &Path) -> Option<SmallFs> {
        let fs = SmallFs::mount(at, 64);
        if fs.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must be able to mount a loop filesystem"
            );
            eprintln!("disk_full: cannot mount a loop filesystem here (not root?); not run");
        }
        fs
    }

    fn mount(at: &Path, mib: u64) -> Option<SmallFs> {
        let image = tempfile::tempdir().unwrap();
        let file = image.path().join("fs.img");
        std::fs::File::create(&file).unwrap().set_len(mib << 20).unwrap();
        // No blocks reserved for root: the server runs as root here, and
        // should see the disk full when it is.
        let ok = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
        if !ok(Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0"]).arg(&file)) {
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        if !ok(Command::new("mount").args(["-o", "loop"]).arg(&file).arg(at)) {
            return None;
        }
        Some(SmallFs {
            mount: at.to_path_buf(),
            _image: image,
        })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn get(s: &Server, path: &str) -> Vec<u8> {
    let r = s.http().get(s.url_of(path)).bearer_auth(&s.token).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "GET {path}");
    r.bytes().unwrap().to_vec()
}

fn a_full_cache_refuses_with_507_and_recovers_by_itself(catalog: Catalog) {
    let dir = tempfile::Builder::new().prefix("bale-test-").tempdir().unwrap();
    let Some(fs) = SmallFs::mount_or_skip(&dir.path().join("data")) else {
        return;
    };
    let mut s = Server::start_in(catalog, dir, &[]);
    // 8 MiB files until one does not fit.
    let mut kept = Vec::new();
    let mut refused = None;
    for i in 0..20u8 {
        let path = format!("/f{i:02}.dat");
        let data = bytes(i as u64, 8 << 20);
        let (code, body) = s.put_data(&path, &data);
        match code {
            201 => kept.push((path, data)),
            507 => {
                refused = Some((path, data, body));
                break;
            }
            other => panic!("PUT {path}: {other} {body}"),
        }
    }
    let (path, data, body) = refused.expect("the filesystem filled up");
    assert!(kept.len() >= 3, "{} files fit", kept.len());
    assert_eq!(body["status"], 507, "{body}");
    assert_eq!(body["retryable"], true, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("cache is full"), "{body}");
    // Nothing of the refused file: not in the namespace, no temporary data.
    assert!(s.tree().iter().all(|(p, _)| *p != path), "{:?}", s.tree());
    assert_eq!(s.tmp_entries(), 0, "temporary data left behind");
    // The operator is told (on a full disk the catalog may refuse that
    // write too; here it has room for it).
    let alarms = s.api_get("alarms");
    assert!(
        alarms
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["source"] == "cache" && a["message"].as_str().unwrap().contains("full")),
        "{alarms}"
    );
    // Every acknowledged file reads back intact.
    for (p, d) in &kept {
        assert!(get(&s, p) == *d, "{p} changed");
    }
    // Space freed (a file deleted): the same PUT succeeds, nothing to restart.
    let (gone, _) = kept.remove(0);
    let r = s.http().delete(s.url_of(&gone)).bearer_auth(&s.token).send().unwrap();
    assert_eq!(r.status().as_u16(), 204);
    s.wait_for(20, "the PUT to fit again", |s| s.put_data(&path, &data).0 == 201);
    kept.push((path, data));
    // The catalog came through intact: a restart sees every file.
    s.restart();
    for (p, d) in &kept {
        assert!(get(&s, p) == *d, "{p} changed across the restart");
    }
    assert!(s.tree().iter().all(|(p, _)| *p != gone));
    s.terminate();
    drop(fs);
}

on_both_catalogs!(a_full_cache_refuses_with_507_and_recovers_by_itself);

/// Free bytes on the filesystem holding `path`.
fn free(path: &Path) -> u64 {
    let s = rustix::fs::statvfs(path).unwrap();
    s.f_bavail * s.f_frsize
}

/// Staging and packing on a full disk: a stage request's files stay open
/// (none FAILED), a read of a purged file is 507, a tape write to the
/// emulated library (on the same filesystem) is retried without blaming
/// the volume; once space is freed everything finishes by itself, and
/// every file reads back byte-identical.
fn staging_and_packing_pause_and_resume(catalog: Catalog) {
    // The cache and the tape library on the small filesystem; the catalog
    // on a disk of its own (PostgreSQL's is its server's; a SQLite catalog
    // sharing the full filesystem refuses its writes too, which the test
    // above covers).
    let dir = tempfile::Builder::new().prefix("bale-test-").tempdir().unwrap();
    let Some(fs) = SmallFs::mount_or_skip(&dir.path().join("data/cache")) else {
        return;
    };
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(
        cfg.path(),
        "bale.toml",
        "[archive]\ncheck_ms = 200\n\n[[tape.libraries]]\nname = \"lib1\"\npath = \"cache/library\"\n\
         drives = 2\ninitial_volumes = 2\nvolume_capacity = \"100 MB\"\n",
    );
    let mut s = Server::start_in(catalog, dir, &["--config", &config]);
    let small = s.data_dir().join("cache");
    s.run(&["mkdir", "/s"]);
    s.run(&["mkdir", "/p"]);
    let staged: Vec<(String, Vec<u8>)> = (0..4u64).map(|i| (format!("/s/f{i}"), bytes(i, 2 << 20))).collect();
    for (p, d) in &staged {
        assert_eq!(s.put_data(p, d).0, 201);
    }
    s.run(&["queue", "flush"]);
    let archived = |s: &Server, p: &str| {
        let v: serde_json::Value = serde_json::from_str(&s.run(&["stat", "--json", p])).unwrap();
        v["archive"]["state"] == "archived"
    };
    s.wait_for(60, "on tape", |s| staged.iter().all(|(p, _)| archived(s, p)));
    s.wait_for(30, "purgeable", |s| {
        let u: serde_json::Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
        u["purgeable_files"].as_u64() == Some(4)
    });
    s.run(&["purge", "--all"]);
    // Two files that wait in their pool (the built-in policy waits a day).
    let packed: Vec<(String, Vec<u8>)> = (0..2u64)
        .map(|i| (format!("/p/g{i}"), bytes(10 + i, 2 << 20)))
        .collect();
    for (p, d) in &packed {
        assert_eq!(s.put_data(p, d).0, 201);
    }
    // Fill the disk, leaving 1.5 MiB for the catalog's own writes.
    let filler = small.join("filler");
    let room = free(&small).saturating_sub(3 << 19);
    std::fs::write(&filler, vec![0u8; room as usize]).unwrap();
    let all: Vec<&str> = staged.iter().map(|(p, _)| p.as_str()).collect();
    let (code, v) = s.api_post(&s.token, "stage", &serde_json::json!({ "paths": all }));
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_i64().unwrap();
    s.run(&["queue", "flush"]);
    let alarmed = |s: &Server, words: &str| {
        s.api_get("alarms")
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["message"].as_str().unwrap().contains(words))
    };
    s.wait_for(60, "both pauses alarmed", |s| {
        alarmed(s, "the cache filesystem is full") && alarmed(s, "no space left on the library's filesystem")
    });
    let req = s.api_get(&format!("stage/{id}"));
    assert_eq!(req["counts"]["FAILED"], 0, "{req}");
    assert_eq!(req["counts"]["COMPLETED"], 0, "{req}");
    let r = s.http().get(s.url_of("/s/f0")).bearer_auth(&s.token).send().unwrap();
    assert_eq!(r.status().as_u16(), 507);
    assert!(packed.iter().all(|(p, _)| !archived(&s, p)));
    let volumes = s.api_get("volumes");
    for v in volumes.as_array().unwrap() {
        let state = v["state"].as_str().unwrap();
        assert!(
            state == "appendable" || state == "blank",
            "a full disk blamed a volume: {v}"
        );
    }
    // Space comes back: everything finishes by itself.
    std::fs::remove_file(&filler).unwrap();
    s.wait_for(60, "the stage request done", |s| {
        s.api_get(&format!("stage/{id}"))["counts"]["COMPLETED"] == 4
    });
    s.wait_for(60, "the pooled files on tape", |s| {
        packed.iter().all(|(p, _)| archived(s, p))
    });
    for (p, d) in staged.iter().chain(&packed) {
        assert!(get(&s, p) == *d, "{p} changed");
    }
    s.terminate();
    drop(fs);
}

on_both_catalogs!(staging_and_packing_pause_and_resume);
