//! The authorization table walked over HTTP: for every action of
//! `bale_core::authz::Action` (an exhaustive match, so that a new action
//! without a case does not compile), its real requests are sent
//!
//! - with no credentials: 401;
//! - with another ordinary user's bale token (bob: not an administrator,
//!   not the owner, no bits on alice's directory): refused;
//! - with a WLCG capability token that lacks the scope: refused;
//!
//! and after every refused request nothing has changed: the namespace (with
//! sizes, owners, groups, modes, tags), tokens, volumes, drives, the policy,
//! alarms, the queue, workers, every catalog table (stage requests and
//! their holds, pins, jobs, pools) and the cache's files. Each action also
//! succeeds once for a caller who has the requirement (alice, an
//! administrator or a token with the scope), so that no refusal passes
//! because the request itself is malformed. The statuses seen make the
//! table in docs/SECURITY.md (`BALE_BLESS=1` rewrites it).

use crate::common::{write_file, Catalog, Server};
use crate::pki::Issuer;
use bale_core::authz::{Action, Need};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// Two libraries: lib1 holds the data (its drives are taken offline once
/// the files are on tape, so that alice's stage request stays open and
/// nothing on tape moves during the walk); lib2 is for the harmless
/// successes of the administrative actions (a drive taken offline and
/// online, a volume made read-only and blank again, a fault armed).
const CONFIG: &str = r#"
[tape]
idle_unload_s = 0.2

[[tape.libraries]]
name = "lib1"
drives = 2
initial_volumes = 2
volume_capacity = "100 MB"

[[tape.libraries]]
name = "lib2"
drives = 1
initial_volumes = 1
volume_capacity = "100 MB"
"#;

const A: &str = "/alice/data/a.dat";
const B: &str = "/alice/data/b.dat";
const C: &str = "/alice/data/c.dat";
const DATA: &str = "/alice/data";
const BOB_FILE: &str = "/bob/own.dat";

/// Every storage scope on the whole namespace: what an administrative
/// action refuses all the same (a WLCG token is never an administrator).
const ALL_SCOPES: &str = "storage.read:/ storage.create:/ storage.modify:/ storage.stage:/";

#[derive(Clone)]
enum Body {
    Json(Value),
    Text(String),
}

/// One HTTP request.
#[derive(Clone)]
struct Probe {
    /// How the docs' table names it.
    label: String,
    method: &'static str,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Body>,
}

impl Probe {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Probe {
        self.headers.push((name, value.into()));
        self
    }

    fn label(mut self, label: &str) -> Probe {
        self.label = label.to_string();
        self
    }
}

/// What an answer must be.
#[derive(Clone, Copy)]
enum Expect {
    Status(u16),
    /// A bulk answer with this status, every path refused with its own
    /// error (and nothing else said about it).
    PathsRefused(u16),
    /// A bulk answer with this status, no path with an error.
    PathsOk(u16),
    /// A stage request made (201) whose files are none of them FAILED.
    Staged,
    /// 200, and no path below /alice in it (a package's members alice's
    /// directory hides from the caller).
    NoAlicePaths,
}

impl Expect {
    fn cell(self) -> String {
        match self {
            Expect::Status(s) | Expect::PathsOk(s) => s.to_string(),
            Expect::PathsRefused(s) => format!("{s}, every path refused"),
            Expect::Staged => "201".into(),
            Expect::NoAlicePaths => "200".into(),
        }
    }
}

/// A request tried without the requirement.
struct Try {
    probe: Probe,
    /// With bob's token (none for actions open to anyone authenticated).
    other: Option<Expect>,
    /// With a WLCG token of these scopes (which lack the one needed).
    scope: Option<(String, String, Expect)>,
}

/// An action's case: the requests refused, and the requests that succeed
/// for a caller with the requirement.
struct Case {
    tries: Vec<Try>,
    ok: Vec<(String, Probe, Expect)>,
}

struct World {
    s: Server,
    c: Client,
    issuer: Issuer,
    alice: String,
    alice_token_id: String,
    bob: String,
    /// alice's stage request of B, open (lib1's drives are offline).
    request: i64,
    lib1_volume: String,
    lib1_drive: String,
    lib2_volume: String,
    lib2_drive: String,
    worker: String,
    alarm: i64,
    package: String,
    scratch: std::cell::Cell<u32>,
    _dir: tempfile::TempDir,
}

impl World {
    fn probe(&self, method: &'static str, path: &str) -> Probe {
        Probe {
            label: format!("{method} {path}"),
            method,
            url: self.s.url_of(path),
            headers: Vec::new(),
            body: None,
        }
    }

    fn get(&self, path: &str) -> Probe {
        self.probe("GET", path)
    }

    fn post(&self, path: &str, body: Value) -> Probe {
        let mut p = self.probe("POST", path);
        p.body = Some(Body::Json(body));
        p
    }

    fn put(&self, path: &str, data: &str) -> Probe {
        let mut p = self.probe("PUT", path);
        p.body = Some(Body::Text(data.to_string()));
        p
    }

    /// MOVE or COPY of `from` to `to` (an absolute URL of this server).
    fn transfer(&self, method: &'static str, from: &str, to: &str) -> Probe {
        self.probe(method, from)
            .header("Destination", self.s.url_of(to))
            .label(&format!("{method} {from} (Destination {to})"))
    }

