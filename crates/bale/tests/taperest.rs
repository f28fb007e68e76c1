//! The WLCG Tape REST API v1 as gfal2 and FTS use it: discovery without
//! auth, stage with a trailing slash and ignored extras, paths echoed as
//! sent, `error` only on failure, archiveinfo, cancel, release (also with
//! gfal2's placeholder id), delete; bad input refused.

mod common;

use common::{bytes, Catalog, Server};
use serde_json::{json, Value};

use common::SMALL_LIBRARY as TAPE;

fn post(s: &Server, token: &str, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let r = s
        .http()
        .post(s.url_of(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .unwrap();
    let code = r.status().as_u16();
    let loc = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
    let text = r.text().unwrap();
    (code, loc, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get(s: &Server, token: &str, path: &str) -> (u16, Value) {
    let r = s.http().get(s.url_of(path)).bearer_auth(token).send().unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

fn the_tape_rest_api_stages_and_reports(catalog: Catalog) {
    let cfg = tempfile::tempdir().unwrap();
    let p = cfg.path().join("bale.toml");
    std::fs::write(&p, TAPE).unwrap();
    let s = Server::start_with(catalog, &["--config", p.to_str().unwrap()]);
    // Discovery: no token.
    let d: Value = s
        .http()
        .get(s.url_of("/.well-known/wlcg-tape-rest-api"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(d["sitename"], "bale");
    let uri = d["endpoints"][0]["uri"].as_str().unwrap();
    assert!(
        uri.ends_with("/api/tape/v1") && uri.starts_with("http://127.0.0.1:"),
        "{d}"
    );
    assert_eq!(d["endpoints"][0]["version"], "v1");

    // RFC 9530 digests: a PUT checked against Repr-Digest, HEAD answering
    // Want-Repr-Digest (FTS moves to them from RFC 3230's Digest).
    s.run(&["mkdir", "/raw"]);
    let body = b"checked with repr-digest".to_vec();
    let sum = bale_util::Adler32::of(&body);
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(sum.0.to_be_bytes())
    };
    let put = |name: &str, digest: String| {
        s.http()
            .put(s.url_of(&format!("/raw/{name}")))
            .bearer_auth(&s.token)
            .header("repr-digest", digest)
            .body(body.clone())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(put("bad.txt", "adler=:AAAAAQ==:".into()), 400);
    assert_eq!(put("good.txt", format!("sha-256=:x:, adler=:{b64}:")), 201);
    let head = s
        .http()
        .head(s.url_of("/raw/good.txt"))
        .bearer_auth(&s.token)
        .header("want-repr-digest", "sha-256=5, adler=1")
        .send()
        .unwrap();
    assert_eq!(head.headers()["repr-digest"], format!("adler=:{b64}:").as_str());
    s.run(&["rm", "/raw/good.txt"]);
    let local = tempfile::tempdir().unwrap();
    let data = bytes(3, 5000);
    std::fs::write(local.path().join("f0.dat"), &data).unwrap();
    s.run(&["put", local.path().join("f0.dat").to_str().unwrap(), "/raw"]);
    s.run(&["queue", "flush"]);
    s.wait_for(60, "on tape and settled", |s| {
        let u: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
        u["purgeable_files"].as_u64() == Some(1)
    });
    s.run(&["purge", "--all"]);
    let (code, _, info) = post(
        &s,
        &s.token,
        "/api/tape/v1/archiveinfo/",
        &json!({"paths": ["/raw/f0.dat"]}),
    );
    assert_eq!((code, &info[0]["locality"]), (200, &json!("TAPE")), "{info}");

    // Stage, gfal2-style: trailing slash, targeted metadata, unknown fields.
    let body = json!({
        "files": [
            {"path": "//raw//f0.dat", "diskLifetime": "PT1H",
             "targetedMetadata": {"bale": {"activity": "t0"}}, "colour": "red"},
            {"path": "/raw/nope.dat"}
        ],
        "something": 1
    });
    let (code, loc, v) = post(&s, &s.token, "/api/tape/v1/stage/", &body);
    assert_eq!(code, 201, "{v}");
    let id = v["requestId"].as_str().unwrap().to_string();
    // Absolute, on the URL the client came in by.
    assert_eq!(
        loc.as_deref(),
        Some(format!("{}/api/tape/v1/stage/{id}", s.url).as_str())
    );
    s.wait_for(60, "the request done", |s| {
        get(s, &s.token, &format!("/api/tape/v1/stage/{id}")).1["completedAt"].is_number()
    });
    let (_, r) = get(&s, &s.token, &format!("/api/tape/v1/stage/{id}"));
    assert_eq!(r["id"], id.as_str());
    assert!(r["createdAt"].is_number() && r["startedAt"].is_number(), "{r}");
    let f0 = &r["files"][0];
    assert_eq!(f0["path"], "//raw//f0.dat", "echoed exactly as sent");
    assert_eq!(f0["state"], "COMPLETED");
    assert!(f0.get("error").is_none(), "no error key, not even null: {f0}");
    let f1 = &r["files"][1];
    assert_eq!(f1["state"], "FAILED");
    assert!(f1["error"].is_string());
    let (code, _, info) = post(
        &s,
        &s.token,
        "/api/tape/v1/archiveinfo",
        &json!({"paths": ["/raw/f0.dat", "/raw/nope.dat"]}),
    );
    assert_eq!(code, 200);
    assert_eq!(info[0]["locality"], "DISK_AND_TAPE");
    assert!(
        info[1].get("locality").is_none() && info[1]["error"].is_string(),
        "{info}"
    );

    // Cancel of a path not in the request: 400 and nothing changes.
    let (code, _, p) = post(
        &s,
        &s.token,
        &format!("/api/tape/v1/stage/{id}/cancel"),
        &json!({"paths": ["/raw/other"]}),
    );
    assert_eq!(code, 400, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("/raw/other"));
    // Release: by id, and by path with gfal2's placeholder.
    let (code, _, _) = post(
        &s,
        &s.token,
        &format!("/api/tape/v1/release/{id}"),
        &json!({"paths": ["//raw//f0.dat"]}),
    );
    assert_eq!(code, 200);
    let (code, _, _) = post(
        &s,
        &s.token,
        "/api/tape/v1/release/gfal2-placeholder-id",
        &json!({"paths": ["/raw/f0.dat"]}),
    );
    assert_eq!(code, 200);
    // Another user's request: 403; unknown ids: 404; bad bodies: 400.
    let alice = s.token_for("alice", "phys");
    assert_eq!(get(&s, &alice, &format!("/api/tape/v1/stage/{id}")).0, 403);
    assert_eq!(get(&s, &s.token, "/api/tape/v1/stage/424242").0, 404);
    assert_eq!(get(&s, &s.token, "/api/tape/v1/stage/not-an-id").0, 404);
    assert_eq!(post(&s, &s.token, "/api/tape/v1/stage", &json!({"files": []})).0, 400);
    assert_eq!(
        post(&s, &s.token, "/api/tape/v1/stage", &json!({"paths": ["/raw/f0.dat"]})).0,
        400
    );
    assert_eq!(
        post(
            &s,
            &s.token,
            "/api/tape/v1/stage",
            &json!({"files": [{"path": "/raw/f0.dat", "diskLifetime": "soon"}]})
        )
        .0,
        400
    );
    let r = s
        .http()
        .post(s.url_of("/api/tape/v1/stage"))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = s
        .http()
        .post(s.url_of("/api/tape/v1/stage"))
        .json(&json!({"files": []}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "no token");
    // Delete: gone.
    let r = s
        .http()
        .delete(s.url_of(&format!("/api/tape/v1/stage/{id}")))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(get(&s, &s.token, &format!("/api/tape/v1/stage/{id}")).0, 404);
}

on_both_catalogs!(the_tape_rest_api_stages_and_reports);
