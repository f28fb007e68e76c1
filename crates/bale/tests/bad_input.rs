//! Acceptance: wrong checksum, bad path, missing parent, create-only over
//! an existing file, missing or invalid token, writing into another user's
//! directory: each a clear 4xx, and nothing changed.

mod common;
use common::*;
use std::io::{Read, Write};

/// The status and problem detail of a response, with the detail checked to be
/// a message a person can act on.
fn problem(r: reqwest::blocking::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: serde_json::Value = r.json().expect("problem+json body");
    assert_eq!(ct, "application/problem+json");
    assert_eq!(body["status"].as_u64().unwrap() as u16, status);
    let detail = body["detail"].as_str().unwrap().to_string();
    assert!(detail.len() > 10, "unhelpful message: {detail:?}");
    (status, detail)
}

struct Fixture {
    srv: Server,
    alice: String,
    bob: String,
}

fn fixture() -> Fixture {
    let srv = Server::start();
    srv.run(&["mkdir", "--owner", "alice", "--group", "phys", "/alice"]);
    srv.run(&["mkdir", "--owner", "bob", "--group", "phys", "/bob"]);
    let alice = srv.token_for("alice", "phys");
    let bob = srv.token_for("bob", "phys");
    let http = srv.http();
    let r = http
        .put(srv.url_of("/alice/data.txt"))
        .bearer_auth(&alice)
        .body("original")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    Fixture { srv, alice, bob }
}

/// Asserts that a bad request changed nothing: same namespace, same data, no temp files.
fn unchanged(f: &Fixture, before: &[(String, i64)]) {
    assert_eq!(f.srv.tree(), before, "the namespace changed");
    let body = f
        .srv
        .http()
        .get(f.srv.url_of("/alice/data.txt"))
        .bearer_auth(&f.alice)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(body, "original");
    assert_eq!(f.srv.tmp_entries(), 0, "temp data left behind");
}

#[test]
fn wrong_checksum_is_refused() {
    let f = fixture();
    let before = f.srv.tree();
    let r = f
        .srv
        .http()
        .put(f.srv.url_of("/alice/new.txt"))
        .bearer_auth(&f.alice)
        .header("Digest", "adler32=00000001")
        .body("hello")
        .send()
        .unwrap();
    let (status, detail) = problem(r);
    assert_eq!(status, 400);
    assert!(detail.contains("checksum mismatch"), "{detail}");
    // A malformed digest is refused too.
    let r = f
        .srv
        .http()
        .put(f.srv.url_of("/alice/new.txt"))
        .bearer_auth(&f.alice)
        .header("Digest", "adler32=xyz")
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 400);
    unchanged(&f, &before);
}

#[test]
fn bad_paths_are_refused() {
    let f = fixture();
    let before = f.srv.tree();
    let http = f.srv.http();
    let long = "x".repeat(300);
    for p in ["/alice/a%00b", "/alice/%ff", &format!("/alice/{long}")] {
        let r = http
            .put(f.srv.url_of(p))
            .bearer_auth(&f.alice)
            .body("x")
            .send()
            .unwrap();
        let (status, detail) = problem(r);
        assert_eq!(status, 400, "{p}");
        assert!(detail.contains("invalid path"), "{detail}");
    }
    // Paths in JSON bodies are not normalised by any URL parser on the way.
    for p in ["/alice/../bob/x", "relative", "/alice/./x"] {
        let r = http
            .post(f.srv.url_of("/api/v1/mkdir"))
            .bearer_auth(&f.alice)
            .json(&serde_json::json!({"path": p}))
            .send()
            .unwrap();
        assert_eq!(problem(r).0, 400, "{p}");
    }
    // Reserved top-level names cannot enter the namespace.
    let r = http
        .post(f.srv.url_of("/api/v1/mkdir"))
        .bearer_auth(&f.srv.token)
        .json(&serde_json::json!({"path": "/metrics"}))
        .send()
        .unwrap();
    let (status, detail) = problem(r);
    assert_eq!(status, 400);
    assert!(detail.contains("reserved"), "{detail}");
    // Unknown tags are refused by name.
    let r = http
        .post(f.srv.url_of("/api/v1/tags"))
        .bearer_auth(&f.alice)
        .json(&serde_json::json!({"path": "/alice", "set": {"colour": "blue"}}))
        .send()
        .unwrap();
    let (status, detail) = problem(r);
    assert_eq!(status, 400);
    assert!(detail.contains("colour"), "{detail}");
    unchanged(&f, &before);
}

#[test]
fn missing_parent_is_a_conflict() {
    let f = fixture();
    let before = f.srv.tree();
    let r = f
        .srv
        .http()
        .put(f.srv.url_of("/alice/nodir/x.txt"))
        .bearer_auth(&f.alice)
        .body("x")
        .send()
        .unwrap();
    let (status, detail) = problem(r);
    assert_eq!(status, 409);
    assert!(detail.contains("does not exist"), "{detail}");
    unchanged(&f, &before);
}

