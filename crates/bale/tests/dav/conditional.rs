//! Conditional requests (RFC 9110 section 13) on every method: strong
//! entity tags (the file id), modification dates at whole seconds, 304 for
//! a GET or HEAD whose representation the client has, 412 for everything
//! else, and nothing changed by a request whose precondition fails.

use crate::common::*;
use crate::method;
use reqwest::blocking::Response;

fn send(s: &Server, m: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut r = s.http().request(method(m), s.url_of(path)).bearer_auth(&s.token);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if m == "PUT" {
        r = r.body("new data");
    }
    if m == "PROPPATCH" {
        r = r.body(r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="urn:t">1</x></D:prop></D:set></D:propertyupdate>"#);
    }
    r.send().unwrap()
}

fn setup() -> (Server, String, String) {
    let s = Server::start();
    s.run(&["mkdir", "-p", "/c"]);
    let r = s
        .http()
        .put(s.url_of("/c/f"))
        .bearer_auth(&s.token)
        .body("0123456789")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = send(&s, "HEAD", "/c/f", &[]);
    let modified = r.headers()["last-modified"].to_str().unwrap().to_string();
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    (s, etag, modified)
}

const LONG_AGO: &str = "Sat, 01 Jan 2000 00:00:00 GMT";
const FUTURE: &str = "Fri, 01 Jan 2100 00:00:00 GMT";

#[test]
fn reads_answer_304_and_412() {
    let (s, etag, modified) = setup();
    let weak = format!("W/{etag}");
    for m in ["GET", "HEAD"] {
        let status = |h: &[(&str, &str)]| send(&s, m, "/c/f", h).status().as_u16();
        // If-None-Match: the client's copy is current → 304 (weak comparison).
        assert_eq!(status(&[("If-None-Match", &etag)]), 304, "{m}");
        assert_eq!(status(&[("If-None-Match", &weak)]), 304, "{m}");
        assert_eq!(status(&[("If-None-Match", "\"other\", *")]), 400, "{m}: * stands alone");
        assert_eq!(status(&[("If-None-Match", &format!("\"other\", {etag}"))]), 304, "{m}");
        assert_eq!(status(&[("If-None-Match", "\"other\"")]), 200, "{m}");
        // If-Modified-Since: not modified since → 304; ignored beside If-None-Match.
        assert_eq!(status(&[("If-Modified-Since", &modified)]), 304, "{m}");
        assert_eq!(status(&[("If-Modified-Since", FUTURE)]), 304, "{m}");
        assert_eq!(status(&[("If-Modified-Since", LONG_AGO)]), 200, "{m}");
        assert_eq!(status(&[("If-Modified-Since", "not a date")]), 200, "{m}");
        assert_eq!(
            status(&[("If-None-Match", "\"other\""), ("If-Modified-Since", &modified)]),
            200,
            "{m}"
        );
        // If-Match: strong comparison; a weak tag never matches.
        assert_eq!(status(&[("If-Match", &etag)]), 200, "{m}");
        assert_eq!(status(&[("If-Match", "*")]), 200, "{m}");
        assert_eq!(status(&[("If-Match", "\"nope\"")]), 412, "{m}");
        assert_eq!(status(&[("If-Match", &weak)]), 412, "{m}");
        // If-Unmodified-Since.
        assert_eq!(status(&[("If-Unmodified-Since", &modified)]), 200, "{m}");
        assert_eq!(status(&[("If-Unmodified-Since", LONG_AGO)]), 412, "{m}");
        // A malformed tag list is a bad request.
        assert_eq!(status(&[("If-Match", "nope")]), 400, "{m}");
    }
    let r = send(&s, "GET", "/c/f", &[("If-None-Match", &etag)]);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.bytes().unwrap().is_empty());
    // A missing file: 404 whatever the preconditions (RFC 9110 13.2.1: they
    // are ignored where the answer without them is an error).
    for m in ["GET", "HEAD", "DELETE", "PROPPATCH"] {
        assert_eq!(send(&s, m, "/c/none", &[("If-Match", "*")]).status(), 404, "{m}");
        assert_eq!(send(&s, m, "/c/none", &[("If-None-Match", "*")]).status(), 404, "{m}");
    }
}

#[test]
fn if_range_with_a_stale_validator_gets_the_whole_file() {
    let (s, etag, modified) = setup();
    let range = |v: &str| {
        let r = send(&s, "GET", "/c/f", &[("Range", "bytes=2-4"), ("If-Range", v)]);
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(range(&etag), (206, "234".to_string()));
    // A date is no strong validator here (clients set modification
    // times): the whole file.
    assert_eq!(range(&modified), (200, "0123456789".to_string()));
    assert_eq!(range("\"stale\""), (200, "0123456789".to_string()));
    assert_eq!(range(&format!("W/{etag}")), (200, "0123456789".to_string()));
    assert_eq!(range(LONG_AGO), (200, "0123456789".to_string()));
}

#[test]
fn writes_answer_412_and_change_nothing() {
    let (s, etag, modified) = setup();
    s.run(&["mkdir", "/c/dir"]);
    let stale = "\"0190abcd-0000-7000-8000-000000000000\"";
    let dest = s.url_of("/c/moved");
    let before = s.tree();
    let id = s.file_id("/c/f");
    for m in ["PUT", "DELETE", "MOVE", "COPY", "PROPPATCH"] {
        for h in [
            ("If-Match", stale),
            ("If-None-Match", etag.as_str()),
            ("If-None-Match", "*"),
            ("If-Unmodified-Since", LONG_AGO),
        ] {
            let r = send(&s, m, "/c/f", &[h, ("Destination", &dest)]);
            assert_eq!(r.status(), 412, "{m} with {h:?}: {}", r.text().unwrap());
            assert_eq!((s.tree(), s.file_id("/c/f")), (before.clone(), id.clone()), "{m} {h:?}");
        }
    }
    // On a directory: If-Match with a tag fails (a directory has none), * holds.
    assert_eq!(send(&s, "DELETE", "/c/dir", &[("If-Match", &etag)]).status(), 412);
    // With the right validators each goes through.
    assert_eq!(send(&s, "PROPPATCH", "/c/f", &[("If-Match", &etag)]).status(), 207);
    assert_eq!(
        send(&s, "PROPPATCH", "/c/f", &[("If-Unmodified-Since", &modified)]).status(),
        207
    );
    let r = send(&s, "PUT", "/c/f", &[("If-Match", &etag)]);
    assert_eq!(r.status(), 200);
    let new_etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    // The old tag is stale now.
    assert_eq!(send(&s, "PUT", "/c/f", &[("If-Match", &etag)]).status(), 412);
    assert_eq!(
        send(&s, "COPY", "/c/f", &[("If-Match", &new_etag), ("Destination", &dest)]).status(),
        201
    );
    assert_eq!(send(&s, "DELETE", "/c/moved", &[("If-Match", "*")]).status(), 204);
    assert_eq!(
        send(&s, "MOVE", "/c/f", &[("If-Match", &new_etag), ("Destination", &dest)]).status(),
        201
    );
    assert_eq!(send(&s, "DELETE", "/c/dir", &[("If-Match", "*")]).status(), 204);
    // PUT with If-Match onto nothing: 412, nothing made.
    assert_eq!(send(&s, "PUT", "/c/new", &[("If-Match", "*")]).status(), 412);
    assert_eq!(send(&s, "GET", "/c/new", &[]).status(), 404);
}
