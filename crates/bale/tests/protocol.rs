//! Protocol answers a trial found wrong, each checked for its status, its
//! problem+json body, and that nothing changed: the web framework's own
//! rejections, unknown JSON fields, an unknown library tag, WebDAV MOVE
//! and PROPFIND edge cases (RFC 4918), and HTTP details (RFC 9110/9112).

mod common;

use common::Server;
use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{Read, Write};

/// Status and detail of a problem+json answer (asserted to be one).
fn problem(r: Response) -> (u16, String, reqwest::header::HeaderMap) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().unwrap();
    assert_eq!(ct, "application/problem+json", "{status}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"].as_u64().unwrap() as u16, status, "{body}");
    let detail = body["detail"].as_str().unwrap().to_string();
    assert!(detail.len() > 10, "unhelpful message: {detail:?}");
    (status, detail, headers)
}

fn server() -> Server {
    let s = Server::start();
    s.run(&["mkdir", "/a"]);
    let r = s
        .http()
        .put(s.url_of("/a/file.txt"))
        .bearer_auth(&s.token)
        .body("0123456789")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    s.run(&["mkdir", "/a/sub"]);
    s
}

fn post_raw(s: &Server, endpoint: &str, content_type: Option<&str>, body: Vec<u8>) -> Response {
    let mut r = s
        .http()
        .post(s.url_of(&format!("/api/v1/{endpoint}")))
        .bearer_auth(&s.token)
        .body(body);
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    r.send().unwrap()
}

