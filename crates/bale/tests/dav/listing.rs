//! WebDAV behaviour: PROPFIND listings checked by real clients (rclone,
//! davix), ranges, digests, access times, MOVE, DELETE, MKCOL.

use crate::common::*;
use crate::{method, tool};
use std::process::Command;

fn setup() -> Server {
    let srv = Server::start();
    srv.run(&["mkdir", "-p", "/dav/sub dir"]);
    let http = srv.http();
    for (name, len) in [("a.txt", 4usize), ("b.bin", 5000), ("empty", 0), ("é ü.dat", 77)] {
        let url = format!("{}/dav/{}", srv.url, name.replace(' ', "%20"));
        let r = http
            .put(url)
            .bearer_auth(&srv.token)
            .body(bytes(len as u64, len))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{name}");
    }
    srv
}

#[test]
fn propfind_depth_1_lists_entries_with_sizes() {
    let srv = setup();
    let http = srv.http();
    let r = http
        .request(method("PROPFIND"), srv.url_of("/dav/"))
        .bearer_auth(&srv.token)
        .header("Depth", "1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 207);
    let xml = r.text().unwrap();
    assert_eq!(xml.matches("<D:response>").count(), 6, "{xml}");
    assert!(xml.contains("<D:href>/dav/</D:href>"), "{xml}");
    assert!(xml.contains("<D:href>/dav/b.bin</D:href>"), "{xml}");
    assert!(xml.contains("<D:getcontentlength>5000</D:getcontentlength>"), "{xml}");
    assert!(xml.contains("<D:href>/dav/sub%20dir/</D:href>"), "{xml}");
    assert!(xml.contains("<D:collection/>"));
    assert!(xml.contains("<D:getlastmodified>") && xml.contains("<D:creationdate>"));

    // Depth 0 answers for the resource itself only.
    let r = http
        .request(method("PROPFIND"), srv.url_of("/dav/b.bin"))
        .bearer_auth(&srv.token)
        .header("Depth", "0")
        .send()
        .unwrap();
    assert_eq!(r.status(), 207);
    let xml = r.text().unwrap();
    assert_eq!(xml.matches("<D:response>").count(), 1);
    assert!(xml.contains("<D:getcontentlength>5000</D:getcontentlength>"));
    // Depth infinity is refused, a missing resource is 404.
    let r = http
        .request(method("PROPFIND"), srv.url_of("/dav/"))
        .bearer_auth(&srv.token)
        .header("Depth", "infinity")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .request(method("PROPFIND"), srv.url_of("/dav/nope"))
        .bearer_auth(&srv.token)
        .header("Depth", "0")
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn rclone_lists_and_copies() {
    let Some(rclone) = tool("rclone") else { return };
    let srv = setup();
    let remote = ":webdav:/dav";
    let args = ["--webdav-url", &srv.url, "--webdav-bearer-token", &srv.token];
    let out = Command::new(rclone)
        .arg("lsl")
        .arg(remote)
        .args(args)
        .arg("--max-depth")
        .arg("1")
        .output()
        .unwrap();
    assert_ok(&out, "rclone lsl");
    let text = String::from_utf8(out.stdout).unwrap();
    // Lines are "SIZE DATE TIME NAME", the size right-aligned; names may hold spaces.
    let sizes: Vec<(String, u64)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.trim_start().splitn(4, ' ').collect();
            (f[3].to_string(), f[0].parse().unwrap())
        })
        .collect();
    assert!(sizes.contains(&("a.txt".to_string(), 4)), "{text}");
    assert!(sizes.contains(&("b.bin".to_string(), 5000)), "{text}");
    assert!(sizes.contains(&("empty".to_string(), 0)), "{text}");
    assert!(text.contains("é ü.dat"), "{text}");

    // rclone writes through PUT and MKCOL and reads back what it wrote.
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("up.bin"), bytes(9, 123_456)).unwrap();
    let out = Command::new(rclone)
        .arg("copy")
        .arg(work.path())
        .arg(":webdav:/dav/from-rclone")
        .args(args)
        .output()
        .unwrap();
    assert_ok(&out, "rclone copy up");
    let e: serde_json::Value = serde_json::from_str(&srv.run(&["stat", "--json", "/dav/from-rclone/up.bin"])).unwrap();
    assert_eq!(e["size"], 123_456);
    let down = work.path().join("down");
    let out = Command::new(rclone)
        .arg("copy")
        .arg(":webdav:/dav/from-rclone")
        .arg(&down)
        .args(args)
        .output()
        .unwrap();
    assert_ok(&out, "rclone copy down");
    assert_eq!(std::fs::read(down.join("up.bin")).unwrap(), bytes(9, 123_456));
}

#[test]
fn davix_lists_with_sizes() {
    let Some(_) = tool("davix-ls") else { return };
    let srv = setup();
    let out = Command::new("davix-ls")
        .arg("-l")
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", srv.token))
        .arg(format!("{}/dav/", srv.url))
        .output()
        .unwrap();
    assert_ok(&out, "davix-ls");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in {text}"))
    };
    assert!(line("b.bin").split_whitespace().any(|w| w == "5000"), "{text}");
    assert!(line("a.txt").split_whitespace().any(|w| w == "4"), "{text}");
    assert!(line("empty").starts_with('-'), "{text}");
}

