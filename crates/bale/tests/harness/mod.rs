//! The crash harness (test support): a mixed workload against the real
//! binary (puts, overwrites, deletes, renames, reads, pool closes, purges,
//! stages, pins, cancels; package writes and unpacks run underneath), a
//! server killed at a point chosen from a seed, restarted, let settle, and
//! the invariants checked from outside:
//!
//! - every acknowledged file is there, byte-identical (read back over
//!   HTTP, staged from tape when purged), and nothing else is;
//! - every live file is in exactly one package in each library (the policy
//!   asks for a second copy in the vault), and its bytes in those tape
//!   files are its bytes; every member of every package checksums; each
//!   package's dead members and bytes are exact;
//! - every volume holds exactly the tape files its catalog row counts;
//! - the cache holds exactly the data of the cached live files, each
//!   byte-identical, and nothing in its temp or stage areas;
//! - nothing is left pending: no archive job, no pool, every stage request
//!   finished, every pin made before the kill still there.
//!
//! A kill is either a crash point (`BALE_CRASH_AT`, see
//! `bale_util::crash`: the server SIGKILLs itself the n-th time it reaches
//! one of the narrow windows) or a SIGKILL from outside after a random
//! delay. Everything the harness chooses (the operations of each client,
//! the kind of kill, the point, the hit, the delay) comes from the seed;
//! the interleaving of the clients with the server's own workers does not,
//! so a seed reproduces a run's choices, not its exact schedule.
//!
//! Without kills the same workload is the race test: deletes, overwrites
//! and renames land while pools close, packages are written and stages run.

#![allow(dead_code)]

mod checks;
mod client;
pub mod lossyfs;

use client::Client;

use crate::common::{bytes, write_file, Catalog, Server};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The server's configuration: pools that close after a second or twenty
/// files, two drives writing at 100 MB/s, a settler and a fsck that do not
/// wait.
const CONFIG: &str = r#"
[archive]
check_ms = 200

[ingest]
settle_ms = 300

[cache]
fsck_settle_s = 0
purge_check_ms = 500

[stage]
read_wait_s = 120

[tape]
idle_unload_s = 2.0
direct_min_size = "1 MiB"
time_scale = 1.0

[tape.media.H]
capacity = "2 GB"
rate = "100 MB"
load_s = 0.02
unload_s = 0.02
robot_s = 0.02
full_locate_s = 0.05
file_mark_s = 0.02

[[tape.libraries]]
name = "lib1"
media = "H"
drives = 2
initial_volumes = 3

[[tape.libraries]]
name = "vault"
path = "vault"
volume_prefix = "VB"
media = "H"
drives = 1
initial_volumes = 3
"#;

const POLICY: &str = r#"
[[rule]]
name = "all"
action = "aggregate"
max_member_size = "1 MiB"
target_size = "4 MB"
max_files = 20
max_wait_s = 1
copy_to = ["vault"]
"#;

/// What a path holds: a file's content (made from its seed), or nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Content {
    pub seed: u64,
    pub size: usize,
}

impl Content {
    fn data(&self) -> Vec<u8> {
        bytes(self.seed, self.size)
    }
}

/// One client's view of its own directory: each path and the states it
/// may be in (one when certain; two when an operation on it was cut off
/// by a kill: before or after).
#[derive(Default)]
pub struct Model {
    pub files: BTreeMap<String, Vec<Option<Content>>>,
    /// Paths pinned (certainly) and not released, overwritten or deleted.
    pub pinned: BTreeSet<String>,
    pub stages: Vec<i64>,
    next: u64,
}

impl Model {
    fn certain(&self) -> Vec<(String, Content)> {
        self.files
            .iter()
            .filter_map(|(p, s)| match s.as_slice() {
                [Some(c)] => Some((p.clone(), *c)),
                _ => None,
            })
            .collect()
    }
}

