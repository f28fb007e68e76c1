//! `bale purge --all` right after files reached tape purges every one of
//! them, even those whose cache copy is still settling (the settler made
//! slow here: a round a minute), and says what it kept and why.

use crate::common::*;
use serde_json::Value;

const CONFIG: &str = r#"
[ingest]
settle_ms = 60000

[tape]
idle_unload_s = 5.0

[[tape.libraries]]
name = "lib1"
drives = 2
initial_volumes = 2
volume_capacity = "100 MB"
"#;

fn stat(s: &Server, path: &str) -> Value {
    serde_json::from_str(&s.run(&["stat", "--json", path])).unwrap()
}

fn purge_all_right_after_archiving(catalog: Catalog) {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(cfg.path(), "bale.toml", CONFIG);
    let s = Server::start_with(catalog, &["--config", &config]);
    s.run(&["mkdir", "/d"]);
    let paths: Vec<String> = (0..50).map(|i| format!("/d/f{i:02}.dat")).collect();
    for (i, p) in paths.iter().enumerate() {
        let (code, _) = s.put_data(p, &bytes(i as u64, 1000));
        assert_eq!(code, 201);
    }
    s.run(&["queue", "flush"]);
    s.wait_for(60, "archived", |s| {
        paths.iter().all(|p| stat(s, p)["archive"]["state"] == "archived")
    });
    // Still landing: the settler's next round is a minute away.
    let landing = s.catalog_query("SELECT CAST(COUNT(*) AS TEXT) FROM landing");
    assert_ne!(landing, ["0"], "the files are still settling");
    // Two pinned, three not on tape.
    s.run(&["pin", &paths[0], &paths[1], "--lifetime", "1h"]);
    for i in 0..3 {
        let (code, _) = s.put_data(&format!("/d/new{i}.dat"), b"not yet on tape");
        assert_eq!(code, 201);
    }
    let dry = s.run(&["purge", "--all", "--dry-run"]);
    assert!(dry.contains("would purge 48 cache copies"), "{dry}");
    let out = s.run(&["purge", "--all"]);
    assert!(out.contains("purged 48 cache copies"), "{out}");
    assert!(out.contains("kept 2 files") && out.contains("pinned"), "{out}");
    assert!(out.contains("kept 3 files") && out.contains("not on tape yet"), "{out}");
    let usage: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
    assert_eq!(usage["cached_files"].as_u64(), Some(5), "{usage}");
    // Every file still reads back, staged from tape.
    for (i, p) in paths.iter().enumerate().skip(45) {
        let r = s.http().get(s.url_of(p)).bearer_auth(&s.token).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.bytes().unwrap().to_vec(), bytes(i as u64, 1000));
    }
}

on_both_catalogs!(purge_all_right_after_archiving);