#[test]
fn get_head_range_digest_and_access_time() {
    let srv = setup();
    let http = srv.http();
    let data = bytes(5000, 5000);
    let stat = |p: &str| -> serde_json::Value { serde_json::from_str(&srv.run(&["stat", "--json", p])).unwrap() };
    let before = stat("/dav/b.bin");

    // HEAD and stat and listing do not count as access.
    let r = http
        .head(srv.url_of("/dav/b.bin"))
        .bearer_auth(&srv.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "5000");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    srv.run(&["ls", "-l", "/dav"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(stat("/dav/b.bin")["atime"], before["atime"]);

    // A range.
    let r = http
        .get(srv.url_of("/dav/b.bin"))
        .bearer_auth(&srv.token)
        .header("Range", "bytes=100-199")
        .header("Want-Digest", "adler32")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/5000");
    let digest = r.headers()["digest"].to_str().unwrap().to_string();
    assert_eq!(digest, format!("adler32={}", bale_util::Adler32::of(&data)));
    assert_eq!(r.bytes().unwrap().as_ref(), &data[100..200]);
    // Suffix range, unsatisfiable range.
    let r = http
        .get(srv.url_of("/dav/b.bin"))
        .bearer_auth(&srv.token)
        .header("Range", "bytes=-10")
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap().as_ref(), &data[4990..]);
    let r = http
        .get(srv.url_of("/dav/b.bin"))
        .bearer_auth(&srv.token)
        .header("Range", "bytes=6000-7000")
        .send()
        .unwrap();
    assert_eq!(r.status(), 416);
    // The read moved the access time, not the modification time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = stat("/dav/b.bin");
        if now["atime"] != before["atime"] {
            assert!(now["atime"].as_str().unwrap() > before["atime"].as_str().unwrap());
            assert_eq!(now["mtime"], before["mtime"]);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "atime never changed after a read");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A whole empty file.
    let r = http
        .get(srv.url_of("/dav/empty"))
        .bearer_auth(&srv.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().len(), 0);
    // GET of a directory says what to do instead.
    let r = http
        .get(srv.url_of("/dav/sub%20dir"))
        .bearer_auth(&srv.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 409);
}

#[test]
fn move_delete_mkcol() {
    let srv = setup();
    let http = srv.http();
    let mv = |from: &str, to: &str, overwrite: Option<&str>| {
        let mut r = http
            .request(method("MOVE"), srv.url_of(from))
            .bearer_auth(&srv.token)
            .header("Destination", srv.url_of(to));
        if let Some(o) = overwrite {
            r = r.header("Overwrite", o);
        }
        r.send().unwrap().status().as_u16()
    };
    let id = srv.file_id("/dav/a.txt");
    assert_eq!(mv("/dav/a.txt", "/dav/sub%20dir/a2.txt", None), 201);
    assert_eq!(srv.file_id("/dav/sub dir/a2.txt"), id, "a move keeps the file id");
    // RFC 4918 9.9.4: the destination exists and Overwrite is F.
    assert_eq!(mv("/dav/b.bin", "/dav/sub%20dir/a2.txt", Some("F")), 412);
    assert_eq!(mv("/dav/b.bin", "/dav/sub%20dir/a2.txt", Some("T")), 204);
    assert_eq!(mv("/dav", "/dav/sub%20dir/inside", None), 409);
    assert_eq!(mv("/dav/nope", "/dav/x", None), 404);
    let r = http
        .get(srv.url_of("/dav/sub%20dir/a2.txt"))
        .bearer_auth(&srv.token)
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap().len(), 5000);

    // MKCOL: created, then 405 on an existing one, 409 without a parent.
    let mkcol = |p: &str| {
        http.request(method("MKCOL"), srv.url_of(p))
            .bearer_auth(&srv.token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(mkcol("/dav/new"), 201);
    assert_eq!(mkcol("/dav/new"), 405);
    assert_eq!(mkcol("/dav/x/y"), 409);

    // DELETE of a collection removes everything beneath it, and its data.
    let r = http.delete(srv.url_of("/dav")).bearer_auth(&srv.token).send().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(srv.tree(), vec![]);
    assert_eq!(local_files(&srv.data_dir().join("cache/files")).len(), 0);
    let r = http.delete(srv.url_of("/dav")).bearer_auth(&srv.token).send().unwrap();
    assert_eq!(r.status(), 404);
    let r = http.delete(srv.url_of("/")).bearer_auth(&srv.token).send().unwrap();
    assert_eq!(r.status(), 403);
}

#[test]
fn large_directory_listing_is_paginated() {
    let srv = Server::start();
    srv.run(&["mkdir", "/big"]);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("many");
    std::fs::create_dir(&src).unwrap();
    for i in 0..2500 {
        std::fs::write(src.join(format!("f{i:05}")), b"").unwrap();
    }
    srv.run(&["put", "-j", "8", src.to_str().unwrap(), "/big"]);
    // JSON pages of 1000.
    let http = srv.http();
    let mut after: Option<String> = None;
    let mut names = Vec::new();
    loop {
        let mut q = vec![("path", "/big/many".to_string()), ("limit", "1000".to_string())];
        if let Some(a) = &after {
            q.push(("after", a.clone()));
        }
        let page: serde_json::Value = http
            .get(srv.url_of("/api/v1/list"))
            .bearer_auth(&srv.token)
            .query(&q)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 1000);
        names.extend(entries.iter().map(|e| e["name"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    let want: Vec<String> = (0..2500).map(|i| format!("f{i:05}")).collect();
    assert_eq!(names, want);
    // PROPFIND streams more than one catalog page.
    let xml = http
        .request(method("PROPFIND"), srv.url_of("/big/many"))
        .bearer_auth(&srv.token)
        .header("Depth", "1")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(xml.matches("<D:response>").count(), 2501);
    assert!(xml.trim_end().ends_with("</D:multistatus>"));
    // ls counts them all.
    assert_eq!(srv.run(&["ls", "/big/many"]).lines().count(), 2500);
}
