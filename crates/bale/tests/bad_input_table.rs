//! The bad-input table (docs/RELIABILITY.md): every external input over
//! HTTP with its malformed cases, each answered with a clear 4xx problem
//! (RFC 7807, a detail a person can act on) that changes nothing: the
//! namespace and its data, tokens, volumes, drives, alarms, pins, stage
//! requests, the policy and the cache are compared before and after each
//! case.

mod common;
use common::*;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug)]
enum As {
    Admin,
    Alice,
    Bob,
    Nobody,
    Forged,
}

enum Body {
    Empty,
    Raw(&'static str),
    Json(Value),
}

struct Case {
    what: String,
    method: &'static str,
    path: String,
    who: As,
    headers: Vec<(&'static str, &'static str)>,
    body: Body,
    status: u16,
    /// More to check of the answer: ("header:NAME", text it contains),
    /// ("detail", text it contains) or ("problem:MEMBER", its value).
    expect: Vec<(&'static str, &'static str)>,
}

fn case(what: &str, method: &'static str, path: &str, who: As, body: Body, status: u16) -> Case {
    Case {
        what: what.to_string(),
        method,
        path: path.to_string(),
        who,
        headers: Vec::new(),
        body,
        status,
        expect: Vec::new(),
    }
}

fn expect(mut c: Case, what: &[(&'static str, &'static str)]) -> Case {
    c.expect.extend_from_slice(what);
    c
}

/// Every endpoint that reads a JSON body, each sent an array, a string, a
/// number and null (serde would read a struct from an array by position).
fn not_objects() -> Vec<Case> {
    use As::*;
    let endpoints: &[(&'static str, &str)] = &[
        ("POST", "/api/v1/tags"),
        ("POST", "/api/v1/mkdir"),
        ("POST", "/api/v1/attrs"),
        ("POST", "/api/v1/tokens"),
        ("POST", "/api/v1/queue/flush"),
        ("POST", "/api/v1/queue/retry"),
        ("POST", "/api/v1/cache/purge"),
        ("POST", "/api/v1/pins"),
        ("POST", "/api/v1/pins/release"),
        ("POST", "/api/v1/fsck"),
        ("POST", "/api/v1/archiveinfo"),
        ("POST", "/api/v1/volumes"),
        ("POST", "/api/v1/volumes/VL0001/state"),
        ("POST", "/api/v1/tape/faults"),
        ("POST", "/api/v1/verify"),
        ("POST", "/api/v1/drives/lib1-d1/offline"),
        ("POST", "/api/v1/alarms/1/ack"),
        ("POST", "/api/v1/stage"),
        ("POST", "/api/v1/stage/1/cancel"),
        ("POST", "/api/v1/stage/1/release"),
        ("POST", "/api/tape/v1/stage"),
        ("POST", "/api/tape/v1/stage/1/cancel"),
        ("POST", "/api/tape/v1/release/1"),
        ("POST", "/api/tape/v1/archiveinfo"),
    ];
    let mut out = Vec::new();
    for (method, path) in endpoints {
        for (kind, body) in [
            ("an array", json!(["/alice/f.dat", null, null, "0777"])),
            ("a string", json!("/alice/f.dat")),
            ("a number", json!(7)),
            ("null", json!(null)),
        ] {
            out.push(expect(
                case(
                    &format!("{path} with {kind} for a body"),
                    method,
                    path,
                    Admin,
                    Body::Json(body),
                    400,
                ),
                &[("detail", "must be a JSON object")],
            ));
        }
    }
    out
}

fn with(mut c: Case, headers: &[(&'static str, &'static str)]) -> Case {
    c.headers.extend_from_slice(headers);
    c
}

struct Fixture {
    s: Server,
    alice: String,
    bob: String,
}

fn fixture(catalog: Catalog) -> Fixture {
    let s = Server::start_on(catalog);
    s.run(&[
        "mkdir", "--owner", "alice", "--group", "mu2e", "--mode", "0700", "/alice",
    ]);
    s.run(&["mkdir", "--mode", "0755", "/pub"]);
    let alice = s.token_for("alice", "mu2e");
    let bob = s.token_for("bob", "other");
    for (path, token, body) in [
        ("/alice/f.dat", &alice, "alice's data"),
        ("/pub/a.dat", &s.token, "public"),
    ] {
        let r = s
            .http()
            .put(s.url_of(path))
            .bearer_auth(token)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{path}");
    }
    // A stage request of alice's (her file is cached: it completes at once).
    let (code, body) = s.api_post(&alice, "stage", &json!({"paths": ["/alice/f.dat"]}));
    assert_eq!(code, 201, "{body}");
    Fixture { s, alice, bob }
}

/// Everything a bad request must leave as it was.
fn snapshot(f: &Fixture) -> Vec<Value> {
    let s = &f.s;
    // Status and body as the administrator sees them (a failure to read is
    // part of the picture, not a panic).
    let get = |path: &str| -> Value {
        let r = s.http().get(s.url_of(path)).bearer_auth(&s.token).send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        json!({"status": status, "body": serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text))})
    };
    let cache = get("/api/v1/cache");
    vec![
        json!(s.tree()),
        get("/alice/f.dat"),
        get("/pub/a.dat"),
        get("/api/v1/tokens"),
        get("/api/v1/volumes"),
        get("/api/v1/drives"),
        get("/api/v1/alarms?all=true"),
        get("/api/v1/pins?path=/alice/f.dat"),
        get("/api/v1/stage/1"),
        get("/api/v1/policy"),
        json!([
            cache["body"]["cached_files"],
            cache["body"]["cached_bytes"],
            cache["body"]["pinned_files"]
        ]),
        json!(s.tmp_entries()),
    ]
}

