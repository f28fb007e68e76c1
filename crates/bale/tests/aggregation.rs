//! Small file aggregation through the real server: the Mu2e policy scaled
//! down packs 2,000 small files of three families into packages that obey
//! every trigger; policy administration; deletes before and after packing;
//! SIGKILL while packing and while a package is written.

mod common;

use bale_util::Adler32;
use common::{bytes, write_file, Catalog, Server, SLOW_TAPE};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Target size of the scaled policy: 10 MB, as minimal_file_size in kB.
const TARGET_KB: u64 = 9766;
const MAX_FILES: u64 = 100;
/// Files at or above this go direct under the scaled policy.
const MAX_MEMBER: u64 = 200_000;

const LIBRARY: &str = r#"
[archive]
check_ms = 100

[tape]
idle_unload_s = 5.0

[[tape.libraries]]
name = "lib1"
drives = 2
initial_volumes = 6
volume_capacity = "200 MB"
"#;

/// examples/mu2e-sfa.toml with every rule scaled down for a test: 10 MB
/// packages, 100 files, 2 s wait, and files from 200 kB direct.
fn scaled_mu2e() -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/mu2e-sfa.toml")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let key = line.split('=').next().unwrap().trim();
        let line = match key {
            "max_member_size" => format!("max_member_size = {MAX_MEMBER}"),
            "minimal_file_size" => format!("minimal_file_size = {TARGET_KB}"),
            "max_files_in_pack" => format!("max_files_in_pack = {MAX_FILES}"),
            "max_waiting_time" => "max_waiting_time = 2".to_string(),
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    assert_eq!(
        out.matches("max_waiting_time = 2\n").count(),
        11,
        "every Mu2e rule scaled"
    );
    out
}

fn stat(s: &Server, path: &str) -> Value {
    serde_json::from_str(&s.run(&["stat", "--json", path])).unwrap()
}

fn json_of(s: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&s.run(args)).unwrap()
}

fn tape_file(s: &Server, volume: &str, seq: u64) -> PathBuf {
    s.data_dir().join(format!("library/{volume}/f{seq:08}.tar"))
}

/// The queue is empty: no open pool, no archive job.
fn drained(s: &Server) -> bool {
    let q = s.api_get("queue");
    q["pools"].as_array().unwrap().is_empty() && q["jobs"].as_array().unwrap().is_empty()
}

/// Reads the manifest out of a tape file with GNU tar and checks it against
/// the catalog's package record; returns the paths GNU tar lists.
fn check_package_on_tape(s: &Server, pkg: &Value) -> Vec<String> {
    let id = pkg["id"].as_str().unwrap();
    let tf = tape_file(s, pkg["volume"].as_str().unwrap(), pkg["seq"].as_u64().unwrap());
    let data = std::fs::read(&tf).unwrap();
    assert_eq!(data.len() as u64, pkg["size"].as_u64().unwrap(), "{id}");
    assert_eq!(Adler32::of(&data).to_string(), pkg["adler32"].as_str().unwrap(), "{id}");
    let out = Command::new("tar").arg("-tf").arg(&tf).output().unwrap();
    assert!(
        out.status.success(),
        "GNU tar on {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let manifest_name = format!("bale-manifest-{id}.json");
    assert_eq!(listed[0], manifest_name, "manifest first");
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&tf)
        .arg(&manifest_name)
        .output()
        .unwrap();
    assert!(out.status.success());
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown = s.api_get(&format!("packages/{id}"));
    let members = shown["members"].as_array().unwrap();
    let in_manifest = manifest["members"].as_array().unwrap();
    assert_eq!(in_manifest.len(), members.len(), "{id}");
    assert_eq!(listed.len(), members.len() + 1, "{id}");
    for (m, c) in in_manifest.iter().zip(members) {
        for k in ["file_id", "offset", "size", "adler32", "path"] {
            assert_eq!(m[k], c[k], "{id}: {k} of {}", m["path"]);
        }
        let (off, size) = (
            m["offset"].as_u64().unwrap() as usize,
            m["size"].as_u64().unwrap() as usize,
        );
        assert_eq!(
            Adler32::of(&data[off..off + size]).to_string(),
            m["adler32"].as_str().unwrap(),
            "{id}: data of {}",
            m["path"]
        );
    }
    listed
}

