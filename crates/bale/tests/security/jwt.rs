//! WLCG JWT tokens: a test issuer's tokens grant exactly their scopes;
//! every way a token can be bad is a 401 that says which and changes
//! nothing; a rotated key is picked up; a token without capabilities
//! falls back to its groups.

use crate::common::{bytes, gfal2_available, write_file, Catalog, Gfal2, Server};
use crate::pki::{b64url, now, Issuer};
use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::json;

const ISS: &str = "https://issuer.test/wlcg";

struct Setup {
    s: Server,
    issuer: Issuer,
    _dir: tempfile::TempDir,
}

/// A server trusting the test issuer under /wlcg, with /wlcg/a/f,
/// /wlcg/a/f2, /wlcg/ab and /wlcg/b made by the administrator, and
/// /other/g outside the prefix (mode 0644).
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(dir.path(), ISS);
    let cfg = write_file(
        dir.path(),
        "bale.toml",
        &format!(
            "[auth]\naudiences = [\"bale-test\"]\njwks_reread_s = 1\n{}",
            issuer.config("/wlcg")
        ),
    );
    let s = Server::start_with(Catalog::Sqlite, &["--config", &cfg]);
    for d in ["/wlcg/a", "/wlcg/ab", "/wlcg/b", "/other"] {
        s.run(&["mkdir", "-p", d]);
    }
    for f in ["/wlcg/a/f", "/wlcg/a/f2", "/wlcg/ab/f", "/other/g"] {
        assert_eq!(s.put_data(f, b"online data").0, 201);
    }
    Setup { s, issuer, _dir: dir }
}

fn send(s: &Server, method: &str, path: &str, token: &str, body: Option<&[u8]>) -> Response {
    let mut r = s
        .http()
        .request(Method::from_bytes(method.as_bytes()).unwrap(), s.url_of(path))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.body(b.to_vec());
    }
    if method == "PUT" {
        // An overwrite is asked for, so that a refusal is the token's.
        r = r.header("Overwrite", "T");
    }
    if method == "PROPFIND" {
        r = r.header("Depth", if path.ends_with('/') { "1" } else { "0" });
    }
    r.send().unwrap()
}

fn status(s: &Server, method: &str, path: &str, token: &str) -> u16 {
    let body = (method == "PUT").then_some(&b"new data"[..]);
    send(s, method, path, token, body).status().as_u16()
}

fn owner(s: &Server, path: &str) -> String {
    let e: serde_json::Value = serde_json::from_str(&s.run(&["stat", "--json", path])).unwrap();
    e["owner"].as_str().unwrap().to_string()
}

