//! Bulk stage requests are bounded: a body past its limit is 413 naming
//! the limit, a path past the path limit fails on its own at intake (the
//! rest proceeds, the request keeps the start of it), and a user past the
//! cap on open stage files is answered 429 with nothing recorded.

use crate::common::*;
use serde_json::{json, Value};

const CONFIG: &str = r#"
[server]
max_stage_files_per_user = 5
bulk_body_limit = "64 KiB"

[tape]
idle_unload_s = 60.0

[[tape.libraries]]
name = "lib1"
drives = 1
initial_volumes = 2
volume_capacity = "100 MB"
"#;

fn stat(s: &Server, path: &str) -> Value {
    serde_json::from_str(&s.run(&["stat", "--json", path])).unwrap()
}

fn requests(s: &Server) -> Vec<String> {
    s.catalog_query("SELECT CAST(id AS TEXT) FROM stage_requests ORDER BY id")
}

fn stage_requests_are_bounded(catalog: Catalog) {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(cfg.path(), "bale.toml", CONFIG);
    let s = Server::start_with(catalog, &["--config", &config]);
    s.run(&["mkdir", "--owner", "alice", "--group", "phys", "/alice"]);
    let alice = s.token_for("alice", "phys");
    let paths: Vec<String> = (0..8).map(|i| format!("/alice/f{i}.dat")).collect();
    for (i, p) in paths.iter().enumerate() {
        let r = s
            .http()
            .put(s.url_of(p))
            .bearer_auth(&alice)
            .body(vec![i as u8; 500])
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    s.run(&["queue", "flush"]);
    s.wait_for(60, "archived", |s| {
        paths.iter().all(|p| stat(s, p)["archive"]["state"] == "archived")
    });
    s.run(&["purge", "--all"]);
    // Keep the drive off, so that the first request's files stay open.
    s.run(&["drive", "offline", "lib1-d1"]);

    // 4 open files, and one path 60,000 bytes long: that file fails on
    // its own, kept as its first 4096 bytes.
    let long = format!("/alice/{}", "x".repeat(60_000));
    let mut first: Vec<String> = paths[..4].to_vec();
    first.push(long.clone());
    let (code, body) = s.api_post(&alice, "stage", &json!({ "paths": first }));
    assert_eq!(code, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let req = s.api_get(&format!("stage/{id}"));
    let files = req["files"].as_array().unwrap();
    assert_eq!(files.len(), 5);
    assert!(
        files[..4]
            .iter()
            .all(|f| f["state"] == "SUBMITTED" || f["state"] == "STARTED"),
        "open: {req}"
    );
    assert_eq!(files[4]["state"], "FAILED");
    assert!(files[4]["error"].as_str().unwrap().contains("4096"), "{req}");
    let kept = files[4]["path"].as_str().unwrap();
    assert!(
        kept.len() < 4200 && long.starts_with(kept.trim_end_matches("...")),
        "{}",
        kept.len()
    );

    // 4 open + 3 more > 5: refused whole, nothing recorded.
    let before = requests(&s);
    let (code, body) = s.api_post(&alice, "stage", &json!({ "paths": paths[4..7] }));
    assert_eq!(code, 429, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("at most 5") && detail.contains("4 file"), "{detail}");
    assert_eq!(requests(&s), before);
    // Through the Tape REST API too.
    let files: Vec<Value> = paths[4..7].iter().map(|p| json!({ "path": p })).collect();
    let r = s
        .http()
        .post(s.url_of("/api/tape/v1/stage"))
        .bearer_auth(&alice)
        .json(&json!({ "files": files }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(requests(&s), before);
    // One more fits; the administrator has a cap of their own.
    let (code, body) = s.api_post(&alice, "stage", &json!({ "paths": [paths[4]] }));
    assert_eq!(code, 201, "{body}");
    let (code, body) = s.api_post(&s.token, "stage", &json!({ "paths": paths[5..8] }));
    assert_eq!(code, 201, "{body}");

    // A body past bulk_body_limit: 413 naming it, nothing recorded.
    let before = requests(&s);
    let many: Vec<String> = (0..5000).map(|i| format!("/alice/nope-{i:06}.dat")).collect();
    let (code, body) = s.api_post(&alice, "stage", &json!({ "paths": many }));
    assert_eq!(code, 413, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("bulk_body_limit"), "{body}");
    assert_eq!(requests(&s), before);

    // The drive back: everything open completes, and room is made again.
    s.run(&["drive", "online", "lib1-d1"]);
    s.wait_for(60, "the requests done", |s| {
        s.catalog_query("SELECT CAST(COUNT(*) AS TEXT) FROM stage_files WHERE state IN ('SUBMITTED', 'STARTED')")
            == ["0"]
    });
    let (code, body) = s.api_post(&alice, "stage", &json!({ "paths": paths[..5] }));
    assert_eq!(code, 201, "{body}");
}

on_both_catalogs!(stage_requests_are_bounded);
