//! Several tape copies: a rule that asks for a second copy in another
//! library writes each file twice, counts it archived only then, reads
//! from the other copy when one volume is out of service, and survives a
//! copy damaged on tape: `bale verify` finds it, raises an alarm, marks it
//! bad and the repair worker rewrites it from the good copy, while every
//! file stays readable.

mod common;

use common::{bytes, write_file, Catalog, Server};
use serde_json::{json, Value};

const TWO_LIBRARIES: &str = r#"
[tape]
idle_unload_s = 5.0

[verify]
repair_check_s = 1

[[tape.libraries]]
name = "lib1"
drives = 1
initial_volumes = 2
volume_capacity = "100 MB"

[[tape.libraries]]
name = "vault"
path = "vault"
volume_prefix = "VB"
drives = 1
initial_volumes = 2
volume_capacity = "100 MB"
"#;

const TWO_COPIES: &str = r#"
[[rule]]
name = "raw"
match = { path = "/raw/**" }
action = "aggregate"
max_member_size = "1 MiB"
target_size = "100 MB"
max_files = 100
max_wait_s = 3600
copy_to = ["vault"]

[[rule]]
name = "rest"
action = "direct"
"#;

fn start(catalog: Catalog, cfg: &std::path::Path) -> Server {
    let config = write_file(cfg, "bale.toml", TWO_LIBRARIES);
    let policy = write_file(cfg, "policy.toml", TWO_COPIES);
    Server::start_with(catalog, &["--config", &config, "--policy", &policy])
}

fn stat(s: &Server, path: &str) -> Value {
    serde_json::from_str(&s.run(&["stat", "--json", path])).unwrap()
}

