//! Every live file is always on its way to tape, through the real server:
//! deletes racing tape writes never strand other files (the trial that
//! found job ids handed out twice), a delete racing a package write costs
//! no attempt, and a file left on no way (made by hand in the catalog) is
//! found at start and while running, alarmed and queued again.

mod common;

use common::{bytes, write_file, Catalog, Server};
use serde_json::Value;
use std::time::Duration;

/// One drive streaming 5 MB/s in real time: a 1.1 MB direct file takes
/// about 0.2 s to write, long enough to delete it in the middle. Pools of
/// the `small` rule close at 6 files (package ~0.3 s to write).
const RACE_TAPE: &str = r#"
[archive]
check_ms = 50

[tape]
direct_min_size = "1 MiB"
time_scale = 1.0
idle_unload_s = 30.0
read_ahead_threads = 1
read_ahead_window = "200 kB"

[tape.media.RACE]
capacity = "1 GB"
rate = "5 MB"
load_s = 0.02
unload_s = 0.02
robot_s = 0.02
full_locate_s = 0.05
file_mark_s = 0.02

[[tape.libraries]]
name = "lib1"
media = "RACE"
drives = 1
initial_volumes = 2
"#;

const SMALL_POLICY: &str = r#"
[[rule]]
name = "small"
action = "aggregate"
max_member_size = "1 MiB"
target_size = "100 MB"
max_files = 6
max_wait_s = 3600
"#;

const ROUNDS: usize = 50;

fn start(catalog: Catalog) -> (Server, tempfile::TempDir) {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(cfg.path(), "bale.toml", RACE_TAPE);
    let policy = write_file(cfg.path(), "policy.toml", SMALL_POLICY);
    let s = Server::start_with(catalog, &["--config", &config, "--policy", &policy]);
    (s, cfg)
}

fn put(s: &Server, path: &str, data: &[u8]) {
    let (code, body) = s.put_data(path, data);
    assert_eq!(code, 201, "PUT {path}: {body}");
}

fn delete(s: &Server, path: &str) {
    let r = s.http().delete(s.url_of(path)).bearer_auth(&s.token).send().unwrap();
    assert!(r.status().is_success(), "DELETE {path}: {}", r.status());
}

fn stat(s: &Server, path: &str) -> Value {
    s.api_get(&format!("stat?path={path}"))
}

fn drive_busy(s: &Server) -> bool {
    s.api_get("drives")[0]["activity"] == "busy"
}

fn drained(s: &Server) -> bool {
    let q = s.api_get("queue");
    q["jobs"].as_array().unwrap().is_empty() && q["pools"].as_array().unwrap().is_empty()
}

