//! Paths never grow past 4096 bytes: a MOVE or COPY of a tree that would
//! make any path below it too long is refused before anything changes; a
//! path too long that an older catalog holds makes no handler panic, and
//! fails only its own member of an archive job, which `bale queue retry`
//! sends again once the cause is fixed.

use crate::common::*;
use serde_json::Value;

/// 16 levels of 250-byte names and a file: a path of 4022 bytes.
fn deep_tree(s: &Server) -> (String, String) {
    let mut dir = String::new();
    for i in 0..16 {
        dir.push('/');
        dir.push_str(&format!("{:x}", i).repeat(250));
        let r = s
            .http()
            .request(reqwest::Method::from_bytes(b"MKCOL").unwrap(), s.url_of(&url(&dir)))
            .bearer_auth(&s.token)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "MKCOL level {i}");
    }
    let file = format!("{dir}/f.dat");
    assert_eq!(file.len(), 4022);
    let (code, body) = s.put_data(&url(&file), b"deep");
    assert_eq!(code, 201, "{body}");
    (dir, file)
}

fn url(path: &str) -> String {
    bale_util::url_path(path)
}

fn dav(s: &Server, method: &str, path: &str, dest: &str) -> (u16, String) {
    let r = s
        .http()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            s.url_of(&url(path)),
        )
        .header("Destination", s.url_of(&url(dest)))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn a_move_or_copy_past_the_limit_changes_nothing(catalog: Catalog) {
    let s = Server::start_on(catalog);
    let (_, file) = deep_tree(&s);
    let top = file[..251].to_string();
    let longer = format!("/{}", "p".repeat(85));
    s.run(&["mkdir", &longer]);
    let before = s.tree();
    // Below /ppp…, every path of the tree would be 86 bytes longer: 4108.
    for method in ["MOVE", "COPY"] {
        let (code, body) = dav(&s, method, &top, &format!("{longer}{top}"));
        assert_eq!(code, 400, "{method}: {body}");
        assert!(body.contains("4096"), "{method}: {body}");
        assert_eq!(s.tree(), before, "{method} changed something");
    }
    let (code, data) = {
        let r = s
            .http()
            .get(s.url_of(&url(&file)))
            .bearer_auth(&s.token)
            .send()
            .unwrap();
        (r.status().as_u16(), r.bytes().unwrap())
    };
    assert_eq!((code, &data[..]), (200, &b"deep"[..]));
    // Within the limit both work: 4022 + 74 = 4096.
    let fits = format!("/{}", "q".repeat(73));
    s.run(&["mkdir", &fits]);
    let (code, body) = dav(&s, "COPY", &top, &format!("{fits}{top}"));
    assert_eq!(code, 201, "{body}");
    let (code, body) = dav(&s, "MOVE", &top, &format!("{fits}/moved"));
    assert_eq!(code, 201, "{body}");
    assert!(s.tree().iter().all(|(p, _)| p.len() <= 4096));
}

on_both_catalogs!(a_move_or_copy_past_the_limit_changes_nothing);

fn stat(s: &Server, path: &str) -> Value {
    serde_json::from_str(&s.run(&["stat", "--json", path])).unwrap()
}

/// A catalog of an older version holds a path too long (made here behind
/// the server's back): a listing of its directory answers an error
/// instead of dropping the connection, and at a flush its member alone
/// fails (with its reason and an alarm), never the other users' files in
/// its job; once the cause is fixed, `bale queue retry` archives it.
fn a_path_too_long_fails_only_itself(catalog: Catalog) {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(cfg.path(), "bale.toml", SMALL_LIBRARY);
    let s = Server::start_with(catalog, &["--config", &config]);
    let (dir, file) = deep_tree(&s);
    s.run(&["mkdir", "--owner", "bob", "--group", "other", "/bob"]);
    let bob = s.token_for("bob", "other");
    let others: Vec<String> = (0..3).map(|i| format!("/bob/f{i}.dat")).collect();
    for (i, p) in others.iter().enumerate() {
        let r = s
            .http()
            .put(s.url_of(p))
            .bearer_auth(&bob)
            .body(vec![i as u8; 1000])
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    // The deep file renamed to 255 bytes: its path is now 4271 bytes.
    let long_name = "z".repeat(255);
    s.catalog_sql(&format!("UPDATE nodes SET name = '{long_name}' WHERE name = 'f.dat'"));
    let r = s
        .http()
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), s.url_of(&url(&dir)))
        .header("Depth", "1")
        .bearer_auth(&s.token)
        .send()
        .expect("an answer, not a dropped connection");
    assert_eq!(r.status().as_u16(), 500);
    assert!(r.text().unwrap().contains("not valid"));

    s.run(&["queue", "flush"]);
    s.wait_for(60, "the other files archived", |s| {
        others.iter().all(|p| stat(s, p)["archive"]["state"] == "archived")
    });
    let q: Value = serde_json::from_str(&s.run(&["queue", "--json"])).unwrap();
    let jobs = q["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{q}");
    assert_eq!(
        (jobs[0]["state"].as_str(), jobs[0]["files"].as_u64()),
        (Some("failed"), Some(1))
    );
    assert!(jobs[0]["error"].as_str().unwrap().contains("path"), "{q}");
    let alarms = s.run(&["alarms", "--json"]);
    assert!(
        alarms.contains("cannot be written") && alarms.contains("queue retry"),
        "{alarms}"
    );
    // The summary lists the failed job.
    let summary = s.run(&["queue"]);
    assert!(summary.contains("FAILED JOBS"), "{summary}");

    // A queued job is not retried; the cause fixed, the failed one is.
    s.catalog_sql(&format!("UPDATE nodes SET name = 'f.dat' WHERE name = '{long_name}'"));
    let job = jobs[0]["id"].as_i64().unwrap().to_string();
    let out = s.bale().args(["queue", "retry", "999999"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no archive job 999999"));
    let retried = s.run(&["queue", "retry", &job]);
    assert!(retried.contains(&format!("job {job} queued again")), "{retried}");
    s.wait_for(60, "the fixed file archived", |s| {
        stat(s, &file)["archive"]["state"] == "archived"
    });
    let out = s.bale().args(["queue", "retry", "--failed"]).output().unwrap();
    assert_ok(&out, "queue retry --failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no failed job"));
    // Only administrators retry.
    let out = s.bale_as(&bob).args(["queue", "retry", "--failed"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));
}

on_both_catalogs!(a_path_too_long_fails_only_itself);