    fn send(&self, p: &Probe, token: Option<&str>) -> (u16, Value) {
        let mut r = self.c.request(Method::from_bytes(p.method.as_bytes()).unwrap(), &p.url);
        for (k, v) in &p.headers {
            r = r.header(*k, v);
        }
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r = match &p.body {
            Some(Body::Json(v)) => r.json(v),
            Some(Body::Text(t)) => r.body(t.clone()),
            None => r,
        };
        let resp = r.send().unwrap_or_else(|e| panic!("{}: {e}", p.label));
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A request that must succeed (setup).
    fn must(&self, token: &str, p: Probe) -> Value {
        let (st, v) = self.send(&p, Some(token));
        assert!((200..300).contains(&st), "{}: {st} {v}", p.label);
        v
    }

    fn admin_get(&self, path: &str) -> Value {
        self.must(&self.s.token, self.get(path))
    }

    fn jwt(&self, scope: &str) -> String {
        self.issuer.token(scope)
    }

    /// A new file of alice's in /alice/data, for a success to change.
    fn scratch(&self) -> String {
        let n = self.scratch.get() + 1;
        self.scratch.set(n);
        let path = format!("{DATA}/scratch-{n}.dat");
        self.must(&self.alice, self.put(&path, "scratch"));
        path
    }

    /// A stage request of alice's for `paths`.
    fn alice_stage(&self, paths: &[&str]) -> i64 {
        let v = self.must(&self.alice, self.post("/api/v1/stage", json!({ "paths": paths })));
        v["id"].as_i64().unwrap()
    }

    /// Whether an answer is what `e` says.
    fn meets(&self, e: Expect, status: u16, body: &Value) -> Result<(), String> {
        let want = match e {
            Expect::Status(s) | Expect::PathsRefused(s) | Expect::PathsOk(s) => s,
            Expect::Staged => 201,
            Expect::NoAlicePaths => 200,
        };
        if status != want {
            return Err(format!("status {status}, not {want}: {body}"));
        }
        match e {
            Expect::Status(_) => Ok(()),
            Expect::PathsRefused(_) | Expect::PathsOk(_) => {
                let items = body.as_array().ok_or_else(|| format!("not a list: {body}"))?;
                let refused = matches!(e, Expect::PathsRefused(_));
                for i in items {
                    let ok = match refused {
                        true => i["error"].is_string() && i.get("locality").is_none(),
                        false => i.get("error").is_none() && i["locality"].is_string(),
                    };
                    if !ok {
                        return Err(format!("{i} in {body}"));
                    }
                }
                match items.is_empty() {
                    true => Err("an empty list".into()),
                    false => Ok(()),
                }
            }
            Expect::Staged => {
                let id = body["id"]
                    .as_i64()
                    .or_else(|| body["requestId"].as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| format!("no request id in {body}"))?;
                let r = self.admin_get(&format!("/api/v1/stage/{id}"));
                match r["counts"]["FAILED"].as_u64() {
                    Some(0) => Ok(()),
                    _ => Err(format!("files failed: {r}")),
                }
            }
            Expect::NoAlicePaths => match body.to_string().contains("/alice") {
                true => Err(format!("shows alice's paths: {body}")),
                false => Ok(()),
            },
        }
    }
}

fn setup() -> World {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(dir.path(), "https://issuer.test");
    // /metrics asks everyone for a token here (by default loopback needs none).
    let config = format!(
        "[server]\nmetrics_open_to = []\n[auth]\naudiences = [\"bale-test\"]\n{}\n{CONFIG}",
        issuer.config("/")
    );
    let cfg = write_file(dir.path(), "bale.toml", &config);
    let s = Server::start_with(Catalog::Sqlite, &["--config", &cfg]);
    let alice = s.token_for("alice", "physics");
    let bob = s.token_for("bob", "bob");
    let mut w = World {
        c: s.http(),
        s,
        issuer,
        alice,
        alice_token_id: String::new(),
        bob,
        request: 0,
        lib1_volume: String::new(),
        lib1_drive: String::new(),
        lib2_volume: String::new(),
        lib2_drive: String::new(),
        worker: String::new(),
        alarm: 0,
        package: String::new(),
        scratch: std::cell::Cell::new(0),
        _dir: dir,
    };
    let admin = w.s.token.clone();
    w.alice_token_id = w.must(&w.alice, w.get("/api/v1/whoami"))["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mkdir = |path: &str, owner: &str, group: &str, mode: &str| {
        w.must(
            &admin,
            w.post(
                "/api/v1/mkdir",
                json!({"path": path, "owner": owner, "group": group, "mode": mode}),
            ),
        );
    };
    mkdir("/alice", "alice", "physics", "0700");
    mkdir("/bob", "bob", "bob", "0755");
    w.must(&w.alice, w.post("/api/v1/mkdir", json!({"path": DATA, "mode": "0755"})));
    w.must(&w.alice, w.post("/api/v1/mkdir", json!({"path": "/alice/tagme"})));
    for (i, p) in [A, B, C].iter().enumerate() {
        w.must(&w.alice, w.put(p, &format!("alice's data {i}\n").repeat(100 + i)));
    }
    w.must(&w.bob, w.put(BOB_FILE, "bob's own"));
    // On tape, settled, and B and C purged: on tape only.
    w.must(&admin, w.post("/api/v1/queue/flush", json!({})));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let archived = [A, B, C]
            .iter()
            .all(|p| w.admin_get(&format!("/api/v1/stat?path={p}"))["archive"]["state"] == "archived");
        let settled = w.admin_get("/api/v1/cache")["purgeable_files"].as_u64() >= Some(3);
        if archived && settled {
            break;
        }
        assert!(Instant::now() < deadline, "the files did not reach tape");
        std::thread::sleep(Duration::from_millis(50));
    }
    let purged = w.must(&admin, w.post("/api/v1/cache/purge", json!({"paths": [B, C]})));
    assert_eq!(purged["files"], 2, "{purged}");
    // A file waiting in its pool (on its way to tape).
    w.must(&w.alice, w.put("/alice/data/pooled.dat", "pooled"));
    // lib1's drives offline: what needs tape waits.
    let drives = w.admin_get("/api/v1/drives");
    for d in drives.as_array().unwrap() {
        let name = d["name"].as_str().unwrap();
        match d["library"].as_str().unwrap() {
            "lib1" => {
                w.must(&admin, w.probe("POST", &format!("/api/v1/drives/{name}/offline")));
                w.lib1_drive = name.to_string();
            }
            _ => w.lib2_drive = name.to_string(),
        }
    }
    for v in w.admin_get("/api/v1/volumes").as_array().unwrap() {
        let label = v["label"].as_str().unwrap().to_string();
        match v["library"].as_str().unwrap() {
            "lib1" if v["tape_files"].as_u64() > Some(0) => w.lib1_volume = label,
            "lib2" => w.lib2_volume = label,
            _ => {}
        }
    }
    w.package = w.admin_get("/api/v1/packages")[0]["id"].as_str().unwrap().to_string();
    w.worker = w.admin_get("/api/v1/workers")[0]["name"].as_str().unwrap().to_string();
    // alice's open stage request, and her pin.
    w.request = w.alice_stage(&[B]);
    w.must(
        &w.alice,
        w.post("/api/v1/pins", json!({"paths": [A], "lifetime_s": 3600})),
    );
    // An alarm to acknowledge (no API raises one on demand).
    w.s.catalog_sql(
        "INSERT INTO alarms (time, severity, source, message, last_time, count) \
         VALUES (1, 'warning', 'authz-walk', 'an alarm to acknowledge', 1, 1)",
    );
    w.alarm =
        w.s.catalog_query("SELECT CAST(id AS TEXT) FROM alarms WHERE source = 'authz-walk'")[0]
            .parse()
            .unwrap();
    for (name, v) in [
        ("lib1 volume", &w.lib1_volume),
        ("lib1 drive", &w.lib1_drive),
        ("lib2 volume", &w.lib2_volume),
        ("lib2 drive", &w.lib2_drive),
    ] {
        assert!(!v.is_empty(), "no {name}");
    }
    w
}

