//! One process per data directory: a second `bale serve` (or `bale
//! recover`) on a live server's data directory is refused, names the
//! holder, and leaves the live server, its running marker and its claim
//! on the catalog as they were. Two processes with one node id (a copied
//! data directory on a shared catalog) are told apart.

use crate::common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// `bale serve` on `data` with the server's catalog; its output once it
/// exits (within 60 s).
fn second_serve(s: &Server, data: &std::path::Path) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("BALE_CATALOG")
        .env("BALE_LOG", "warn");
    if let Some(url) = s.catalog_url() {
        cmd.arg("--catalog").arg(url);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the second server did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn claims(s: &Server) -> Vec<String> {
    s.catalog_query("SELECT node || ' ' || instance FROM catalog_users ORDER BY node")
}

fn a_second_server_on_a_live_data_directory_is_refused(catalog: Catalog) {
    let s = Server::start_on(catalog);
    s.run(&["mkdir", "/d"]);
    let marker = std::fs::read_to_string(s.data_dir().join("RUNNING")).unwrap();
    let claimed = claims(&s);
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    // The claim names this start: the node and the instance in the marker.
    let lines: Vec<&str> = marker.lines().collect();
    assert_eq!(claimed[0], format!("{} {}", lines[0], lines[1]));

    let out = second_serve(&s, &s.data_dir());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let port = s.url.rsplit(':').next().unwrap();
    assert!(err.contains(&format!("pid {}", s.pid())), "{err}");
    assert!(err.contains(port), "the holder's address: {err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));

    // Nothing of the live server was touched.
    assert_eq!(std::fs::read_to_string(s.data_dir().join("RUNNING")).unwrap(), marker);
    assert_eq!(claims(&s), claimed);
    let (code, _) = s.put_data("/d/after.dat", b"still serving");
    assert_eq!(code, 201);

    // recover too: refused, naming the running server.
    let out = s
        .bale()
        .args(["recover", "--all", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("pid {}", s.pid())) && err.contains("running"),
        "{err}"
    );
    assert_eq!(claims(&s), claimed);
}

on_both_catalogs!(a_second_server_on_a_live_data_directory_is_refused);

/// A copy of a live node's data directory (its node id with it) started on
/// the same PostgreSQL catalog: refused while the first one lives, the
/// first one's claim untouched; the copy's own marker is left as it was.
#[test]
fn a_copied_node_id_on_a_shared_catalog_is_refused() {
    let s = Server::start_on(Catalog::Postgres);
    let claimed = claims(&s);
    let copy = tempfile::Builder::new().prefix("bale-test-").tempdir().unwrap();
    let data = copy.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(s.data_dir().join("node.id"), data.join("node.id")).unwrap();
    let out = second_serve(&s, &data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("another process with this node's id"), "{err}");
    assert!(!data.join("RUNNING").exists(), "a refused start leaves no marker");
    assert_eq!(claims(&s), claimed);
    let (code, _) = s.put_data("/x.dat", b"still serving");
    assert_eq!(code, 201);
}
