//! PUT as RFC 9110 says: it replaces the file (200), creates it (201), or
//! with `Overwrite: F` or `If-None-Match: *` creates only (412, nothing
//! changed); a write-once tree keeps its files (409 naming the tag); a
//! failed PUT never takes the old file away; rclone syncs changed files
//! without ever deleting one.

use crate::common::*;
use crate::tool;
use std::process::Command;

fn put(s: &Server, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    let mut r = s.http().put(s.url_of(path)).bearer_auth(&s.token).body(body.to_vec());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn get(s: &Server, path: &str) -> Vec<u8> {
    let r = s.http().get(s.url_of(path)).bearer_auth(&s.token).send().unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.bytes().unwrap().to_vec()
}

fn put_replaces_and_create_only_refuses(catalog: Catalog) {
    let s = Server::start_on(catalog);
    s.run(&["mkdir", "-p", "/w"]);
    assert_eq!(put(&s, "/w/f", b"one", &[]).0, 201);
    let id = s.file_id("/w/f");
    // A plain PUT replaces: 200, the new data, a new file id.
    assert_eq!(put(&s, "/w/f", b"two!", &[]).0, 200);
    assert_eq!(get(&s, "/w/f"), b"two!");
    assert_ne!(s.file_id("/w/f"), id);
    // Create-only: 412, nothing changed.
    let before = s.tree();
    let id = s.file_id("/w/f");
    for h in [("Overwrite", "F"), ("If-None-Match", "*")] {
        let (code, text) = put(&s, "/w/f", b"three", &[h]);
        assert_eq!(code, 412, "{h:?}: {text}");
        assert!(text.contains("create it only"), "{text}");
    }
    let (code, _) = s
        .http()
        .put(s.url_of("/w/f?overwrite=false"))
        .bearer_auth(&s.token)
        .body("q")
        .send()
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(code, 412);
    assert_eq!((s.tree(), s.file_id("/w/f")), (before, id));
    assert_eq!(get(&s, "/w/f"), b"two!");
    // On a new path both create.
    assert_eq!(put(&s, "/w/g", b"g", &[("If-None-Match", "*")]).0, 201);
    assert_eq!(put(&s, "/w/h", b"h", &[("Overwrite", "F")]).0, 201);
    // A directory is never replaced by a PUT.
    s.run(&["mkdir", "/w/d"]);
    assert_eq!(put(&s, "/w/d", b"x", &[]).0, 409);

    // `bale put` creates only unless told --overwrite.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"local").unwrap();
    let local = dir.path().join("f");
    let out = s.bale().args(["put", local.to_str().unwrap(), "/w"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("create it only"),
        "{out:?}"
    );
    assert_eq!(get(&s, "/w/f"), b"two!");
    let out = s
        .bale()
        .args(["put", "--overwrite", local.to_str().unwrap(), "/w"])
        .output()
        .unwrap();
    assert_ok(&out, "bale put --overwrite");
    assert_eq!(get(&s, "/w/f"), b"local");
}

/// A failed PUT (a wrong checksum, a short body, a partial write) leaves
/// the file it would have replaced as it was.
fn failed_put_keeps_the_old_file(catalog: Catalog) {
    let s = Server::start_on(catalog);
    s.run(&["mkdir", "-p", "/w"]);
    assert_eq!(put(&s, "/w/f", b"original", &[]).0, 201);
    let id = s.file_id("/w/f");
    let (code, text) = put(&s, "/w/f", b"changed", &[("Digest", "adler32=00000001")]);
    assert_eq!(code, 400, "{text}");
    let (code, _) = put(&s, "/w/f", b"changed", &[("Content-Range", "bytes 0-6/7")]);
    assert_eq!(code, 400);
    // A body shorter than declared: the connection ends early.
    let mut sock = std::net::TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
    use std::io::{Read, Write};
    write!(
        sock,
        "PUT /w/f HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\nshort",
        s.token
    )
    .unwrap();
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    s.wait_for(10, "the short PUT to end", |s| s.tmp_entries() == 0);
    assert_eq!(s.file_id("/w/f"), id);
    assert_eq!(get(&s, "/w/f"), b"original");
}

/// `write_once=true` on a directory: its files, and those of every
/// directory beneath it, are never replaced (409 naming the tag);
/// creating and deleting go as the bits allow.
fn write_once_trees_keep_their_files(catalog: Catalog) {
    let s = Server::start_on(catalog);
    s.run(&["mkdir", "-p", "/archive/raw", "/open"]);
    s.run(&["tag", "set", "/archive", "write_once=true"]);
    s.run(&["mkdir", "/archive/raw/later"]);
    for dir in ["/archive", "/archive/raw", "/archive/raw/later"] {
        let f = format!("{dir}/f");
        assert_eq!(put(&s, &f, b"first", &[]).0, 201, "{f}");
        let id = s.file_id(&f);
        let (code, text) = put(&s, &f, b"second", &[]);
        assert_eq!(code, 409, "{f}: {text}");
        assert!(text.contains("write_once=true") && text.contains("/archive"), "{text}");
        assert_eq!((get(&s, &f), s.file_id(&f)), (b"first".to_vec(), id));
        // COPY onto it is refused too.
        assert_eq!(
            put(&s, "/open/src", b"src", &[]).0,
            if dir == "/archive" { 201 } else { 200 }
        );
        let r = s
            .http()
            .request(crate::method("COPY"), s.url_of("/open/src"))
            .bearer_auth(&s.token)
            .header("Destination", s.url_of(&f))
            .send()
            .unwrap();
        assert_eq!(r.status(), 409, "COPY onto {f}");
        // So is a MOVE onto it.
        let r = s
            .http()
            .request(crate::method("MOVE"), s.url_of("/open/src"))
            .bearer_auth(&s.token)
            .header("Destination", s.url_of(&f))
            .send()
            .unwrap();
        assert_eq!(r.status(), 409, "MOVE onto {f}");
        assert_eq!(get(&s, &f), b"first");
    }
    // Deleting is as the bits allow; the name is then free again.
    let r = s
        .http()
        .delete(s.url_of("/archive/raw/f"))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(put(&s, "/archive/raw/f", b"again", &[]).0, 201);
    // Outside the tree a PUT replaces; with the tag cleared, inside too.
    assert_eq!(put(&s, "/open/src", b"new", &[]).0, 200);
    s.run(&["tag", "set", "/archive", "write_once=false"]);
    assert_eq!(put(&s, "/archive/f", b"second", &[]).0, 200);
    let tags = s.run(&["tag", "show", "/archive"]);
    assert!(tags.contains("write_once"), "{tags}");
}

on_both_catalogs!(
    put_replaces_and_create_only_refuses,
    failed_put_keeps_the_old_file,
    write_once_trees_keep_their_files
);

/// rclone sync of changed files with `--retries 1`: every changed file is
/// replaced by one PUT, none is deleted first (rclone's webdav backend
/// deletes a file after a failed PUT, so a PUT that fails is what once
/// left a path without a file: a 409 for an existing file).
#[test]
fn rclone_sync_replaces_without_deleting() {
    let Some(rclone) = tool("rclone") else { return };
    let s = Server::start();
    s.run(&["mkdir", "-p", "/sync"]);
    let work = tempfile::tempdir().unwrap();
    for i in 0..5u64 {
        std::fs::write(work.path().join(format!("f{i}")), bytes(i, 1000 + i as usize)).unwrap();
    }
    // The owncloud vendor: rclone then compares modification times (which
    // it sends with X-OC-Mtime), not sizes alone.
    let mut args = crate::owncloud(&s);
    args.extend(["--retries".to_string(), "1".to_string()]);
    let sync = |s: &Server| {
        let out = Command::new(rclone)
            .arg("sync")
            .arg(work.path())
            .arg(":webdav:/sync")
            .args(&args)
            .args(["--dump", "headers", "--low-level-retries", "1"])
            .output()
            .unwrap();
        assert_ok(&out, "rclone sync");
        let _ = s;
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    sync(&s);
    // Change every file (same size for two of them) and sync again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for i in 0..5u64 {
        std::fs::write(
            work.path().join(format!("f{i}")),
            bytes(100 + i, 1000 + (i as usize % 3)),
        )
        .unwrap();
    }
    let log = sync(&s);
    assert!(!log.contains("DELETE /"), "rclone deleted a file:\n{log}");
    assert_eq!(log.matches("PUT /sync/f").count(), 5, "{log}");
    for i in 0..5u64 {
        assert_eq!(get(&s, &format!("/sync/f{i}")), bytes(100 + i, 1000 + (i as usize % 3)));
    }
}