/// The case of each action. No wildcard: a new action has no case until
/// one is written here, and this does not compile.
fn case(w: &World, a: Action) -> Case {
    let (alice, admin, bob) = (w.alice.clone(), w.s.token.clone(), w.bob.clone());
    let r = w.request;
    // The usual refusal: 403 to bob and to a token without the scope.
    let refused = |probe: Probe, lacking: &str| Try {
        probe,
        other: Some(Expect::Status(403)),
        scope: Some((lacking.to_string(), w.jwt(lacking), Expect::Status(403))),
    };
    let admin_only = |probe: Probe| refused(probe, ALL_SCOPES);
    let ok = |token: &str, p: Probe, status: u16| (token.to_string(), p, Expect::Status(status));
    match a {
        Action::Stat => {
            let stat = w.get(&format!("/api/v1/stat?path={A}"));
            let tags = w.get(&format!("/api/v1/tags?path={DATA}"));
            let propfind = w
                .probe("PROPFIND", A)
                .header("Depth", "0")
                .label(&format!("PROPFIND {A} (Depth 0)"));
            Case {
                tries: vec![
                    refused(stat.clone(), "storage.read:/elsewhere"),
                    refused(tags.clone(), "storage.read:/elsewhere"),
                    refused(propfind.clone(), "storage.read:/elsewhere"),
                ],
                ok: vec![
                    ok(&alice, stat.clone(), 200),
                    ok(&alice, tags, 200),
                    ok(&alice, propfind, 207),
                    // Every storage scope allows a stat.
                    ok(&w.jwt("storage.stage:/alice"), stat, 200),
                ],
            }
        }
        Action::List => {
            let list = w.get(&format!("/api/v1/list?path={DATA}"));
            let propfind = w
                .probe("PROPFIND", DATA)
                .header("Depth", "1")
                .label(&format!("PROPFIND {DATA} (Depth 1)"));
            Case {
                tries: vec![
                    refused(list.clone(), "storage.create:/"),
                    refused(propfind.clone(), "storage.create:/"),
                ],
                ok: vec![
                    ok(&alice, list.clone(), 200),
                    ok(&alice, propfind, 207),
                    ok(&w.jwt("storage.read:/alice"), list, 200),
                ],
            }
        }
        Action::Read => {
            let get = w.get(A);
            let head = w.probe("HEAD", A);
            Case {
                // storage.stage does not grant read (profile v1.2 on).
                tries: vec![
                    refused(get.clone(), "storage.stage:/"),
                    refused(head.clone(), "storage.stage:/"),
                ],
                ok: vec![
                    ok(&alice, get.clone(), 200),
                    ok(&alice, head, 200),
                    ok(&w.jwt("storage.read:/alice/data"), get, 200),
                ],
            }
        }
        Action::Create => Case {
            tries: vec![
                refused(w.put("/alice/data/new.dat", "new"), "storage.read:/"),
                refused(w.probe("MKCOL", "/alice/data/newdir"), "storage.read:/"),
                refused(
                    w.post("/api/v1/mkdir", json!({"path": "/alice/data/newdir"}))
                        .label("POST /api/v1/mkdir {\"path\": \"/alice/data/newdir\"}"),
                    "storage.read:/",
                ),
            ],
            ok: vec![
                ok(&alice, w.put("/alice/data/ok-new.dat", "new"), 201),
                ok(&alice, w.probe("MKCOL", "/alice/data/ok-dir"), 201),
                ok(
                    &alice,
                    w.post("/api/v1/mkdir", json!({"path": "/alice/data/ok-dir2"})),
                    201,
                ),
                ok(
                    &w.jwt("storage.create:/alice/data"),
                    w.put("/alice/data/ok-jwt.dat", "new"),
                    201,
                ),
            ],
        },
        Action::CreateAs => Case {
            // bob may create in /bob, but not for another owner.
            tries: vec![refused(
                w.post("/api/v1/mkdir", json!({"path": "/bob/as-alice", "owner": "alice"}))
                    .label("POST /api/v1/mkdir {\"path\": \"/bob/as-alice\", \"owner\": \"alice\"}"),
                "storage.modify:/",
            )],
            ok: vec![
                ok(
                    &admin,
                    w.post(
                        "/api/v1/mkdir",
                        json!({"path": "/bob/for-alice", "owner": "alice", "group": "physics"}),
                    ),
                    201,
                ),
                ok(&bob, w.post("/api/v1/mkdir", json!({"path": "/bob/plain"})), 201),
            ],
        },
        Action::Overwrite => {
            let scratch = w.scratch();
            let scratch2 = w.scratch();
            Case {
                tries: vec![refused(
                    w.put(A, "overwritten")
                        .header("Overwrite", "T")
                        .label(&format!("PUT {A} (Overwrite: T)")),
                    "storage.create:/",
                )],
                ok: vec![
                    ok(&alice, w.put(&scratch, "overwritten").header("Overwrite", "T"), 200),
                    ok(
                        &w.jwt("storage.modify:/alice"),
                        w.put(&scratch2, "overwritten").header("Overwrite", "T"),
                        200,
                    ),
                ],
            }
        }
        Action::Proppatch => {
            let (s1, s2) = (w.scratch(), w.scratch());
            let patch = |path: &str| {
                let mut p = w.probe("PROPPATCH", path);
                p.body = Some(Body::Text(
                    r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><k xmlns="urn:walk">v</k></D:prop></D:set></D:propertyupdate>"#
                        .into(),
                ));
                p
            };
            Case {
                tries: vec![refused(patch(A), "storage.create:/")],
                ok: vec![
                    ok(&alice, patch(&s1), 207),
                    ok(&w.jwt("storage.modify:/alice"), patch(&s2), 207),
                ],
            }
        }
        Action::Delete => {
            let (s1, s2) = (w.scratch(), w.scratch());
            Case {
                tries: vec![refused(w.probe("DELETE", A), "storage.create:/")],
                ok: vec![
                    ok(&alice, w.probe("DELETE", &s1), 204),
                    ok(&w.jwt("storage.modify:/alice/data"), w.probe("DELETE", &s2), 204),
                ],
            }
        }
        Action::Move => {
            let s1 = w.scratch();
            Case {
                tries: vec![
                    refused(w.transfer("MOVE", A, "/bob/moved.dat"), "storage.create:/"),
                    // Into alice's directory: the destination is refused.
                    refused(
                        w.transfer("MOVE", BOB_FILE, "/alice/data/planted.dat"),
                        "storage.modify:/bob storage.read:/",
                    ),
                ],
                ok: vec![ok(&alice, w.transfer("MOVE", &s1, &format!("{s1}.moved")), 201)],
            }
        }
        Action::Copy => Case {
            tries: vec![
                refused(w.transfer("COPY", A, "/bob/copied.dat"), "storage.create:/"),
                refused(
                    w.transfer("COPY", BOB_FILE, "/alice/data/planted.dat"),
                    "storage.read:/",
                ),
            ],
            ok: vec![ok(&alice, w.transfer("COPY", A, "/alice/data/copied.dat"), 201)],
        },
        Action::Tag => {
            let tag = |path: &str, family: &str| {
                w.post("/api/v1/tags", json!({"path": path, "set": {"file_family": family}}))
                    .label(&format!("POST /api/v1/tags {{\"path\": \"{path}\", ...}}"))
            };
            Case {
                tries: vec![refused(tag(DATA, "bobs"), "storage.create:/")],
                ok: vec![ok(&alice, tag("/alice/tagme", "alices"), 200)],
            }
        }
        Action::Chmod => {
            let s1 = w.scratch();
            let chmod = |path: &str, mode: &str| {
                w.post("/api/v1/attrs", json!({"path": path, "mode": mode}))
                    .label(&format!(
                        "POST /api/v1/attrs {{\"path\": \"{path}\", \"mode\": \"{mode}\"}}"
                    ))
            };
            Case {
                tries: vec![refused(chmod(A, "0777"), "storage.create:/")],
                ok: vec![ok(&alice, chmod(&s1, "0640"), 200)],
            }
        }
        Action::Chown => {
            let s1 = w.scratch();
            let chown = |path: &str, owner: &str| {
                w.post("/api/v1/attrs", json!({"path": path, "owner": owner}))
                    .label(&format!(
                        "POST /api/v1/attrs {{\"path\": \"{path}\", \"owner\": \"{owner}\"}}"
                    ))
            };
            Case {
                tries: vec![
                    // Not even of bob's own file.
                    refused(chown(BOB_FILE, "alice"), "storage.modify:/"),
                    refused(chown(A, "bob"), "storage.modify:/"),
                ],
                ok: vec![ok(&admin, chown(&s1, "carol"), 200)],
            }
        }
        Action::ArchiveState => {
            let pins = w.get(&format!("/api/v1/pins?path={A}"));
            let info = w
                .post("/api/v1/archiveinfo", json!({ "paths": [A, B] }))
                .label(&format!("POST /api/v1/archiveinfo {{\"paths\": [\"{A}\", \"{B}\"]}}"));
            let tape = w
                .post("/api/tape/v1/archiveinfo", json!({ "paths": [A, B] }))
                .label(&format!(
                    "POST /api/tape/v1/archiveinfo {{\"paths\": [\"{A}\", \"{B}\"]}}"
                ));
            let lacking = "storage.read:/elsewhere";
            // The bulk requests answer per path (the Tape REST API's form).
            let per_path = |probe: Probe| Try {
                probe,
                other: Some(Expect::PathsRefused(200)),
                scope: Some((lacking.to_string(), w.jwt(lacking), Expect::PathsRefused(200))),
            };
            Case {
                tries: vec![
                    refused(pins.clone(), lacking),
                    per_path(info.clone()),
                    per_path(tape.clone()),
                ],
                ok: vec![
                    ok(&alice, pins, 200),
                    (alice.clone(), info, Expect::PathsOk(200)),
                    (w.jwt("storage.poll:/alice"), tape, Expect::PathsOk(200)),
                ],
            }
        }
        Action::PolicyCheck => {
            let check = w.get("/api/v1/policy/check?path=/alice/data/new.dat&size=1000");
            Case {
                tries: vec![refused(check.clone(), "storage.read:/elsewhere")],
                ok: vec![ok(&alice, check, 200)],
            }
        }
        Action::Stage => {
            let json_api = |p: &str| {
                w.post("/api/v1/stage", json!({ "paths": [p] }))
                    .label(&format!("POST /api/v1/stage {{\"paths\": [\"{p}\"]}}"))
            };
            let tape = |p: &str| {
                w.post("/api/tape/v1/stage", json!({"files": [{"path": p}]}))
                    .label(&format!(
                        "POST /api/tape/v1/stage {{\"files\": [{{\"path\": \"{p}\"}}]}}"
                    ))
            };
            // storage.read does not grant stage.
            Case {
                tries: vec![
                    refused(json_api(C), "storage.read:/"),
                    refused(tape(C), "storage.read:/"),
                ],
                ok: vec![
                    (alice.clone(), json_api(A), Expect::Staged),
                    (alice.clone(), tape(A), Expect::Staged),
                ],
            }
        }
        Action::Pin => {
            let pin = w
                .post("/api/v1/pins", json!({"paths": [A], "lifetime_s": 3600}))
                .label(&format!(
                    "POST /api/v1/pins {{\"paths\": [\"{A}\"], \"lifetime_s\": 3600}}"
                ));
            let unpin = w
                .post("/api/v1/pins/release", json!({ "paths": [A] }))
                .label(&format!("POST /api/v1/pins/release {{\"paths\": [\"{A}\"]}}"));
            let unpin_as = w
                .post("/api/v1/pins/release", json!({"paths": [A], "owner": "alice"}))
                .label(&format!(
                    "POST /api/v1/pins/release {{\"paths\": [\"{A}\"], \"owner\": \"alice\"}}"
                ));
            let release = w
                .post("/api/tape/v1/release/gfal2-placeholder-id", json!({ "paths": [B] }))
                .label(&format!(
                    "POST /api/tape/v1/release/gfal2-placeholder-id {{\"paths\": [\"{B}\"]}}"
                ));
            Case {
                tries: vec![
                    refused(pin.clone(), "storage.read:/"),
                    refused(unpin.clone(), "storage.read:/"),
                    refused(unpin_as, "storage.read:/"),
                    refused(release.clone(), "storage.read:/"),
                ],
                ok: vec![
                    ok(&alice, pin, 200),
                    ok(&alice, unpin, 200),
                    ok(&w.jwt("storage.stage:/alice"), release, 200),
                ],
            }
        }
        Action::StageStatus => {
            let probes = [
                w.get(&format!("/api/v1/stage/{r}")),
                w.get(&format!("/api/v1/stage/{r}/progress")),
                w.get(&format!("/api/tape/v1/stage/{r}")),
            ];
            Case {
                tries: probes.iter().map(|p| refused(p.clone(), "storage.read:/")).collect(),
                ok: probes.into_iter().map(|p| ok(&alice, p, 200)).collect(),
            }
        }
        Action::StageCancel => {
            let (r1, r2) = (w.alice_stage(&[C]), w.alice_stage(&[C]));
            let cancel = |id: i64| {
                w.post(&format!("/api/v1/stage/{id}/cancel"), json!({}))
                    .label(&format!("POST /api/v1/stage/{id}/cancel {{}}"))
            };
            let tape = |id: i64, p: &str| {
                w.post(&format!("/api/tape/v1/stage/{id}/cancel"), json!({ "paths": [p] }))
                    .label(&format!("POST /api/tape/v1/stage/{id}/cancel {{\"paths\": [\"{p}\"]}}"))
            };
            Case {
                tries: vec![
                    refused(cancel(r), "storage.poll:/"),
                    refused(tape(r, B), "storage.poll:/"),
                ],
                ok: vec![ok(&alice, cancel(r1), 200), ok(&alice, tape(r2, C), 200)],
            }
        }
        Action::StageRelease => {
            let (r1, r2) = (w.alice_stage(&[A]), w.alice_stage(&[A]));
            let release = |id: i64| {
                w.post(&format!("/api/v1/stage/{id}/release"), json!({}))
                    .label(&format!("POST /api/v1/stage/{id}/release {{}}"))
            };
            let tape = |id: i64, p: &str| {
                w.post(&format!("/api/tape/v1/release/{id}"), json!({ "paths": [p] }))
                    .label(&format!("POST /api/tape/v1/release/{id} {{\"paths\": [\"{p}\"]}}"))
            };
            Case {
                tries: vec![
                    refused(release(r), "storage.poll:/"),
                    refused(tape(r, B), "storage.poll:/"),
                ],
                ok: vec![ok(&alice, release(r1), 200), ok(&alice, tape(r2, A), 200)],
            }
        }
        Action::StageDelete => {
            let (r1, r2) = (w.alice_stage(&[A]), w.alice_stage(&[A]));
            let json_api = |id: i64| w.probe("DELETE", &format!("/api/v1/stage/{id}"));
            let tape = |id: i64| w.probe("DELETE", &format!("/api/tape/v1/stage/{id}"));
            Case {
                tries: vec![
                    refused(json_api(r), "storage.poll:/"),
                    refused(tape(r), "storage.poll:/"),
                ],
                ok: vec![ok(&alice, json_api(r1), 204), ok(&alice, tape(r2), 200)],
            }
        }
        Action::WhoAmI => anyone(w, vec![w.get("/api/v1/whoami")]),
        Action::Status => anyone(w, vec![w.get("/api/v1/status"), w.get("/ui/data/overview")]),
        Action::History => {
            let h = w.get(&format!("/api/v1/history?path={A}"));
            Case {
                tries: vec![refused(h.clone(), "storage.read:/elsewhere")],
                ok: vec![ok(&alice, h.clone(), 200), ok(&admin, h, 200)],
            }
        }
        Action::HistoryById => {
            let h = w
                .get(&format!("/api/v1/history?file_id={}", w.s.file_id(A)))
                .label("GET /api/v1/history?file_id={id}");
            Case {
                tries: vec![admin_only(h.clone())],
                ok: vec![ok(&admin, h, 200)],
            }
        }
        Action::Metrics => anyone(w, vec![w.get("/metrics"), w.get("/ui/data/chart/ingest")]),
        Action::Volumes => anyone(
            w,
            vec![
                w.get("/api/v1/volumes"),
                w.get(&format!("/api/v1/volumes/{}", w.lib1_volume)),
                w.get("/ui/data/volumes"),
            ],
        ),
        Action::Drives => anyone(w, vec![w.get("/api/v1/drives")]),
        Action::Libraries => anyone(w, vec![w.get("/api/v1/libraries")]),
        Action::TapeEvents => anyone(w, vec![w.get("/api/v1/tape/events")]),
        Action::PolicyShow => anyone(w, vec![w.get("/api/v1/policy")]),
        Action::QueueShow => anyone(w, vec![w.get("/api/v1/queue")]),
        Action::CacheUsage => anyone(w, vec![w.get("/api/v1/cache")]),
        Action::Quotas => anyone(w, vec![w.get("/api/v1/quotas")]),
        Action::QuotaSet => {
            let set = w
                .post("/api/v1/quotas", json!({"storage_group": "walk", "files": 1000}))
                .label("POST /api/v1/quotas {\"storage_group\": \"walk\", \"files\": 1000}");
            Case {
                tries: vec![admin_only(set.clone())],
                ok: vec![ok(&admin, set, 200)],
            }
        }
        Action::Packages => {
            let one = w
                .get(&format!("/api/v1/packages/{}", w.package))
                .label("GET /api/v1/packages/{id}");
            let mut c = anyone(w, vec![w.get("/api/v1/packages"), one.clone()]);
            // Its members' paths: only those the caller may stat.
            c.ok.push((bob.clone(), one, Expect::NoAlicePaths));
            c
        }
        Action::VolumesAdd => {
            let add = w
                .post("/api/v1/volumes", json!({"library": "lib2", "count": 1}))
                .label("POST /api/v1/volumes {\"library\": \"lib2\", \"count\": 1}");
            Case {
                tries: vec![admin_only(add.clone())],
                ok: vec![ok(&admin, add, 201)],
            }
        }
        Action::VolumeState => {
            let state = |label: &str, state: &str| {
                w.post(&format!("/api/v1/volumes/{label}/state"), json!({ "state": state }))
                    .label(&format!(
                        "POST /api/v1/volumes/{{label}}/state {{\"state\": \"{state}\"}}"
                    ))
            };
            Case {
                tries: vec![admin_only(state(&w.lib1_volume, "noaccess"))],
                ok: vec![
                    ok(&admin, state(&w.lib2_volume, "readonly"), 200),
                    ok(&admin, state(&w.lib2_volume, "blank"), 200),
                ],
            }
        }
        Action::DriveState => {
            let drive = |name: &str, what: &str| {
                w.probe("POST", &format!("/api/v1/drives/{name}/{what}"))
                    .label(&format!("POST /api/v1/drives/{{name}}/{what}"))
            };
            Case {
                tries: vec![
                    admin_only(drive(&w.lib1_drive, "online")),
                    admin_only(drive(&w.lib2_drive, "offline")),
                ],
                ok: vec![
                    ok(&admin, drive(&w.lib2_drive, "offline"), 200),
                    ok(&admin, drive(&w.lib2_drive, "online"), 200),
                ],
            }
        }
        Action::Faults => {
            // A worker's panic shows in the workers' list; a read error
            // on lib2's volume (never read) is harmless.
            let panic = w
                .post(
                    "/api/v1/tape/faults",
                    json!({"kind": "worker_panic", "worker": w.worker}),
                )
                .label("POST /api/v1/tape/faults {\"kind\": \"worker_panic\", ...}");
            let read_error = w
                .post(
                    "/api/v1/tape/faults",
                    json!({"kind": "read_error", "volume": w.lib2_volume}),
                )
                .label("POST /api/v1/tape/faults {\"kind\": \"read_error\", ...}");
            Case {
                tries: vec![admin_only(panic)],
                ok: vec![ok(&admin, read_error, 204)],
            }
        }
        Action::Workers => admin_get(w, "/api/v1/workers"),
        Action::Alarms => admin_get(w, "/api/v1/alarms"),
        Action::AlarmAck => {
            let ack = w
                .probe("POST", &format!("/api/v1/alarms/{}/ack", w.alarm))
                .label("POST /api/v1/alarms/{id}/ack");
            let page = w
                .probe("POST", &format!("/ui/data/alarms/{}/ack", w.alarm))
                .label("POST /ui/data/alarms/{id}/ack");
            Case {
                tries: vec![admin_only(ack.clone()), admin_only(page)],
                ok: vec![ok(&admin, ack, 200)],
            }
        }
        Action::PolicyLoad => {
            let current = w.admin_get("/api/v1/policy")["source"].as_str().unwrap().to_string();
            let mut bobs = w.probe("PUT", "/api/v1/policy").label("PUT /api/v1/policy (a policy)");
            bobs.body = Some(Body::Text(format!("{current}\n# bob's policy\n")));
            let mut same = bobs.clone();
            same.body = Some(Body::Text(current));
            Case {
                tries: vec![admin_only(bobs)],
                ok: vec![ok(&admin, same, 200)],
            }
        }
        Action::QueueFlush => {
            let flush = w
                .post("/api/v1/queue/flush", json!({}))
                .label("POST /api/v1/queue/flush {}");
            Case {
                tries: vec![admin_only(flush.clone())],
                ok: vec![ok(&admin, flush, 200)],
            }
        }
        Action::QueueRetry => {
            let retry = w
                .post("/api/v1/queue/retry", json!({"failed": true}))
                .label("POST /api/v1/queue/retry {\"failed\": true}");
            Case {
                tries: vec![admin_only(retry.clone())],
                ok: vec![ok(&admin, retry, 200)],
            }
        }
        Action::Tokens => admin_get(w, "/api/v1/tokens"),
        Action::TokenCreate => {
            let create = |user: &str, admin: bool| {
                w.post("/api/v1/tokens", json!({"user": user, "group": user, "admin": admin}))
                    .label("POST /api/v1/tokens {\"user\": ..., \"admin\": true}")
            };
            Case {
                tries: vec![admin_only(create("mallory", true))],
                ok: vec![ok(&admin, create("walker", true), 201)],
            }
        }
        Action::TokenRevoke => {
            let spare = w.must(
                &admin,
                w.post("/api/v1/tokens", json!({"user": "spare", "group": "spare"})),
            )["id"]
                .as_str()
                .unwrap()
                .to_string();
            let revoke = |id: &str| {
                w.probe("DELETE", &format!("/api/v1/tokens/{id}"))
                    .label("DELETE /api/v1/tokens/{id}")
            };
            Case {
                // alice's own token, by bob.
                tries: vec![admin_only(revoke(&w.alice_token_id))],
                ok: vec![ok(&admin, revoke(&spare), 204)],
            }
        }
        Action::Purge => {
            let purge = |dry: bool| {
                w.post("/api/v1/cache/purge", json!({"all": true, "dry_run": dry}))
                    .label("POST /api/v1/cache/purge {\"all\": true}")
            };
            Case {
                tries: vec![admin_only(purge(false))],
                ok: vec![ok(&admin, purge(true), 200)],
            }
        }
        Action::Fsck => {
            let fsck = |repair: bool| {
                w.post("/api/v1/fsck", json!({ "repair": repair }))
                    .label("POST /api/v1/fsck {\"repair\": true}")
            };
            Case {
                tries: vec![admin_only(fsck(true))],
                ok: vec![ok(&admin, fsck(false), 200)],
            }
        }
        Action::Verify => {
            let verify = w
                .post("/api/v1/verify", json!({"cache": true}))
                .label("POST /api/v1/verify {\"cache\": true}");
            Case {
                tries: vec![admin_only(verify.clone())],
                ok: vec![ok(&admin, verify, 200)],
            }
        }
    }
}