#[test]
fn tokens_grant_exactly_their_scopes() {
    let Setup { s, issuer, _dir } = setup();

    // storage.read: read and list; no writes.
    let read = issuer.token("storage.read:/");
    assert_eq!(status(&s, "GET", "/wlcg/a/f", &read), 200);
    assert_eq!(status(&s, "PROPFIND", "/wlcg/a/", &read), 207);
    let r = send(&s, "PUT", "/wlcg/a/new", &read, Some(b"x"));
    assert_eq!(r.status(), 403);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("scope=\"storage.create:/a/new\""),
        "{challenge}"
    );
    assert_eq!(status(&s, "DELETE", "/wlcg/a/f", &read), 403);
    // Outside the issuer's prefix a capability token grants nothing.
    assert_eq!(status(&s, "GET", "/other/g", &read), 403);

    // storage.create:/a: new files and directories under /a only, no
    // overwrite, no delete; what it makes belongs to the issuer's user.
    let create = issuer.token("storage.create:/a");
    assert_eq!(status(&s, "PUT", "/wlcg/a/new", &create), 201);
    assert_eq!(owner(&s, "/wlcg/a/new"), "capuser");
    assert_eq!(status(&s, "MKCOL", "/wlcg/a/sub", &create), 201);
    assert_eq!(status(&s, "PUT", "/wlcg/a/sub/deeper", &create), 201);
    assert_eq!(status(&s, "PUT", "/wlcg/ab/new", &create), 403, "/a never matches /ab");
    assert_eq!(status(&s, "PUT", "/wlcg/b/new", &create), 403);
    let before = s.tree();
    assert_eq!(status(&s, "PUT", "/wlcg/a/new", &create), 403, "no overwrite");
    assert_eq!(status(&s, "DELETE", "/wlcg/a/new", &create), 403, "no delete");
    assert_eq!(status(&s, "GET", "/wlcg/a/f", &create), 403, "create is not read");
    assert_eq!(s.tree(), before);
    // Every storage scope allows stat.
    assert_eq!(
        send(&s, "PROPFIND", "/wlcg/a/f", &create, None).status(),
        207,
        "stat with create"
    );

    // storage.stage: stage and poll, not read.
    let stage = issuer.token("storage.stage:/a");
    let r = s
        .http()
        .post(s.url_of("/api/tape/v1/stage"))
        .bearer_auth(&stage)
        .json(&json!({"files": [{"path": "/wlcg/a/f"}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let id: serde_json::Value = r.json().unwrap();
    let id = id["requestId"].as_str().unwrap().to_string();
    assert_eq!(status(&s, "GET", &format!("/api/tape/v1/stage/{id}"), &stage), 200);
    assert_eq!(status(&s, "GET", "/wlcg/a/f", &stage), 403, "stage is not read");
    let stage_files = |paths: &[&str]| {
        let files: Vec<serde_json::Value> = paths.iter().map(|p| json!({"path": p})).collect();
        s.http()
            .post(s.url_of("/api/tape/v1/stage"))
            .bearer_auth(&stage)
            .json(&json!({ "files": files }))
            .send()
            .unwrap()
    };
    // Every file refused: the request is refused whole, nothing recorded.
    let r = stage_files(&["/wlcg/ab/f"]);
    assert_eq!(r.status(), 403, "stage:/a does not stage /ab");
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.contains("scope=\"storage.stage:/ab/f\""), "{challenge}");
    // Some refused: the request takes the files it may and fails the
    // others, each with its reason (as dCache and EOS answer).
    let r = stage_files(&["/wlcg/a/f", "/wlcg/ab/f"]);
    assert_eq!(r.status(), 201);
    let other: serde_json::Value = r.json().unwrap();
    let other = other["requestId"].as_str().unwrap().to_string();
    let st: serde_json::Value = send(&s, "GET", &format!("/api/tape/v1/stage/{other}"), &stage, None)
        .json()
        .unwrap();
    let f = &st["files"][1];
    assert_eq!(f["state"], "FAILED", "{st}");
    assert!(f["error"].as_str().unwrap().contains("storage.stage:/ab"), "{st}");
    let info = s
        .http()
        .post(s.url_of("/api/tape/v1/archiveinfo"))
        .bearer_auth(&stage)
        .json(&json!({"paths": ["/wlcg/a/f"]}))
        .send()
        .unwrap();
    assert_eq!(info.status(), 200, "archiveinfo with any storage scope");
    // Another capability token without stage may not see the request.
    assert_eq!(status(&s, "GET", &format!("/api/tape/v1/stage/{id}"), &read), 403);

    // storage.modify: overwrite, delete, rename.
    let modify = issuer.token("storage.modify:/a");
    assert_eq!(status(&s, "PUT", "/wlcg/a/f2", &modify), 200);
    assert_eq!(status(&s, "DELETE", "/wlcg/a/f2", &modify), 204);
    assert!(s.tree().iter().all(|(p, _)| p != "/wlcg/a/f2"));
    let r = s
        .http()
        .request(Method::from_bytes(b"MOVE").unwrap(), s.url_of("/wlcg/a/new"))
        .bearer_auth(&modify)
        .header("Destination", s.url_of("/wlcg/a/moved"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(status(&s, "DELETE", "/wlcg/ab/f", &modify), 403);

    // RS256 as well as ES256.
    let rs = issuer.sign("rs1", &issuer.claims(json!({"scope": "storage.read:/"})));
    assert_eq!(status(&s, "GET", "/wlcg/a/f", &rs), 200);
    // No administration with a WLCG token.
    let r = s
        .http()
        .post(s.url_of("/api/v1/tokens"))
        .bearer_auth(&modify)
        .json(&json!({"user": "x", "group": "x"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// Forges a token with a header of our own and any signature.
fn forged(header: serde_json::Value, claims: &serde_json::Value, sig: &str) -> String {
    format!(
        "{}.{}.{sig}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

#[test]
fn bad_tokens_are_401_with_a_clear_message_and_change_nothing() {
    let Setup { s, issuer, _dir } = setup();
    let t = now();
    let scope = json!({"scope": "storage.modify:/"});
    let with = |extra: serde_json::Value| {
        let mut c = issuer.claims(scope.clone());
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        issuer.sign("es1", &c)
    };
    let good = with(json!({}));
    let other_issuer = Issuer::new(s.dir.path(), "https://evil.test");
    let hs256 = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("es1".into());
        jsonwebtoken::encode(
            &h,
            &issuer.claims(scope.clone()),
            &jsonwebtoken::EncodingKey::from_secret(b"k").unwrap(),
        )
        .unwrap()
    };
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let mut c = issuer.claims(scope.clone());
        c["sub"] = json!("someone-else");
        format!("{}.{}.{}", parts[0], b64url(c.to_string().as_bytes()), parts[2])
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            with(json!({"exp": t - 3600, "nbf": t - 7200, "iat": t - 7200})),
            "expired",
        ),
        ("not yet valid", with(json!({"nbf": t + 3600})), "not valid yet"),
        (
            "wrong audience",
            with(json!({"aud": "https://other.example"})),
            "audience",
        ),
        ("no audience", with(json!({"aud": null})), "aud"),
        (
            "wrong issuer",
            other_issuer.sign("es1", &other_issuer.claims(scope.clone())),
            "not trusted",
        ),
        ("bad signature", tampered, "signature"),
        (
            "alg none",
            forged(
                json!({"alg": "none", "kid": "es1", "typ": "JWT"}),
                &issuer.claims(scope.clone()),
                "",
            ),
            "alg none",
        ),
        ("HS256", hs256, "HS256"),
        (
            "unknown kid",
            issuer.sign_naming("es1", "nobody", &issuer.claims(scope.clone())),
            "no key",
        ),
        ("wlcg.ver 2.0", with(json!({"wlcg.ver": "2.0"})), "wlcg.ver"),
        ("no wlcg.ver", with(json!({"wlcg.ver": null})), "wlcg.ver"),
        (
            "scope without a path",
            with(json!({"scope": "storage.modify"})),
            "has no path",
        ),
        ("scope with ..", with(json!({"scope": "storage.modify:/a/../b"})), ".."),
        (
            "scope with an encoded /",
            with(json!({"scope": "storage.modify:/a%2Fb"})),
            "encoded",
        ),
        ("no exp", with(json!({"exp": null})), "exp"),
        (
            "four parts",
            "eyJhbGciOiJFUzI1NiJ9.e30.x.y".to_string(),
            "invalid or revoked token",
        ),
    ];
    let before = s.tree();
    for (what, token, says) in &cases {
        for (method, path) in [("PUT", "/wlcg/a/new"), ("DELETE", "/wlcg/a/f"), ("GET", "/wlcg/a/f")] {
            let r = send(&s, method, path, token, (method == "PUT").then_some(b"x"));
            assert_eq!(r.status(), 401, "{what}: {method} {path}");
            let challenges: Vec<String> = r
                .headers()
                .get_all("www-authenticate")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            assert!(
                challenges
                    .iter()
                    .any(|c| c.starts_with("Bearer") && c.contains("error=\"invalid_token\"")),
                "{what}: {challenges:?}"
            );
            assert!(
                challenges.iter().any(|c| c.starts_with("Basic")),
                "{what}: {challenges:?}"
            );
            let body = r.text().unwrap();
            assert!(body.contains(says), "{what}: {body:?} should say {says:?}");
        }
    }
    assert_eq!(s.tree(), before, "nothing changed");
    // The good one works (the cases are refused for their fault only).
    assert_eq!(status(&s, "PUT", "/wlcg/a/new", &good), 201);
    // Within the leeway (60 s) a token just expired still passes.
    let just = with(json!({"exp": t - 20, "scope": "storage.read:/"}));
    assert_eq!(status(&s, "GET", "/wlcg/a/f", &just), 200);
}

#[test]
fn a_rotated_key_is_picked_up() {
    let Setup { s, mut issuer, _dir } = setup();
    let old = issuer.token("storage.read:/");
    assert_eq!(status(&s, "GET", "/wlcg/a/f", &old), 200);
    // The issuer rotates: a new key, the old one leaves the file.
    issuer.add_es256("es2");
    let new = issuer.sign("es2", &issuer.claims(json!({"scope": "storage.read:/"})));
    assert_eq!(status(&s, "GET", "/wlcg/a/f", &new), 401, "not published yet");
    issuer.publish();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(status(&s, "GET", "/wlcg/a/f", &new), 200, "picked up on an unknown kid");
    issuer.remove("es1");
    issuer.publish();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let _ = status(
        &s,
        "GET",
        "/wlcg/a/f",
        &issuer.sign_naming("es2", "unknown-again", &issuer.claims(json!({}))),
    );
    assert_eq!(
        status(&s, "GET", "/wlcg/a/f", &old),
        200,
        "a key that left the file is kept until its expiry"
    );
}

#[test]
fn tokens_without_capabilities_fall_back_to_their_groups() {
    let Setup { s, issuer, _dir } = setup();
    let t = issuer.sign(
        "es1",
        &issuer.claims(json!({"scope": "openid wlcg.groups", "wlcg.groups": ["/vo", "/vo/analysis"]})),
    );
    let who: serde_json::Value = send(&s, "GET", "/api/v1/whoami", &t, None).json().unwrap();
    assert_eq!(who["user"], "alice");
    assert_eq!(who["group"], "physics");
    assert_eq!(who["admin"], false);
    // As alice, the mode bits decide: /other/g is 0644 (readable), the
    // administrator's directory is not writable for alice.
    assert_eq!(status(&s, "GET", "/other/g", &t), 200);
    assert_eq!(status(&s, "PUT", "/other/new", &t), 403);
    // A group that maps to no one: refused, saying so.
    let nobody = issuer.sign("es1", &issuer.claims(json!({"wlcg.groups": ["/elsewhere"]})));
    let r = send(&s, "GET", "/api/v1/whoami", &nobody, None);
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("/elsewhere"));
}

#[test]
fn a_request_for_a_server_issued_token_gets_a_clean_4xx() {
    let Setup { s, .. } = setup();
    // gfal2 with no token asks the server for a macaroon.
    let r = s
        .http()
        .post(s.url_of("/wlcg/a/f"))
        .header("Content-Type", "application/macaroon-request")
        .body(r#"{"caveats": ["activity:DOWNLOAD"], "validity": "PT60M"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().unwrap().contains("issues no macaroons"));
}

#[test]
fn gfal2_sends_a_wlcg_token_from_bearer_token() {
    if !gfal2_available() {
        return;
    }
    let Setup { s, issuer, _dir } = setup();
    s.run(&["mkdir", "-p", "/wlcg/gfal"]);
    let dir = _dir.path();
    let token = issuer.token("storage.create:/gfal storage.read:/gfal storage.stage:/gfal");
    // As FTS runs it: the token in BEARER_TOKEN, none on the context.
    let g = Gfal2::new(dir, &s.url, "-", vec![("BEARER_TOKEN".into(), token)]);
    let data = bytes(11, 30_000);
    std::fs::write(dir.join("x.dat"), &data).unwrap();
    let remote = g.url("/wlcg/gfal/x.dat");
    g.step(&["copy", &format!("file://{}", dir.join("x.dat").display()), &remote]);
    assert_eq!(
        g.step(&["checksum", &remote]),
        format!("{}", bale_util::Adler32::of(&data))
    );
    assert_eq!(owner(&s, "/wlcg/gfal/x.dat"), "capuser");
    // Tape REST with the same token: archive poll, bring online, poll.
    assert!(g.step(&["archive-poll", &remote]).starts_with("pending:"));
    let req = g.step(&["bring-online", &remote]);
    assert_eq!(g.step(&["poll", &req, &remote]), "online");

    // With no token gfal2 asks the server for one: a clean refusal, and
    // nothing written.
    let none = Gfal2::new(dir, &s.url, "-", Vec::new());
    let before = s.tree();
    let out = none.try_step(&[
        "copy",
        &format!("file://{}", dir.join("x.dat").display()),
        &none.url("/wlcg/gfal/y.dat"),
    ]);
    assert!(!out.status.success());
    assert_eq!(s.tree(), before);
}

#[test]
fn config_check_reads_the_issuers_keys() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(dir.path(), ISS);
    let good = write_file(dir.path(), "good.toml", &issuer.config("/wlcg"));
    let out = std::process::Command::new(crate::common::BIN)
        .args(["config", "check", &good])
        .output()
        .unwrap();
    crate::common::assert_ok(&out, "bale config check");
    // A key file that is missing or not a key set: said by `config check`,
    // as `serve` would refuse it at start.
    std::fs::write(&issuer.jwks, "not json").unwrap();
    let out = std::process::Command::new(crate::common::BIN)
        .args(["config", "check", &good])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[auth]") && err.contains("is not JSON"), "{err}");
}
