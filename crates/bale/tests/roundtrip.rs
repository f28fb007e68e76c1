//! Acceptance: 1,000 files of random sizes from 0 B to 1 MiB put with
//! `bale put -j 8` and read back with `bale get` are byte-identical, and
//! `ls` and `stat` report them correctly.

mod common;
use common::*;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

fn roundtrip(catalog: Catalog) {
    let srv = Server::start_on(catalog);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("run42");
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..1000u64 {
        // Spread over a few subdirectories; sizes uniform in 0..=1 MiB, with
        // the edge sizes present for sure.
        let size = match i {
            0 => 0,
            1 => 1 << 20,
            _ => rng.random_range(0..=(1usize << 20)),
        };
        let rel = format!("sub{}/f{i:04}.dat", i % 7);
        let data = bytes(i, size);
        let p = src.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &data).unwrap();
        expected.insert(rel, data);
    }

    srv.run(&["mkdir", "/exp"]);
    srv.run(&["put", "-j", "8", src.to_str().unwrap(), "/exp"]);

    // ls: every file, with its size.
    let mut listed = 0;
    for d in 0..7 {
        let out = srv.run(&["ls", "--json", &format!("/exp/run42/sub{d}")]);
        let entries: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        for e in &entries {
            let rel = format!("sub{d}/{}", e["name"].as_str().unwrap());
            let data = &expected[&rel];
            assert_eq!(e["size"].as_u64().unwrap(), data.len() as u64, "{rel}");
            assert_eq!(e["kind"], "file");
            listed += 1;
        }
    }
    assert_eq!(listed, 1000);
    let top = srv.run(&["ls", "/exp/run42"]);
    assert_eq!(top.lines().count(), 7);
    assert!(top.lines().all(|l| l.starts_with("sub") && l.ends_with('/')), "{top}");
    let long = srv.run(&["ls", "-l", "/exp/run42/sub0"]);
    assert!(long.lines().all(|l| l.starts_with("-rw-r--r-- admin")), "{long}");

    // stat: size and adler32 agree with the local data.
    for rel in expected.keys().step_by(97) {
        let out = srv.run(&["stat", "--json", &format!("/exp/run42/{rel}")]);
        let e: serde_json::Value = serde_json::from_str(&out).unwrap();
        let data = &expected[rel];
        assert_eq!(e["size"].as_u64().unwrap(), data.len() as u64);
        assert_eq!(e["adler32"].as_str().unwrap(), bale_util::Adler32::of(data).to_string());
        assert_eq!(e["path"].as_str().unwrap(), format!("/exp/run42/{rel}"));
    }

    // get -r: byte-identical.
    let dst = work.path().join("back");
    std::fs::create_dir(&dst).unwrap();
    srv.run(&["get", "-r", "-j", "8", "/exp/run42", dst.to_str().unwrap()]);
    let got = local_files(&dst.join("run42"));
    assert_eq!(got.len(), 1000);
    for (rel, data) in &expected {
        let back = std::fs::read(dst.join("run42").join(rel)).unwrap();
        assert!(back == *data, "{rel} differs after the round trip");
    }
    // Nothing half-written is left next to the downloads.
    assert!(got.iter().all(|p| !p.to_string_lossy().contains(".bale-part")));
    assert_eq!(srv.tmp_entries(), 0);
}

#[test]
fn thousand_files_round_trip() {
    roundtrip(Catalog::from_env());
}

#[test]
fn thousand_files_round_trip_postgres() {
    roundtrip(Catalog::Postgres);
}
