//! `/healthz` and `/readyz` answer without a token and say nothing else;
//! `/readyz` fails while the catalog is unreachable and recovers after;
//! `/api/v1/health` no longer names the catalog backend.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[test]
fn probes_answer_without_a_token_and_say_nothing_else() {
    let s = Server::start();
    let c = s.http();
    for p in ["/healthz", "/readyz"] {
        let r = c.get(s.url_of(p)).send().unwrap();
        assert_eq!(r.status(), 200, "{p}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.text().unwrap(), "ok\n", "{p}");
        assert_eq!(c.head(s.url_of(p)).send().unwrap().status(), 200, "HEAD {p}");
        let r = c.put(s.url_of(p)).bearer_auth(&s.token).body("x").send().unwrap();
        assert_eq!(r.status(), 405, "PUT {p}");
        assert_eq!(r.headers()["allow"], "GET, HEAD");
    }
    let h: serde_json::Value = c.get(s.url_of("/api/v1/health")).send().unwrap().json().unwrap();
    assert_eq!(h, serde_json::json!({"status": "ok"}), "the backend is not named");
    // Both names are the interface's, not the namespace's.
    for p in ["/healthz", "/readyz/x"] {
        let out = s.bale().args(["mkdir", "-p", p]).output().unwrap();
        assert!(!out.status.success(), "{p}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"), "{out:?}");
    }
}

/// A dead worker makes the node unready; an offline drive does not.
#[test]
fn a_dead_worker_makes_the_node_unready_an_offline_drive_does_not() {
    let s = Server::start();
    let ready = |s: &Server| s.http().get(s.url_of("/readyz")).send().unwrap().status().as_u16();
    s.run(&["drive", "offline", "lib1-d1"]);
    assert_eq!(ready(&s), 200, "an offline drive is normal operation");
    let (code, body) = s.api_post(
        &s.token,
        "tape/faults",
        &serde_json::json!({"kind": "worker_panic", "worker": "on-way check"}),
    );
    assert_eq!(code, 204, "{body}");
    s.wait_for(10, "/readyz to fail", |s| ready(s) == 503);
    assert_eq!(s.http().get(s.url_of("/healthz")).send().unwrap().status(), 200);
}

/// A TCP relay to PostgreSQL that can be cut (every connection closed,
/// new ones refused at once) and restored.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: &'static str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let mut o = open2.lock().unwrap();
                o.push(client.try_clone().unwrap());
                o.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { port, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn readyz_fails_while_the_catalog_is_unreachable_and_recovers() {
    let base = bale_catalog::conformance::test_postgres_base();
    if !base.contains("127.0.0.1:5432") {
        eprintln!("skipping: the relay expects PostgreSQL on 127.0.0.1:5432 ({base})");
        return;
    }
    let (url, schema) = block_on(bale_catalog::conformance::fresh_postgres());
    let relay = Relay::start("127.0.0.1:5432");
    let url = url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", relay.port));
    let s = Server::start_with(Catalog::Sqlite, &["--catalog", &url]);
    let ready = |s: &Server| s.http().get(s.url_of("/readyz")).send().unwrap().status().as_u16();
    assert_eq!(ready(&s), 200);
    relay.cut();
    s.wait_for(30, "/readyz to fail", |s| ready(s) == 503);
    // Every error is problem+json; the reason is not told.
    let r: serde_json::Value = s.http().get(s.url_of("/readyz")).send().unwrap().json().unwrap();
    assert_eq!(r["detail"], "not ready", "{r}");
    // Alive all the while.
    assert_eq!(s.http().get(s.url_of("/healthz")).send().unwrap().status(), 200);
    relay.restore();
    s.wait_for(60, "/readyz to recover", |s| ready(s) == 200);
    assert_eq!(s.put_data("/after", b"the catalog is back").0, 201);
    drop(s);
    block_on(bale_catalog::conformance::drop_postgres_schema(&schema));
}