/// An action any authenticated caller may do: 401 without credentials;
/// bob and a WLCG token with any scope succeed.
fn anyone(w: &World, probes: Vec<Probe>) -> Case {
    let jwt = w.jwt("storage.read:/elsewhere");
    Case {
        tries: probes
            .iter()
            .map(|p| Try {
                probe: p.clone(),
                other: None,
                scope: None,
            })
            .collect(),
        ok: probes
            .into_iter()
            .flat_map(|p| {
                [
                    (w.bob.clone(), p.clone(), Expect::Status(200)),
                    (jwt.clone(), p, Expect::Status(200)),
                ]
            })
            .collect(),
    }
}

/// An administrator's view.
fn admin_get(w: &World, path: &str) -> Case {
    let p = w.get(path);
    Case {
        tries: vec![Try {
            probe: p.clone(),
            other: Some(Expect::Status(403)),
            scope: Some((ALL_SCOPES.to_string(), w.jwt(ALL_SCOPES), Expect::Status(403))),
        }],
        ok: vec![(w.s.token.clone(), p, Expect::Status(200))],
    }
}

/// Removes the keys that change on their own (times of access, counters,
/// what a drive holds) from a JSON value.
fn strip(mut v: Value, keys: &[&str]) -> Value {
    fn walk(v: &mut Value, keys: &[&str]) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| !keys.contains(&k.as_str()));
                m.values_mut().for_each(|x| walk(x, keys));
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, keys)),
            _ => {}
        }
    }
    walk(&mut v, keys);
    v
}

