//! The crash harness (test support): a mixed workload against the real
//! binary (puts, overwrites, deletes, renames, reads, pool closes, purges,
//! stages, pins, cancels; package writes and unpacks run underneath), a
//! server killed at a point chosen from a seed, restarted, let settle, and
//! the invariants checked from outside:
//!
//! - every acknowledged file is there, byte-identical (read back over
//!   HTTP, staged from tape when purged), and nothing else is;
//! - every live file is in exactly one package, and its bytes in that tape
//!   file are its bytes; every member of every package checksums; each
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

pub mod lossyfs;

use crate::common::{bytes, write_file, Catalog, Server};
use bale_util::Adler32;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
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
"#;

const POLICY: &str = r#"
[[rule]]
name = "all"
action = "aggregate"
max_member_size = "1 MiB"
target_size = "4 MB"
max_files = 20
max_wait_s = 1
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
        rt.block_on(deep(&spec, &data_dir, &live))
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

async fn deep(spec: &str, data_dir: &Path, live: &BTreeMap<String, Content>) -> (usize, usize, Vec<String>) {
    let mut v = Vec::new();
    let cat = bale_catalog::open(spec).await.unwrap();
    // Live files: their nodes.
    let mut by_id: HashMap<bale_util::FileId, (String, Content, bool)> = HashMap::new();
    for (path, c) in live {
        let node = cat.lookup(&bale_util::NsPath::parse(path).unwrap()).await.unwrap();
        match node.and_then(|n| n.file_id.map(|id| (id, n))) {
            Some((id, n)) => {
                if n.size != c.size as u64 {
                    v.push(format!("{path}: catalog size {} for {} written", n.size, c.size));
                }
                by_id.insert(id, (path.clone(), *c, n.cached));
                let copies = cat.tape_copies(id).await.unwrap();
                if copies.len() != 1 {
                    v.push(format!(
                        "{path}: {} tape copies (live member of {} packages)",
                        copies.len(),
                        copies.len()
                    ));
                }
            }
            None => v.push(format!("{path}: acknowledged, not in the catalog")),
        }
    }
    // Packages: every member checksums in its tape file; a live member
    // holds its file's bytes; the dead counts are exact.
    let volumes = cat.volumes().await.unwrap();
    let vol_dir = |label: &str| -> Option<PathBuf> {
        walkdir::WalkDir::new(data_dir.join("library"))
            .into_iter()
            .filter_map(|e| e.ok())
            .find(|e| e.file_type().is_dir() && e.file_name() == label)
            .map(|e| e.path().to_path_buf())
    };
    let packages = cat.packages(None).await.unwrap();
    for p in &packages {
        let (_, members) = cat.package(&p.id).await.unwrap().unwrap();
        let Some(dir) = vol_dir(&p.volume) else {
            v.push(format!("package {}: volume {} has no directory", p.id, p.volume));
            continue;
        };
        let tape = match std::fs::read(dir.join(format!("f{:08}.tar", p.seq))) {
            Ok(t) => t,
            Err(e) => {
                v.push(format!("package {}: tape file {} {}: {e}", p.id, p.volume, p.seq));
                continue;
            }
        };
        if tape.len() as u64 != p.size || Adler32::of(&tape) != p.adler32 {
            v.push(format!(
                "package {}: tape file {} {} is {} bytes / {}, catalog says {} / {}",
                p.id,
                p.volume,
                p.seq,
                tape.len(),
                Adler32::of(&tape),
                p.size,
                p.adler32
            ));
        }
        let (mut dead, mut dead_bytes) = (0u32, 0u64);
        for m in &members {
            let Some(data) = tape.get(m.offset as usize..(m.offset + m.size) as usize) else {
                v.push(format!(
                    "package {}: member {} lies past the tape file's end",
                    p.id, m.file_id
                ));
                continue;
            };
            if Adler32::of(data) != m.adler32 {
                v.push(format!(
                    "package {}: member {} does not match its checksum",
                    p.id, m.file_id
                ));
            }
            match by_id.get(&m.file_id) {
                Some((path, c, _)) => {
                    if data != c.data().as_slice() {
                        v.push(format!("package {}: {path}'s bytes on tape are not the file's", p.id));
                    }
                }
                None => {
                    dead += 1;
                    dead_bytes += m.size;
                }
            }
        }
        if (dead, dead_bytes) != (p.dead_members, p.dead_bytes) {
            v.push(format!(
                "package {}: {dead} dead members / {dead_bytes} bytes, catalog says {} / {}",
                p.id, p.dead_members, p.dead_bytes
            ));
        }
    }
    // Volumes: the tape files present are the ones the catalog counts.
    for vol in &volumes {
        let present = vol_dir(&vol.label).map_or(0, |d| {
            std::fs::read_dir(d)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tar"))
                .count()
        });
        if present as u32 != vol.tape_files {
            v.push(format!(
                "volume {}: {present} tape files present, the catalog's end of data is {}",
                vol.label, vol.tape_files
            ));
        }
    }
    // The cache: the data of the cached live files, each right, nothing else.
    let cache = data_dir.join("cache");
    let mut on_disk: HashMap<String, PathBuf> = HashMap::new();
    for e in walkdir::WalkDir::new(cache.join("files"))
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if e.file_type().is_file() {
            on_disk.insert(e.file_name().to_string_lossy().to_string(), e.path().to_path_buf());
        }
    }
    for (id, (path, c, cached)) in &by_id {
        let data = on_disk.remove(&id.to_string());
        match (cached, data) {
            (true, None) => v.push(format!("{path}: cached, its data is missing")),
            (true, Some(f)) => {
                if std::fs::read(&f).unwrap() != c.data() {
                    v.push(format!("{path}: its cached data differs from what was written"));
                }
            }
            (false, Some(_)) => v.push(format!("{path}: purged, its data is still in the cache")),
            (false, None) => {}
        }
    }
    for (name, _) in on_disk {
        v.push(format!("cache data {name} belongs to no live file"));
    }
    for area in ["tmp", "stage"] {
        let n = std::fs::read_dir(cache.join(area)).map_or(0, |d| d.count());
        if n > 0 {
            v.push(format!("{n} entries left in cache/{area}"));
        }
    }
    // Nothing pending.
    let jobs = cat.archive_jobs().await.unwrap();
    if !jobs.is_empty() {
        v.push(format!("{} archive jobs left, e.g. {:?}", jobs.len(), jobs[0]));
    }
    for p in cat.pools().await.unwrap() {
        if p.files > 0 {
            v.push(format!("pool {} still holds {} files", p.key, p.files));
        }
    }
    let open = cat.open_stage_files().await.unwrap();
    if !open.is_empty() {
        v.push(format!("{} stage files still open", open.len()));
    }
    (by_id.len(), packages.len(), v)
}

