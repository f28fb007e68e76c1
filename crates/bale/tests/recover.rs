//! A catalog rebuilt from the tapes alone: `bale recover --all` into an
//! empty data directory recovers every archived file (each staged back
//! byte-identical, with its owner, mode and place); a later package wins
//! over an earlier one for a path; the documented limit: a delete or a
//! rename made after packing is not on tape, so the file comes back where
//! it was packed. `bale recover --volume` adds one volume to a catalog that
//! does not know it. Bad requests change nothing.

mod common;

use common::{block_on, bytes, write_file, Catalog, Server};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const TAPE: &str = r#"
[tape]
idle_unload_s = 2.0

[[tape.libraries]]
name = "lib1"
drives = 1
initial_volumes = 3
volume_capacity = "100 MB"
"#;

const POLICY: &str = r#"
[[rule]]
name = "small"
action = "aggregate"
max_member_size = "1 MiB"
target_size = "100 MB"
max_files = 100
max_wait_s = 3600

[[rule]]
name = "rest"
action = "direct"
"#;

fn stat(s: &Server, path: &str) -> Value {
    serde_json::from_str(&s.run(&["stat", "--json", path])).unwrap()
}

fn get(s: &Server, path: &str) -> (u16, Vec<u8>) {
    let r = s.http().get(s.url_of(path)).bearer_auth(&s.token).send().unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

fn put(s: &Server, path: &str, data: &[u8]) {
    let (code, body) = s.put_data(path, data);
    assert_eq!(code, 201, "PUT {path}: {body}");
}

fn flush_and_wait(s: &Server, paths: &[&str]) {
    s.run(&["queue", "flush"]);
    s.wait_for(60, "the files archived", |s| {
        paths.iter().all(|p| stat(s, p)["archive"]["state"] == "archived")
    });
}

/// A catalog for the rebuild: a fresh PostgreSQL schema, or the data
/// directory's SQLite file. (url, schema to drop)
fn fresh_catalog(catalog: Catalog) -> (Option<String>, Option<String>) {
    match catalog {
        Catalog::Sqlite => (None, None),
        Catalog::Postgres => {
            let (url, schema) = block_on(bale_catalog::conformance::fresh_postgres());
            (Some(url), Some(schema))
        }
    }
}

fn recover(bin_args: &[&str], data: &Path, config: &str, url: Option<&str>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bale"));
    c.arg("recover")
        .args(bin_args)
        .args(["--config", config, "--data-dir"])
        .arg(data);
    if let Some(u) = url {
        c.args(["--catalog", u]);
    }
    c.output().unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    for f in common::local_files(from) {
        let dst = to.join(&f);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&f), dst).unwrap();
    }
    // Empty volume directories carry their label file, so none is missed.
}