/// Every table of the catalog, row by row, but for the columns that
/// change without a request: last access times and tape statistics; and
/// but for the file history, a log (like the audit log) that the previous
/// action's successes reach a moment later.
fn catalog_dump(s: &Server) -> Value {
    let c = rusqlite::Connection::open(s.data_dir().join("catalog.sqlite")).unwrap();
    c.busy_timeout(Duration::from_secs(30)).unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let volatile = ["nodes.atime", "volumes.stats", "drives.stats", "catalog_users.seen"];
    let mut out = serde_json::Map::new();
    for t in tables.into_iter().filter(|t| t != "file_events") {
        let mut st = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let names: Vec<String> = st.column_names().iter().map(|n| n.to_string()).collect();
        let keep: Vec<usize> = (0..names.len())
            .filter(|i| !volatile.contains(&format!("{t}.{}", names[*i]).as_str()))
            .collect();
        let mut rows: Vec<String> = st
            .query_map([], |r| {
                let cells: Vec<String> = keep
                    .iter()
                    .map(|i| format!("{}={:?}", names[*i], r.get::<_, rusqlite::types::Value>(*i).unwrap()))
                    .collect();
                Ok(cells.join(" "))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .filter(|r| !r.contains("\"file_events\""))
            .collect();
        rows.sort();
        out.insert(t, json!(rows));
    }
    Value::Object(out)
}

/// What any action could change, seen by an administrator.
fn snapshot(w: &World) -> BTreeMap<&'static str, Value> {
    let mut entries = Vec::new();
    let mut todo = vec!["/".to_string()];
    while let Some(dir) = todo.pop() {
        let page = w.admin_get(&format!("/api/v1/list?path={dir}&limit=100000"));
        for e in page["entries"].as_array().unwrap() {
            if e["kind"] == "dir" {
                todo.push(e["path"].as_str().unwrap().to_string());
            }
            entries.push(strip(e.clone(), &["atime"]));
        }
    }
    entries.sort_by_key(|e| e["path"].as_str().unwrap().to_string());
    let mut cache: Vec<String> = walkdir::WalkDir::new(w.s.data_dir().join("cache"))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| format!("{} {}", e.path().display(), e.metadata().unwrap().len()))
        .collect();
    cache.sort();
    let workers: Vec<Value> = w
        .admin_get("/api/v1/workers")
        .as_array()
        .unwrap()
        .iter()
        .map(|x| json!([x["name"], x["started"], x["state"] == "dead" || x["state"] == "aborted"]))
        .collect();
    let policy = w.admin_get("/api/v1/policy");
    BTreeMap::from([
        ("tree", json!(w.s.tree())),
        ("entries", json!(entries)),
        ("tokens", w.admin_get("/api/v1/tokens")),
        (
            "volumes",
            strip(w.admin_get("/api/v1/volumes"), &["stats", "efficiency", "mounted_in"]),
        ),
        (
            "drives",
            strip(
                w.admin_get("/api/v1/drives"),
                &["stats", "efficiency", "activity", "volume"],
            ),
        ),
        ("policy", json!([policy["source"], policy["origin"], policy["loaded"]])),
        ("alarms", w.admin_get("/api/v1/alarms?all=true")),
        ("queue", strip(w.admin_get("/api/v1/queue"), &["age_s", "oldest_age_s"])),
        ("stage request", w.admin_get(&format!("/api/v1/stage/{}", w.request))),
        ("workers", json!(workers)),
        ("catalog", catalog_dump(&w.s)),
        ("cache files", json!(cache)),
    ])
}

