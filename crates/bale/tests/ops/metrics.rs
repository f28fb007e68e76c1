//! `/metrics` after a known workload (files in and out, a package on tape,
//! a purge, a stage), checked series by series; every series has HELP and
//! TYPE and `promtool check metrics` finds nothing; the scrape is open to
//! loopback or needs a token. The same workload's file history (`bale
//! history`) shows the whole journey, and the request id of the PUT finds
//! its lines in the log (JSON lines).

use crate::common::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// The samples of a scrape: `name{labels}` → value, labels in the order
/// the exporter prints them.
fn samples(page: &str) -> HashMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include every `want`.
fn sum(s: &HashMap<String, f64>, name: &str, want: &[(&str, &str)]) -> f64 {
    s.iter()
        .filter(|(k, _)| {
            let (n, labels) = k.split_once('{').unwrap_or((k.as_str(), ""));
            n == name && want.iter().all(|(l, v)| labels.contains(&format!("{l}=\"{v}\"")))
        })
        .map(|(_, v)| v)
        .sum()
}

fn scrape(s: &Server) -> String {
    let r = s.http().get(s.url_of("/metrics")).send().unwrap();
    assert_eq!(r.status(), 200, "open to loopback");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    r.text().unwrap()
}

fn cache_json(s: &Server) -> Value {
    serde_json::from_str(&s.run(&["cache", "--json"])).unwrap()
}

