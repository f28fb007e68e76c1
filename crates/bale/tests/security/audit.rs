//! The audit log with its default place (`audit.log` in the data
//! directory): a token creation, a refused administrative action and a
//! failed login each write one JSON line saying who, from where, what and
//! the result; no secret is ever written, neither a created token nor a
//! presented one (the whole file is searched for each).

use crate::common::{write_file, Catalog, Server};
use crate::pki::Issuer;
use serde_json::Value;
use std::path::Path;

/// The log's lines, each parsed as JSON.
fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// Runs `f` and returns the one line it added to the log.
fn one_line(path: &Path, what: &str, f: impl FnOnce()) -> Value {
    let before = lines(path).len();
    f();
    let after = lines(path);
    assert_eq!(
        after.len(),
        before + 1,
        "{what}: {} lines written, not one: {:#?}",
        after.len() - before,
        &after[before..]
    );
    after[before].clone()
}

/// The fields every line has, and their values where the test knows them.
fn check(line: &Value, who: &str, action: &str, result: &str) {
    for field in ["time", "who", "via", "from", "action", "target", "result", "detail"] {
        assert!(line[field].is_string(), "no {field} in {line}");
    }
    assert_eq!(line["who"], who, "{line}");
    assert_eq!(line["from"], "127.0.0.1", "{line}");
    assert_eq!(line["action"], action, "{line}");
    assert_eq!(line["result"], result, "{line}");
}

#[test]
fn token_creation_refusal_and_failed_login_are_one_line_each_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(dir.path(), "https://issuer.test");
    let cfg = write_file(
        dir.path(),
        "bale.toml",
        &format!("[auth]\naudiences = [\"bale-test\"]\n{}", issuer.config("/")),
    );
    let s = Server::start_with(Catalog::Sqlite, &["--config", &cfg]);
    let log = s.data_dir().join("audit.log");
    let c = s.http();
    let admin_id: String = s.api_get("whoami")["token_id"].as_str().unwrap().to_string();

    // A token created with the CLI: who made it and which token (its id).
    let mut carol = String::new();
    let line = one_line(&log, "bale token create", || carol = s.token_for("carol", "physics"));
    check(&line, "admin", "token-create", "ok");
    assert_eq!(line["via"], format!("token {admin_id}"), "{line}");
    assert_eq!(line["target"], "user carol, group physics", "{line}");
    let carol_id = carol.split('_').nth(1).unwrap();
    assert_eq!(line["detail"], format!("token {carol_id}"), "{line}");

    // A refused administrative action: bob creating a token, loading a policy.
    let mut bob = String::new();
    one_line(&log, "bob's token", || bob = s.token_for("bob", "bob"));
    let bob_id = bob.split('_').nth(1).unwrap().to_string();
    let line = one_line(&log, "bob's POST /api/v1/tokens", || {
        let r = c
            .post(s.url_of("/api/v1/tokens"))
            .bearer_auth(&bob)
            .json(&serde_json::json!({"user": "bob", "group": "bob", "admin": true}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
    });
    check(&line, "bob", "POST /api/v1/tokens", "refused");
    assert_eq!(line["via"], format!("token {bob_id}"), "{line}");
    assert!(
        line["detail"].as_str().unwrap().contains("not an administrator"),
        "{line}"
    );
    let line = one_line(&log, "bob's PUT /api/v1/policy", || {
        let r = c
            .put(s.url_of("/api/v1/policy"))
            .bearer_auth(&bob)
            .body("[[rule]]\nname = \"bob\"\naction = \"direct\"\n")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
    });
    check(&line, "bob", "PUT /api/v1/policy", "refused");

    // Failed logins: a wrong bale token, and a JWT that does not verify.
    let wrong = format!("bale_{carol_id}_{}", "0".repeat(48));
    let line = one_line(&log, "a wrong bale token", || {
        let r = c.get(s.url_of("/api/v1/whoami")).bearer_auth(&wrong).send().unwrap();
        assert_eq!(r.status().as_u16(), 401);
    });
    check(&line, "-", "GET /api/v1/whoami", "unauthenticated");
    assert_eq!(line["via"], "-", "{line}");
    // A good token with a character in the middle of its signature changed.
    let good = issuer.token("storage.read:/");
    let at = good.len() - 20;
    let old = &good[at..at + 1];
    let forged = format!(
        "{}{}{}",
        &good[..at],
        if old == "A" { "B" } else { "A" },
        &good[at + 1..]
    );
    let line = one_line(&log, "a JWT that does not verify", || {
        let r = c.get(s.url_of("/api/v1/whoami")).bearer_auth(&forged).send().unwrap();
        assert_eq!(r.status().as_u16(), 401);
    });
    check(&line, "-", "GET /api/v1/whoami", "unauthenticated");
    // A wrong password in HTTP Basic is a failed login too.
    let line = one_line(&log, "Basic with a wrong password", || {
        let r = c
            .get(s.url_of("/api/v1/whoami"))
            .basic_auth("bob", Some(&wrong))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    });
    check(&line, "-", "GET /api/v1/whoami", "unauthenticated");
    // No credentials at all is no failed login: nothing written.
    let before = lines(&log).len();
    let r = c.get(s.url_of("/api/v1/whoami")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(lines(&log).len(), before);

    // No secret anywhere in the file: the created token, the presented
    // ones (bob's, the wrong one, the JWTs), the administrator's.
    let text = std::fs::read_to_string(&log).unwrap();
    let secret = |t: &str| t.rsplit('_').next().unwrap().to_string();
    for (what, needle) in [
        ("the created token", carol.clone()),
        ("the created token's secret", secret(&carol)),
        ("bob's token", bob.clone()),
        ("bob's token's secret", secret(&bob)),
        ("the wrong token", wrong.clone()),
        ("the wrong token's secret", secret(&wrong)),
        ("the admin token", s.token.clone()),
        ("the admin token's secret", secret(&s.token)),
        ("the forged JWT", forged.clone()),
        (
            "the forged JWT's signature",
            forged.rsplit('.').next().unwrap().to_string(),
        ),
    ] {
        assert!(needle.len() >= 40, "{what} is too short to search for: {needle:?}");
        assert!(!text.contains(&needle), "{what} is in the audit log:\n{text}");
    }
}
