//! Quotas per storage group: files and bytes up to the quota are taken,
//! the next write is 507 naming the quota and leaves nothing behind
//! (before `100 Continue` when the length is declared, as the bytes arrive
//! when it is not); a delete frees quota; concurrent PUTs never pass it;
//! COPY counts; a family at its volume quota waits with an alarm.

use crate::common::*;
use crate::method;
use serde_json::{json, Value};
use std::io::{Read, Write};

fn quotas(s: &Server) -> Vec<Value> {
    let out = s.run(&["quota", "--json"]);
    serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().clone()
}

fn group(s: &Server, g: &str) -> Value {
    quotas(s)
        .into_iter()
        .find(|q| q["storage_group"] == g)
        .unwrap_or_else(|| panic!("no storage group {g}"))
}

fn setup(catalog: Catalog) -> Server {
    let s = Server::start_on(catalog);
    // Tags are copied to directories made beneath: tag first.
    s.run(&["mkdir", "-p", "/exp", "/other"]);
    s.run(&["tag", "set", "/exp", "storage_group=exp"]);
    s.run(&["mkdir", "-p", "/exp/raw/later"]);
    s
}

fn quotas_hold(catalog: Catalog) {
    let s = setup(catalog);
    let out = s.run(&["quota", "set", "exp", "--files", "3", "--bytes", "1000"]);
    assert!(out.contains("exp") && out.contains("1000 B"), "{out}");
    let q = group(&s, "exp");
    assert_eq!(
        (q["files"].as_u64(), q["bytes"].as_u64(), q["used_files"].as_u64()),
        (Some(3), Some(1000), Some(0))
    );

    // Bytes: 400 + 400 fit, 300 more do not; nothing of it is kept.
    assert_eq!(s.put_data("/exp/raw/a", &bytes(1, 400)).0, 201);
    assert_eq!(s.put_data("/exp/raw/later/b", &bytes(2, 400)).0, 201);
    let before = s.tree();
    let (code, body) = s.put_data("/exp/c", &bytes(3, 300));
    assert_eq!(code, 507, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("storage group exp") && detail.contains("quota"),
        "{detail}"
    );
    assert_eq!(s.tree(), before);
    assert_eq!(s.tmp_entries(), 0);
    // Elsewhere: no quota.
    assert_eq!(s.put_data("/other/big", &bytes(4, 5000)).0, 201);
    // An overwrite counts the difference: 400 -> 600 fits (1000), -> 601 does not.
    assert_eq!(s.put_data("/exp/raw/a", &bytes(5, 601)).0, 507);
    assert_eq!(s.put_data("/exp/raw/a", &bytes(5, 600)).0, 200);
    let q = group(&s, "exp");
    assert_eq!(
        (q["used_files"].as_u64(), q["used_bytes"].as_u64()),
        (Some(2), Some(1000))
    );
    // A delete frees quota.
    let r = s
        .http()
        .delete(s.url_of("/exp/raw/later/b"))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.put_data("/exp/c", &bytes(3, 300)).0, 201);
    // Files: the third fits, the fourth does not (even empty).
    assert_eq!(s.put_data("/exp/d", b"").0, 201);
    let (code, body) = s.put_data("/exp/e", b"");
    assert_eq!(code, 507, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("quota of 3 files"), "{body}");
    // COPY into the group counts as a write.
    let r = s
        .http()
        .request(method("COPY"), s.url_of("/other/big"))
        .bearer_auth(&s.token)
        .header("Destination", s.url_of("/exp/copy"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 507);
    assert!(s.tree().iter().all(|(p, _)| p != "/exp/copy"));
    // A MOVE keeps a file's storage group (its tags), so it changes no use.
    let r = s
        .http()
        .request(method("MOVE"), s.url_of("/other/big"))
        .bearer_auth(&s.token)
        .header("Destination", s.url_of("/exp/moved"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let q = group(&s, "exp");
    assert_eq!(
        (q["used_files"].as_u64(), q["used_bytes"].as_u64()),
        (Some(3), Some(900))
    );
    // Quota removed: no limit, the use still counted.
    s.run(&["quota", "set", "exp", "--files", "none", "--bytes", "none"]);
    assert_eq!(s.put_data("/exp/e", &bytes(6, 5000)).0, 201);
    let q = group(&s, "exp");
    assert_eq!((q["files"].as_u64(), q["used_files"].as_u64()), (None, Some(4)));
    // A restart keeps quotas and use.
    s.run(&["quota", "set", "exp", "--files", "4"]);
    let mut s = s;
    s.restart();
    assert_eq!(s.put_data("/exp/f", b"x").0, 507);
    assert_eq!(group(&s, "exp")["used_files"].as_u64(), Some(4));
}

/// Refused before the body: with `Expect: 100-continue` and a declared
/// length past the quota, the answer is 507 and no `100 Continue`; a body
/// of undeclared length is cut at the quota, nothing kept.
fn refused_before_and_while_the_body_arrives(catalog: Catalog) {
    let s = setup(catalog);
    s.run(&["quota", "set", "exp", "--bytes", "10000"]);
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        sock,
        "PUT /exp/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 20000\r\n\
         Expect: 100-continue\r\n\r\n",
        s.token
    )
    .unwrap();
    let mut head = [0u8; 12];
    sock.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 507", "{}", String::from_utf8_lossy(&head));
    drop(sock);

    // Chunked, no length: cut once past the quota.
    let before = s.tree();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..30).map(|i| Ok(bytes(i, 1000))).collect();
    let body = reqwest::blocking::Body::new(ChunkReader(chunks.into_iter().flatten().flatten().collect(), 0));
    let r = s
        .http()
        .put(s.url_of("/exp/streamed"))
        .bearer_auth(&s.token)
        .body(body)
        .send();
    if let Ok(r) = r {
        assert_eq!(r.status(), 507);
        let text = r.text().unwrap();
        assert!(text.contains("went past it"), "{text}");
    }
    s.wait_for(10, "nothing left of the cut body", |s| s.tmp_entries() == 0);
    assert_eq!(s.tree(), before);
    // Within the quota, undeclared length is fine.
    let chunks: Vec<u8> = (0..9).flat_map(|i| bytes(i, 1000)).collect();
    let r = s
        .http()
        .put(s.url_of("/exp/streamed"))
        .bearer_auth(&s.token)
        .body(reqwest::blocking::Body::new(ChunkReader(chunks, 0)))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// A reader without a known length: the body goes chunked.
struct ChunkReader(Vec<u8>, usize);

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(1000).min(self.0.len() - self.1);
        buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
        self.1 += n;
        Ok(n)
    }
}

