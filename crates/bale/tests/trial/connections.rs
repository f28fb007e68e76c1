//! Every connection is bounded: headers that never end, a keep-alive
//! connection left idle, an upload that stops half way, a client that
//! stops reading, a body too large for the cache announced with `Expect:
//! 100-continue`, and more connections than the server takes.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const LIMITS: &str = r#"
[server]
header_timeout_s = 1
idle_timeout_s = 2
body_timeout_s = 1
"#;

fn server(config: &str) -> Server {
    let cfg = tempfile::tempdir().unwrap();
    let path = write_file(cfg.path(), "bale.toml", config);
    Server::start_with(Catalog::Sqlite, &["--config", &path])
}

fn connect(s: &Server) -> TcpStream {
    let t = TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    t
}

/// Reads until the server closes the connection; how long that took and
/// what was read.
fn until_closed(t: &mut TcpStream) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match t.read(&mut buf) {
            Ok(0) | Err(_) => return (start.elapsed(), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn slow_headers_and_idle_connections_are_closed() {
    let s = server(LIMITS);
    // Headers that never end: closed soon after header_timeout_s.
    let mut t = connect(&s);
    t.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let (took, _) = until_closed(&mut t);
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A kept-alive connection answers, then is closed once idle.
    let mut t = connect(&s);
    t.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    t.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let (took, _) = until_closed(&mut t);
    assert!(
        took > Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[test]
fn a_stalled_upload_keeps_nothing() {
    let s = server(LIMITS);
    s.run(&["mkdir", "/d"]);
    let mut t = connect(&s);
    let head = format!(
        "PUT /d/big.dat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 2000000000\r\n\r\n",
        s.token
    );
    t.write_all(head.as_bytes()).unwrap();
    t.write_all(&vec![7u8; 100_000]).unwrap();
    let (took, _) = until_closed(&mut t);
    assert!(took < Duration::from_secs(6), "held for {took:?}");
    let r = s
        .http()
        .head(s.url_of("/d/big.dat"))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    s.wait_for(10, "tmp/ emptied", |s| s.tmp_entries() == 0);
}

#[test]
fn a_body_too_large_for_the_cache_is_refused_before_100_continue() {
    let s = server(LIMITS);
    s.run(&["mkdir", "/d"]);
    let mut t = connect(&s);
    let head = format!(
        "PUT /d/huge.dat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 10000000000000\r\n\
         Expect: 100-continue\r\n\r\n",
        s.token
    );
    t.write_all(head.as_bytes()).unwrap();
    let mut status = [0u8; 12];
    t.read_exact(&mut status).unwrap();
    assert_eq!(&status, b"HTTP/1.1 413", "no 100 Continue first");
    let (_, rest) = until_closed(&mut t);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains("10.00 TB") && rest.contains("nothing was received"),
        "{rest}"
    );
    let r = s
        .http()
        .head(s.url_of("/d/huge.dat"))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(s.tmp_entries(), 0);
    // A body that fits the filesystem but not its free space: 507, before
    // the body too, and no cache-full alarm (the cache is not nearly full:
    // a user cannot raise it by announcing a large body).
    let free = rustix::fs::statvfs(s.data_dir()).unwrap();
    let (avail, size) = (free.f_bavail * free.f_frsize, free.f_blocks * free.f_frsize);
    if avail > size / 10 && avail + (1 << 30) < size {
        let mut t = connect(&s);
        let head = format!(
            "PUT /d/big.dat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\n\r\n",
            s.token,
            avail + (1 << 30)
        );
        t.write_all(head.as_bytes()).unwrap();
        let mut status = [0u8; 12];
        t.read_exact(&mut status).unwrap();
        assert_eq!(&status, b"HTTP/1.1 507");
        assert!(
            s.api_get("alarms").as_array().unwrap().is_empty(),
            "{}",
            s.api_get("alarms")
        );
    }
}

#[test]
fn a_client_that_stops_reading_is_dropped() {
    let s = server(LIMITS);
    s.run(&["mkdir", "/d"]);
    let data = bytes(1, 32 << 20);
    let (code, _) = s.put_data("/d/f.dat", &data);
    assert_eq!(code, 201);
    let mut t = connect(&s);
    t.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let head = format!(
        "GET /d/f.dat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        s.token
    );
    t.write_all(head.as_bytes()).unwrap();
    // Not a byte read for a while: the server gives up on the client.
    std::thread::sleep(Duration::from_secs(5));
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (_, got) = until_closed(&mut t);
    assert!(got.len() < data.len(), "the whole body arrived ({} bytes)", got.len());
    // The server serves others meanwhile.
    assert_eq!(s.http().get(s.url_of("/api/v1/health")).send().unwrap().status(), 200);
}

#[test]
fn connections_past_the_cap_are_answered_503() {
    let s = server("[server]\nmax_connections = 3\n");
    let held: Vec<TcpStream> = (0..3).map(|_| connect(&s)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut t = connect(&s);
    let (_, got) = until_closed(&mut t);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.contains("too many connections"), "{got}");
    drop(held);
    // Room again once they are gone.
    s.wait_for(10, "a connection accepted again", |s| {
        s.http()
            .get(s.url_of("/api/v1/health"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
}

#[test]
fn a_put_that_is_refused_reads_no_body_first() {
    let s = server(LIMITS);
    s.run(&["mkdir", "/d"]);
    let bob = s.token_for("bob", "other");
    // Small, with Expect: refused (403) before 100 Continue, as a large one is.
    let mut t = connect(&s);
    let head = format!(
        "PUT /d/x.dat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bob}\r\nContent-Length: 1000\r\n\
         Expect: 100-continue\r\n\r\n"
    );
    t.write_all(head.as_bytes()).unwrap();
    let mut status = [0u8; 12];
    t.read_exact(&mut status).unwrap();
    assert_eq!(&status, b"HTTP/1.1 403", "no 100 Continue first");
    assert_eq!(s.tmp_entries(), 0);
}