#[test]
fn the_mu2e_policy_packs_small_files_per_family_obeying_every_trigger() {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(cfg.path(), "bale.toml", LIBRARY);
    let policy = write_file(cfg.path(), "mu2e.toml", &scaled_mu2e());
    let s = Server::start_with(Catalog::from_env(), &["--config", &config, "--policy", &policy]);

    // Three families, each with the size profile that makes a different
    // trigger fire first: many tiny files (count), files of 100 to 190 kB
    // (size), a handful (wait).
    let families = [("phy-raw", 1370usize), ("phy-sim", 600), ("usr-etc", 30)];
    let local = tempfile::tempdir().unwrap();
    let mut expected = BTreeMap::new();
    for (ff, n) in families {
        let dir = format!("/mu2e/{ff}");
        s.run(&["mkdir", "-p", &dir]);
        s.run(&["tag", "set", &dir, "storage_group=mu2e", &format!("file_family={ff}")]);
        let ldir = local.path().join(ff);
        std::fs::create_dir(&ldir).unwrap();
        for i in 0..n {
            let size = match ff {
                "phy-sim" => 100_000 + (i * 7_919) % 90_000,
                _ => 1 + (i * 7_919) % 20_000,
            };
            let data = bytes((i as u64) << 8 | ff.len() as u64, size);
            std::fs::write(ldir.join(format!("f{i:05}.dat")), &data).unwrap();
            expected.insert(format!("{dir}/f{i:05}.dat"), data.len() as u64);
        }
    }
    assert_eq!(expected.len(), 2000);
    // One file above max_member_size goes direct.
    let big = bytes(7, 300_000);
    std::fs::write(local.path().join("big.dat"), &big).unwrap();

    // `policy check` explains the route before anything is written.
    let check = s.run(&["policy", "check", "/mu2e/phy-sim/x.dat", "--size", "5000"]);
    assert!(
        check.contains("skipped phy-raw") && check.contains("rule phy-sim"),
        "{check}"
    );
    assert!(
        check.contains("aggregate") && check.contains("pool: phy-sim/mu2e.phy-sim.tar"),
        "{check}"
    );
    let check = s.run(&["policy", "check", "/mu2e/phy-sim/x.dat", "--size", "300 kB"]);
    assert!(check.contains("direct") && check.contains("max_member_size"), "{check}");
    let check = s.run(&["policy", "check", "/elsewhere/x.dat", "--size", "1"]);
    assert!(check.contains("rule default") && check.contains("direct"), "{check}");

    for (ff, _) in families {
        s.run(&["put", "-j", "8", local.path().join(ff).to_str().unwrap(), "/mu2e"]);
    }
    s.run(&["put", local.path().join("big.dat").to_str().unwrap(), "/mu2e/phy-raw"]);
    s.wait_for(240, "every pool closed and every package on tape", drained);

    // Every file is archived in exactly one package of its own family.
    let pkgs = json_of(&s, &["packages", "--json"]);
    let pkgs = pkgs.as_array().unwrap();
    let mut where_is: BTreeMap<String, String> = BTreeMap::new();
    let (mut by_count, mut by_size, mut by_wait, mut direct) = (0, 0, 0, 0);
    let target = TARGET_KB * 1024;
    for p in pkgs {
        let listed = check_package_on_tape(&s, p);
        let shown = s.api_get(&format!("packages/{}", p["id"].as_str().unwrap()));
        let members = shown["members"].as_array().unwrap();
        let paths: Vec<&str> = members.iter().map(|m| m["path"].as_str().unwrap()).collect();
        for (m, l) in paths.iter().zip(&listed[1..]) {
            assert_eq!(&m[1..], l, "GNU tar lists the members under their names");
        }
        let family: BTreeSet<&str> = paths.iter().map(|p| p.split('/').nth(2).unwrap()).collect();
        assert_eq!(family.len(), 1, "a package never mixes families: {paths:?}");
        let sizes: Vec<u64> = members.iter().map(|m| m["size"].as_u64().unwrap()).collect();
        let bytes: u64 = sizes.iter().sum();
        if paths == ["/mu2e/phy-raw/big.dat"] {
            direct += 1;
        } else {
            assert!(sizes.len() as u64 <= MAX_FILES, "{} members: {paths:?}", sizes.len());
            assert!(sizes.iter().all(|s| *s < MAX_MEMBER));
            // Without its largest member the package is below the target:
            // it exceeds the target by at most one member.
            assert!(
                bytes - sizes.iter().max().unwrap() < target,
                "past the target by more than one member: {bytes} bytes"
            );
            if sizes.len() as u64 == MAX_FILES {
                by_count += 1;
            } else if bytes >= target {
                by_size += 1;
            } else {
                by_wait += 1;
            }
        }
        for path in paths {
            assert!(
                where_is
                    .insert(path.to_string(), p["id"].as_str().unwrap().to_string())
                    .is_none(),
                "{path} packaged twice"
            );
        }
    }
    assert_eq!(direct, 1, "the file above max_member_size is a package of its own");
    assert_eq!(where_is.len(), 2001);
    for path in expected.keys() {
        assert!(where_is.contains_key(path), "{path} in no package");
    }
    assert!(by_count >= 10, "the tiny files close pools by count: {by_count}");
    assert!(by_size >= 5, "the 100-190 kB files close pools by size: {by_size}");
    assert!(by_wait >= 1, "the last files close by waiting: {by_wait}");

    // `stat` names the package; `package show` lists members like --pkginfo.
    let st = s.run(&["stat", "/mu2e/phy-sim/f00007.dat"]);
    let pkg = &where_is["/mu2e/phy-sim/f00007.dat"];
    assert!(st.contains("archive: archived") && st.contains(pkg.as_str()), "{st}");
    let show = s.run(&["package", "show", pkg]);
    let count = s.api_get(&format!("packages/{pkg}"))["members"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        show.contains("/mu2e/phy-sim/f00007.dat") && show.contains(&format!("members: {count} ")),
        "{show}"
    );
    let listing = s.run(&["packages"]);
    assert_eq!(listing.lines().count(), pkgs.len() + 1, "{listing}");
    let vol = pkgs[0]["volume"].as_str().unwrap();
    let on_vol = json_of(&s, &["packages", "--volume", vol, "--json"]);
    assert!(on_vol.as_array().unwrap().iter().all(|p| p["volume"] == vol));

    // A few dozen tape files (and file marks) for 2,001 files.
    let vols = s.api_get("volumes");
    let tape_files: u64 = vols
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["tape_files"].as_u64().unwrap())
        .sum();
    assert_eq!(tape_files, pkgs.len() as u64);
    assert!(tape_files < 60, "{tape_files} tape files for 2,001 files");
}