fn rebuild_from_tapes(catalog: Catalog) {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(cfg.path(), "bale.toml", TAPE);
    let policy = write_file(cfg.path(), "policy.toml", POLICY);
    let mut a = Server::start_with(catalog, &["--config", &config, "--policy", &policy]);
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    a.run(&["mkdir", "/exp"]);
    a.run(&["mkdir", "/exp/run1"]);
    a.run(&["mkdir", "/exp/run2"]);
    for i in 0..8u64 {
        let p = format!("/exp/run{}/f{i}.dat", 1 + i % 2);
        let d = bytes(i, 1000 + 517 * i as usize);
        put(&a, &p, &d);
        want.insert(p, d);
    }
    // A direct file in its own tape file, and a mode of its own.
    let big = bytes(99, 1_200_000);
    put(&a, "/exp/big.dat", &big);
    want.insert("/exp/big.dat".into(), big);
    a.run(&["chmod", "600", "/exp/run1/f0.dat"]);
    // A client's modification time and a dead property: the manifest
    // carries both.
    let r = a
        .http()
        .put(a.url_of("/exp/run1/f4.dat"))
        .bearer_auth(&a.token)
        .header("X-OC-Mtime", "1500000000.123456789")
        .body(want["/exp/run1/f4.dat"].clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = a
        .http()
        .request(reqwest::Method::from_bytes(b"PROPPATCH").unwrap(), a.url_of("/exp/run1/f4.dat"))
        .bearer_auth(&a.token)
        .body(r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><run xmlns="urn:exp">4<x:n xmlns:x="urn:n"/></run></D:prop></D:set></D:propertyupdate>"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 207);
    let paths: Vec<String> = want.keys().cloned().collect();
    flush_and_wait(&a, &paths.iter().map(String::as_str).collect::<Vec<_>>());
    // After packing: an overwrite (packed again, later), a delete and a
    // rename (not on tape).
    let newer = bytes(1234, 4321);
    let r = a
        .http()
        .put(a.url_of("/exp/run2/f1.dat"))
        .bearer_auth(&a.token)
        .header("Overwrite", "T")
        .body(newer.clone())
        .send()
        .unwrap();
    assert!(r.status().is_success(), "overwrite: {}", r.status());
    want.insert("/exp/run2/f1.dat".into(), newer);
    flush_and_wait(&a, &["/exp/run2/f1.dat"]);
    let r = a
        .http()
        .delete(a.url_of("/exp/run1/f2.dat"))
        .bearer_auth(&a.token)
        .send()
        .unwrap();
    assert!(r.status().is_success());
    a.run(&["mv", "/exp/run2/f3.dat", "/exp/moved.dat"]);
    let owner = stat(&a, "/exp/run1/f0.dat");
    assert_eq!(a.terminate().code(), Some(0));

    // The tapes alone, at a new site: an empty data directory and catalog.
    let site = tempfile::Builder::new().prefix("bale-test-").tempdir().unwrap();
    let data = site.path().join("data");
    copy_tree(&a.data_dir().join("library"), &data.join("library"));
    let (url, schema) = fresh_catalog(catalog);
    let out = recover(&["--all"], &data, &config, url.as_deref());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("9 files") && text.contains("3 new directories"), "{text}");
    assert!(text.contains("superseded /exp/run2/f1.dat"), "{text}");
    // Again: the catalog is no longer empty.
    let again = recover(&["--all"], &data, &config, url.as_deref());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("empty catalog"));

    let mut extra = vec!["--config", config.as_str(), "--policy", policy.as_str()];
    if let Some(u) = &url {
        extra.extend(["--catalog", u.as_str()]);
    }
    let b = Server::start_in(Catalog::Sqlite, site, &extra);
    // The limit, documented: the delete and the rename made after packing
    // were never on tape.
    want.insert("/exp/run1/f2.dat".into(), bytes(2, 1000 + 517 * 2));
    assert_eq!(
        stat(&b, "/exp/run2/f3.dat")["archive"]["state"],
        "archived",
        "renamed after packing: back at its packed path"
    );
    let (code, _) = get(&b, "/exp/moved.dat");
    assert_eq!(code, 404, "the rename after packing is not on tape");
    // Every file reads back (staged), byte-identical; on tape, not cached.
    for (p, d) in &want {
        let v = stat(&b, p);
        assert_eq!(v["archive"]["state"], "archived", "{p}: {v}");
        let (code, body) = get(&b, p);
        assert_eq!(code, 200, "{p}");
        assert!(body == *d, "{p}: content differs");
    }
    // The later package won for the overwritten path.
    assert_eq!(get(&b, "/exp/run2/f1.dat").1, want["/exp/run2/f1.dat"]);
    // Owner and mode came from the manifest.
    let got = stat(&b, "/exp/run1/f0.dat");
    for k in ["owner", "group", "mode", "mtime"] {
        assert_eq!(got[k], owner[k], "{k}");
    }
    // So did the client's time and the dead property.
    assert_eq!(stat(&b, "/exp/run1/f4.dat")["mtime"], "2017-07-14T02:40:00.123456789Z");
    let r = b
        .http()
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            b.url_of("/exp/run1/f4.dat"),
        )
        .bearer_auth(&b.token)
        .header("Depth", "0")
        .body(r#"<propfind xmlns="DAV:"><prop><run xmlns="urn:exp"/></prop></propfind>"#)
        .send()
        .unwrap();
    let text = r.text().unwrap();
    assert!(
        text.contains(r#"<run xmlns="urn:exp">4<n xmlns="urn:n"/></run>"#),
        "{text}"
    );
    // New files land on the recovered volumes after their tape files.
    put(&b, "/exp/new.dat", b"after the rebuild");
    flush_and_wait(&b, &["/exp/new.dat"]);
    assert_eq!(get(&b, "/exp/new.dat").1, b"after the rebuild");
    drop(b);
    if let Some(s) = schema {
        block_on(bale_catalog::conformance::drop_postgres_schema(&s));
    }
}

on_both_catalogs!(rebuild_from_tapes);

/// `recover --volume` adds one volume the catalog does not know (and only
/// once); it refuses while a server runs on the data directory, and a
/// volume no library holds.
#[test]
fn recover_one_volume_at_a_time() {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(cfg.path(), "bale.toml", TAPE);
    let policy = write_file(cfg.path(), "policy.toml", POLICY);
    let mut a = Server::start_with(Catalog::Sqlite, &["--config", &config, "--policy", &policy]);
    // Two families: two volumes.
    for (dir, ff) in [("/one", "ff1"), ("/two", "ff2")] {
        a.run(&["mkdir", dir]);
        a.run(&["tag", "set", dir, &format!("file_family={ff}")]);
        put(&a, &format!("{dir}/x.dat"), &bytes(ff.len() as u64, 3000));
    }
    flush_and_wait(&a, &["/one/x.dat", "/two/x.dat"]);
    let vol = |p: &str| {
        stat(&a, p)["archive"]["copies"][0]["volume"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (v1, v2) = (vol("/one/x.dat"), vol("/two/x.dat"));
    assert_ne!(v1, v2);
    // Refused while the server runs.
    let out = recover(&["--volume", &v1], &a.data_dir(), &config, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("running"));
    assert_eq!(a.terminate().code(), Some(0));

    let site = tempfile::Builder::new().prefix("bale-test-").tempdir().unwrap();
    let data = site.path().join("data");
    copy_tree(&a.data_dir().join("library"), &data.join("library"));
    let out = recover(&["--volume", "VL9999"], &data, &config, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no volume \"VL9999\""));
    assert!(
        !data.join("catalog.sqlite").exists(),
        "nothing made for a volume that is not there"
    );
    let out = recover(&["--volume", &v1], &data, &config, None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 file "));
    let twice = recover(&["--volume", &v1], &data, &config, None);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already"));
    let out = recover(&["--volume", &v2], &data, &config, None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let b = Server::start_in(Catalog::Sqlite, site, &["--config", &config, "--policy", &policy]);
    for p in ["/one/x.dat", "/two/x.dat"] {
        let (code, _) = get(&b, p);
        assert_eq!(code, 200, "{p}");
    }
}

/// A package written by hand onto a volume directory: members at `paths`
/// (owner alice), the data made from each path's index.
fn package(paths: &[&str]) -> Vec<u8> {
    let metas: Vec<bale_pack::MemberMeta> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let data = bytes(i as u64, 100 + i);
            bale_pack::MemberMeta {
                file_id: bale_util::FileId::generate(),
                path: p.to_string(),
                size: data.len() as u64,
                adler32: bale_util::Adler32::of(&data),
                owner: "alice".into(),
                group: "phys".into(),
                mode: 0o644,
                ctime: bale_util::Timestamp::now(),
                mtime: bale_util::Timestamp::now(),
                props: Vec::new(),
            }
        })
        .collect();
    let plan = bale_pack::Plan::new(&uuid_like(), bale_util::Timestamp::now(), metas).unwrap();
    let mut out = Vec::new();
    plan.write(&mut out, |i, _| Ok(std::io::Cursor::new(bytes(i as u64, 100 + i))))
        .unwrap();
    out
}

fn uuid_like() -> String {
    bale_util::FileId::generate().to_string()
}

/// Manifests read back from tape are input like any other (the
/// bad-input table, docs/RELIABILITY.md): a tape file that is not a
/// package, a member whose data does not match the manifest, a path that
/// is not absolute or not normalized, one under a name the server keeps,
/// one that is a file here and a directory of files there. Each is
/// answered (a bad package recorded, a file skipped with its reason, exit
/// 1) and none of them reaches the namespace; the good files do.
#[test]
fn manifests_read_back_from_tape_are_checked() {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(cfg.path(), "bale.toml", TAPE);
    let site = tempfile::Builder::new().prefix("bale-test-").tempdir().unwrap();
    let data = site.path().join("data");
    let vol = data.join("library/VL0001");
    std::fs::create_dir_all(&vol).unwrap();
    let label = serde_json::json!({
        "label": "VL0001", "media": "LTO-9", "owner": "bale library lib1", "created": 1
    });
    std::fs::write(vol.join("LABEL"), label.to_string()).unwrap();
    let mut damaged = package(&["/good/damaged.dat"]);
    let n = damaged.len();
    // In the member's data: its last block before the two end blocks.
    damaged[n - 1024 - 512 + 10] ^= 0xff;
    let files: Vec<Vec<u8>> = vec![
        package(&["/good/a.dat", "/good/b.dat"]),
        b"this is not a tar file at all".repeat(40),
        package(&["/api/x.dat"]),
        damaged,
        package(&["relative.dat"]),
        package(&["/good/./c.dat"]),
        package(&["/clash", "/clash/inner.dat"]),
    ];
    for (i, f) in files.iter().enumerate() {
        std::fs::write(vol.join(format!("f{i:08}.tar")), f).unwrap();
    }
    let out = recover(&["--all"], &data, &config, None);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (says, what) in [
        ("VL0001 tape file 1:", "not a tar/package"),
        ("VL0001 tape file 3:", "a member that does not match its adler32"),
        ("SKIPPED /api/x.dat", "a reserved name"),
        ("SKIPPED relative.dat", "a relative path"),
        ("VL0001 tape file 5:", "a manifest path its tar member does not match"),
        ("SKIPPED /clash (", "a file where a directory stands"),
    ] {
        assert!(text.contains(says), "{what}: {says:?} not in\n{text}");
    }
    assert!(text.contains("7 tape files: 4 packages"), "{text}");
    // What the rebuilt catalog holds: the good files, nothing else.
    let b = Server::start_in(Catalog::Sqlite, site, &["--config", &config]);
    let tree: Vec<String> = b.tree().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        tree,
        ["/clash", "/clash/inner.dat", "/good", "/good/a.dat", "/good/b.dat"],
        "{tree:?}"
    );
    assert_eq!(get(&b, "/good/b.dat").1, bytes(1, 101));
    // The damaged tape files are bad packages, the volume's end of data
    // where the media says.
    let v = b.api_get("volumes/VL0001");
    assert_eq!(v["volume"]["tape_files"], 7, "{v}");
    let pkgs = b.api_get("packages");
    let bad = pkgs.as_array().unwrap().iter().filter(|p| p["bad"].is_string()).count();
    assert_eq!(bad, 3, "{pkgs}");
}