/// A snapshot once the server is quiet: the files written before have
/// settled (their landing notes are gone) and two snapshots agree.
fn quiet(w: &World) -> BTreeMap<&'static str, Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    loop {
        let landing = w.s.catalog_query("SELECT CAST(count(*) AS TEXT) FROM landing");
        if landing[0] == "0" {
            let now = snapshot(w);
            if last.as_ref() == Some(&now) {
                return now;
            }
            last = Some(now);
        }
        assert!(Instant::now() < deadline, "the server did not come to rest");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What differs between two snapshots, briefly.
fn diff(before: &BTreeMap<&'static str, Value>, after: &BTreeMap<&'static str, Value>) -> Option<String> {
    let mut out = Vec::new();
    for (k, b) in before {
        let a = &after[k];
        if a == b {
            continue;
        }
        if let (Value::Object(bm), Value::Object(am)) = (b, a) {
            for (t, bv) in bm {
                if am.get(t) != Some(bv) {
                    out.push(format!("{k}.{t}: {bv}\n  became {}", am.get(t).unwrap_or(&Value::Null)));
                }
            }
        } else {
            out.push(format!("{k}: {b}\n  became {a}"));
        }
    }
    (!out.is_empty()).then(|| out.join("\n"))
}

/// The cells of one column: each request's, or one if all agree.
fn cells(v: &[String]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut seen: Vec<&String> = Vec::new();
    for c in v {
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    match seen.len() {
        1 => seen[0].clone(),
        _ => v.join(" / "),
    }
}

#[test]
fn every_action_is_refused_without_its_requirement_and_changes_nothing() {
    let t0 = Instant::now();
    let w = setup();
    eprintln!("authz walk: setup took {:.1} s", t0.elapsed().as_secs_f64());
    let mut failures: Vec<String> = Vec::new();
    let mut exercised: HashSet<Action> = HashSet::new();
    let mut table = String::from(
        "| action | requests | no token | another user's token | a WLCG token lacking the scope | that token's scopes |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for &a in Action::ALL {
        let c = case(&w, a);
        let mut before = quiet(&w);
        let (mut none, mut other, mut scope) = (Vec::new(), Vec::new(), Vec::new());
        let mut refusals = 0;
        for t in &c.tries {
            let mut attempts: Vec<(&str, Option<&str>, Expect, &mut Vec<String>)> =
                vec![("no token", None, Expect::Status(401), &mut none)];
            if let Some(e) = t.other {
                attempts.push(("bob's token", Some(w.bob.as_str()), e, &mut other));
            }
            if let Some((_, jwt, e)) = &t.scope {
                attempts.push(("a token lacking the scope", Some(jwt.as_str()), *e, &mut scope));
            }
            for (who, token, e, column) in attempts {
                let (status, body) = w.send(&t.probe, token);
                column.push(match w.meets(e, status, &body) {
                    Ok(()) => e.cell(),
                    Err(m) => {
                        failures.push(format!("{} ({}) with {who}: {m}", a.name(), t.probe.label));
                        format!("{status}")
                    }
                });
                let after = snapshot(&w);
                if let Some(d) = diff(&before, &after) {
                    failures.push(format!(
                        "{} ({}) with {who} changed something:\n{d}",
                        a.name(),
                        t.probe.label
                    ));
                    before = after;
                }
                refusals += 1;
            }
        }
        let mut succeeded = 0;
        for (token, p, e) in &c.ok {
            let (status, body) = w.send(p, Some(token));
            match w.meets(*e, status, &body) {
                Ok(()) => succeeded += 1,
                Err(m) => failures.push(format!(
                    "{} ({}) did not succeed for its caller: {m}",
                    a.name(),
                    p.label
                )),
            }
        }
        let need_refusers = a.need() != Need::Anyone;
        assert!(refusals > 0 && succeeded > 0, "{}: nothing tried", a.name());
        assert_eq!(!other.is_empty(), need_refusers, "{}", a.name());
        assert_eq!(!scope.is_empty(), need_refusers, "{}", a.name());
        exercised.insert(a);
        let requests: Vec<&str> = c.tries.iter().map(|t| t.probe.label.as_str()).collect();
        let scopes: Vec<String> = c
            .tries
            .iter()
            .filter_map(|t| t.scope.as_ref().map(|(s, _, _)| format!("`{s}`")))
            .collect();
        table.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            a.name(),
            requests.join("; ").replace('|', "\\|"),
            cells(&none),
            cells(&other),
            cells(&scope),
            cells(&scopes),
        ));
    }
    let missed: Vec<&str> = Action::ALL
        .iter()
        .filter(|a| !exercised.contains(a))
        .map(|a| a.name())
        .collect();
    assert!(missed.is_empty(), "actions not walked: {missed:?}");
    eprintln!("authz walk: {:.1} s in all", t0.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} failures:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    compare_with_docs(&table);
}

/// docs/SECURITY.md holds the table as walked; BALE_BLESS=1 rewrites it.
fn compare_with_docs(table: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/SECURITY.md");
    bale_util::docs::keep_section(
        &path,
        "unauthorized-table",
        table,
        "cargo test -p bale --test security authz_walk",
    );
}
