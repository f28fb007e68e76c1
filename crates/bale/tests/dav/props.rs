//! PROPPATCH and PROPFIND: dead properties kept in the catalog (both
//! backends), carried by COPY and MOVE and an overwrite, kept across a
//! restart; PROPFIND answers what was asked (404 for the rest), propname
//! without values; setting getlastmodified sets the modification time;
//! a protected property fails the whole patch; the client's times from
//! rclone's owncloud vendor.

use crate::common::*;
use crate::{method, tool};
use std::process::Command;

const NS: &str = "urn:bale:test";

fn dav(s: &Server, m: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut r = s.http().request(method(m), s.url_of(path)).bearer_auth(&s.token);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.body(body.to_string()).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn patch(s: &Server, path: &str, inner: &str) -> (u16, String) {
    let body =
        format!(r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:t="{NS}">{inner}</D:propertyupdate>"#);
    dav(s, "PROPPATCH", path, &[], &body)
}

fn find(s: &Server, path: &str, inner: &str) -> String {
    let body = format!(r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:t="{NS}">{inner}</D:propfind>"#);
    let (code, text) = dav(s, "PROPFIND", path, &[("Depth", "0")], &body);
    assert_eq!(code, 207, "{text}");
    text
}

fn value_of(s: &Server, path: &str) -> String {
    find(s, path, "<D:prop><t:color/></D:prop>")
}

fn dead_properties_follow_their_files(catalog: Catalog) {
    let mut s = Server::start_on(catalog);
    s.run(&["mkdir", "-p", "/p/d"]);
    assert_eq!(s.put_data("/p/d/f", b"data").0, 201);
    let (code, text) = patch(
        &s,
        "/p/d/f",
        r#"<D:set><D:prop><t:color>blue &amp; <b xmlns="urn:x">bold</b></t:color><plain xmlns="">no ns</plain></D:prop></D:set>"#,
    );
    assert_eq!(code, 207, "{text}");
    assert!(text.contains("HTTP/1.1 200 OK") && !text.contains("424"), "{text}");
    assert_eq!(
        patch(&s, "/p/d", r#"<D:set><D:prop><t:color>dir</t:color></D:prop></D:set>"#).0,
        207
    );
    let blue = format!(r#"<color xmlns="{NS}">blue &amp; <b xmlns="urn:x">bold</b></color>"#);
    assert!(value_of(&s, "/p/d/f").contains(&blue));

    // prop: what was asked, each found or 404; propname: names only.
    let text = find(
        &s,
        "/p/d/f",
        r#"<D:prop><D:getcontentlength/><t:color/><t:none/></D:prop>"#,
    );
    let (ok, missing) = text.split_once("HTTP/1.1 200 OK").unwrap();
    assert!(
        ok.contains("<D:getcontentlength>4</D:getcontentlength>") && ok.contains(&blue),
        "{text}"
    );
    assert!(
        missing.contains(&format!(r#"<none xmlns="{NS}"/>"#)) && missing.contains("404 Not Found"),
        "{text}"
    );
    assert!(
        !text.contains("getlastmodified") && !text.contains("plain"),
        "only what was asked: {text}"
    );
    let names = find(&s, "/p/d/f", "<D:propname/>");
    assert!(
        names.contains(&format!(r#"<color xmlns="{NS}"/>"#)) && names.contains(r#"<plain xmlns=""/>"#),
        "{names}"
    );
    assert!(
        names.contains("<D:getetag/>") && !names.contains("blue") && !names.contains("no ns"),
        "{names}"
    );
    let all = find(&s, "/p/d/f", "<D:allprop/>");
    assert!(
        all.contains(&blue) && all.contains(r#"<plain xmlns="">no ns</plain>"#),
        "{all}"
    );

    // COPY (a file, a tree), MOVE, an overwrite: the properties go along.
    let copy = |from: &str, to: &str| {
        let (code, text) = dav(&s, "COPY", from, &[("Destination", &s.url_of(to))], "");
        assert!(code == 201 || code == 204, "COPY {from} {to}: {code} {text}");
    };
    // Onto a file with properties of its own: it keeps none of them.
    assert_eq!(s.put_data("/p/g", b"old").0, 201);
    assert_eq!(
        patch(&s, "/p/g", "<D:set><D:prop><t:own>mine</t:own></D:prop></D:set>").0,
        207
    );
    copy("/p/d/f", "/p/g");
    assert!(value_of(&s, "/p/g").contains(&blue) && value_of(&s, "/p/d/f").contains(&blue));
    assert!(!find(&s, "/p/g", "<D:allprop/>").contains("mine"));
    copy("/p/d", "/p/e");
    assert!(value_of(&s, "/p/e/f").contains(&blue) && value_of(&s, "/p/e").contains(">dir<"));
    let (code, _) = dav(&s, "MOVE", "/p/g", &[("Destination", &s.url_of("/p/e/moved"))], "");
    assert_eq!(code, 201);
    assert!(value_of(&s, "/p/e/moved").contains(&blue));
    assert_eq!(s.put_data("/p/e/moved", b"new data").0, 200);
    assert!(value_of(&s, "/p/e/moved").contains(&blue), "an overwrite keeps them");

    // Remove, then set again; a restart keeps what the catalog holds.
    let (code, _) = patch(&s, "/p/e/moved", "<D:remove><D:prop><t:color/></D:prop></D:remove>");
    assert_eq!(code, 207);
    assert!(value_of(&s, "/p/e/moved").contains("404 Not Found"));
    s.restart();
    assert!(value_of(&s, "/p/d/f").contains(&blue) && value_of(&s, "/p/e/f").contains(&blue));
    assert!(value_of(&s, "/p/e/moved").contains("404 Not Found"));

    // A listing carries each entry's own.
    let (code, text) = dav(
        &s,
        "PROPFIND",
        "/p/e",
        &[("Depth", "1")],
        &format!(r#"<propfind xmlns="DAV:"><prop><color xmlns="{NS}"/></prop></propfind>"#),
    );
    assert_eq!(code, 207);
    assert_eq!(text.matches(&blue).count(), 1, "{text}");
    assert!(text.contains(">dir</color>"), "{text}");
}

/// Setting getlastmodified sets the modification time; a protected
/// property fails the whole patch (403 for it, 424 for the rest) and
/// nothing changes; bad bodies are 400; a reader may not patch.
fn proppatch_rules(catalog: Catalog) {
    let s = Server::start_on(catalog);
    s.run(&["mkdir", "-p", "/home/alice", "--owner", "alice", "--group", "physics"]);
    assert_eq!(s.put_data("/home/alice/f", b"x").0, 201);
    s.run(&["chown", "alice:physics", "/home/alice/f"]);
    let (code, text) = patch(
        &s,
        "/home/alice/f",
        "<D:set><D:prop><D:getlastmodified>Wed, 09 Jun 2021 10:18:14 GMT</D:getlastmodified></D:prop></D:set>",
    );
    assert_eq!(code, 207, "{text}");
    let r = s
        .http()
        .head(s.url_of("/home/alice/f"))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.headers()["last-modified"], "Wed, 09 Jun 2021 10:18:14 GMT");

    let before = find(&s, "/home/alice/f", "<D:allprop/>");
    let (code, text) = patch(
        &s,
        "/home/alice/f",
        r#"<D:set><D:prop><t:color>red</t:color><D:getetag>"x"</D:getetag></D:prop></D:set>"#,
    );
    assert_eq!(code, 207);
    assert!(
        text.contains("403 Forbidden") && text.contains("424 Failed Dependency"),
        "{text}"
    );
    assert!(text.contains("cannot-modify-protected-property"), "{text}");
    assert_eq!(find(&s, "/home/alice/f", "<D:allprop/>"), before, "nothing changed");

    for bad in [
        "<D:set><D:prop><bar:foo xmlns:bar=\"\"/></D:prop></D:set>",
        "<D:set><D:prop><u:x/></D:prop></D:set>",
        "<D:frob/>",
        "<D:set><D:prop><t:a>",
    ] {
        let (code, text) = patch(&s, "/home/alice/f", bad);
        assert_eq!(code, 400, "{bad}: {text}");
    }
    let (code, text) = dav(
        &s,
        "PROPFIND",
        "/home/alice/f",
        &[("Depth", "0")],
        "<D:propfind xmlns:D=\"DAV:\"><D:prop><bar:foo xmlns:bar=\"\"/></D:prop></D:propfind>",
    );
    assert_eq!(code, 400, "{text}");
    assert_eq!(find(&s, "/home/alice/f", "<D:allprop/>"), before, "nothing changed");

    // bob may read alice's file, not patch it; alice may.
    let bob = s.token_for("bob", "other");
    let alice = s.token_for("alice", "physics");
    let body = format!(
        r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><c xmlns="{NS}">1</c></D:prop></D:set></D:propertyupdate>"#
    );
    let as_user = |token: &str| {
        s.http()
            .request(method("PROPPATCH"), s.url_of("/home/alice/f"))
            .bearer_auth(token)
            .body(body.clone())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(as_user(&bob), 403);
    assert_eq!(find(&s, "/home/alice/f", "<D:allprop/>"), before);
    assert_eq!(as_user(&alice), 207);
}

on_both_catalogs!(dead_properties_follow_their_files, proppatch_rules);

/// rclone's owncloud vendor sends X-OC-Mtime with each upload: the files
/// keep their local times (to the second, as rclone sends them) there and
/// back.
#[test]
fn rclone_owncloud_keeps_local_times() {
    let Some(rclone) = tool("rclone") else { return };
    let s = Server::start();
    s.run(&["mkdir", "/oc"]);
    let work = tempfile::tempdir().unwrap();
    let up = work.path().join("up");
    std::fs::create_dir(&up).unwrap();
    let t = |i: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_400_000_000 + i * 3_600);
    for i in 0..3u64 {
        let p = up.join(format!("r{i}"));
        std::fs::write(&p, bytes(i, 500)).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t(i))
            .unwrap();
    }
    let args = crate::owncloud(&s);
    let out = Command::new(rclone)
        .arg("copy")
        .arg(&up)
        .arg(":webdav:/oc")
        .args(&args)
        .output()
        .unwrap();
    assert_ok(&out, "rclone copy up");
    let v: serde_json::Value = serde_json::from_str(&s.run(&["stat", "--json", "/oc/r1"])).unwrap();
    assert_eq!(v["mtime"], "2014-05-13T17:53:20Z", "{v}");
    let down = work.path().join("down");
    let out = Command::new(rclone)
        .arg("copy")
        .arg(":webdav:/oc")
        .arg(&down)
        .args(&args)
        .output()
        .unwrap();
    assert_ok(&out, "rclone copy down");
    for i in 0..3u64 {
        let m = std::fs::metadata(down.join(format!("r{i}"))).unwrap();
        assert_eq!(m.modified().unwrap(), t(i), "r{i}");
    }
    // rclone lsl shows the local times, not the upload's.
    let out = Command::new(rclone)
        .arg("lsl")
        .arg(":webdav:/oc")
        .args(&args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2014-05-13 17:53:20"), "{text}");
}
