//! Background workers: every one is listed with its state; a worker killed
//! at a fault point shows as dead and raises an alarm while the server
//! goes on; shutdown with a tape write in flight keeps its deadline.

mod common;

use common::{assert_ok, bytes, Catalog, Server, SLOW_TAPE};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn workers(s: &Server) -> Vec<Value> {
    serde_json::from_str::<Value>(&s.run(&["workers", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn worker(s: &Server, name: &str) -> Value {
    workers(s)
        .into_iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("no worker {name}"))
}

fn every_worker_is_listed_and_a_killed_one_is_dead_with_an_alarm(catalog: Catalog) {
    let s = Server::start_on(catalog);
    let names: Vec<String> = workers(&s)
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect();
    for expected in [
        "committer",
        "promoter",
        "settler",
        "pool watcher",
        "on-way check",
        "access times",
        "catalog heartbeat",
        "drive lib1-d1",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    // Writes go through the committer, whose counters say so.
    let local = tempfile::tempdir().unwrap();
    let f = local.path().join("a.dat");
    std::fs::write(&f, bytes(1, 1000)).unwrap();
    s.run(&["put", f.to_str().unwrap(), "/"]);
    assert!(worker(&s, "committer")["counters"]["files"].as_u64().unwrap() >= 1);
    let table = s.run(&["workers"]);
    assert!(
        table.contains("committer") && table.contains("drive lib1-d1"),
        "{table}"
    );

    // Not for users: worker errors may name paths.
    let alice = s.token_for("alice", "mu2e");
    let out = s.bale_as(&alice).args(["workers"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("administrator"));

    // The fault point: the worker panics at its next call.
    let (code, body) = s.api_post(
        &s.token,
        "tape/faults",
        &json!({"kind": "worker_panic", "worker": "on-way check"}),
    );
    assert_eq!(code, 204, "{body}");
    s.wait_for(10, "the worker to be dead", |s| {
        worker(s, "on-way check")["state"] == "dead"
    });
    let w = worker(&s, "on-way check");
    assert!(w["last_error"].as_str().unwrap().contains("killed"), "{w}");
    assert_eq!(w["errors"], 1);
    s.wait_for(10, "the alarm", |s| {
        s.api_get("alarms")
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["source"] == "worker on-way check" && a["message"].as_str().unwrap().contains("died"))
    });
    // The operator acknowledges it: it leaves `bale alarms` and stays in
    // `--all`, with who acknowledged it and when.
    let died = s
        .api_get("alarms")
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["source"] == "worker on-way check")
        .cloned()
        .unwrap();
    assert_eq!(died["count"], 1, "{died}");
    assert!(died.get("acked_by").is_none(), "{died}");
    let id = died["id"].as_i64().unwrap().to_string();
    assert!(s.run(&["alarms"]).contains("worker on-way check"));
    let admin = s.api_get("whoami")["user"].as_str().unwrap().to_string();
    let out = s.run(&["alarm", "ack", &id]);
    assert!(out.contains(&format!("acknowledged by {admin}")), "{out}");
    assert!(!s.run(&["alarms"]).contains("worker on-way check"));
    let all = s.run(&["alarms", "--all"]);
    assert!(
        all.contains("worker on-way check") && all.contains("acknowledged by"),
        "{all}"
    );
    let acked = |s: &Server| {
        serde_json::from_str::<Value>(&s.run(&["alarms", "--all", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"].as_i64().map(|i| i.to_string()).as_deref() == Some(id.as_str()))
            .cloned()
            .unwrap()
    };
    let before = acked(&s);
    assert_eq!(before["acked_by"], admin.as_str());
    // Bad input is refused and changes nothing: an unknown id, a word, a
    // user who is not an administrator, an unknown listing filter.
    for (token, endpoint, code) in [
        (&s.token, "alarms/999999/ack".to_string(), 404),
        (&s.token, "alarms/first/ack".to_string(), 400),
        (&alice, format!("alarms/{id}/ack"), 403),
    ] {
        let (got, body) = s.api_post(token, &endpoint, &json!({}));
        assert_eq!(got, code, "{endpoint}: {body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{endpoint}: {body}"
        );
    }
    let r = s
        .http()
        .get(s.url_of("/api/v1/alarms?all=maybe"))
        .bearer_auth(&s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let out = s.bale_as(&alice).args(["alarm", "ack", &id]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(acked(&s), before, "nothing changed");

    // A dead worker cannot be killed again; unknown workers and kinds are refused.
    let (code, _) = s.api_post(
        &s.token,
        "tape/faults",
        &json!({"kind": "worker_panic", "worker": "on-way check"}),
    );
    assert_eq!(code, 404);
    let (code, _) = s.api_post(
        &s.token,
        "tape/faults",
        &json!({"kind": "worker_panic", "worker": "nobody"}),
    );
    assert_eq!(code, 404);
    let (code, _) = s.api_post(
        &s.token,
        "tape/faults",
        &json!({"kind": "meteor", "worker": "committer"}),
    );
    assert_eq!(code, 400);
    let (code, _) = s.api_post(
        &alice,
        "tape/faults",
        &json!({"kind": "worker_panic", "worker": "committer"}),
    );
    assert_eq!(code, 403);
    // The rest goes on: writes and reads still work.
    let g = local.path().join("b.dat");
    std::fs::write(&g, bytes(2, 5000)).unwrap();
    s.run(&["put", g.to_str().unwrap(), "/"]);
    let back = local.path().join("back");
    s.run(&["get", "/b.dat", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), bytes(2, 5000));
    assert_ne!(worker(&s, "committer")["state"], "dead");

    // A drive's worker that dies takes its drive out of service (it lets go
    // of its volume); the other drive writes what comes.
    let (code, _) = s.api_post(
        &s.token,
        "tape/faults",
        &json!({"kind": "worker_panic", "worker": "drive lib1-d1"}),
    );
    assert_eq!(code, 204);
    s.wait_for(10, "the drive's worker to be dead", |s| {
        worker(s, "drive lib1-d1")["state"] == "dead"
    });
    let drives = s.api_get("drives");
    let d1 = drives
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "lib1-d1")
        .unwrap();
    assert_eq!(d1["activity"], "offline", "{d1}");
    assert!(d1["volume"].is_null(), "{d1}");
    s.run(&["queue", "flush"]);
    s.wait_for(60, "the files on tape", |s| {
        ["/a.dat", "/b.dat"].iter().all(|p| {
            let st: Value = serde_json::from_str(&s.run(&["stat", "--json", p])).unwrap();
            st["archive"]["state"] == "archived"
        })
    });
    assert!(s
        .api_get("tape/events")
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["drive"] != "lib1-d1"));
}

fn shutdown_with_a_tape_write_in_flight_keeps_its_deadline(catalog: Catalog) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let slow = cfg_dir.path().join("slow.toml");
    // 30 MB at 2 MB/s: a 15 s tape write, against a 2 s deadline.
    std::fs::write(&slow, format!("shutdown_deadline_s = 2\n{SLOW_TAPE}")).unwrap();
    let fast = cfg_dir.path().join("fast.toml");
    std::fs::write(&fast, SLOW_TAPE.replace("time_scale = 1.0", "time_scale = 0.0")).unwrap();
    let mut s = Server::start_with(catalog, &["--config", slow.to_str().unwrap()]);
    let local = tempfile::tempdir().unwrap();
    let data = bytes(7, 30_000_000);
    let f = local.path().join("big.dat");
    std::fs::write(&f, &data).unwrap();
    s.run(&["put", f.to_str().unwrap(), "/"]);
    s.wait_for(30, "the drive to write", |s| {
        let d = s.api_get("drives");
        d[0]["activity"] == "busy" && d[0]["volume"].is_string()
    });
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let status = s.terminate();
    let took = t0.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(6),
        "shutdown took {took:?} with a 2 s deadline"
    );
    // The write cut off is redone at the next start, as after a crash.
    s.restart_with(&["--config", fast.to_str().unwrap()]);
    s.wait_for(60, "the file on tape", |s| {
        let st: Value = serde_json::from_str(&s.run(&["stat", "--json", "/big.dat"])).unwrap();
        st["archive"]["state"] == "archived"
    });
    let back = local.path().join("back");
    let out = s
        .bale()
        .args(["get", "/big.dat", back.to_str().unwrap()])
        .output()
        .unwrap();
    assert_ok(&out, "get");
    assert!(std::fs::read(&back).unwrap() == data);
}

on_both_catalogs!(
    every_worker_is_listed_and_a_killed_one_is_dead_with_an_alarm,
    shutdown_with_a_tape_write_in_flight_keeps_its_deadline
);