/// How a round ends.
#[derive(Clone, Debug)]
pub enum Kill {
    /// No kill: the race test.
    None,
    /// The server kills itself at the n-th hit of a crash point.
    Point(&'static str, u32),
    /// SIGKILL from outside after this many milliseconds.
    After(u64),
}

/// A round's record.
#[derive(Debug)]
pub struct Round {
    pub seed: u64,
    pub kill: Kill,
    /// The kill was a power cut: unsynced writes were lost.
    pub power: bool,
    /// Bytes written and never synced, lost at the cut.
    pub lost_bytes: u64,
    /// The server died before the clients ran out of operations.
    pub died: bool,
    pub ops: usize,
    pub live_files: usize,
    pub packages: usize,
    pub violations: Vec<String>,
}

pub struct Harness {
    pub srv: Server,
    pub clients: usize,
    pub models: Vec<Model>,
    catalog: Catalog,
    cfg_dir: tempfile::TempDir,
    args: Vec<String>,
    /// The lossy layer under the data directory, when there is one.
    fs: Option<lossyfs::LossyFs>,
    _backing: Option<tempfile::TempDir>,
    /// The share of kills that are power cuts (with a layer).
    pub power_share: f64,
    /// Overrides the choice for the next rounds.
    pub power: Option<bool>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The server first, then the layer under its data directory.
        self.srv.kill9();
        self.fs.take();
    }
}

fn pick_kill(rng: &mut StdRng) -> Kill {
    let points = bale_util::crash::POINTS;
    if rng.random_bool(0.75) {
        let (name, _) = points[rng.random_range(0..points.len())];
        Kill::Point(name, rng.random_range(1..=3))
    } else {
        Kill::After(rng.random_range(200..4000))
    }
}

impl Harness {
    pub fn new(catalog: Catalog, clients: usize) -> Harness {
        Harness::build(catalog, clients, false)
    }

    /// A harness whose server's data directory lies on the lossy layer:
    /// its kills may be power cuts.
    pub fn on_lossy_layer(catalog: Catalog, clients: usize) -> Harness {
        Harness::build(catalog, clients, true)
    }

    fn build(catalog: Catalog, clients: usize, lossy: bool) -> Harness {
        let cfg_dir = tempfile::tempdir().unwrap();
        let config = write_file(cfg_dir.path(), "bale.toml", CONFIG);
        let policy = write_file(cfg_dir.path(), "policy.toml", POLICY);
        let args = vec!["--config".to_string(), config, "--policy".to_string(), policy];
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let dir = tempfile::Builder::new().prefix("bale-harness-").tempdir().unwrap();
        let (fs, backing) = if lossy {
            let backing = tempfile::Builder::new().prefix("bale-disk-").tempdir().unwrap();
            std::fs::create_dir(dir.path().join("data")).unwrap();
            let fs = lossyfs::LossyFs::mount(backing.path(), &dir.path().join("data"));
            (Some(fs), Some(backing))
        } else {
            (None, None)
        };
        let srv = Server::start_in(catalog, dir, &a);
        for c in 0..clients {
            for d in 0..3 {
                srv.run(&["mkdir", "-p", &format!("/h/c{c}/d{d}")]);
            }
        }
        Harness {
            srv,
            clients,
            models: (0..clients).map(|_| Model::default()).collect(),
            catalog,
            cfg_dir,
            args,
            power_share: if fs.is_some() { 0.35 } else { 0.0 },
            power: None,
            fs,
            _backing: backing,
        }
    }

