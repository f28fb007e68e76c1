//! gfal2, as Debian ships it (2.21, its HTTP plugin and python3-gfal2
//! under /usr/bin/python3), against bale: the client FTS and the gfal-*
//! tools use for WebDAV and the WLCG Tape REST API. Copy in with ADLER32
//! checked at both ends, archive polling until on tape, `user.status`
//! NEARLINE after eviction, bring online, poll, release, copy out.

mod common;

use common::{bytes, gfal2_available, Catalog, Gfal2, Server, SMALL_LIBRARY};
use serde_json::Value;

fn reads(s: &Server) -> usize {
    s.api_get("tape/events")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "read")
        .count()
}

fn gfal2_archives_evicts_brings_online_and_reads_back(catalog: Catalog) {
    if !gfal2_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bale.toml");
    std::fs::write(&cfg, SMALL_LIBRARY).unwrap();
    let s = Server::start_with(catalog, &["--config", cfg.to_str().unwrap()]);
    let g = Gfal2::new(dir.path(), &s.url, &s.token, Vec::new());
    let url = |p: &str| format!("{}{p}", s.url);
    let local = |name: &str| format!("file://{}", dir.path().join(name).display());

    // Copy in, ADLER32 checked by gfal2 at both ends.
    let files = [("a.dat", bytes(1, 300_000)), ("b.dat", bytes(2, 4_321))];
    g.step(&["mkdir", &url("/exp/run1")]);
    for (name, data) in &files {
        std::fs::write(dir.path().join(name), data).unwrap();
        g.step(&["copy", &local(name), &url(&format!("/exp/run1/{name}"))]);
        let sum = g.step(&["checksum", &url(&format!("/exp/run1/{name}"))]);
        assert_eq!(sum, format!("{}", bale_util::Adler32::of(data)), "{name}");
    }
    let a = url("/exp/run1/a.dat");
    let b = url("/exp/run1/b.dat");
    assert_eq!(g.step(&["status", &a]), "ONLINE");
    let pending = g.step(&["archive-poll", &a]);
    assert!(pending.starts_with("pending:"), "{pending}");

    // Archive polling until both are on tape.
    s.run(&["queue", "flush"]);
    s.wait_for(60, "gfal2 sees both archived", |_| {
        g.step(&["archive-poll", &a]) == "archived" && g.step(&["archive-poll", &b]) == "archived"
    });
    assert_eq!(g.step(&["status", &a]), "ONLINE_AND_NEARLINE");

    // Evicted: NEARLINE.
    s.wait_for(60, "both purgeable", |s| {
        let u: Value = serde_json::from_str(&s.run(&["cache", "--json"])).unwrap();
        u["purgeable_files"].as_u64() == Some(2)
    });
    s.run(&["purge", "--all"]);
    assert_eq!(g.step(&["status", &a]), "NEARLINE");
    assert_eq!(g.step(&["status", &b]), "NEARLINE");

    // Bring online, poll; one package read for both; pinned by the request.
    let before = reads(&s);
    let token = g.step(&["bring-online", &a, &b]);
    assert!(token.parse::<u64>().is_ok(), "a request id: {token}");
    assert_eq!(g.step(&["poll", &token, &a, &b]), "online");
    assert_eq!(reads(&s) - before, 1, "one package, one read");
    assert_eq!(g.step(&["status", &a]), "ONLINE_AND_NEARLINE");
    // The pins on both files.
    let pins = |s: &Server| -> Vec<Value> {
        ["/exp/run1/a.dat", "/exp/run1/b.dat"]
            .iter()
            .flat_map(|p| {
                let v: Value = serde_json::from_str(&s.run(&["pins", p, "--json"])).unwrap();
                v.as_array().unwrap().clone()
            })
            .collect()
    };
    let owner = format!("stage-request-{token}");
    assert_eq!(pins(&s).iter().filter(|p| p["owner"] == owner.as_str()).count(), 2);

    // Release with the request id: its pins go.
    g.step(&["release", &token, &a, &b]);
    assert!(pins(&s).iter().all(|p| p["owner"] != owner.as_str()), "{:?}", pins(&s));

    // Copy out, ADLER32 checked by gfal2 against the server's digest.
    for (name, data) in &files {
        let back = format!("back-{name}");
        g.step(&["copy", &url(&format!("/exp/run1/{name}")), &local(&back)]);
        assert!(std::fs::read(dir.path().join(&back)).unwrap() == *data, "{name}");
    }

    // gfal2 without a request id releases by path with its placeholder.
    s.run(&["purge", "--all"]);
    let token = g.step(&["bring-online", &b]);
    assert_eq!(g.step(&["poll", &token, &b]), "online");
    g.step(&["release", "", &b]);
    let owner = format!("stage-request-{token}");
    assert!(pins(&s).iter().all(|p| p["owner"] != owner.as_str()), "{:?}", pins(&s));
}

on_both_catalogs!(gfal2_archives_evicts_brings_online_and_reads_back);