/// Waits for the queue to drain; says what is left if it does not.
fn wait_drained(s: &Server) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !drained(s) {
        if std::time::Instant::now() > deadline {
            panic!(
                "the queue did not drain: {}\ndrives: {}\nalarms: {}\nevents: {}",
                s.api_get("queue"),
                s.api_get("drives"),
                s.api_get("alarms"),
                s.api_get("tape/events")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every listed file is archived with exactly one tape copy, no job is
/// left, no alarm was raised, and no job attempt was counted.
fn assert_all_archived_once(s: &Server, paths: &[String]) {
    for p in paths {
        let st = stat(s, p);
        let a = &st["archive"];
        assert_eq!(a["state"], "archived", "{p}: {st}");
        assert_eq!(a["copies"].as_array().unwrap().len(), 1, "{p}: {st}");
    }
    let alarms = s.api_get("alarms");
    assert!(alarms.as_array().unwrap().is_empty(), "no alarm: {alarms}");
}

/// Deletes of direct files while they are written to tape, each followed
/// at once by new direct PUTs: every new file reaches tape exactly once.
fn delete_direct_while_writing(catalog: Catalog) {
    let (s, _cfg) = start(catalog);
    s.run(&["mkdir", "/d"]);
    let mut kept = Vec::new();
    for round in 0..ROUNDS {
        let doomed = format!("/d/doomed-{round}");
        put(&s, &doomed, &bytes(round as u64, 1_100_000));
        s.wait_for(10, "the drive writing", drive_busy);
        std::thread::sleep(Duration::from_millis(30));
        delete(&s, &doomed);
        for k in 0..2 {
            let p = format!("/d/new-{round}-{k}");
            put(&s, &p, &bytes(1000 + round as u64 * 2 + k, 1_050_000));
            kept.push(p);
        }
    }
    wait_drained(&s);
    assert_all_archived_once(&s, &kept);
    let written: usize = s
        .api_get("packages")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["members"].as_u64().unwrap() as usize - p["dead_members"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(written, kept.len(), "live members on tape = files kept");
}

/// Members deleted while their package is written, then new pooled PUTs:
/// the rest of each package reaches tape exactly once, no attempt counted.
fn delete_pooled_while_writing(catalog: Catalog) {
    // Members are read one at a time just ahead of the drive, so the last
    // ones are opened well after the write began (~30 ms per member).
    let (s, _cfg) = start(catalog);
    s.run(&["mkdir", "/p"]);
    let mut kept = Vec::new();
    for round in 0..ROUNDS {
        // Six members of 150 kB close a pool: a package of ~0.9 MB.
        let names: Vec<String> = (0..6).map(|i| format!("/p/r{round}-{i}")).collect();
        for (i, p) in names.iter().enumerate() {
            put(&s, p, &bytes((round * 6 + i) as u64, 150_000));
        }
        // This round's package is the one being written.
        s.wait_for(10, "the pool closed", |s| {
            stat(s, &names[0])["archive"]["state"] == "queued"
        });
        s.wait_for(10, "the drive writing it", |s| {
            drive_busy(s) && s.api_get("queue")["jobs"].as_array().unwrap().len() <= 1
        });
        std::thread::sleep(Duration::from_millis((round as u64 % 6) * 20));
        // The last members are read last: deleting them races the packer.
        delete(&s, &names[5]);
        delete(&s, &names[4]);
        kept.extend(names[..4].iter().cloned());
    }
    wait_drained(&s);
    assert_all_archived_once(&s, &kept);
    let q = s.api_get("queue");
    assert!(q["jobs"].as_array().unwrap().is_empty(), "{q}");
    // Dead members are exactly the deleted ones that made it into a package.
    let mut live = 0;
    let mut dead_in_packages = 0;
    for p in s.api_get("packages").as_array().unwrap() {
        dead_in_packages += p["dead_members"].as_u64().unwrap();
        let shown = s.api_get(&format!("packages/{}", p["id"].as_str().unwrap()));
        let members = shown["members"].as_array().unwrap();
        let dead = members.iter().filter(|m| m["path"].is_null()).count();
        assert_eq!(p["dead_members"].as_u64().unwrap() as usize, dead, "{shown}");
        live += members.len() - dead;
    }
    assert_eq!(live, kept.len());
    // The race was run: deletes landed while packages were being written
    // (a member read already stays in its package as dead bytes; one not
    // read yet makes the drive write the package again without it).
    let retries = s
        .api_get("tape/events")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "retry")
        .count();
    eprintln!("pooled race: {dead_in_packages} dead member(s) in packages, {retries} rewrite(s) without a member");
    assert!(
        retries > 0,
        "no delete raced a package write before its member was read"
    );
}

/// Files left on no way to tape by hand in the catalog (a pooled file's
/// pool row and a direct file's job deleted) are found at start and while
/// running, raise an alarm, and are queued again and archived.
fn stranded_files_found_alarmed_and_queued(catalog: Catalog) {
    let (mut s, cfg) = start(catalog);
    s.run(&["mkdir", "/s"]);
    put(&s, "/s/pooled", &bytes(1, 1000));
    // Drives offline: the direct file stays queued until we say so.
    s.run(&["drive", "offline", "lib1-d1"]);
    put(&s, "/s/direct", &bytes(2, 1_100_000));
    s.terminate();
    s.catalog_sql("DELETE FROM pool_files; DELETE FROM pools; DELETE FROM job_files; DELETE FROM archive_jobs;");
    let config = write_file(
        cfg.path(),
        "restart.toml",
        &format!(
            "[archive]\ncheck_on_way_s = 1\ncheck_ms = 50\n{}",
            &RACE_TAPE[RACE_TAPE.find("[tape]").unwrap()..]
        ),
    );
    s.restart_with(&[
        "--config",
        &config,
        "--policy",
        &cfg.path().join("policy.toml").to_string_lossy(),
    ]);
    s.wait_for(20, "the alarm", |s| !s.api_get("alarms").as_array().unwrap().is_empty());
    let alarms = s.api_get("alarms");
    let msg = alarms[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("2 files on no way to tape") && msg.contains("/s/pooled") && msg.contains("/s/direct"),
        "{alarms}"
    );
    assert_eq!(stat(&s, "/s/pooled")["archive"]["state"], "pooled");
    assert_eq!(stat(&s, "/s/direct")["archive"]["state"], "queued");
    s.run(&["drive", "online", "lib1-d1"]);
    s.run(&["queue", "flush"]);
    s.wait_for(60, "both on tape", drained);
    for p in ["/s/pooled", "/s/direct"] {
        assert_eq!(stat(&s, p)["archive"]["copies"].as_array().unwrap().len(), 1, "{p}");
    }

    // While running: a file stranded behind the server's back is found by
    // the periodic check (every second here).
    put(&s, "/s/later", &bytes(3, 2000));
    s.catalog_sql("DELETE FROM pool_files; DELETE FROM pools;");
    assert_eq!(stat(&s, "/s/later")["archive"]["state"], "cached");
    s.wait_for(20, "the second alarm", |s| {
        s.api_get("alarms").as_array().unwrap().len() == 2
    });
    assert!(s.api_get("alarms")[0]["message"].as_str().unwrap().contains("/s/later"));
    assert_eq!(stat(&s, "/s/later")["archive"]["state"], "pooled");
    // Nothing else was touched: the archived files keep their one copy.
    for p in ["/s/pooled", "/s/direct"] {
        assert_eq!(stat(&s, p)["archive"]["copies"].as_array().unwrap().len(), 1, "{p}");
    }
}

/// Files on their way but long overdue (the only drive is offline, so
/// neither the direct file's job nor the pool closed at its maximum wait
/// can be written) raise one warning alarm naming the oldest, its repeats
/// folded; once the drive is back they go to tape.
fn overdue_files_raise_one_alarm(catalog: Catalog) {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(
        cfg.path(),
        "bale.toml",
        &format!(
            "[archive]\ncheck_ms = 50\ncheck_on_way_s = 1\nstuck_after_s = 1\n{}",
            &RACE_TAPE[RACE_TAPE.find("[tape]").unwrap()..]
        ),
    );
    let policy = write_file(
        cfg.path(),
        "policy.toml",
        &SMALL_POLICY.replace("max_wait_s = 3600", "max_wait_s = 1"),
    );
    let s = Server::start_with(catalog, &["--config", &config, "--policy", &policy]);
    s.run(&["drive", "offline", "lib1-d1"]);
    s.run(&["mkdir", "/late"]);
    put(&s, "/late/direct", &bytes(1, 1_100_000));
    put(&s, "/late/small", &bytes(2, 1000));
    let overdue = |s: &Server| -> Vec<Value> {
        s.api_get("alarms")
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["message"].as_str().unwrap().contains("stuck on their way to tape"))
            .cloned()
            .collect()
    };
    s.wait_for(20, "the overdue alarm, repeated", |s| {
        overdue(s).first().is_some_and(|a| a["count"].as_u64().unwrap() >= 2)
    });
    let alarms = overdue(&s);
    assert_eq!(alarms.len(), 1, "repeats fold: {alarms:?}");
    assert_eq!(alarms[0]["severity"], "warning");
    assert!(
        alarms[0]["message"].as_str().unwrap().contains("/late/direct"),
        "{alarms:?}"
    );
    assert_eq!(stat(&s, "/late/direct")["archive"]["state"], "queued");
    s.run(&["drive", "online", "lib1-d1"]);
    s.wait_for(60, "both on tape", drained);
    for p in ["/late/direct", "/late/small"] {
        assert_eq!(stat(&s, p)["archive"]["state"], "archived", "{p}");
    }
    // Nothing is overdue any more: the count stops growing.
    let settled = overdue(&s)[0]["count"].clone();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(overdue(&s)[0]["count"], settled);
}

on_both_catalogs!(
    delete_direct_while_writing,
    delete_pooled_while_writing,
    stranded_files_found_alarmed_and_queued,
    overdue_files_raise_one_alarm
);