fn cases(f: &Fixture) -> Vec<Case> {
    use As::*;
    use Body::*;
    let long = format!("/pub/{}", "x".repeat(300));
    let deep = format!("/pub{}", "/dd".repeat(1400));
    let _ = f;
    vec![
        // Authentication.
        case("no token", "GET", "/api/v1/whoami", Nobody, Empty, 401),
        case("a forged token", "GET", "/api/v1/whoami", Forged, Empty, 401),
        case("no token, WebDAV", "PUT", "/pub/new.dat", Nobody, Raw("x"), 401),
        case(
            "a forged token, Tape REST",
            "POST",
            "/api/tape/v1/stage",
            Forged,
            Json(json!({"files": [{"path": "/pub/a.dat"}]})),
            401,
        ),
        // WebDAV PUT.
        with(
            case(
                "PUT with a wrong adler32",
                "PUT",
                "/pub/new.dat",
                Admin,
                Raw("hello"),
                400,
            ),
            &[("Digest", "adler32=00000001")],
        ),
        with(
            case(
                "PUT with a malformed digest",
                "PUT",
                "/pub/new.dat",
                Admin,
                Raw("hello"),
                400,
            ),
            &[("Digest", "adler32=xyz")],
        ),
        case("PUT of a NUL in a name", "PUT", "/pub/a%00b", Admin, Raw("x"), 400),
        case("PUT of invalid UTF-8", "PUT", "/pub/%ff", Admin, Raw("x"), 400),
        case("PUT of a 300-byte name", "PUT", &long, Admin, Raw("x"), 400),
        case(
            "PUT under a missing parent",
            "PUT",
            "/nowhere/x.dat",
            Admin,
            Raw("x"),
            409,
        ),
        case("PUT under a file", "PUT", "/pub/a.dat/x", Admin, Raw("x"), 409),
        case("PUT onto a directory", "PUT", "/pub", Admin, Raw("x"), 409),
        with(
            case(
                "PUT over a file with Overwrite F",
                "PUT",
                "/pub/a.dat",
                Admin,
                Raw("x"),
                412,
            ),
            &[("Overwrite", "F")],
        ),
        with(
            case(
                "PUT over a file with If-None-Match *",
                "PUT",
                "/pub/a.dat",
                Admin,
                Raw("x"),
                412,
            ),
            &[("If-None-Match", "*")],
        ),
        with(
            case("PUT with a stale If-Match", "PUT", "/pub/a.dat", Admin, Raw("x"), 412),
            &[("If-Match", "\"0190abcd-0000-7000-8000-000000000000\"")],
        ),
        with(
            case(
                "PUT with a malformed If-Match",
                "PUT",
                "/pub/a.dat",
                Admin,
                Raw("x"),
                400,
            ),
            &[("If-Match", "no quotes")],
        ),
        with(
            case(
                "DELETE with a stale If-Match",
                "DELETE",
                "/pub/a.dat",
                Admin,
                Empty,
                412,
            ),
            &[("If-Match", "\"0190abcd-0000-7000-8000-000000000000\"")],
        ),
        with(
            case(
                "PUT with a bad X-OC-Mtime",
                "PUT",
                "/pub/new-mtime.dat",
                Admin,
                Raw("x"),
                400,
            ),
            &[("X-OC-Mtime", "yesterday")],
        ),
        with(
            case(
                "PUT with a negative X-OC-Mtime",
                "PUT",
                "/pub/new-mtime.dat",
                Admin,
                Raw("x"),
                400,
            ),
            &[("X-OC-Mtime", "-5")],
        ),
        case(
            "PROPPATCH that is not XML",
            "PROPPATCH",
            "/pub/a.dat",
            Admin,
            Raw("<D:propertyupdate"),
            400,
        ),
        case(
            "PROPPATCH with a prefix declared empty",
            "PROPPATCH",
            "/pub/a.dat",
            Admin,
            Raw(
                r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><b:x xmlns:b=""/></D:prop></D:set></D:propertyupdate>"#,
            ),
            400,
        ),
        case(
            "PROPPATCH with a DOCTYPE",
            "PROPPATCH",
            "/pub/a.dat",
            Admin,
            Raw(r#"<!DOCTYPE a [<!ENTITY e "x">]><D:propertyupdate xmlns:D="DAV:"/>"#),
            400,
        ),
        case(
            "PROPPATCH of a missing file",
            "PROPPATCH",
            "/pub/none.dat",
            Admin,
            Raw(
                r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="urn:x">1</x></D:prop></D:set></D:propertyupdate>"#,
            ),
            404,
        ),
        case(
            "PROPFIND of something else than a propfind",
            "PROPFIND",
            "/pub/a.dat",
            Admin,
            Raw(r#"<D:propertyupdate xmlns:D="DAV:"/>"#),
            400,
        ),
        case(
            "PUT into another user's 0700 directory",
            "PUT",
            "/alice/bob.dat",
            Bob,
            Raw("x"),
            403,
        ),
        case(
            "PUT into a 0755 directory by a user",
            "PUT",
            "/pub/bob.dat",
            Bob,
            Raw("x"),
            403,
        ),
        case("PUT into the reserved /api", "PUT", "/api/x", Admin, Raw("x"), 404),
        // WebDAV reads and changes.
        case("GET of a missing file", "GET", "/pub/missing.dat", Admin, Empty, 404),
        case("GET through a 0700 directory", "GET", "/alice/f.dat", Bob, Empty, 403),
        case("GET of a directory", "GET", "/pub", Admin, Empty, 409),
        with(
            case(
                "GET with an unsatisfiable range",
                "GET",
                "/pub/a.dat",
                Admin,
                Empty,
                416,
            ),
            &[("Range", "bytes=100-200")],
        ),
        case(
            "DELETE of a missing file",
            "DELETE",
            "/pub/missing.dat",
            Admin,
            Empty,
            404,
        ),
        case(
            "DELETE in another user's directory",
            "DELETE",
            "/alice/f.dat",
            Bob,
            Empty,
            403,
        ),
        case(
            "DELETE of a file by a user in a 0755 directory",
            "DELETE",
            "/pub/a.dat",
            Bob,
            Empty,
            403,
        ),
        with(
            case(
                "DELETE of a directory with Depth 0",
                "DELETE",
                "/alice",
                Admin,
                Empty,
                400,
            ),
            &[("Depth", "0")],
        ),
        case("DELETE of the root", "DELETE", "/", Admin, Empty, 403),
        expect(
            case("MKCOL of an existing directory", "MKCOL", "/pub", Admin, Empty, 405),
            &[("header:allow", "PROPFIND")],
        ),
        expect(
            with(
                case(
                    "PUT with Content-Range (a partial write)",
                    "PUT",
                    "/pub/a.dat",
                    Admin,
                    Raw("XY"),
                    400,
                ),
                &[("Content-Range", "bytes 0-1/6"), ("Overwrite", "T")],
            ),
            &[("detail", "Content-Range")],
        ),
        expect(
            case("COPY without a Destination", "COPY", "/pub/a.dat", Admin, Empty, 400),
            &[("detail", "COPY needs a Destination")],
        ),
        expect(
            case(
                "PROPFIND of a collection without Depth (infinity)",
                "PROPFIND",
                "/pub",
                Admin,
                Empty,
                403,
            ),
            &[("problem:precondition", "DAV:propfind-finite-depth")],
        ),
        case("MKCOL under a missing parent", "MKCOL", "/a/b/c", Admin, Empty, 409),
        case("MKCOL with a body", "MKCOL", "/pub/newdir", Admin, Raw("<x/>"), 415),
        case(
            "MKCOL by a user in a 0755 directory",
            "MKCOL",
            "/pub/newdir",
            Bob,
            Empty,
            403,
        ),
        case("MKCOL of a path over 4,096 bytes", "MKCOL", &deep, Admin, Empty, 400),
        expect(
            case("MOVE without a Destination", "MOVE", "/pub/a.dat", Admin, Empty, 400),
            &[("detail", "MOVE needs a Destination")],
        ),
        with(
            case("MOVE to another server", "MOVE", "/pub/a.dat", Admin, Empty, 502),
            &[("Destination", "http://elsewhere.example/pub/b.dat")],
        ),
        with(
            case("MOVE onto itself", "MOVE", "/pub/a.dat", Admin, Empty, 403),
            &[("Destination", "/pub/a.dat")],
        ),
        with(
            case("MOVE of a directory into itself", "MOVE", "/pub", Admin, Empty, 409),
            &[("Destination", "/pub/inner")],
        ),
        with(
            case(
                "MOVE over a file with Overwrite F",
                "MOVE",
                "/pub/a.dat",
                Admin,
                Empty,
                412,
            ),
            &[("Destination", "/alice/f.dat"), ("Overwrite", "F")],
        ),
        with(
            case(
                "MOVE out of another user's directory",
                "MOVE",
                "/alice/f.dat",
                Bob,
                Empty,
                403,
            ),
            &[("Destination", "/pub/f.dat")],
        ),
        with(
            case("COPY to a missing parent", "COPY", "/pub/a.dat", Admin, Empty, 409),
            &[("Destination", "/nowhere/a.dat")],
        ),
        with(
            case("COPY with a bad Depth", "COPY", "/pub", Admin, Empty, 400),
            &[("Destination", "/pub2"), ("Depth", "7")],
        ),
        with(
            case("PROPFIND with a bad Depth", "PROPFIND", "/pub", Admin, Empty, 400),
            &[("Depth", "2")],
        ),
        with(
            case(
                "PROPFIND with malformed XML",
                "PROPFIND",
                "/pub",
                Admin,
                Raw("<propfind"),
                400,
            ),
            &[("Depth", "0")],
        ),
        case(
            "PROPFIND of a missing path",
            "PROPFIND",
            "/pub/missing",
            Admin,
            Empty,
            404,
        ),
        case("an unknown WebDAV method", "BREW", "/pub/a.dat", Admin, Empty, 405),
        // The JSON API.
        case(
            "stat of a relative path",
            "GET",
            "/api/v1/stat?path=relative",
            Admin,
            Empty,
            400,
        ),
        case("stat without a path", "GET", "/api/v1/stat", Admin, Empty, 400),
        case(
            "list with limit 0",
            "GET",
            "/api/v1/list?path=/pub&limit=0",
            Admin,
            Empty,
            400,
        ),
        case(
            "list with a word for a limit",
            "GET",
            "/api/v1/list?path=/pub&limit=many",
            Admin,
            Empty,
            400,
        ),
        case(
            "mkdir with ..",
            "POST",
            "/api/v1/mkdir",
            Admin,
            Json(json!({"path": "/pub/../x"})),
            400,
        ),
        case(
            "mkdir with a bad mode",
            "POST",
            "/api/v1/mkdir",
            Admin,
            Json(json!({"path": "/pub/m", "mode": "rwx"})),
            400,
        ),
        case(
            "mkdir with an unknown field",
            "POST",
            "/api/v1/mkdir",
            Admin,
            Json(json!({"path": "/pub/m", "colour": "red"})),
            400,
        ),
        with(
            case(
                "mkdir with malformed JSON",
                "POST",
                "/api/v1/mkdir",
                Admin,
                Raw("{\"path\": "),
                400,
            ),
            &[("Content-Type", "application/json")],
        ),
        case(
            "mkdir without a JSON content type",
            "POST",
            "/api/v1/mkdir",
            Admin,
            Raw("{\"path\": \"/pub/m\"}"),
            415,
        ),
        case(
            "mkdir owned by another user, by a user",
            "POST",
            "/api/v1/mkdir",
            Alice,
            Json(json!({"path": "/alice/m", "owner": "bob"})),
            403,
        ),
        case(
            "chmod of another user's file",
            "POST",
            "/api/v1/attrs",
            Bob,
            Json(json!({"path": "/pub/a.dat", "mode": "0777"})),
            403,
        ),
        case(
            "chmod with a mode over 07777",
            "POST",
            "/api/v1/attrs",
            Admin,
            Json(json!({"path": "/pub/a.dat", "mode": "017777"})),
            400,
        ),
        case(
            "chown to an invalid user name",
            "POST",
            "/api/v1/attrs",
            Admin,
            Json(json!({"path": "/pub/a.dat", "owner": "bad name"})),
            400,
        ),
        case(
            "a tag that is not known",
            "POST",
            "/api/v1/tags",
            Admin,
            Json(json!({"path": "/pub", "set": {"colour": "red"}})),
            400,
        ),
        case(
            "tags of a file",
            "POST",
            "/api/v1/tags",
            Admin,
            Json(json!({"path": "/pub/a.dat", "set": {"file_family": "x"}})),
            409,
        ),
        case(
            "a token by a user",
            "POST",
            "/api/v1/tokens",
            Alice,
            Json(json!({"user": "alice", "group": "mu2e"})),
            403,
        ),
        case(
            "a token for an invalid user name",
            "POST",
            "/api/v1/tokens",
            Admin,
            Json(json!({"user": "a b", "group": "mu2e"})),
            400,
        ),
        case(
            "revoking a missing token",
            "DELETE",
            "/api/v1/tokens/nope",
            Admin,
            Empty,
            404,
        ),
        case("an unknown API path", "GET", "/api/v1/nothing-here", Admin, Empty, 404),
        // Tape and aggregation administration.
        case(
            "volumes added by a user",
            "POST",
            "/api/v1/volumes",
            Alice,
            Json(json!({"library": "lib1", "count": 1})),
            403,
        ),
        case(
            "volumes in an unknown library",
            "POST",
            "/api/v1/volumes",
            Admin,
            Json(json!({"library": "nolib", "count": 1})),
            404,
        ),
        case(
            "zero volumes",
            "POST",
            "/api/v1/volumes",
            Admin,
            Json(json!({"library": "lib1", "count": 0})),
            400,
        ),
        case(
            "an unknown volume state",
            "POST",
            "/api/v1/volumes/VL0001/state",
            Admin,
            Json(json!({"state": "melted"})),
            400,
        ),
        case(
            "the state of a missing volume",
            "POST",
            "/api/v1/volumes/NOPE01/state",
            Admin,
            Json(json!({"state": "readonly"})),
            404,
        ),
        case(
            "an unknown drive action",
            "POST",
            "/api/v1/drives/lib1-d1/explode",
            Admin,
            Empty,
            400,
        ),
        case(
            "a missing drive",
            "POST",
            "/api/v1/drives/nodrive/offline",
            Admin,
            Empty,
            404,
        ),
        case(
            "a fault of an unknown kind",
            "POST",
            "/api/v1/tape/faults",
            Admin,
            Json(json!({"kind": "meteor"})),
            400,
        ),
        case(
            "a policy that does not parse",
            "PUT",
            "/api/v1/policy",
            Admin,
            Raw("[[rule]\nname ="),
            400,
        ),
        case(
            "a policy rule with an unknown action",
            "PUT",
            "/api/v1/policy",
            Admin,
            Raw("[[rule]]\nname = \"x\"\naction = \"shred\"\n"),
            400,
        ),
        case(
            "a policy by a user",
            "PUT",
            "/api/v1/policy",
            Alice,
            Raw("[[rule]]\nname = \"x\"\naction = \"direct\"\n"),
            403,
        ),
        case(
            "a flush of a missing pool",
            "POST",
            "/api/v1/queue/flush",
            Admin,
            Json(json!({"pool": "no-such-pool"})),
            404,
        ),
        case(
            "a missing package",
            "GET",
            "/api/v1/packages/no-such-package",
            Admin,
            Empty,
            404,
        ),
        case(
            "acknowledging a missing alarm",
            "POST",
            "/api/v1/alarms/999999/ack",
            Admin,
            Empty,
            404,
        ),
        case(
            "acknowledging a word",
            "POST",
            "/api/v1/alarms/first/ack",
            Admin,
            Empty,
            400,
        ),
        case("alarms for a user", "GET", "/api/v1/alarms", Alice, Empty, 403),
        case(
            "a verify naming nothing",
            "POST",
            "/api/v1/verify",
            Admin,
            Json(json!({})),
            400,
        ),
        case(
            "a verify naming a volume and a package",
            "POST",
            "/api/v1/verify",
            Admin,
            Json(json!({"volume": "VL0001", "package": "x"})),
            400,
        ),
        case(
            "a verify at a rate that is no size",
            "POST",
            "/api/v1/verify",
            Admin,
            Json(json!({"cache": true, "rate": "fast"})),
            400,
        ),
        case(
            "a verify of a missing volume",
            "POST",
            "/api/v1/verify",
            Admin,
            Json(json!({"volume": "NOPE01"})),
            404,
        ),
        case(
            "a verify of a missing package",
            "POST",
            "/api/v1/verify",
            Admin,
            Json(json!({"package": "no-such-package"})),
            404,
        ),
        case(
            "a verify by a user",
            "POST",
            "/api/v1/verify",
            Alice,
            Json(json!({"cache": true})),
            403,
        ),
        case(
            "a verify with an unknown field",
            "POST",
            "/api/v1/verify",
            Admin,
            Json(json!({"volume": "VL0001", "fast": true})),
            400,
        ),
        // Cache, pins, stage requests.
        case(
            "a purge by a user",
            "POST",
            "/api/v1/cache/purge",
            Alice,
            Json(json!({"paths": ["/alice/f.dat"], "all": false, "dry_run": false})),
            403,
        ),
        case(
            "a pin with a bad lifetime",
            "POST",
            "/api/v1/pins",
            Admin,
            Json(json!({"paths": ["/pub/a.dat"], "lifetime_s": "forever"})),
            400,
        ),
        case(
            "a pin of a file the user cannot read",
            "POST",
            "/api/v1/pins",
            Bob,
            Json(json!({"paths": ["/alice/f.dat"], "lifetime_s": 3600})),
            403,
        ),
        case(
            "a stage request of no files",
            "POST",
            "/api/v1/stage",
            Alice,
            Json(json!({"paths": []})),
            400,
        ),
        case(
            "a stage request with lifetime 0",
            "POST",
            "/api/v1/stage",
            Alice,
            Json(json!({"paths": ["/alice/f.dat"], "lifetime_s": 0})),
            400,
        ),
        case(
            "a stage request id that is a word",
            "GET",
            "/api/v1/stage/abc",
            Alice,
            Empty,
            400,
        ),
        case(
            "an unknown stage request",
            "GET",
            "/api/v1/stage/999999",
            Alice,
            Empty,
            404,
        ),
        case(
            "another user's stage request",
            "GET",
            "/api/v1/stage/1",
            Bob,
            Empty,
            403,
        ),
        case(
            "a cancel of another user's request",
            "POST",
            "/api/v1/stage/1/cancel",
            Bob,
            Json(json!({})),
            403,
        ),
        case(
            "a release of a path not in the request",
            "POST",
            "/api/v1/stage/1/release",
            Alice,
            Json(json!({"paths": ["/pub/a.dat"]})),
            400,
        ),
        // The WLCG Tape REST API.
        case(
            "Tape REST stage of no files",
            "POST",
            "/api/tape/v1/stage",
            Alice,
            Json(json!({"files": []})),
            400,
        ),
        with(
            case(
                "Tape REST stage, malformed JSON",
                "POST",
                "/api/tape/v1/stage",
                Alice,
                Raw("{\"files\": [}"),
                400,
            ),
            &[("Content-Type", "application/json")],
        ),
        case(
            "Tape REST stage without files",
            "POST",
            "/api/tape/v1/stage",
            Alice,
            Json(json!({"paths": ["/alice/f.dat"]})),
            400,
        ),
        case(
            "Tape REST unknown request",
            "GET",
            "/api/tape/v1/stage/999999",
            Alice,
            Empty,
            404,
        ),
        case(
            "Tape REST another user's request",
            "GET",
            "/api/tape/v1/stage/1",
            Bob,
            Empty,
            403,
        ),
        case(
            "Tape REST cancel of a path not in the request",
            "POST",
            "/api/tape/v1/stage/1/cancel",
            Alice,
            Json(json!({"paths": ["/pub/a.dat"]})),
            400,
        ),
        case(
            "Tape REST delete of another user's request",
            "DELETE",
            "/api/tape/v1/stage/1",
            Bob,
            Empty,
            403,
        ),
        case(
            "Tape REST release of another user's request",
            "POST",
            "/api/tape/v1/release/1",
            Bob,
            Json(json!({"paths": ["/alice/f.dat"]})),
            403,
        ),
        case(
            "Tape REST archiveinfo, not a list",
            "POST",
            "/api/tape/v1/archiveinfo",
            Alice,
            Json(json!({"paths": "/alice/f.dat"})),
            400,
        ),
    ]
}

fn send(f: &Fixture, c: &Case) -> (u16, reqwest::header::HeaderMap, String) {
    let s = &f.s;
    let url = if c.path.starts_with('/') {
        s.url_of(&c.path)
    } else {
        c.path.clone()
    };
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
    let mut r = s.http().request(method, url);
    r = match c.who {
        As::Admin => r.bearer_auth(&s.token),
        As::Alice => r.bearer_auth(&f.alice),
        As::Bob => r.bearer_auth(&f.bob),
        As::Nobody => r,
        As::Forged => r.bearer_auth("bale_0000000000000000000000000000000000000000"),
    };
    for (k, v) in &c.headers {
        let v = if *k == "Destination" && v.starts_with('/') {
            s.url_of(v)
        } else {
            v.to_string()
        };
        r = r.header(*k, v);
    }
    r = match &c.body {
        Body::Empty => r,
        Body::Raw(b) => r.body(*b),
        Body::Json(v) => r.header("Content-Type", "application/json").body(v.to_string()),
    };
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().unwrap_or_default())
}

fn every_bad_input_is_refused_and_changes_nothing(catalog: Catalog) {
    let f = fixture(catalog);
    let mut cases = cases(&f);
    cases.extend(not_objects());
    assert!(cases.len() >= 190, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let before = snapshot(&f);
        let (status, headers, body) = send(&f, c);
        let ct = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let after = snapshot(&f);
        let mut wrong = Vec::new();
        let problem: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        for (key, want) in &c.expect {
            let got = match key.split_once(':') {
                Some(("header", name)) => headers
                    .get(name)
                    .map(|v| v.to_str().unwrap_or("").to_string())
                    .unwrap_or_default(),
                Some(("problem", member)) => problem[member].as_str().unwrap_or("").to_string(),
                _ => problem["detail"].as_str().unwrap_or("").to_string(),
            };
            if !got.contains(want) {
                wrong.push(format!("{key} is {got:?}, expected it to contain {want:?}"));
            }
        }
        if status != c.status {
            wrong.push(format!("status {status}, expected {}", c.status));
        }
        if c.method != "HEAD" {
            if ct != "application/problem+json" {
                wrong.push(format!("content type {ct:?}"));
            } else {
                let p: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let detail = p["detail"].as_str().unwrap_or("");
                if p["status"] != status || detail.len() < 10 {
                    wrong.push(format!("problem {body}"));
                }
            }
        }
        if before != after {
            let changed: Vec<usize> = (0..before.len()).filter(|&i| before[i] != after[i]).collect();
            wrong.push(format!(
                "changed parts {changed:?}: {:?}",
                changed.iter().map(|&i| &after[i]).collect::<Vec<_>>()
            ));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{} ({} {}): {} [{}]",
                c.what,
                c.method,
                c.path,
                wrong.join("; "),
                body.chars().take(200).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

on_both_catalogs!(every_bad_input_is_refused_and_changes_nothing);