const LONG_WAIT: &str = r#"
[[rule]]
name = "small"
match = { path = "/exp/**" }
action = "aggregate"
max_member_size = "1 MB"
target_size = "1 GB"
max_files = 5
max_wait_s = 3600

[[rule]]
name = "default"
action = "direct"
"#;

fn cache_copies(s: &Server) -> usize {
    let files = s.data_dir().join("cache/files");
    let mut n = 0;
    for d in std::fs::read_dir(files).unwrap() {
        n += std::fs::read_dir(d.unwrap().path()).unwrap().count();
    }
    n
}

fn put_bytes(s: &Server, local: &Path, name: &str, data: &[u8], remote: &str) {
    let p = local.join(name);
    std::fs::write(&p, data).unwrap();
    s.run(&["put", p.to_str().unwrap(), remote]);
}

#[test]
fn policy_administration_queue_flush_and_deletes_before_and_after_packing() {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(cfg.path(), "bale.toml", LIBRARY);
    let mut s = Server::start_with(Catalog::from_env(), &["--config", &config]);
    let shown = s.run(&["policy", "show"]);
    assert!(
        shown.contains("built-in") && shown.contains("name = \"default\""),
        "{shown}"
    );

    // An invalid policy is refused with its line and column; the old stays.
    let bad = write_file(
        cfg.path(),
        "bad.toml",
        "[[rule]]\nname = \"x\"\naction = \"sometimes\"\n",
    );
    let out = s.bale().args(["policy", "load", &bad]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("column"), "{err}");
    assert!(s.run(&["policy", "show"]).contains("built-in"));
    let no_catch_all = write_file(
        cfg.path(),
        "partial.toml",
        "[[rule]]\nname = \"x\"\nmatch = { owner = \"bob\" }\naction = \"direct\"\n",
    );
    let out = s.bale().args(["policy", "load", &no_catch_all]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("catch-all"));
    // Only an administrator loads a policy.
    let alice = s.token_for("alice", "users");
    let good = write_file(cfg.path(), "long.toml", LONG_WAIT);
    let out = s.bale_as(&alice).args(["policy", "load", &good]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("403"));
    assert!(s.run(&["policy", "load", &good]).contains("2 rules: small, default"));
    assert!(s.run(&["policy", "show"]).contains("max_files = 5"));

    // Three files wait in the pool; deleting one takes it out of the pool
    // and removes its cache copy.
    s.run(&["mkdir", "/exp"]);
    let local = tempfile::tempdir().unwrap();
    for i in 0..3 {
        put_bytes(&s, local.path(), &format!("a{i}"), &bytes(i, 1000 + i as usize), "/exp");
    }
    assert_eq!(stat(&s, "/exp/a0")["archive"]["state"], "pooled");
    assert_eq!(stat(&s, "/exp/a0")["archive"]["pool"], "small/default.default.tar");
    let copies = cache_copies(&s);
    s.run(&["rm", "/exp/a1"]);
    assert_eq!(cache_copies(&s), copies - 1);
    let q = s.api_get("queue");
    assert_eq!(q["pools"][0]["files"], 2, "{q}");
    assert_eq!(q["pools"][0]["bytes"], 2002, "{q}");
    assert_eq!(q["pools"][0]["nearest"], "files", "{q}");
    let text = s.run(&["queue"]);
    assert!(
        text.contains("small/default.default.tar") && text.contains("files 5 (40%)"),
        "{text}"
    );

    // The policy survives a restart (kept in the data dir), and so does the
    // pool: nothing of it was in memory only.
    s.restart_with(&["--config", &config]);
    assert!(s.run(&["policy", "show"]).contains("max_files = 5"));
    assert_eq!(s.api_get("queue")["pools"][0]["files"], 2);

    // Four more: the pool reaches 5 files and closes by count; the oldest
    // five go, the last one waits in the pool.
    for i in 3..7 {
        put_bytes(&s, local.path(), &format!("a{i}"), &bytes(i, 1000 + i as usize), "/exp");
    }
    s.wait_for(60, "the full pool packed", |s| {
        s.api_get("queue")["jobs"].as_array().unwrap().is_empty()
            && !s.api_get("packages").as_array().unwrap().is_empty()
    });
    let pkgs = s.api_get("packages");
    assert_eq!(pkgs.as_array().unwrap().len(), 1);
    let id = pkgs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(pkgs[0]["members"], 5);
    for i in [0, 2, 3, 4, 5] {
        assert_eq!(stat(&s, &format!("/exp/a{i}"))["archive"]["state"], "archived");
    }
    assert_eq!(stat(&s, "/exp/a6")["archive"]["state"], "pooled");

    // Deleted after packing: the member stays in its package as dead bytes.
    s.run(&["rm", "/exp/a3"]);
    let out = s.bale().args(["stat", "/exp/a3"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("404"));
    let shown = s.api_get(&format!("packages/{id}"));
    assert_eq!(
        (shown["dead_members"].as_u64(), shown["dead_bytes"].as_u64()),
        (Some(1), Some(1003))
    );
    assert_eq!(shown["members"].as_array().unwrap().len(), 5);
    let text = s.run(&["package", "show", &id]);
    assert!(
        text.contains("(deleted)") && text.contains("dead: 1 member, 1.00 kB"),
        "{text}"
    );

    // `queue flush POOL` closes the pool now; unknown pools are an error.
    let out = s.bale().args(["queue", "flush", "nope"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no open pool"));
    let out = s.bale_as(&alice).args(["queue", "flush"]).output().unwrap();
    assert!(!out.status.success(), "only administrators flush");
    let flushed = s.run(&["queue", "flush", "small/default.default.tar"]);
    assert!(flushed.contains("with 1 file,"), "{flushed}");
    s.wait_for(60, "the flushed pool packed", drained);
    assert_eq!(stat(&s, "/exp/a6")["archive"]["state"], "archived");
    assert_eq!(s.api_get("packages").as_array().unwrap().len(), 2);

    // Bad input to the views: clear errors.
    for args in [
        vec!["package", "show", "nope"],
        vec!["packages", "--volume", "NOPE"],
        vec!["policy", "check", "/exp/x", "--size", "lots"],
        vec!["policy", "check", "relative/x", "--size", "1"],
    ] {
        let out = s.bale().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

const PACK_1MB: &str = r#"
[[rule]]
name = "small"
action = "aggregate"
max_member_size = "1 MB"
target_size = "1 MB"
max_files = 1000
max_wait_s = 3600
"#;

#[test]
fn sigkill_while_packing_and_while_writing_a_package_sqlite() {
    sigkill_while_packing(Catalog::Sqlite);
}

#[test]
fn sigkill_while_packing_and_while_writing_a_package_postgres() {
    sigkill_while_packing(Catalog::Postgres);
}

fn partial_tape_file(s: &Server) -> bool {
    let lib = s.data_dir().join("library");
    let Ok(vols) = std::fs::read_dir(&lib) else {
        return false;
    };
    vols.flatten().any(|v| {
        std::fs::read_dir(v.path()).into_iter().flatten().flatten().any(|f| {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            f.file_name().to_string_lossy().ends_with(".tar") && len > 50_000 && len < 900_000
        })
    })
}

fn sigkill_while_packing(catalog: Catalog) {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(
        cfg.path(),
        "slow.toml",
        &format!("[archive]\ncheck_ms = 50\n{SLOW_TAPE}"),
    );
    let policy = write_file(cfg.path(), "pack.toml", PACK_1MB);
    let mut s = Server::start_with(catalog, &["--config", &config, "--policy", &policy]);
    s.run(&["mkdir", "/raw"]);
    let local = tempfile::tempdir().unwrap();
    let raw = local.path().join("raw");
    std::fs::create_dir(&raw).unwrap();
    // 65 files of 100 kB: six packages of ten close by size, five files stay.
    let mut files = BTreeMap::new();
    for i in 0..65u64 {
        let data = bytes(100 + i, 100_000);
        std::fs::write(raw.join(format!("e{i:03}")), &data).unwrap();
        files.insert(format!("/raw/e{i:03}"), data);
    }
    s.run(&["put", "-j", "4", raw.to_str().unwrap(), "/"]);

    // First kill: pools closed into jobs, the first package streaming.
    s.wait_for(60, "a package being written", partial_tape_file);
    s.kill9();
    s.restart_with(&["--config", &config]);
    // Second kill: in the middle of a later package's tape write.
    s.wait_for(60, "a package recorded", |s| {
        !s.api_get("packages").as_array().unwrap().is_empty()
    });
    s.wait_for(60, "another package being written", partial_tape_file);
    s.kill9();
    s.restart_with(&["--config", &config]);

    s.wait_for(120, "six packages on tape", |s| {
        let q = s.api_get("queue");
        q["jobs"].as_array().unwrap().is_empty() && s.api_get("packages").as_array().unwrap().len() == 6
    });
    // The open pool was resumed with its five files.
    let q = s.api_get("queue");
    assert_eq!(q["pools"].as_array().unwrap().len(), 1, "{q}");
    assert_eq!(q["pools"][0]["files"], 5, "{q}");
    s.run(&["queue", "flush"]);
    s.wait_for(60, "the last pool on tape", drained);

    // Every volume's media match the catalog (no package recorded that is
    // not on tape), and every file is in exactly one package, byte-exact.
    let mut members = 0;
    for p in s.api_get("packages").as_array().unwrap() {
        members += check_package_on_tape(&s, p).len() - 1;
    }
    assert_eq!(members, files.len(), "no member lost, none packaged twice");
    for v in s.api_get("volumes").as_array().unwrap() {
        let label = v["label"].as_str().unwrap();
        let on_media = std::fs::read_dir(s.data_dir().join("library").join(label))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tar"))
            .count() as u64;
        assert_eq!(on_media, v["tape_files"].as_u64().unwrap(), "end of data of {label}");
    }
    for (path, data) in &files {
        let st = stat(&s, path);
        let copies = st["archive"]["copies"].as_array().unwrap();
        assert_eq!(copies.len(), 1, "exactly one tape copy of {path}: {st}");
        let c = &copies[0];
        let tf = std::fs::read(tape_file(
            &s,
            c["volume"].as_str().unwrap(),
            c["tape_file"].as_u64().unwrap(),
        ))
        .unwrap();
        let off = c["offset"].as_u64().unwrap() as usize;
        assert_eq!(&tf[off..off + data.len()], &data[..], "{path}");
    }
}