    /// One round: the workload (`ops` operations per client at most),
    /// ended by `kill` (chosen from the seed when `None`), a restart, the
    /// settling and the checks.
    pub fn round(&mut self, seed: u64, ops: usize, kill: Option<Kill>) -> Round {
        let mut rng = StdRng::seed_from_u64(seed);
        let kill = kill.unwrap_or_else(|| pick_kill(&mut rng));
        let power = self.fs.is_some()
            && !matches!(kill, Kill::None)
            && self.power.unwrap_or_else(|| rng.random_bool(self.power_share));
        if let Kill::Point(name, n) = &kill {
            self.srv.set_env(vec![("BALE_CRASH_AT".into(), format!("{name}:{n}"))]);
            self.srv.restart();
        }
        let dead = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let models = std::mem::take(&mut self.models);
        let started = Instant::now();
        let (url, token) = (self.srv.url.clone(), self.srv.token.clone());
        let threads: Vec<_> = models
            .into_iter()
            .enumerate()
            .map(|(c, mut model)| {
                let (dead, violations, url, token) = (dead.clone(), violations.clone(), url.clone(), token.clone());
                let cseed = seed.wrapping_mul(1_000_003).wrapping_add(c as u64);
                std::thread::spawn(move || {
                    let mut client = Client::new(&url, &token, c, cseed);
                    let done = client.run(&mut model, ops, &dead, &violations);
                    (model, done)
                })
            })
            .collect();
        let mut died = false;
        let deadline = match kill {
            Kill::After(ms) => Some(started + Duration::from_millis(ms)),
            _ => None,
        };
        loop {
            if threads.iter().all(|t| t.is_finished()) {
                break;
            }
            if !self.srv.alive() {
                died = true;
                dead.store(true, Ordering::Relaxed);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.srv.kill9();
                died = true;
                dead.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        died |= !matches!(kill, Kill::None) && !self.srv.alive();
        let mut total = 0;
        for t in threads {
            let (model, done) = t.join().unwrap();
            total += done;
            self.models.push(model);
        }
        let mut v = std::mem::take(&mut *violations.lock().unwrap());
        let mut lost = 0;
        if !matches!(kill, Kill::None) {
            // A point never reached, or a delay longer than the work: the
            // kill comes now, with the clients done.
            self.srv.kill9();
            if power {
                let fs = self.fs.as_mut().expect("a lossy layer");
                lost = fs.cut();
                fs.remount();
            }
            self.srv.set_env(match std::env::var("BALE_HARNESS_LOG") {
                Ok(l) => vec![("BALE_LOG".into(), l)],
                Err(_) => Vec::new(),
            });
            self.srv.restart();
        }
        v.extend(self.resolve());
        v.extend(self.settle());
        let (live, packages, deep) = self.check_deep();
        v.extend(deep);
        v.extend(self.check_reads());
        Round {
            seed,
            kill,
            power,
            lost_bytes: lost,
            died,
            ops: total,
            live_files: live,
            packages,
            violations: v,
        }
    }

    /// After a restart: every path an operation was cut off on is in one
    /// of the states it may be in; the model takes the one found.
    fn resolve(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        let http = self.srv.http();
        for m in &mut self.models {
            for (path, states) in m.files.iter_mut() {
                if states.len() == 1 {
                    continue;
                }
                let r = http
                    .get(self.srv.url_of(path))
                    .bearer_auth(&self.srv.token)
                    .send()
                    .unwrap();
                let found = match r.status().as_u16() {
                    404 => None,
                    200 => {
                        let Ok(body) = r.bytes() else {
                            let stat = self.srv.bale().args(["stat", "--json", path]).output().unwrap();
                            v.push(format!(
                                "{path}: after the kill its GET ends before its length; {}",
                                String::from_utf8_lossy(&stat.stdout).replace('\n', " ")
                            ));
                            continue;
                        };
                        match states
                            .iter()
                            .flatten()
                            .find(|c| c.size == body.len() && c.data() == body)
                        {
                            Some(c) => Some(*c),
                            None => {
                                v.push(format!(
                                    "{path}: after the kill it holds {} bytes that no write sent",
                                    body.len()
                                ));
                                continue;
                            }
                        }
                    }
                    s => {
                        v.push(format!("{path}: after the kill GET answers {s}"));
                        continue;
                    }
                };
                if !states.contains(&found) {
                    v.push(format!("{path}: after the kill it is {found:?}, not one of {states:?}"));
                }
                *states = vec![found];
                if found.is_none() {
                    m.pinned.remove(path);
                }
            }
            m.files.retain(|_, s| s != &vec![None]);
            m.files.retain(|_, s| !s.is_empty());
            let files = &m.files;
            m.pinned.retain(|p| files.contains_key(p));
        }
        v
    }

    /// Lets the server finish its work: every pool closed, every live file
    /// on tape, every stage request finished.
    fn settle(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        let paths: Vec<String> = self.models.iter().flat_map(|m| m.files.keys().cloned()).collect();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (code, _) = self.srv.api_post(&self.srv.token, "queue/flush", &json!({}));
            let mut waiting = Vec::new();
            if code != 200 {
                waiting.push(format!("flush answered {code}"));
            }
            for chunk in paths.chunks(500) {
                let (code, info) = self
                    .srv
                    .api_post(&self.srv.token, "archiveinfo", &json!({ "paths": chunk }));
                if code != 200 {
                    waiting.push(format!("archiveinfo answered {code}"));
                    break;
                }
                for i in info.as_array().unwrap() {
                    let l = i["locality"].as_str().unwrap_or("");
                    if l != "TAPE" && l != "DISK_AND_TAPE" {
                        waiting.push(format!("{} is {l} {}", i["path"], i["error"]));
                    }
                }
            }
            // The cache check a start after a crash runs has finished.
            for w in self.srv.api_get("workers").as_array().unwrap() {
                if w["name"] == "crash check" && w["state"] != "done" {
                    waiting.push(format!("the crash check is {}: {}", w["state"], w["last_error"]));
                }
            }
            for m in &self.models {
                for id in &m.stages {
                    let r = self.srv.api_get(&format!("stage/{id}"));
                    let c = &r["counts"];
                    if c["SUBMITTED"].as_u64() != Some(0) || c["STARTED"].as_u64() != Some(0) {
                        waiting.push(format!("stage request {id} unfinished: {c}"));
                    }
                }
            }
            if waiting.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                v.push(format!(
                    "not settled after 180 s: {} waiting, e.g. {:?}",
                    waiting.len(),
                    &waiting[..waiting.len().min(5)]
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        // Pins made before the kill are still there.
        for m in &self.models {
            for p in &m.pinned {
                let r = self
                    .srv
                    .http()
                    .get(self.srv.url_of("/api/v1/pins"))
                    .bearer_auth(&self.srv.token)
                    .query(&[("path", p.as_str())])
                    .send()
                    .unwrap();
                let pins: Value = r.json().unwrap();
                let own = |p: &Value| !p["owner"].as_str().unwrap_or("").starts_with("stage-request-");
                if !pins.as_array().is_some_and(|a| a.iter().any(own)) {
                    v.push(format!("{p}: its pin is gone"));
                }
            }
        }
        v
    }

    /// Every live file by path, as the clients know it.
    fn live(&self) -> BTreeMap<String, Content> {
        self.models.iter().flat_map(|m| m.certain()).collect()
    }

    /// The checks behind the server's back: its catalog, its tape files,
    /// its cache directory. Returns (live files, packages, violations).
    pub fn check_deep(&self) -> (usize, usize, Vec<String>) {
        let live = self.live();
        let data_dir = self.srv.data_dir();
        let spec = match self.srv.catalog_url() {
            Some(u) => u.to_string(),
            None => data_dir.join("catalog.sqlite").to_str().unwrap().to_string(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(checks::deep(&spec, &data_dir, &live))
    }

    /// Every live file read back over HTTP, byte-identical; nothing else
    /// in the namespace under /h.
    fn check_reads(&self) -> Vec<String> {
        let mut v = Vec::new();
        let live = self.live();
        let http = self.srv.http();
        for (path, c) in &live {
            let r = http
                .get(self.srv.url_of(path))
                .bearer_auth(&self.srv.token)
                .send()
                .unwrap();
            let status = r.status().as_u16();
            if status != 200 {
                v.push(format!(
                    "{path}: GET answers {status}: {}",
                    r.text().unwrap_or_default()
                ));
                continue;
            }
            match r.bytes() {
                Ok(b) if b == c.data() => {}
                Ok(_) => v.push(format!("{path}: reads back different bytes")),
                Err(_) => v.push(format!("{path}: its GET ends before its length")),
            }
        }
        let seen: BTreeMap<String, i64> = self.srv.tree().into_iter().filter(|(_, s)| *s >= 0).collect();
        for (p, s) in &seen {
            match live.get(p) {
                None => v.push(format!(
                    "{p}: in the namespace ({s} bytes) but never acknowledged there"
                )),
                Some(c) if c.size as i64 != *s => v.push(format!("{p}: {s} bytes, {} written", c.size)),
                _ => {}
            }
        }
        for p in live.keys() {
            if !seen.contains_key(p) {
                v.push(format!("{p}: acknowledged, missing from the listing"));
            }
        }
        v
    }
}