#[test]
fn metrics_history_and_logs_follow_a_known_workload() {
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(
        cfg.path(),
        "bale.toml",
        &format!(
            "[server]\nmetrics_open_to = [\"127.0.0.1\"]\n[cache]\npurge_check_ms = 200\n\
             [history]\nflush_ms = 100\n{SMALL_LIBRARY}"
        ),
    );
    let s = Server::start_logged(Catalog::from_env(), &["--config", &config, "--log-format", "json"]);
    let http = s.http();
    s.run(&["mkdir", "/m"]);
    // In: ten files of known sizes.
    let sizes: Vec<usize> = (0..10).map(|i| 1000 + 100 * i).collect();
    let mut put_id = String::new();
    for (i, n) in sizes.iter().enumerate() {
        let r = http
            .put(s.url_of(&format!("/m/f{i}")))
            .bearer_auth(&s.token)
            .body(bytes(i as u64, *n))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        if i == 0 {
            put_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        }
    }
    let total: usize = sizes.iter().sum();
    // Out: three reads.
    for (i, n) in sizes.iter().enumerate().take(3) {
        let r = http
            .get(s.url_of(&format!("/m/f{i}")))
            .bearer_auth(&s.token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().unwrap().len(), *n);
    }
    // To tape as one package, then purged, then one staged back.
    s.run(&["queue", "flush"]);
    s.wait_for(60, "the package on tape and every file purgeable", |s| {
        cache_json(s)["purgeable_files"].as_u64() == Some(10)
    });
    let out = s.run(&["purge", "--all"]);
    assert!(out.contains("purged 10 cache copies"), "{out}");
    let r = http.get(s.url_of("/m/f5")).bearer_auth(&s.token).send().unwrap();
    assert_eq!(r.status(), 200, "staged on the read");
    assert_eq!(r.bytes().unwrap().len(), sizes[5]);

    let page = scrape(&s);
    let m = samples(&page);
    let v = |name: &str| sum(&m, name, &[]);
    assert_eq!(v("bale_ingest_files_total"), 10.0, "{page}");
    assert_eq!(v("bale_ingest_bytes_total"), total as f64);
    assert_eq!(v("bale_read_files_total"), 4.0, "three reads and one after the stage");
    assert_eq!(
        v("bale_read_bytes_total"),
        (sizes[0] + sizes[1] + sizes[2] + sizes[5]) as f64
    );
    assert_eq!(sum(&m, "bale_tape_files_written_total", &[("library", "lib1")]), 1.0);
    assert_eq!(sum(&m, "bale_packed_files_total", &[("library", "lib1")]), 10.0);
    assert_eq!(sum(&m, "bale_packed_bytes_total", &[("library", "lib1")]), total as f64);
    assert_eq!(v("bale_purge_files_total"), 10.0);
    assert_eq!(v("bale_purge_bytes_total"), total as f64);
    assert_eq!(v("bale_stage_packages_total"), 1.0);
    assert_eq!(
        v("bale_stage_files_total"),
        10.0,
        "the package's members come back together"
    );
    assert_eq!(v("bale_stage_bytes_total"), total as f64);
    assert_eq!(v("bale_tape_files_read_total"), 1.0);
    assert_eq!(v("bale_stage_duration_seconds_count"), 1.0);
    assert!(v("bale_drive_mounts_total") >= 1.0);
    assert!(
        v("bale_drive_written_bytes_total") > total as f64,
        "the package: members and manifest"
    );
    assert!(v("bale_drive_read_bytes_total") > total as f64);
    assert!(sum(&m, "bale_drive_busy_seconds_total", &[("kind", "write")]) >= 0.0);
    // Requests by route, counted and timed.
    assert_eq!(
        sum(
            &m,
            "bale_http_requests_total",
            &[("method", "PUT"), ("route", "webdav"), ("status", "201")]
        ),
        10.0
    );
    assert_eq!(
        sum(
            &m,
            "bale_http_requests_total",
            &[("method", "GET"), ("route", "webdav"), ("status", "200")]
        ),
        4.0
    );
    assert_eq!(
        sum(
            &m,
            "bale_http_request_duration_seconds_count",
            &[("method", "PUT"), ("route", "webdav")]
        ),
        10.0
    );
    assert_eq!(
        sum(
            &m,
            "bale_http_request_duration_seconds_bucket",
            &[("method", "PUT"), ("route", "webdav"), ("le", "+Inf")]
        ),
        10.0,
        "a histogram, not a summary"
    );
    assert!(sum(&m, "bale_http_requests_total", &[("route", "/api/v1/queue")]) >= 1.0);
    assert!(v("bale_catalog_transaction_seconds_count") > 10.0);
    // Gauges: the queues are empty, the drives and volumes are listed.
    assert_eq!(v("bale_pools_open"), 0.0);
    assert_eq!(sum(&m, "bale_archive_jobs", &[("state", "queued")]), 0.0);
    assert_eq!(sum(&m, "bale_stage_files_open", &[("state", "submitted")]), 0.0);
    assert_eq!(
        sum(&m, "bale_drive_state", &[("drive", "lib1-d1")]),
        1.0,
        "one state at a time"
    );
    assert_eq!(v("bale_volumes"), 2.0);
    assert_eq!(
        sum(&m, "bale_volumes", &[("library", "lib1"), ("state", "appendable")]),
        1.0
    );
    assert!(sum(&m, "bale_volume_used_bytes", &[("state", "appendable")]) > total as f64);
    assert_eq!(sum(&m, "bale_worker_up", &[("worker", "purger")]), 1.0);
    assert_eq!(sum(&m, "bale_alarms_open", &[("severity", "error")]), 0.0);
    // The cache, from the purger's rounds: the staged files are back.
    s.wait_for(10, "the purger's next round", |s| {
        sum(&samples(&scrape(s)), "bale_cache_files", &[]) == 10.0
    });
    let m = samples(&scrape(&s));
    let u = cache_json(&s);
    assert_eq!(sum(&m, "bale_cache_used_bytes", &[]), total as f64);
    assert_eq!(
        sum(&m, "bale_cache_capacity_bytes", &[]),
        u["capacity_bytes"].as_f64().unwrap()
    );
    assert_eq!(
        sum(&m, "bale_cache_purge_high_bytes", &[]),
        u["purge_high_bytes"].as_f64().unwrap()
    );
    assert_eq!(
        sum(&m, "bale_cache_purge_low_bytes", &[]),
        u["purge_low_bytes"].as_f64().unwrap()
    );

    // Every series has HELP and TYPE, and promtool agrees.
    let described: HashSet<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let typed: HashSet<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for k in m.keys() {
        let name = k.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "no TYPE for {name}");
        assert!(described.contains(family), "no HELP for {name}");
    }
    if installed("promtool") {
        let p = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .output_with(&page);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&p.stdout),
            String::from_utf8_lossy(&p.stderr)
        );
        assert!(
            p.status.success() && said.trim().is_empty(),
            "promtool check metrics: {said}"
        );
    }

    // The journey of /m/f5: written in the PUT (its request id), pooled,
    // packed on the volume, purged, staged, read.
    let h: Value = serde_json::from_str(&s.run(&["history", "--json", "/m/f5"])).unwrap();
    let kinds: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["written", "pooled", "packed", "purged", "staged", "read"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        pos("written") < pos("packed") && pos("packed") < pos("purged") && pos("purged") < pos("staged"),
        "in time order: {kinds:?}"
    );
    let packed = &h["events"][pos("packed")];
    assert!(packed["volume"].as_str().unwrap().starts_with("VL"), "{packed}");
    assert!(
        packed["package"].is_string() && packed["offset"].as_u64().unwrap() > 0,
        "{packed}"
    );
    let text = s.run(&["history", "/m/f5"]);
    assert!(text.contains("staged") && text.contains("from package"), "{text}");
    // The PUT of /m/f0: its request id is in its history and in the log.
    let h0: Value = serde_json::from_str(&s.run(&["history", "--json", "/m/f0"])).unwrap();
    assert_eq!(h0["events"][0]["kind"], "written");
    assert_eq!(h0["events"][0]["request"], put_id.as_str(), "{h0}");
    assert_eq!(h0["events"][0]["who"], "admin");
    let log = s.log();
    // Whole lines only: the server may be writing the last one.
    let whole = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
    let lines: Vec<Value> = whole
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let of_put: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["id"] == put_id.as_str() || l["fields"]["request_id"] == put_id.as_str())
        .collect();
    let access = of_put
        .iter()
        .find(|l| l["target"] == "bale::access")
        .unwrap_or_else(|| panic!("no access line of {put_id} in:\n{log}"));
    assert_eq!(access["fields"]["method"], "PUT");
    assert_eq!(access["fields"]["path"], "/m/f0");
    assert_eq!(access["fields"]["status"], 201);
    assert_eq!(access["fields"]["user"], "admin");
    assert_eq!(access["fields"]["bytes"], "-", "a 201 has no body length");
    assert!(!log.contains("\u{1b}["), "no colour codes off a terminal");

    // Someone else may not read the history; the owner and admins may,
    // and the owner sees others' actions without their names and words.
    let alice = s.token_for("alice", "users");
    let out = s.bale_as(&alice).args(["history", "/m/f5"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("owner"), "{out:?}");
    s.run(&["mkdir", "--owner", "alice", "--group", "users", "/al"]);
    let r = http
        .put(s.url_of("/al/x"))
        .bearer_auth(&alice)
        .body("mine")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    s.run(&["mv", "/al/x", "/al/y"]);
    let out = s.bale_as(&alice).args(["history", "--json", "/al/y"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ev = h["events"].as_array().unwrap();
    let written = ev.iter().find(|e| e["kind"] == "written").unwrap();
    assert_eq!(written["who"], "alice");
    assert_eq!(written["path"], "/al/x");
    let moved = ev.iter().find(|e| e["kind"] == "moved").unwrap();
    assert_eq!(moved["who"], "(another user)", "{h}");
    assert!(
        moved["path"].is_null() && moved["detail"].is_null() && moved["request"].is_null(),
        "{h}"
    );
    let admin: Value = serde_json::from_str(&s.run(&["history", "--json", "/al/y"])).unwrap();
    let moved = admin["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "moved")
        .unwrap()
        .clone();
    assert_eq!(
        (moved["who"].as_str(), moved["detail"].as_str()),
        (Some("admin"), Some("from /al/x"))
    );
}

/// `/metrics` needs a token from an address not in `metrics_open_to`
/// (empty by default), and from an open one when the request names
/// another client (a proxy); any user's token will do.
#[test]
fn metrics_need_a_token_where_not_open() {
    let s = Server::start_on(Catalog::Sqlite);
    let c = s.http();
    assert_eq!(c.get(s.url_of("/metrics")).send().unwrap().status(), 401);
    let r = c.get(s.url_of("/metrics")).bearer_auth("bale_x_y").send().unwrap();
    assert_eq!(r.status(), 401);
    let bob = s.token_for("bob", "monitoring");
    let r = c.get(s.url_of("/metrics")).bearer_auth(&bob).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("# TYPE bale_build_info gauge"));
    // Open to loopback, but not through a proxy there (trusted or not).
    let cfg = tempfile::tempdir().unwrap();
    let config = write_file(
        cfg.path(),
        "bale.toml",
        "[server]\nmetrics_open_to = [\"127.0.0.1\"]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let s = Server::start_with(Catalog::Sqlite, &["--config", &config]);
    let c = s.http();
    assert_eq!(c.get(s.url_of("/metrics")).send().unwrap().status(), 200);
    for (name, value) in [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=127.0.0.1"),
        ("x-real-ip", "127.0.0.1"),
    ] {
        let r = c.get(s.url_of("/metrics")).header(name, value).send().unwrap();
        assert_eq!(r.status(), 401, "{name}: {value}");
    }
}

/// A request id sent by a client is not believed, one from a trusted
/// proxy is; the text log has the access line and no colour codes; SIGHUP
/// applies the configuration's log setting.
#[test]
fn request_ids_from_trusted_proxies_and_the_log_level_on_sighup() {
    let cfg = tempfile::tempdir().unwrap();
    let text = |log: &str, proxies: &str| format!("log = \"{log}\"\n[server]\ntrusted_proxies = [{proxies}]\n");
    let config = write_file(cfg.path(), "bale.toml", &text("info", ""));
    let mut s = Server::start_logged(Catalog::Sqlite, &["--config", &config]);
    let c = s.http();
    let ask = |c: &reqwest::blocking::Client, s: &Server, id: &str| {
        let r = c
            .get(s.url_of("/api/v1/whoami"))
            .bearer_auth(&s.token)
            .header("x-request-id", id)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.headers()["x-request-id"].to_str().unwrap().to_string()
    };
    let got = ask(&c, &s, "client-made-1");
    assert_ne!(got, "client-made-1", "not from a trusted proxy");
    assert_eq!(got.len(), 32);
    s.wait_for(5, "the access line", |s| s.log().contains(&got));
    let log = s.log();
    let line = log.lines().find(|l| l.contains(&got)).unwrap();
    assert!(
        line.contains("bale::access") && line.contains("GET /api/v1/whoami 200"),
        "{line}"
    );
    assert!(!log.contains("\u{1b}["), "no colour codes off a terminal: {log}");

    std::fs::write(&config, text("info", "\"127.0.0.1\"")).unwrap();
    s.restart();
    assert_eq!(ask(&s.http(), &s, "proxy-id-2"), "proxy-id-2", "a trusted proxy's id");
    s.wait_for(5, "the access line", |s| s.log().contains("proxy-id-2"));
    let bad = ask(&s.http(), &s, "with \"quotes\"");
    assert_ne!(bad, "with \"quotes\"", "an id unfit for logs is replaced");

    // SIGHUP applies the file's log setting (BALE_LOG only at start).
    std::fs::write(&config, text("warn", "\"127.0.0.1\"")).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    s.wait_for(5, "the new level", |s| s.log().contains("SIGHUP: logging \"warn\""));
    // The line is said just before the level changes.
    std::thread::sleep(std::time::Duration::from_millis(300));
    ask(&s.http(), &s, "after-hup-3");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!s.log().contains("after-hup-3"), "no access line at warn");
}

trait OutputWith {
    fn output_with(&mut self, input: &str) -> std::process::Output;
}

impl OutputWith for std::process::Command {
    fn output_with(&mut self, input: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }
}

/// The example alert rules load in `promtool check rules` and pass their
/// own `promtool test rules` cases; every series the rules and the
/// Grafana dashboard use is one bale exports.
#[test]
fn example_alerts_and_dashboard_use_real_series() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let rules = std::fs::read_to_string(format!("{dir}/prometheus/bale-alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(format!("{dir}/grafana/bale-dashboard.json")).unwrap();
    let _: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let known: HashSet<&str> = bale_util::metrics::ALL.iter().map(|s| s.name).collect();
    for (what, text) in [("alert rules", &rules), ("dashboard", &dashboard)] {
        let mut used: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("bale_"))
            .collect();
        used.sort();
        used.dedup();
        assert!(used.len() >= 10, "{what}: {used:?}");
        for name in used {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| known.contains(f)))
                .unwrap_or(name);
            assert!(known.contains(family), "{what} uses {name}, which bale does not export");
        }
    }
    if installed("promtool") {
        for args in [
            vec!["check", "rules", "bale-alerts.yml"],
            vec!["test", "rules", "bale-alerts.test.yml"],
        ] {
            let out = std::process::Command::new("promtool")
                .args(&args)
                .current_dir(format!("{dir}/prometheus"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "promtool {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