#[test]
fn framework_rejections_are_problem_json_and_change_nothing() {
    let s = server();
    let before = s.tree();
    let json = Some("application/json");
    // Malformed, mistyped, unknown field: 400 naming what is wrong.
    let (st, d, _) = problem(post_raw(&s, "mkdir", json, b"{\"path\": ".to_vec()));
    assert_eq!(st, 400, "{d}");
    let (st, d, _) = problem(post_raw(&s, "mkdir", json, b"{\"path\": 5}".to_vec()));
    assert_eq!(st, 400, "{d}");
    let (st, d, _) = problem(post_raw(
        &s,
        "mkdir",
        json,
        br#"{"path":"/a/d","moed":"0700"}"#.to_vec(),
    ));
    assert_eq!(st, 400);
    assert!(d.contains("moed"), "{d}");
    // No Content-Type.
    let (st, d, _) = problem(post_raw(&s, "mkdir", None, br#"{"path":"/a/d"}"#.to_vec()));
    assert_eq!(st, 415, "{d}");
    // A body too large.
    let big = format!("{{\"path\":\"/a/d\",\"owner\":\"{}\"}}", "x".repeat(3 << 20));
    let (st, d, _) = problem(post_raw(&s, "mkdir", json, big.into_bytes()));
    assert_eq!(st, 413, "{d}");
    // Bad and unknown query parameters.
    let get = |q: &[(&str, &str)]| {
        s.http()
            .get(s.url_of("/api/v1/list"))
            .query(q)
            .bearer_auth(&s.token)
            .send()
            .unwrap()
    };
    let (st, d, _) = problem(get(&[("path", "/a"), ("limit", "many")]));
    assert_eq!(st, 400, "{d}");
    let (st, d, _) = problem(get(&[("path", "/a"), ("bogus", "1")]));
    assert_eq!(st, 400);
    assert!(d.contains("bogus"), "{d}");
    // 405 on an API route and on a namespace path: problem+json with Allow.
    let (st, _, h) = problem(post_raw(&s, "stat", json, b"{}".to_vec()));
    assert_eq!(st, 405);
    assert!(h.get("allow").unwrap().to_str().unwrap().contains("GET"), "{h:?}");
    let lock = s
        .http()
        .request(Method::from_bytes(b"LOCK").unwrap(), s.url_of("/a/file.txt"))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    let (st, _, h) = problem(lock);
    assert_eq!(st, 405);
    assert!(h.get("allow").unwrap().to_str().unwrap().contains("PROPFIND"), "{h:?}");
    // Unknown fields are refused on every JSON request body.
    let (st, d, _) = problem(post_raw(
        &s,
        "tokens",
        json,
        br#"{"user":"x","group":"y","admn":true}"#.to_vec(),
    ));
    assert_eq!(st, 400);
    assert!(d.contains("admn"), "{d}");
    let (st, d, _) = problem(post_raw(
        &s,
        "attrs",
        json,
        br#"{"path":"/a/file.txt","mdoe":"600"}"#.to_vec(),
    ));
    assert_eq!(st, 400);
    assert!(d.contains("mdoe"), "{d}");
    assert_eq!(s.tree(), before, "the namespace changed");
    assert_eq!(s.api_get("stat?path=/a/file.txt")["mode"], "0644");
    assert_eq!(s.api_get("tokens").as_array().unwrap().len(), 1, "no token was made");
}

#[test]
fn a_library_tag_must_name_a_configured_library() {
    let s = server();
    let (st, d, _) = problem(post_raw(
        &s,
        "tags",
        Some("application/json"),
        serde_json::to_vec(&json!({"path": "/a/sub", "set": {"library": "nolib"}})).unwrap(),
    ));
    assert_eq!(st, 400);
    assert!(d.contains("nolib") && d.contains("lib1"), "{d}");
    assert!(s.api_get("stat?path=/a/sub")["tags"].get("library").is_none());
    // The configured one is taken, and a PUT below it works.
    s.run(&["tag", "set", "/a/sub", "library=lib1"]);
    let r = s
        .http()
        .put(s.url_of("/a/sub/x"))
        .bearer_auth(&s.token)
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
}

fn webdav(s: &Server, method: &str, path: &str) -> reqwest::blocking::RequestBuilder {
    s.http()
        .request(Method::from_bytes(method.as_bytes()).unwrap(), s.url_of(path))
        .bearer_auth(&s.token)
}

#[test]
fn webdav_move_and_propfind_edge_cases() {
    let s = server();
    let r = webdav(&s, "PUT", "/a/other.txt").body("other").send().unwrap();
    assert_eq!(r.status(), 201);
    let before = s.tree();
    // MOVE onto itself: 403.
    let (st, _, _) = problem(
        webdav(&s, "MOVE", "/a/file.txt")
            .header("Destination", s.url_of("/a/file.txt"))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 403);
    // Onto an existing entry with Overwrite: F: 412.
    let (st, _, _) = problem(
        webdav(&s, "MOVE", "/a/file.txt")
            .header("Destination", s.url_of("/a/other.txt"))
            .header("Overwrite", "F")
            .send()
            .unwrap(),
    );
    assert_eq!(st, 412);
    // A Destination on another host, port or scheme: refused, not applied here.
    let here = s.url.trim_start_matches("http://").to_string();
    let port: u16 = here.rsplit(':').next().unwrap().parse().unwrap();
    for dest in [
        "http://elsewhere.example/a/moved.txt".to_string(),
        format!("https://{here}/a/moved.txt"),
        format!("http://127.0.0.1:{}/a/moved.txt", port.wrapping_add(1)),
    ] {
        let (st, d, _) = problem(
            webdav(&s, "MOVE", "/a/file.txt")
                .header("Destination", dest.as_str())
                .send()
                .unwrap(),
        );
        assert_eq!(st, 502, "{dest}: {d}");
    }
    // A PROPFIND body that is not well-formed XML: 400.
    for body in ["<D:propfind xmlns:D=\"DAV:\"><D:prop>", "not xml", "<a></b>"] {
        let (st, d, _) = problem(
            webdav(&s, "PROPFIND", "/a")
                .header("Depth", "1")
                .body(body)
                .send()
                .unwrap(),
        );
        assert_eq!(st, 400, "{body}: {d}");
    }
    let ok = webdav(&s, "PROPFIND", "/a")
        .header("Depth", "1")
        .body(r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#)
        .send()
        .unwrap();
    assert_eq!(ok.status(), 207);
    assert_eq!(s.tree(), before, "the namespace changed");
    // A relative Destination and one naming this server still work.
    let r = webdav(&s, "MOVE", "/a/file.txt")
        .header("Destination", s.url_of("/a/moved.txt"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[test]
fn http_range_units_host_and_auth_scheme() {
    let s = server();
    // A Range in an unknown unit is ignored: 200 with the whole body.
    let r = webdav(&s, "GET", "/a/file.txt")
        .header("Range", "items=0-3")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "0123456789");
    let r = webdav(&s, "GET", "/a/file.txt")
        .header("Range", "bytes=2-4")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.text().unwrap(), "234");
    // The auth scheme is case-insensitive.
    for scheme in ["BEARER", "bearer", "BeArEr"] {
        let r = s
            .http()
            .get(s.url_of("/a/file.txt"))
            .header("Authorization", format!("{scheme} {}", s.token))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let (st, _, _) = problem(
        s.http()
            .get(s.url_of("/a/file.txt"))
            .header("Authorization", format!("Basic {}", s.token))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 401);
    // An HTTP/1.1 request without Host: 400, problem+json; nothing is created.
    let before = s.tree();
    let addr = s.url.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "PUT /a/nohost.txt HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        s.token
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(answer.contains("Host"), "{answer}");
    assert_eq!(s.tree(), before);
}

/// WebDAV COPY (RFC 4918 9.8): a file, a tree (Depth infinity) or a bare
/// collection (Depth 0); onto itself 403, into itself 409, onto an
/// existing entry with Overwrite: F 412; a source the user may not read in
/// full is refused before anything is copied.
#[test]
fn webdav_copy() {
    let s = server();
    webdav(&s, "PUT", "/a/sub/inner.txt").body("inner").send().unwrap();
    let before = s.tree();
    let status = |r: reqwest::blocking::RequestBuilder| r.send().unwrap().status().as_u16();
    let (st, _, _) = problem(
        webdav(&s, "COPY", "/a/file.txt")
            .header("Destination", s.url_of("/a/file.txt"))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 403);
    let (st, _, _) = problem(
        webdav(&s, "COPY", "/a")
            .header("Destination", s.url_of("/a/sub/a-again"))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 409);
    let (st, _, _) = problem(
        webdav(&s, "COPY", "/a/file.txt")
            .header("Destination", s.url_of("/a/sub/inner.txt"))
            .header("Overwrite", "F")
            .send()
            .unwrap(),
    );
    assert_eq!(st, 412);
    let (st, _, _) = problem(
        webdav(&s, "COPY", "/a/file.txt")
            .header("Destination", "http://elsewhere.example/a/x")
            .send()
            .unwrap(),
    );
    assert_eq!(st, 502);
    // Bob may not read alice's private file: the tree copy is refused whole.
    s.run(&["mkdir", "--owner", "alice", "--group", "phys", "/alice"]);
    let alice = s.token_for("alice", "phys");
    let bob = s.token_for("bob", "other");
    s.run(&["mkdir", "--owner", "bob", "--group", "other", "/bob"]);
    let r = s
        .http()
        .put(s.url_of("/alice/open.txt"))
        .bearer_auth(&alice)
        .body("o")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s
        .http()
        .put(s.url_of("/alice/private.txt"))
        .bearer_auth(&alice)
        .body("p")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    s.run(&["chmod", "600", "/alice/private.txt"]);
    let before_bob = s.tree();
    let r = s
        .http()
        .request(Method::from_bytes(b"COPY").unwrap(), s.url_of("/alice"))
        .bearer_auth(&bob)
        .header("Destination", s.url_of("/bob/alice-copy"))
        .send()
        .unwrap();
    let (st, d, _) = problem(r);
    assert_eq!(st, 403, "{d}");
    assert_eq!(s.tree(), before_bob, "a refused copy changed the namespace");
    s.run(&["rm", "-r", "/alice", "/bob"]);
    assert_eq!(s.tree(), before);

    // A file, then a whole tree, then a bare collection.
    assert_eq!(
        status(webdav(&s, "COPY", "/a/file.txt").header("Destination", s.url_of("/a/copy.txt"))),
        201
    );
    let text = webdav(&s, "GET", "/a/copy.txt").send().unwrap().text().unwrap();
    assert_eq!(text, "0123456789");
    assert_ne!(s.file_id("/a/copy.txt"), s.file_id("/a/file.txt"));
    assert_eq!(
        status(webdav(&s, "COPY", "/a").header("Destination", s.url_of("/b"))),
        201
    );
    let text = webdav(&s, "GET", "/b/sub/inner.txt").send().unwrap().text().unwrap();
    assert_eq!(text, "inner");
    assert_eq!(
        status(
            webdav(&s, "COPY", "/a")
                .header("Destination", s.url_of("/c"))
                .header("Depth", "0")
        ),
        201
    );
    let c = s.api_get("list?path=/c");
    assert!(c["entries"].as_array().unwrap().is_empty(), "{c}");
    // Onto an existing file with Overwrite: T (the default): 204, new data.
    assert_eq!(
        status(webdav(&s, "COPY", "/a/sub/inner.txt").header("Destination", s.url_of("/a/copy.txt"))),
        204
    );
    let text = webdav(&s, "GET", "/a/copy.txt").send().unwrap().text().unwrap();
    assert_eq!(text, "inner");
}