/// One client: a thread with its own directory, its own random stream and
/// its own model.
struct Client {
    http: reqwest::blocking::Client,
    url: String,
    token: String,
    dir: String,
    rng: StdRng,
}

/// What an operation's request came to.
enum Sent {
    Answer(u16, Vec<u8>),
    /// No answer: the server is gone.
    Cut,
}

impl Client {
    fn new(url: &str, token: &str, c: usize, seed: u64) -> Client {
        Client {
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(150))
                .build()
                .unwrap(),
            url: url.to_string(),
            token: token.to_string(),
            dir: format!("/h/c{c}"),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn send(&self, rb: reqwest::blocking::RequestBuilder) -> Sent {
        match rb.bearer_auth(&self.token).send() {
            Ok(r) => {
                let s = r.status().as_u16();
                match r.bytes() {
                    Ok(b) => Sent::Answer(s, b.to_vec()),
                    Err(_) => Sent::Cut,
                }
            }
            Err(_) => Sent::Cut,
        }
    }

    fn post(&self, endpoint: &str, body: Value) -> Sent {
        self.send(self.http.post(format!("{}/api/v1/{endpoint}", self.url)).json(&body))
    }

    fn content(&mut self) -> Content {
        let size = match self.rng.random_range(0..100) {
            0..80 => self.rng.random_range(0..64 << 10),
            80..97 => self.rng.random_range(64 << 10..600 << 10),
            _ => self.rng.random_range(1 << 20..3 << 20),
        };
        Content {
            seed: self.rng.random(),
            size,
        }
    }

    /// Runs up to `ops` operations; stops early when the server dies.
    /// Returns the operations done.
    fn run(&mut self, m: &mut Model, ops: usize, dead: &AtomicBool, violations: &Mutex<Vec<String>>) -> usize {
        let mut done = 0;
        while done < ops && !dead.load(Ordering::Relaxed) {
            done += 1;
            match self.op(m) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    violations.lock().unwrap().push(e);
                    break;
                }
            }
        }
        done
    }

    /// One operation. Ok(false): cut off (the server is gone); Err: an
    /// answer the model says is wrong.
    fn op(&mut self, m: &mut Model) -> Result<bool, String> {
        let certain = m.certain();
        let any = |rng: &mut StdRng| -> Option<(String, Content)> {
            (!certain.is_empty()).then(|| certain[rng.random_range(0..certain.len())].clone())
        };
        let roll = self.rng.random_range(0..100);
        let pick = any(&mut self.rng);
        match (roll, pick) {
            (0..40, _) | (_, None) => {
                m.next += 1;
                let path = format!("{}/d{}/f{}", self.dir, self.rng.random_range(0..3), m.next);
                let c = self.content();
                self.put(m, &path, None, c)
            }
            (40..50, Some((path, old))) => {
                let c = self.content();
                self.put(m, &path, Some(old), c)
            }
            (50..65, Some((path, c))) => {
                let r = self.send(self.http.get(format!("{}{path}", self.url)));
                match r {
                    Sent::Cut => Ok(false),
                    Sent::Answer(200, b) if b == c.data() => Ok(true),
                    Sent::Answer(200, b) => Err(format!(
                        "{path}: read {} bytes that differ from the {} written",
                        b.len(),
                        c.size
                    )),
                    Sent::Answer(s, b) => Err(format!("{path}: GET answered {s}: {}", String::from_utf8_lossy(&b))),
                }
            }
            (65..73, Some((path, c))) => {
                m.files.insert(path.clone(), vec![Some(c), None]);
                match self.send(self.http.delete(format!("{}{path}", self.url))) {
                    Sent::Cut => Ok(false),
                    Sent::Answer(200 | 204, _) => {
                        m.files.remove(&path);
                        m.pinned.remove(&path);
                        Ok(true)
                    }
                    Sent::Answer(s, b) => Err(format!("DELETE {path}: {s}: {}", String::from_utf8_lossy(&b))),
                }
            }
            (73..81, Some((from, c))) => {
                // Onto a new name mostly, sometimes over another file.
                let onto = if self.rng.random_bool(0.3) {
                    any(&mut self.rng)
                } else {
                    None
                };
                let to = match &onto {
                    Some((p, _)) if *p != from => p.clone(),
                    _ => {
                        m.next += 1;
                        format!("{}/d{}/r{}", self.dir, self.rng.random_range(0..3), m.next)
                    }
                };
                let before = m.files.get(&to).cloned().unwrap_or(vec![None]);
                // Until the answer, neither path is known to hold a pin.
                let was_pinned = m.pinned.remove(&from);
                m.pinned.remove(&to);
                m.files.insert(from.clone(), vec![Some(c), None]);
                m.files
                    .insert(to.clone(), before.iter().copied().chain([Some(c)]).collect());
                let rb = self
                    .http
                    .request(
                        reqwest::Method::from_bytes(b"MOVE").unwrap(),
                        format!("{}{from}", self.url),
                    )
                    .header("Destination", format!("{}{to}", self.url))
                    .header("Overwrite", "T");
                match self.send(rb) {
                    Sent::Cut => Ok(false),
                    Sent::Answer(201 | 204, _) => {
                        m.files.remove(&from);
                        m.files.insert(to.clone(), vec![Some(c)]);
                        if was_pinned {
                            m.pinned.insert(to);
                        }
                        Ok(true)
                    }
                    Sent::Answer(s, b) => Err(format!("MOVE {from} {to}: {s}: {}", String::from_utf8_lossy(&b))),
                }
            }
            (81..86, Some(_)) => {
                let paths: Vec<String> = (0..20).filter_map(|_| any(&mut self.rng)).map(|(p, _)| p).collect();
                self.expect(self.post("cache/purge", json!({ "paths": paths })), 200, "purge")
            }
            (86..90, Some(_)) => {
                let paths: Vec<String> = (0..10).filter_map(|_| any(&mut self.rng)).map(|(p, _)| p).collect();
                match self.post("stage", json!({ "paths": paths })) {
                    Sent::Cut => Ok(false),
                    Sent::Answer(201, b) => {
                        let v: Value = serde_json::from_slice(&b).unwrap();
                        m.stages.push(v["id"].as_i64().unwrap());
                        Ok(true)
                    }
                    Sent::Answer(s, b) => Err(format!("stage: {s}: {}", String::from_utf8_lossy(&b))),
                }
            }
            (90..94, Some((path, _))) => {
                if m.pinned.contains(&path) && self.rng.random_bool(0.5) {
                    // Released: no longer expected, whatever the answer.
                    m.pinned.remove(&path);
                    self.expect(self.post("pins/release", json!({ "paths": [path] })), 200, "unpin")
                } else {
                    let r = self.post("pins", json!({ "paths": [path.clone()], "lifetime_s": 86400 }));
                    let ok = matches!(r, Sent::Answer(200, _));
                    let out = self.expect(r, 200, "pin");
                    if ok {
                        m.pinned.insert(path);
                    }
                    out
                }
            }
            (94..96, Some(_)) if !m.stages.is_empty() => {
                let id = m.stages[self.rng.random_range(0..m.stages.len())];
                self.expect(self.post(&format!("stage/{id}/cancel"), json!({})), 200, "cancel")
            }
            _ => self.expect(self.post("queue/flush", json!({})), 200, "flush"),
        }
    }

    fn expect(&self, r: Sent, want: u16, what: &str) -> Result<bool, String> {
        match r {
            Sent::Cut => Ok(false),
            Sent::Answer(s, _) if s == want => Ok(true),
            Sent::Answer(s, b) => Err(format!("{what}: {s}: {}", String::from_utf8_lossy(&b))),
        }
    }

    fn put(&mut self, m: &mut Model, path: &str, old: Option<Content>, c: Content) -> Result<bool, String> {
        m.files.insert(path.to_string(), vec![old, Some(c)]);
        // A new file at the path holds none of the old one's pins.
        m.pinned.remove(path);
        let data = c.data();
        let rb = self
            .http
            .put(format!("{}{path}", self.url))
            .header("Digest", Adler32::of(&data).digest_header())
            .header("Overwrite", if old.is_some() { "T" } else { "F" })
            .body(data);
        match self.send(rb) {
            Sent::Cut => Ok(false),
            Sent::Answer(201 | 204, _) => {
                m.files.insert(path.to_string(), vec![Some(c)]);
                Ok(true)
            }
            Sent::Answer(s, b) => Err(format!("PUT {path}: {s}: {}", String::from_utf8_lossy(&b))),
        }
    }
}