fn get(s: &Server, path: &str) -> (u16, Vec<u8>) {
    let r = s.http().get(s.url_of(path)).bearer_auth(&s.token).send().unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

fn volumes_of(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["archive"]["copies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["bad"].is_null())
        .map(|c| c["volume"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn purge_all(s: &Server, n: usize) {
    s.wait_for(30, "every file purgeable", |s| {
        let u: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
        u["purgeable_files"].as_u64() == Some(n as u64)
    });
    let out = s.run(&["purge", "--all"]);
    assert!(out.contains(&format!("purged {n} cache copies")), "{out}");
}

fn two_copies_survive_a_bad_copy(catalog: Catalog) {
    let cfg = tempfile::tempdir().unwrap();
    let s = start(catalog, cfg.path());
    s.run(&["mkdir", "/raw"]);
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("/raw/f{i}.dat"), bytes(i, 2000 + 301 * i as usize)))
        .collect();
    for (p, d) in &files {
        let (code, body) = s.put_data(p, d);
        assert_eq!(code, 201, "{body}");
    }
    let explained = s.run(&["policy", "check", "/raw/x.dat", "--size", "100"]);
    assert!(explained.contains("more copies: library vault"), "{explained}");
    s.run(&["queue", "flush"]);
    s.wait_for(60, "every file archived in both libraries", |s| {
        files.iter().all(|(p, _)| {
            let v = stat(s, p);
            v["archive"]["state"] == "archived" && volumes_of(&v).len() == 2
        })
    });
    let v = stat(&s, &files[0].0);
    let vols = volumes_of(&v);
    assert!(vols[0].starts_with("VB") && vols[1].starts_with("VL"), "{vols:?}");
    // archiveinfo counts both copies' volumes.
    let (code, info) = s.api_post(&s.token, "archiveinfo", &json!({"paths": [files[0].0]}));
    assert_eq!(code, 200, "{info}");
    assert_eq!(info[0]["locality"], "DISK_AND_TAPE", "{info}");

    // One library's volume out of service: reads come from the other copy.
    purge_all(&s, files.len());
    let first = vols[1].clone();
    s.run(&["volume", "set", &first, "noaccess"]);
    let (code, body) = get(&s, &files[0].0);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body == files[0].1, "the vault copy's bytes");
    let reads: Vec<Value> = s
        .api_get("tape/events")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "read")
        .cloned()
        .collect();
    assert!(
        reads.iter().all(|e| e["volume"].as_str().unwrap().starts_with("VB")),
        "{reads:?}"
    );
    s.run(&["volume", "set", &first, "full"]);
    purge_all(&s, files.len());

    // Damage the vault copy on tape: one byte of a member's data.
    let vault_pkg = v["archive"]["copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["volume"].as_str().unwrap().starts_with("VB"))
        .unwrap()
        .clone();
    let (vol, seq) = (
        vault_pkg["volume"].as_str().unwrap().to_string(),
        vault_pkg["tape_file"].as_u64().unwrap(),
    );
    let tape_file = s.data_dir().join(format!("vault/{vol}/f{seq:08}.tar"));
    let mut data = std::fs::read(&tape_file).unwrap();
    let at = vault_pkg["offset"].as_u64().unwrap() as usize + 7;
    data[at] ^= 0x5a;
    std::fs::write(&tape_file, &data).unwrap();

    // Reads work while the damage is unknown (the good copy comes first)...
    let (code, body) = get(&s, &files[1].0);
    assert_eq!(code, 200);
    assert!(body == files[1].1);
    purge_all(&s, files.len());

    // ... and verify finds it: exit 1, an alarm, the copy marked bad.
    let out = s
        .bale()
        .args(["verify", "--volume", &vol, "--rate", "0 B"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("1 bad") && text.contains(vault_pkg["package"].as_str().unwrap()),
        "{text}"
    );
    let alarms = s.api_get("alarms");
    assert!(
        alarms.as_array().unwrap().iter().any(|a| a["message"]
            .as_str()
            .unwrap()
            .contains(&format!("package {}", vault_pkg["package"].as_str().unwrap()))
            && a["severity"] == "error"),
        "{alarms}"
    );
    let after = stat(&s, &files[0].0);
    assert!(
        after["archive"]["copies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["package"] == vault_pkg["package"] && c["bad"].is_string()),
        "{after}"
    );
    // Reads work throughout, from the good copy, even with its volume the
    // only one: every file, byte-identical.
    for (p, d) in &files {
        let (code, body) = get(&s, p);
        assert_eq!(code, 200, "{p}");
        assert!(body == *d, "{p}");
    }
    // The repair worker rewrites the vault copy: every file again has two
    // good copies, the new one in the vault.
    s.wait_for(60, "the bad copy rewritten", |s| {
        files.iter().all(|(p, _)| {
            let v = stat(s, p);
            let good = volumes_of(&v);
            v["archive"]["state"] == "archived"
                && good.len() == 2
                && good.iter().any(|g| g.starts_with("VB"))
                && good.iter().any(|g| g.starts_with("VL"))
        })
    });
    // The new vault copy reads back good: with the first library's volume
    // out of service, each file comes from it.
    purge_all(&s, files.len());
    s.run(&["volume", "set", &first, "noaccess"]);
    for (p, d) in &files {
        let (code, body) = get(&s, p);
        assert_eq!(code, 200, "{p}");
        assert!(body == *d, "{p}");
    }
    // Verifying the vault again finds the old copy bad (not read again)
    // and the new one good.
    let out = s.bale().args(["verify", "--volume", &vol, "--json"]).output().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{r}");
    assert_eq!(r["already_bad"].as_array().unwrap().len(), 1, "{r}");
    assert!(r["good"].as_u64().unwrap() >= 1, "{r}");
}

on_both_catalogs!(two_copies_survive_a_bad_copy);

/// `bale verify` refuses what it cannot do, and changes nothing.
#[test]
fn verify_refuses_bad_requests() {
    let cfg = tempfile::tempdir().unwrap();
    let s = start(Catalog::from_env(), cfg.path());
    let alice = s.token_for("alice", "phys");
    for (args, status, says) in [
        (vec!["verify"], 2, "required"),
        (vec!["verify", "--volume", "VL0001", "--cache"], 2, "cannot be used"),
        (vec!["verify", "--volume", "NOPE"], 1, "no volume"),
        (vec!["verify", "--package", "nope"], 1, "no package"),
        (vec!["verify", "--cache", "--rate", "fast"], 1, "not a byte size"),
    ] {
        let out = s.bale().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = s.bale_as(&alice).args(["verify", "--cache"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("administrators"), "{err}");
    for body in [
        json!({}),
        json!({"volume": "VL0001", "package": "x"}),
        json!({"cache": true, "rate": "x"}),
    ] {
        let (code, v) = s.api_post(&s.token, "verify", &body);
        assert_eq!(code, 400, "{body}: {v}");
    }
    assert!(s.api_get("alarms").as_array().unwrap().is_empty());
}

/// The scrub (on when `verify.scrub_period_s` is set) reads every package
/// in the background; a damaged one is marked bad with an alarm, and its
/// files, still cached, are rewritten from the cache into a new package
/// in the same library. Reads are never disturbed.
#[test]
fn the_scrub_finds_a_damaged_copy_and_it_is_rewritten() {
    let cfg = tempfile::tempdir().unwrap();
    let tape = "[tape]\nidle_unload_s = 5.0\n\n[[tape.libraries]]\nname = \"lib1\"\ndrives = 1\n\
                initial_volumes = 2\nvolume_capacity = \"100 MB\"\n";
    let config = write_file(cfg.path(), "bale.toml", tape);
    let scrubbing = write_file(
        cfg.path(),
        "scrub.toml",
        &format!("[verify]\nscrub_period_s = 3600\nscrub_rate = \"0 B\"\nrepair_check_s = 1\n\n{tape}"),
    );
    let policy = write_file(
        cfg.path(),
        "policy.toml",
        "[[rule]]\nname = \"all\"\naction = \"aggregate\"\nmax_member_size = \"1 MiB\"\n\
         target_size = \"100 MB\"\nmax_files = 100\nmax_wait_s = 3600\n",
    );
    let mut s = Server::start_with(Catalog::from_env(), &["--config", &config, "--policy", &policy]);
    // Damage arrives while no scrub runs; then the server starts again
    // with the scrub on.
    s.run(&["mkdir", "/d"]);
    let files: Vec<(String, Vec<u8>)> = (0..4).map(|i| (format!("/d/f{i}"), bytes(50 + i, 3000))).collect();
    for (p, d) in &files {
        let (code, body) = s.put_data(p, d);
        assert_eq!(code, 201, "{body}");
    }
    s.run(&["queue", "flush"]);
    s.wait_for(60, "archived", |s| {
        files.iter().all(|(p, _)| {
            serde_json::from_str::<Value>(&s.run(&["stat", "--json", p])).unwrap()["archive"]["state"] == "archived"
        })
    });
    let pkg = s.api_get("packages")[0].clone();
    let id = pkg["id"].as_str().unwrap().to_string();
    let tape_file = s.data_dir().join(format!(
        "library/{}/f{:08}.tar",
        pkg["volume"].as_str().unwrap(),
        pkg["seq"].as_u64().unwrap()
    ));
    let mut data = std::fs::read(&tape_file).unwrap();
    let n = data.len();
    data[n - 1024 - 512 + 3] ^= 0x01;
    std::fs::write(&tape_file, &data).unwrap();
    s.restart_with(&["--config", &scrubbing, "--policy", &policy]);
    s.wait_for(
        60,
        "the scrub marks the package bad and the repair writes a new one",
        |s| {
            let pkgs = s.api_get("packages");
            let pkgs = pkgs.as_array().unwrap();
            pkgs.iter().any(|p| p["id"] == id.as_str() && p["bad"].is_string())
                && pkgs
                    .iter()
                    .any(|p| p["id"] != id.as_str() && p["bad"].is_null() && p["members"] == 4)
        },
    );
    assert!(s
        .api_get("alarms")
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["message"].as_str().unwrap().contains(&format!("package {id}"))));
    let workers = s.api_get("workers");
    let scrub = workers
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "scrub")
        .unwrap();
    assert!(scrub["counters"]["bad"].as_u64() >= Some(1), "{scrub}");
    for (p, d) in &files {
        let r = s.http().get(s.url_of(p)).bearer_auth(&s.token).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.bytes().unwrap().to_vec() == *d, "{p}");
    }
}

/// `bale fsck` checks each volume's media against the catalog: a tape
/// file gone from the vault is reported (the plan changes nothing), and
/// the repair marks its package bad, after which its files get a new vault
/// copy from the good one.
fn fsck_finds_a_tape_file_gone(catalog: Catalog) {
    let cfg = tempfile::tempdir().unwrap();
    let s = start(catalog, cfg.path());
    s.run(&["mkdir", "/raw"]);
    let files: Vec<(String, Vec<u8>)> = (0..3).map(|i| (format!("/raw/g{i}"), bytes(70 + i, 1500))).collect();
    for (p, d) in &files {
        let (code, body) = s.put_data(p, d);
        assert_eq!(code, 201, "{body}");
    }
    s.run(&["queue", "flush"]);
    s.wait_for(60, "archived in both libraries", |s| {
        files.iter().all(|(p, _)| {
            let v = stat(s, p);
            v["archive"]["state"] == "archived" && volumes_of(&v).len() == 2
        })
    });
    let v = stat(&s, &files[0].0);
    let vault = v["archive"]["copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["volume"].as_str().unwrap().starts_with("VB"))
        .unwrap()
        .clone();
    let vol = vault["volume"].as_str().unwrap().to_string();
    let gone = s
        .data_dir()
        .join(format!("vault/{vol}/f{:08}.tar", vault["tape_file"].as_u64().unwrap()));
    std::fs::remove_file(&gone).unwrap();
    let plan = s.bale().args(["fsck", "--json"]).output().unwrap();
    assert_eq!(plan.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let problems = r["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{r}");
    assert_eq!(problems[0]["kind"], "tape files missing");
    assert!(problems[0]["detail"].as_str().unwrap().contains(&vol), "{r}");
    assert!(stat(&s, &files[0].0)["archive"]["copies"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["bad"].is_null()));
    let fixed = s.bale().args(["fsck", "--repair"]).output().unwrap();
    assert_eq!(
        fixed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fixed.stdout)
    );
    let old_pkg = vault["package"].as_str().unwrap().to_string();
    s.wait_for(60, "a new vault copy of each file", |s| {
        files.iter().all(|(p, _)| {
            let v = stat(s, p);
            let copies = v["archive"]["copies"].as_array().unwrap().clone();
            let good_vault = copies
                .iter()
                .filter(|c| c["bad"].is_null() && c["volume"].as_str().unwrap().starts_with("VB"))
                .count();
            v["archive"]["state"] == "archived"
                && good_vault == 1
                && volumes_of(&v).len() == 2
                && copies
                    .iter()
                    .any(|c| c["package"] == old_pkg.as_str() && c["bad"].is_string())
        })
    });
    for (p, d) in &files {
        let (code, body) = get(&s, p);
        assert_eq!(code, 200);
        assert!(body == *d, "{p}");
    }
}

on_both_catalogs!(fsck_finds_a_tape_file_gone);
