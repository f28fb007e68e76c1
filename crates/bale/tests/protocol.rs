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
    let copy = s
        .http()
        .request(Method::from_bytes(b"COPY").unwrap(), s.url_of("/a/file.txt"))
        .bearer_auth(&s.token)
        .header("Destination", s.url_of("/a/copy.txt"))
        .send()
        .unwrap();
    let (st, _, h) = problem(copy);
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
