//! POSIX permissions through the real server, as an unprivileged user would
//! try them: users alice (group phys), carol (group phys) and bob (group
//! other). The four holes a trial found, each refused with the admin's view
//! of the namespace unchanged, and the whole rule (operation x bits on the
//! entry, its parent and an ancestor x owner, group, other) as a table run
//! on both catalogs.

mod common;

use common::{Catalog, Server};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::{json, Value};

struct Users {
    alice: String,
    carol: String,
    bob: String,
}

fn users(s: &Server) -> Users {
    Users {
        alice: s.token_for("alice", "phys"),
        carol: s.token_for("carol", "phys"),
        bob: s.token_for("bob", "other"),
    }
}

fn req(s: &Server, c: &Client, method: &str, path: &str, token: &str) -> RequestBuilder {
    c.request(Method::from_bytes(method.as_bytes()).unwrap(), s.url_of(path))
        .bearer_auth(token)
}

fn api(s: &Server, c: &Client, token: &str, endpoint: &str, body: Value) -> u16 {
    c.post(s.url_of(&format!("/api/v1/{endpoint}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn mkdir(s: &Server, c: &Client, path: &str, owner: &str, group: &str, mode: u32) {
    let st = api(
        s,
        c,
        &s.token,
        "mkdir",
        json!({"path": path, "owner": owner, "group": group, "mode": format!("{mode:o}")}),
    );
    assert_eq!(st, 201, "mkdir {path}");
}

fn chmod(s: &Server, c: &Client, path: &str, mode: u32) {
    let st = api(
        s,
        c,
        &s.token,
        "attrs",
        json!({"path": path, "mode": format!("{mode:o}")}),
    );
    assert_eq!(st, 200, "chmod {path}");
}

fn put(s: &Server, c: &Client, token: &str, path: &str, body: &str, overwrite: bool) -> u16 {
    let mut r = req(s, c, "PUT", path, token).body(body.to_string());
    if overwrite {
        r = r.header("Overwrite", "T");
    }
    r.send().unwrap().status().as_u16()
}

/// The admin's view of a subtree: every entry with size, owner, group and mode.
fn view(s: &Server, c: &Client, root: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_string()];
    while let Some(dir) = todo.pop() {
        let page: Value = c
            .get(s.url_of("/api/v1/list"))
            .query(&[("path", dir.as_str())])
            .bearer_auth(&s.token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        for e in page["entries"].as_array().unwrap() {
            let p = e["path"].as_str().unwrap().to_string();
            out.push(format!("{p} {} {} {} {}", e["size"], e["owner"], e["group"], e["mode"]));
            if e["type"] == "dir" || e["kind"] == "dir" {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

const MODES: [u32; 5] = [0o700, 0o750, 0o755, 0o775, 0o777];

/// Whether the bits `bits` are granted by `mode` to a class (6 owner, 3 group, 0 other).
fn grants(mode: u32, shift: u32, bits: u32) -> bool {
    (mode >> shift) & bits == bits
}

/// Hole 1: a file in a directory the user may not search is not readable,
/// whatever the file's own bits; hole 2: nor writable through a 0777
/// subdirectory. Modes 0700..0777 on /alice/priv for three users.
fn hidden_files_are_neither_read_nor_written(catalog: Catalog) {
    let s = Server::start_on(catalog);
    let c = s.http();
    let u = users(&s);
    mkdir(&s, &c, "/alice", "alice", "phys", 0o755);
    for (i, mode) in MODES.iter().enumerate() {
        let dir = format!("/alice/priv{i}");
        mkdir(&s, &c, &dir, "alice", "phys", 0o777);
        mkdir(&s, &c, &format!("{dir}/open"), "alice", "phys", 0o777);
        assert_eq!(
            put(&s, &c, &u.alice, &format!("{dir}/secret.txt"), "secret", false),
            201
        );
        chmod(&s, &c, &format!("{dir}/secret.txt"), 0o644);
        chmod(&s, &c, &dir, *mode);
        let before = view(&s, &c, "/alice");
        for (token, shift, name) in [(&u.alice, 6, "alice"), (&u.carol, 3, "carol"), (&u.bob, 0, "bob")] {
            let may_search = grants(*mode, shift, 1);
            let may_write = may_search; // through the 0777 subdirectory
            let r = req(&s, &c, "GET", &format!("{dir}/secret.txt"), token).send().unwrap();
            let status = r.status().as_u16();
            if may_search {
                assert_eq!((status, r.text().unwrap().as_str()), (200, "secret"), "{name} {mode:o}");
            } else {
                assert_eq!(status, 403, "{name} reads in {mode:o}");
                let problem: Value = r.json().unwrap();
                assert!(
                    problem["detail"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("may not search {dir}")),
                    "{problem}"
                );
            }
            // Stat, PROPFIND and a missing name below it are refused alike.
            let st = c
                .get(s.url_of("/api/v1/stat"))
                .query(&[("path", format!("{dir}/secret.txt"))])
                .bearer_auth(token)
                .send()
                .unwrap()
                .status()
                .as_u16();
            assert_eq!(st, if may_search { 200 } else { 403 }, "{name} stats in {mode:o}");
            let missing = req(&s, &c, "GET", &format!("{dir}/nothing-here"), token)
                .send()
                .unwrap();
            assert_eq!(
                missing.status().as_u16(),
                if may_search { 404 } else { 403 },
                "{name} probes in {mode:o}"
            );
            let pf = req(&s, &c, "PROPFIND", &format!("{dir}/secret.txt"), token)
                .header("Depth", "0")
                .send()
                .unwrap();
            assert_eq!(pf.status().as_u16(), if may_search { 207 } else { 403 });
            let target = format!("{dir}/open/{name}.txt");
            let st = put(&s, &c, token, &target, "mine", false);
            assert_eq!(st, if may_write { 201 } else { 403 }, "{name} writes in {mode:o}");
            if may_write {
                let r = req(&s, &c, "DELETE", &target, token).send().unwrap();
                assert!(r.status().is_success());
            }
        }
        assert_eq!(view(&s, &c, "/alice"), before, "the admin's view of {dir} changed");
    }
}

/// Hole 3: an overwrite is a write into the file: carol (group phys) may
/// overwrite alice's group-writable file, but it stays alice's with its
/// mode, and carol can then neither delete nor chmod it; bob (other) may
/// not overwrite it at all.
#[test]
fn overwrite_keeps_owner_group_and_mode() {
    let s = Server::start();
    let c = s.http();
    let u = users(&s);
    mkdir(&s, &c, "/alice", "alice", "phys", 0o755);
    mkdir(&s, &c, "/alice/shared", "alice", "phys", 0o775);
    assert_eq!(put(&s, &c, &u.alice, "/alice/shared/gw.txt", "alice's", false), 201);
    chmod(&s, &c, "/alice/shared/gw.txt", 0o664);
    let before = view(&s, &c, "/alice");

    assert_eq!(put(&s, &c, &u.bob, "/alice/shared/gw.txt", "bob's", true), 403);
    assert_eq!(view(&s, &c, "/alice"), before);

    let st = put(&s, &c, &u.carol, "/alice/shared/gw.txt", "carol's", true);
    assert_eq!(st, 200, "replaced: 200 (RFC 9110)");
    let e = s.api_get("stat?path=/alice/shared/gw.txt");
    assert_eq!(
        (&e["owner"], &e["group"], &e["mode"]),
        (&json!("alice"), &json!("phys"), &json!("0664")),
        "{e}"
    );
    let text = req(&s, &c, "GET", "/alice/shared/gw.txt", &u.alice)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(text, "carol's");

    let after_write = view(&s, &c, "/alice");
    let del = req(&s, &c, "DELETE", "/alice/shared/gw.txt", &u.carol).send().unwrap();
    assert_eq!(del.status().as_u16(), 403);
    assert_eq!(
        api(
            &s,
            &c,
            &u.carol,
            "attrs",
            json!({"path": "/alice/shared/gw.txt", "mode": "600"})
        ),
        403
    );
    assert_eq!(view(&s, &c, "/alice"), after_write);
    // A file that is not group-writable is not carol's to overwrite.
    chmod(&s, &c, "/alice/shared/gw.txt", 0o644);
    assert_eq!(put(&s, &c, &u.carol, "/alice/shared/gw.txt", "again", true), 403);

    // The group-writable file below each directory mode: carol overwrites
    // it exactly when she may search the directory; bob never (no w for
    // others); neither takes it over, deletes or chmods it.
    for (i, mode) in MODES.iter().enumerate() {
        let dir = format!("/alice/gw{i}");
        let file = format!("{dir}/gw.txt");
        mkdir(&s, &c, &dir, "alice", "phys", 0o777);
        assert_eq!(put(&s, &c, &u.alice, &file, "alice's", false), 201);
        chmod(&s, &c, &file, 0o664);
        chmod(&s, &c, &dir, *mode);
        let before = view(&s, &c, "/alice");
        assert_eq!(put(&s, &c, &u.bob, &file, "bob's", true), 403, "bob, {mode:o}");
        assert_eq!(view(&s, &c, "/alice"), before);
        let st = put(&s, &c, &u.carol, &file, "carol's", true);
        if grants(*mode, 3, X) {
            assert_eq!(st, 200, "carol, {mode:o}: replaced");
        } else {
            assert_eq!(st, 403, "carol, {mode:o}");
            assert_eq!(view(&s, &c, "/alice"), before);
        }
        let after = view(&s, &c, "/alice");
        assert_eq!(
            req(&s, &c, "DELETE", &file, &u.carol).send().unwrap().status().as_u16(),
            403
        );
        assert_eq!(
            api(&s, &c, &u.carol, "attrs", json!({"path": file, "mode": "600"})),
            403
        );
        assert_eq!(view(&s, &c, "/alice"), after);
        let e = s.api_get(&format!("stat?path={file}"));
        assert_eq!((&e["owner"], &e["mode"]), (&json!("alice"), &json!("0664")), "{e}");
    }
}

/// Hole 4: a package view shows a member's path only to a user who may
/// stat it; others see the file id.
#[test]
fn package_view_hides_paths_the_user_may_not_see() {
    let cfg = tempfile::tempdir().unwrap();
    let config = common::write_file(
        cfg.path(),
        "bale.toml",
        "[archive]\ncheck_ms = 50\n\n[tape]\ndirect_min_size = \"1 MiB\"\n\n[[tape.libraries]]\nname = \"lib1\"\ndrives = 1\ninitial_volumes = 1\nvolume_capacity = \"100 MB\"\n",
    );
    let s = Server::start_with(Catalog::from_env(), &["--config", &config]);
    let c = s.http();
    let u = users(&s);
    mkdir(&s, &c, "/alice", "alice", "phys", 0o755);
    mkdir(&s, &c, "/alice/priv", "alice", "phys", 0o700);
    mkdir(&s, &c, "/alice/pub", "alice", "phys", 0o755);
    assert_eq!(put(&s, &c, &u.alice, "/alice/priv/secret.txt", "secret", false), 201);
    assert_eq!(put(&s, &c, &u.alice, "/alice/pub/open.txt", "open", false), 201);
    // And one member below each directory mode, nested one level deeper.
    for (i, mode) in MODES.iter().enumerate() {
        mkdir(&s, &c, &format!("/alice/m{i}"), "alice", "phys", 0o777);
        mkdir(&s, &c, &format!("/alice/m{i}/in"), "alice", "phys", 0o755);
        assert_eq!(put(&s, &c, &u.alice, &format!("/alice/m{i}/in/f.txt"), "m", false), 201);
        chmod(&s, &c, &format!("/alice/m{i}"), *mode);
    }
    s.run(&["queue", "flush"]);
    s.wait_for(60, "the package", |s| {
        !s.api_get("packages").as_array().unwrap().is_empty()
    });
    let id = s.api_get("packages")[0]["id"].as_str().unwrap().to_string();
    let show = |token: &str| -> Value {
        c.get(s.url_of(&format!("/api/v1/packages/{id}")))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let text = |v: &Value| v.to_string();
    for token in [&s.token, &u.alice] {
        let v = show(token);
        assert!(text(&v).contains("/alice/priv/secret.txt"), "{v}");
    }
    let v = show(&u.bob);
    assert!(!text(&v).contains("secret"), "bob sees the hidden path: {v}");
    assert!(text(&v).contains("/alice/pub/open.txt"), "{v}");
    let hidden: Vec<&Value> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["hidden"] == true)
        .collect();
    // priv/secret.txt, and the members below 0700 and 0750 (no x for others).
    assert_eq!(hidden.len(), 3, "{v}");
    assert!(hidden.iter().all(|m| m["file_id"].is_string() && m["path"].is_null()));
    for (token, shift, name) in [(&u.alice, 6, "alice"), (&u.carol, 3, "carol"), (&u.bob, 0, "bob")] {
        let v = show(token);
        for (i, mode) in MODES.iter().enumerate() {
            let path = format!("/alice/m{i}/in/f.txt");
            assert_eq!(
                text(&v).contains(&path),
                grants(*mode, shift, X),
                "{name} {mode:o}: {v}"
            );
        }
    }
    // The CLI's header counts the members it lists (it said 0 once).
    let shown = s.run(&["package", "show", &id]);
    assert!(shown.contains("members: 7 "), "{shown}");
    assert_eq!(show(&s.token)["member_count"], 7);
    // The CLI prints the file id instead.
    let out = s.bale_as(&u.bob).args(["package", "show", &id]).output().unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    assert!(out.contains("(file id ") && !out.contains("secret"), "{out}");
    // Alarms may name any path: they are for administrators.
    let r = c.get(s.url_of("/api/v1/alarms")).bearer_auth(&u.bob).send().unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

/// An operation of the table: what it needs, and how a user does it on the
/// case's subtree `/tN/anc/par/{f,d}` (all alice:phys).
#[derive(Clone, Copy, Debug)]
enum Op {
    Stat,
    Read,
    List,
    Create,
    Mkdir,
    Overwrite,
    Delete,
    MoveFrom,
    MoveOnto,
    Tag,
    Chmod,
    Chown,
}

const OPS: [Op; 12] = [
    Op::Stat,
    Op::Read,
    Op::List,
    Op::Create,
    Op::Mkdir,
    Op::Overwrite,
    Op::Delete,
    Op::MoveFrom,
    Op::MoveOnto,
    Op::Tag,
    Op::Chmod,
    Op::Chown,
];

const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

/// The rule, as docs/ARCHITECTURE.md states it: bits needed on an
/// ancestor, on the parent, on the entry, and whether the entry must be
/// the user's own. `None`: administrators only.
fn needs(op: Op) -> Option<(u32, u32, u32, bool)> {
    Some(match op {
        Op::Stat => (X, X, 0, false),
        Op::Read => (X, X, R, false),
        Op::List => (X, X, R | X, false),
        Op::Create | Op::Mkdir => (X, W | X, 0, false),
        Op::Overwrite => (X, X, W, false),
        Op::Delete | Op::MoveFrom | Op::MoveOnto => (X, W | X, 0, true),
        Op::Tag | Op::Chmod => (X, X, 0, true),
        Op::Chown => return None,
    })
}

impl Op {
    /// The entry the operation works on: the file f or the directory d.
    fn entry(self) -> &'static str {
        match self {
            Op::List | Op::Tag => "d",
            _ => "f",
        }
    }

    /// Does it as `token` on case `t`; the HTTP status.
    fn run(self, s: &Server, c: &Client, t: &str, token: &str) -> u16 {
        let par = format!("{t}/anc/par");
        let entry = format!("{par}/{}", self.entry());
        let send = |r: RequestBuilder| r.send().unwrap().status().as_u16();
        match self {
            Op::Stat => send(
                c.get(s.url_of("/api/v1/stat"))
                    .query(&[("path", &entry)])
                    .bearer_auth(token),
            ),
            Op::Read => send(req(s, c, "GET", &entry, token)),
            Op::List => send(req(s, c, "PROPFIND", &entry, token).header("Depth", "1")),
            Op::Create => put(s, c, token, &format!("{par}/new"), "new", false),
            Op::Mkdir => send(req(s, c, "MKCOL", &format!("{par}/newdir"), token)),
            Op::Overwrite => put(s, c, token, &entry, "overwritten", true),
            Op::Delete => send(req(s, c, "DELETE", &entry, token)),
            Op::MoveFrom => {
                send(req(s, c, "MOVE", &entry, token).header("Destination", s.url_of(&format!("{t}/moved"))))
            }
            Op::MoveOnto => send(
                req(s, c, "MOVE", &format!("{t}/mine"), token)
                    .header("Destination", s.url_of(&entry))
                    .header("Overwrite", "T"),
            ),
            Op::Tag => api(s, c, token, "tags", json!({"path": entry, "set": {"file_family": "x"}})),
            Op::Chmod => api(s, c, token, "attrs", json!({"path": entry, "mode": "700"})),
            Op::Chown => api(s, c, token, "attrs", json!({"path": entry, "owner": "bob"})),
        }
    }
}

/// Every operation x every bit on the ancestor, the parent and the entry x
/// owner (alice), group (carol), other (bob): the bit taken away from that
/// class alone, everything else granted. Allowed or 403, as the rule says;
/// refused ones change nothing in the admin's view.
fn permission_table(catalog: Catalog) {
    let s = Server::start_on(catalog);
    let c = s.http();
    let u = users(&s);
    let classes = [(&u.alice, "alice", 6), (&u.carol, "carol", 3), (&u.bob, "bob", 0)];
    let mut case = 0;
    let mut checked = 0;
    for op in OPS {
        for (token, name, shift) in classes {
            // (position, bit) taken away; (None, 0) is the all-granted case.
            let mut variants = vec![(None, 0)];
            for pos in 0..3 {
                for bit in [R, W, X] {
                    variants.push((Some(pos), bit));
                }
            }
            for (pos, bit) in variants {
                case += 1;
                let t = format!("/t{case}");
                mkdir(&s, &c, &t, "admin", "admin", 0o777);
                mkdir(&s, &c, &format!("{t}/anc"), "alice", "phys", 0o777);
                mkdir(&s, &c, &format!("{t}/anc/par"), "alice", "phys", 0o777);
                mkdir(&s, &c, &format!("{t}/anc/par/d"), "alice", "phys", 0o777);
                assert_eq!(put(&s, &c, &u.alice, &format!("{t}/anc/par/f"), "data", false), 201);
                chmod(&s, &c, &format!("{t}/anc/par/f"), 0o777);
                // The user's own file to move onto the entry.
                assert_eq!(put(&s, &c, token, &format!("{t}/mine"), "mine", false), 201);
                let nodes = [
                    format!("{t}/anc"),
                    format!("{t}/anc/par"),
                    format!("{t}/anc/par/{}", op.entry()),
                ];
                let mut modes = [0o777u32; 3];
                if let Some(p) = pos {
                    modes[p] &= !(bit << shift);
                    chmod(&s, &c, &nodes[p], modes[p]);
                }
                let expected = match needs(op) {
                    None => false,
                    Some((anc, par, ent, own)) => {
                        grants(modes[0], shift, anc)
                            && grants(modes[1], shift, par)
                            && grants(modes[2], shift, ent)
                            && (!own || name == "alice")
                    }
                };
                let before = view(&s, &c, &t);
                let status = op.run(&s, &c, &t, token);
                let what = format!(
                    "{op:?} by {name} with {pos:?} bit {bit} off (modes {:o} {:o} {:o})",
                    modes[0], modes[1], modes[2]
                );
                if expected {
                    assert!((200..300).contains(&status), "{what}: {status}, expected success");
                } else {
                    assert_eq!(status, 403, "{what}: expected 403");
                    assert_eq!(view(&s, &c, &t), before, "{what}: the admin's view changed");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, OPS.len() * 3 * 10);
}

on_both_catalogs!(hidden_files_are_neither_read_nor_written, permission_table);