#[test]
fn create_only_is_refused_over_a_file() {
    let f = fixture();
    let before = f.srv.tree();
    let http = f.srv.http();
    // Asked to create only: 412, and nothing changed.
    for (k, v) in [("Overwrite", "F"), ("If-None-Match", "*")] {
        let r = http
            .put(f.srv.url_of("/alice/data.txt"))
            .bearer_auth(&f.alice)
            .header(k, v)
            .body("replaced!")
            .send()
            .unwrap();
        let (status, detail) = problem(r);
        assert_eq!(status, 412, "{k}");
        assert!(detail.contains("create it only"), "{detail}");
        unchanged(&f, &before);
    }

    // A plain PUT replaces it (RFC 9110): 200.
    let r = http
        .put(f.srv.url_of("/alice/data.txt"))
        .bearer_auth(&f.alice)
        .body("replaced!")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = http
        .get(f.srv.url_of("/alice/data.txt"))
        .bearer_auth(&f.alice)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(body, "replaced!");
    // The old version's data leaves the cache right after the answer (the
    // promotion task removes it): one file left.
    let files = f.srv.data_dir().join("cache/files");
    f.srv.wait_for(10, "only the new version's data in the cache", |_| {
        let left = local_files(&files);
        left.len() == 1 && std::fs::read(files.join(&left[0])).is_ok_and(|d| d == b"replaced!")
    });
}

#[test]
fn missing_or_invalid_token_is_unauthorized() {
    let f = fixture();
    let before = f.srv.tree();
    let http = f.srv.http();
    let r = http.put(f.srv.url_of("/alice/x")).body("x").send().unwrap();
    let (status, detail) = problem(r);
    assert_eq!(status, 401);
    assert!(detail.contains("Authorization"), "{detail}");
    let r = http
        .put(f.srv.url_of("/alice/x"))
        .bearer_auth("bale_nope_nope")
        .body("x")
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 401);
    let r = http
        .get(f.srv.url_of("/alice/data.txt"))
        .header("Authorization", "Basic YWxpY2U6eA==")
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 401);
    // A revoked token stops working at once.
    let carol = f.srv.token_for("carol", "phys");
    let id = carol.split('_').nth(1).unwrap();
    let ok = http
        .get(f.srv.url_of("/api/v1/whoami"))
        .bearer_auth(&carol)
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    f.srv.run(&["token", "revoke", id]);
    let r = http
        .get(f.srv.url_of("/api/v1/whoami"))
        .bearer_auth(&carol)
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 401);
    // Health and discovery need no token.
    assert_eq!(http.get(f.srv.url_of("/api/v1/health")).send().unwrap().status(), 200);
    // Only administrators manage tokens.
    let r = http
        .post(f.srv.url_of("/api/v1/tokens"))
        .bearer_auth(&f.alice)
        .json(&serde_json::json!({"user": "mallory", "group": "x", "admin": true}))
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 403);
    unchanged(&f, &before);
}

#[test]
fn other_users_directories_are_protected() {
    let f = fixture();
    let before = f.srv.tree();
    let http = f.srv.http();
    // bob cannot write into alice's 0755 directory ...
    let r = http
        .put(f.srv.url_of("/alice/from-bob.txt"))
        .bearer_auth(&f.bob)
        .body("x")
        .send()
        .unwrap();
    let (status, detail) = problem(r);
    assert_eq!(status, 403);
    assert!(detail.contains("bob") && detail.contains("/alice"), "{detail}");
    // ... nor delete, overwrite, move or tag what is hers ...
    let r = http
        .delete(f.srv.url_of("/alice/data.txt"))
        .bearer_auth(&f.bob)
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 403);
    let r = http
        .put(f.srv.url_of("/alice/data.txt"))
        .bearer_auth(&f.bob)
        .header("Overwrite", "T")
        .body("x")
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 403);
    let r = http
        .request(
            reqwest::Method::from_bytes(b"MOVE").unwrap(),
            f.srv.url_of("/alice/data.txt"),
        )
        .bearer_auth(&f.bob)
        .header("Destination", f.srv.url_of("/bob/stolen.txt"))
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 403);
    let r = http
        .post(f.srv.url_of("/api/v1/tags"))
        .bearer_auth(&f.bob)
        .json(&serde_json::json!({"path": "/alice", "set": {"file_family": "x"}}))
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 403);
    // ... nor create at the top level, nor give directories away.
    let r = http
        .request(reqwest::Method::from_bytes(b"MKCOL").unwrap(), f.srv.url_of("/bobs"))
        .bearer_auth(&f.bob)
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 403);
    let r = http
        .post(f.srv.url_of("/api/v1/mkdir"))
        .bearer_auth(&f.bob)
        .json(&serde_json::json!({"path": "/bob/x", "owner": "alice"}))
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 403);
    // A mode of 0700 hides alice's directory listing from bob.
    f.srv.run(&["chmod", "0700", "/alice"]);
    let r = http
        .get(f.srv.url_of("/api/v1/list"))
        .query(&[("path", "/alice")])
        .bearer_auth(&f.bob)
        .send()
        .unwrap();
    assert_eq!(problem(r).0, 403);
    f.srv.run(&["chmod", "0755", "/alice"]);
    unchanged(&f, &before);
    // bob can of course write into his own directory.
    let r = http
        .put(f.srv.url_of("/bob/mine.txt"))
        .bearer_auth(&f.bob)
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[test]
fn short_body_leaves_nothing() {
    let f = fixture();
    let before = f.srv.tree();
    let addr = f.srv.url.strip_prefix("http://").unwrap().to_string();
    // Declare 1 MiB, send 10 KiB, then disconnect.
    for declared in [1usize << 20, 100] {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let head = format!(
            "PUT /alice/short.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: {declared}\r\n\r\n",
            f.alice
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&vec![b'x'; declared.min(10 << 10) - 1]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        assert!(!resp.starts_with("HTTP/1.1 201"), "a short body was accepted: {resp}");
    }
    // Give the server a moment to notice the disconnects.
    for _ in 0..100 {
        if f.srv.tmp_entries() == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unchanged(&f, &before);
}