/// Concurrent PUTs never pass a quota: of 16 at once into a group allowed
/// 5 files, exactly 5 are stored.
fn concurrent_puts_never_overshoot(catalog: Catalog) {
    let s = setup(catalog);
    s.run(&["quota", "set", "exp", "--files", "5"]);
    let codes: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let s = &s;
                scope.spawn(move || s.put_data(&format!("/exp/raw/c{i}"), &bytes(i, 100)).0)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 5, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 201 || *c == 507), "{codes:?}");
    assert_eq!(s.tree().iter().filter(|(p, _)| p.starts_with("/exp/raw/c")).count(), 5);
    assert_eq!(group(&s, "exp")["used_files"].as_u64(), Some(5));
    s.wait_for(10, "nothing left of the refused bodies", |s| s.tmp_entries() == 0);
}

/// Bad quota requests change nothing.
fn bad_quota_requests(catalog: Catalog) {
    let s = setup(catalog);
    s.run(&["quota", "set", "exp", "--files", "10"]);
    let before = quotas(&s);
    let alice = s.token_for("alice", "phys");
    for (token, body, code) in [
        (&s.token, json!({"storage_group": "exp", "files": -1}), 400),
        (&s.token, json!({"storage_group": "exp", "bytes": "10TB"}), 400),
        (&s.token, json!({"storage_group": "exp", "volumes": {"nolib": 1}}), 400),
        (&s.token, json!({"storage_group": "a/b", "files": 1}), 400),
        (&s.token, json!({"storage_group": "", "files": 1}), 400),
        (&s.token, json!({"storage_group": "exp"}), 400),
        (&s.token, json!({"storage_group": "exp", "files": 1, "extra": 1}), 400),
        (&alice, json!({"storage_group": "exp", "files": 1000}), 403),
    ] {
        let (got, answer) = s.api_post(token, "quotas", &body);
        assert_eq!(got, code, "{body}: {answer}");
    }
    assert_eq!(quotas(&s), before);
    // Anyone may read them.
    let r = s
        .http()
        .get(s.url_of("/api/v1/quotas"))
        .bearer_auth(&alice)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let out = s
        .bale()
        .args(["quota", "set", "exp", "--files", "lots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a count"), "{out:?}");
    let out = s.bale().args(["quota", "set", "exp"]).output().unwrap();
    assert!(!out.status.success());
}

on_both_catalogs!(
    quotas_hold,
    refused_before_and_while_the_body_arrives,
    concurrent_puts_never_overshoot,
    bad_quota_requests
);

/// A family whose storage group has taken its volume quota takes no new
/// volume: its job waits, an alarm says why, and raising the quota lets
/// it go to tape.
#[test]
fn a_family_at_its_volume_quota_waits_with_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(dir.path(), "bale.toml", SMALL_LIBRARY);
    let s = Server::start_with(Catalog::Sqlite, &["--config", &config]);
    s.run(&["mkdir", "/exp"]);
    s.run(&["tag", "set", "/exp", "storage_group=exp"]);
    s.run(&["quota", "set", "exp", "--volumes", "lib1=1"]);
    let stat = |p: &str| -> Value { serde_json::from_str(&s.run(&["stat", "--json", p])).unwrap() };
    assert_eq!(s.put_data("/exp/one", &bytes(1, 5000)).0, 201);
    s.run(&["queue", "flush"]);
    s.wait_for(60, "the first file on tape", |_| {
        stat("/exp/one")["archive"]["state"] == "archived"
    });
    // Its volume is made read-only: the family needs another, which its
    // quota does not allow.
    let vols: Value = serde_json::from_str(&s.run(&["volumes", "--json"])).unwrap();
    let taken = vols
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["family"]["storage_group"] == "exp")
        .unwrap_or_else(|| panic!("no volume of exp: {vols}"));
    let label = taken["label"].as_str().unwrap().to_string();
    s.run(&["volume", "set", &label, "readonly"]);
    assert_eq!(s.put_data("/exp/two", &bytes(2, 5000)).0, 201);
    s.run(&["queue", "flush"]);
    s.wait_for(30, "an alarm about the volume quota", |s| {
        s.api_get("alarms")
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["message"].as_str().is_some_and(|m| m.contains("quota of 1 volumes")))
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_ne!(stat("/exp/two")["archive"]["state"], "archived");
    let q = group(&s, "exp");
    assert_eq!(q["volumes"], json!([{"library": "lib1", "max": 1, "used": 1}]), "{q}");
    // More volumes allowed: the job goes to a new one.
    s.run(&["quota", "set", "exp", "--volumes", "lib1=2"]);
    s.wait_for(60, "the second file on tape", |_| {
        stat("/exp/two")["archive"]["state"] == "archived"
    });
}
