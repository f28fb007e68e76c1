//! Small file aggregation in the server: the policy in force, the route of
//! each new file, and the pool watcher that closes pools into archive jobs
//! when a trigger fires.
//!
//! Everything durable is in the catalog: a file joins its pool in the
//! transaction that records it, and a pool closes into an archive job in
//! one transaction that also checks the trigger. The watcher holds no state
//! of its own; after a restart it finds the open pools where they were.

use crate::{Error, Result};
use bale_catalog::{
    ArchiveJob, ArchiveRoute, DynCatalog, JobState, JobTarget, PoolLimits, PoolSummary, PoolTarget, Reroute,
};
use bale_policy::{Action, Decision, FileFacts, Policy, PolicyError, Route};
use bale_tape::TapeSystem;
use bale_util::durable::write_file_durable;
use bale_util::Timestamp;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The policy used when none is configured or loaded: aggregate every file
/// below tape.direct_min_size into packages of 8 GB or 2,000 files, or
/// whatever waited a day.
pub const BUILTIN_POLICY: &str = r#"# bale's built-in policy.
[[rule]]
name = "default"
action = "aggregate"
max_member_size = "256 MiB"
target_size = "8 GB"
max_files = 2000
max_wait_s = 86400
"#;

/// The policy in force and where it came from.
#[derive(Debug)]
pub struct LoadedPolicy {
    pub policy: Policy,
    /// "built-in", the configured file, or who loaded it.
    pub origin: String,
    pub loaded: Timestamp,
    /// What is wasteful in it (direct rules that take small files).
    pub warnings: Vec<String>,
}

/// What [`Archiver::check_on_way`] found and repaired.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OnWayReport {
    /// Queued jobs the scheduler did not hold, handed to it.
    pub jobs_requeued: Vec<i64>,
    /// Files on no way to tape, routed again.
    pub files_rerouted: Vec<String>,
    /// Files on their way but not on tape long after they were due.
    pub files_stuck: usize,
}

/// How one file would be routed, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub rule: String,
    /// 1-based position of the rule in the policy.
    pub index: usize,
    pub line: usize,
    /// "direct" or "aggregate".
    pub route: &'static str,
    /// The pool the file would join.
    pub pool: Option<String>,
    /// Where it would be written: library and family.
    pub library: String,
    pub family: String,
    /// The libraries of its further tape copies, in order.
    pub copies: Vec<String>,
    pub why: String,
    /// Every earlier rule and why it did not match.
    pub skipped: Vec<Skipped>,
    /// What is wasteful about this route (a small file written alone).
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub rule: String,
    pub why: String,
}

/// An open pool in the queue view.
#[derive(Clone, Debug, Serialize)]
pub struct PoolView {
    pub key: String,
    pub rule: String,
    pub library: String,
    pub family: String,
    pub files: u64,
    pub bytes: u64,
    pub oldest_age_s: f64,
    pub target_size: u64,
    pub max_files: u32,
    pub max_wait_s: f64,
    /// The trigger nearest to firing: "size", "files" or "wait".
    pub nearest: &'static str,
    /// How far along that trigger is, 0 to 1 (1: closes at the next check).
    pub progress: f64,
}

/// An archive job in the queue view.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    pub id: i64,
    pub state: JobState,
    pub pool: Option<String>,
    pub library: String,
    pub family: String,
    pub files: usize,
    pub bytes: u64,
    pub age_s: f64,
    pub attempts: u32,
    pub error: Option<String>,
}

/// Enstore's `--get-queue`: open pools, then archive jobs.
#[derive(Clone, Debug, Serialize)]
pub struct QueueView {
    pub pools: Vec<PoolView>,
    pub jobs: Vec<JobView>,
}

/// Which pools [`Archiver::close_pools`] closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closing<'a> {
    /// Those whose first trigger fired (the watcher).
    Due,
    /// Every open pool, whole (`bale queue flush`).
    All,
    /// One pool, whole (`bale queue flush POOL`).
    Pool(&'a str),
}

pub struct Archiver {
    catalog: DynCatalog,
    tape: TapeSystem,
    policy: RwLock<Arc<LoadedPolicy>>,
    /// Where a policy loaded at run time is kept for the next start.
    saved: PathBuf,
}

fn policy_error(what: &str, e: &PolicyError) -> Error {
    let at = match (e.line, e.column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    };
    Error::BadRequest(format!("{what}: invalid policy{at}: {}", e.message))
}

fn age_s(since: Timestamp, now: Timestamp) -> f64 {
    now.0.saturating_sub(since.0).max(0) as f64 / 1e9
}

/// The libraries a file's copies after its first go to: the rule's
/// `copy_to` without the first copy's own library, each configured.
fn copies_after(copy_to: &[String], first: &str, libraries: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for l in copy_to.iter().filter(|l| l.as_str() != first) {
        if !libraries.contains(l) {
            return Err(Error::BadRequest(format!(
                "the policy's copy_to names library {l:?}, which is not a configured library ({})",
                libraries.join(", ")
            )));
        }
        out.push(l.clone());
    }
    Ok(out)
}

/// A policy's `copy_to` names only configured libraries.
pub fn check_copy_libraries(policy: &Policy, libraries: &[String]) -> std::result::Result<(), String> {
    match policy.unknown_copy_library(libraries) {
        Some((rule, l)) => Err(format!(
            "rule {rule:?}: copy_to names library {l:?}, which is not a configured library ({})",
            libraries.join(", ")
        )),
        None => Ok(()),
    }
}

/// What is wasteful in a policy: its direct rules that take files below
/// `direct_min` (each costs a tape file and a file mark).
fn small_direct_warnings(policy: &Policy, direct_min: u64) -> Vec<String> {
    policy
        .rules
        .iter()
        .filter_map(|r| r.small_direct_warning(direct_min))
        .collect()
}

impl Archiver {
    /// Reads the policy a start uses: the configured file, else the one
    /// last loaded at run time, else the built-in one. An invalid
    /// configured file stops the start with its line and column, before
    /// anything is touched.
    pub fn read_policy(configured: &Path, data_dir: &Path) -> Result<LoadedPolicy> {
        let saved = data_dir.join("policy.toml");
        let (text, origin) = if !configured.as_os_str().is_empty() {
            let text = std::fs::read_to_string(configured)
                .map_err(|e| Error::BadRequest(format!("cannot read policy {}: {e}", configured.display())))?;
            (text, configured.display().to_string())
        } else if let Ok(text) = std::fs::read_to_string(&saved) {
            (text, format!("{} (loaded with bale policy load)", saved.display()))
        } else {
            (BUILTIN_POLICY.to_string(), "built-in".to_string())
        };
        let policy = Policy::parse(&text).map_err(|e| policy_error(&origin, &e))?;
        Ok(LoadedPolicy {
            policy,
            origin,
            loaded: Timestamp::now(),
            warnings: Vec::new(),
        })
    }

    /// The archiver, with the policy [`Archiver::read_policy`] read.
    pub fn new(policy: LoadedPolicy, data_dir: &Path, catalog: DynCatalog, tape: TapeSystem) -> Archiver {
        tracing::info!(
            "aggregation policy: {}, {}",
            policy.origin,
            bale_util::human::plural(policy.policy.rules.len() as u64, "rule")
        );
        let mut policy = policy;
        policy.warnings = small_direct_warnings(&policy.policy, tape.direct_min_size());
        for w in &policy.warnings {
            tracing::warn!("aggregation policy: {w}");
        }
        Archiver {
            catalog,
            tape,
            policy: RwLock::new(Arc::new(policy)),
            saved: data_dir.join("policy.toml"),
        }
    }

    pub fn policy(&self) -> Arc<LoadedPolicy> {
        self.policy.read().expect("policy lock").clone()
    }

    /// Replaces the policy with `text` if it is valid, and keeps it for the
    /// next start. An invalid policy changes nothing.
    pub fn load(&self, text: &str, origin: &str) -> Result<Arc<LoadedPolicy>> {
        let policy = Policy::parse(text).map_err(|e| policy_error("rejected, the old policy stays", &e))?;
        check_copy_libraries(&policy, &self.tape.library_names())
            .map_err(|e| Error::BadRequest(format!("invalid policy (rejected, the old policy stays): {e}")))?;
        write_file_durable(&self.saved, text.as_bytes(), 0o644)
            .map_err(|e| Error::Internal(format!("cannot keep the policy in {}: {e}", self.saved.display())))?;
        let warnings = self.warnings(&policy);
        let loaded = Arc::new(LoadedPolicy {
            policy,
            origin: origin.to_string(),
            loaded: Timestamp::now(),
            warnings,
        });
        *self.policy.write().expect("policy lock") = loaded.clone();
        tracing::info!(
            "aggregation policy replaced: {origin}, {}",
            bale_util::human::plural(loaded.policy.rules.len() as u64, "rule")
        );
        Ok(loaded)
    }

    /// The policy's decision on a file, handed to `f`.
    fn decide<T>(&self, facts: &FileFacts<'_>, f: impl FnOnce(Decision<'_>) -> T) -> T {
        let loaded = self.policy();
        f(loaded.policy.route(facts))
    }

    /// How a new file goes to tape. Files at or above tape.direct_min_size
    /// always go direct; the policy decides the rest.
    pub fn route(&self, facts: &FileFacts<'_>) -> Result<ArchiveRoute> {
        let libraries = self.tape.library_names();
        let mut target = bale_policy::target_for(facts.tags, &libraries).map_err(Error::BadRequest)?;
        let direct = facts.size >= self.tape.direct_min_size();
        self.decide(facts, |d| {
            // Several tape copies: one more in each library the rule names,
            // other than the one the first copy goes to.
            target.copies = copies_after(&d.rule.copy_to, &target.library, &libraries)?;
            if direct {
                return Ok(ArchiveRoute::Direct(target));
            }
            Ok(match (d.route, &d.rule.action) {
                (Route::Aggregate { pool }, Action::Aggregate(a)) => ArchiveRoute::Pool(PoolTarget {
                    key: pool,
                    rule: d.rule.name.clone(),
                    target,
                    limits: PoolLimits {
                        target_size: a.target_size,
                        max_files: a.max_files,
                        max_wait_ms: (a.max_wait_s * 1000.0).round() as u64,
                    },
                }),
                _ => ArchiveRoute::Direct(target),
            })
        })
    }

    /// What the policy does with a file, and why (`bale policy check`).
    pub fn explain(&self, facts: &FileFacts<'_>) -> Result<Explanation> {
        let target = bale_policy::target_for(facts.tags, &self.tape.library_names()).map_err(Error::BadRequest)?;
        let size = facts.size;
        Ok(self.decide(facts, |d| self.explanation(d, size, &target)))
    }

    fn explanation(&self, d: Decision<'_>, size: u64, target: &JobTarget) -> Explanation {
        let (route, pool, why) = if size >= self.tape.direct_min_size() {
            (
                "direct",
                None,
                format!(
                    "size {size} is at or above tape.direct_min_size {}: direct whatever the rule",
                    self.tape.direct_min_size()
                ),
            )
        } else {
            match d.route {
                Route::Direct => ("direct", None, d.why.clone()),
                Route::Aggregate { pool } => ("aggregate", Some(pool), d.why.clone()),
            }
        };
        Explanation {
            rule: d.rule.name.clone(),
            index: d.index + 1,
            line: d.rule.line,
            route,
            pool,
            library: target.library.clone(),
            family: target.family.to_string(),
            copies: d
                .rule
                .copy_to
                .iter()
                .filter(|l| **l != target.library)
                .cloned()
                .collect(),
            why,
            skipped: d
                .skipped
                .iter()
                .map(|(r, w)| Skipped {
                    rule: r.to_string(),
                    why: w.clone(),
                })
                .collect(),
            warnings: match (route, size < self.tape.direct_min_size()) {
                ("direct", true) => d
                    .rule
                    .small_direct_warning(self.tape.direct_min_size())
                    .into_iter()
                    .collect(),
                _ => Vec::new(),
            },
        }
    }

    fn warnings(&self, policy: &Policy) -> Vec<String> {
        small_direct_warnings(policy, self.tape.direct_min_size())
    }

    /// Closes pools and queues their jobs for tape: the due ones one
    /// package's worth at a time while their trigger holds, or flushed ones
    /// whole.
    pub async fn close_pools(&self, which: Closing<'_>) -> Result<Vec<ArchiveJob>> {
        let pools = self.catalog.pools().await?;
        if let Closing::Pool(key) = which {
            if !pools.iter().any(|p| p.key == key) {
                return Err(Error::NotFound(format!(
                    "no open pool {key:?}; bale queue lists the open pools"
                )));
            }
        }
        let mut closed = Vec::new();
        for p in &pools {
            let forced = match which {
                Closing::Due => false,
                Closing::All => true,
                Closing::Pool(key) if key == p.key => true,
                Closing::Pool(_) => continue,
            };
            if !forced && !p.limits.triggered(p.files, p.bytes, p.oldest, Timestamp::now()) {
                continue;
            }
            // One package's worth at a time, while the trigger holds.
            while let Some(job) = self.catalog.close_pool(&p.key, Timestamp::now(), forced).await? {
                bale_util::crash::point("pool.closed");
                tracing::info!(
                    "pool {} closed{}: job {} with {} file(s), {} bytes",
                    p.key,
                    if forced { " by request" } else { "" },
                    job.id,
                    job.files.len(),
                    job.bytes
                );
                metrics::counter!(bale_util::metrics::POOLS_CLOSED).increment(1);
                self.tape.enqueue(job.clone());
                closed.push(job);
            }
        }
        Ok(closed)
    }

    /// Makes sure every live file is on its way to tape, and repairs what
    /// is not, with an alarm: (1) queued archive jobs that the scheduler
    /// does not hold (older than a grace period, so that a job whose commit
    /// is about to hand it over is left to that commit) go to the
    /// scheduler; (2) files in no pool, no job and no package are routed
    /// again by the policy in force.
    pub async fn check_on_way(&self, stuck_after: std::time::Duration) -> Result<OnWayReport> {
        const GRACE_NS: i64 = 30_000_000_000;
        let mut report = OnWayReport::default();
        // The scheduler's jobs first, then the catalog's: a job the
        // scheduler finishes in between is gone from the catalog too.
        let known = self.tape.known_jobs();
        let now = Timestamp::now();
        for job in self.catalog.archive_jobs().await? {
            if job.state == JobState::Queued && !known.contains(&job.id) && now.0 - job.created.0 > GRACE_NS {
                let id = job.id;
                if self.tape.enqueue(job) {
                    report.jobs_requeued.push(id);
                }
            }
        }
        let stranded = self.catalog.stranded_files(10_000).await?;
        // Their paths in one read (a file deleted meanwhile drops out).
        let ids: Vec<_> = stranded.iter().filter_map(|n| n.file_id).collect();
        let stranded = self.catalog.files_with_paths(&ids).await?;
        let mut reroutes = Vec::with_capacity(stranded.len());
        for (node, path) in &stranded {
            let route = self.route(&FileFacts {
                path,
                size: node.size,
                owner: &node.owner,
                group: &node.group,
                tags: &node.tags,
            })?;
            report.files_rerouted.push(path.clone());
            reroutes.push(Reroute {
                file_id: node.file_id.expect("a file"),
                size: node.size,
                route,
                at: now,
            });
        }
        if !reroutes.is_empty() {
            for job in self.catalog.reroute_files(&reroutes).await? {
                self.tape.enqueue(job);
            }
        }
        if !report.jobs_requeued.is_empty() {
            let msg = format!(
                "{} queued archive job(s) were not scheduled and are now: {:?}",
                report.jobs_requeued.len(),
                report.jobs_requeued
            );
            tracing::error!("{msg}");
            self.catalog.raise_alarm("error", "archive", &msg).await?;
        }
        if !report.files_rerouted.is_empty() {
            let first: Vec<&str> = report.files_rerouted.iter().take(10).map(String::as_str).collect();
            let msg = format!(
                "{} on no way to tape (no pool, no archive job, no tape copy), routed again: {}{}",
                bale_util::human::plural(report.files_rerouted.len() as u64, "file"),
                first.join(", "),
                if report.files_rerouted.len() > first.len() {
                    ", ..."
                } else {
                    ""
                }
            );
            tracing::error!("{msg}");
            self.catalog.raise_alarm("error", "archive", &msg).await?;
        }
        // On their way but long overdue (Enstore's "stuck in transition"):
        // a drive, a volume or a job needs an operator. The message names
        // the oldest such file and stays the same from check to check while
        // it waits, so the repeats fold into one alarm.
        let stuck = self
            .catalog
            .stuck_files(now, stuck_after.as_nanos() as i64, 10_000)
            .await?;
        report.files_stuck = stuck.len();
        if let Some((oldest, since)) = stuck.first() {
            let path = match self.catalog.files_with_paths(&[*oldest]).await?.first() {
                Some((_, path)) => path.clone(),
                None => format!("file id {oldest}"),
            };
            tracing::warn!(
                "{}{} file(s) not on tape {} s after they were due; the oldest, {path}, waits since {}",
                stuck.len(),
                if stuck.len() == 10_000 { "+" } else { "" },
                stuck_after.as_secs(),
                since.0
            );
            let msg = format!(
                "files are stuck on their way to tape: not archived {} s after their rule's maximum wait \
                 (the oldest: {path}); `bale queue` shows their pools and jobs",
                stuck_after.as_secs()
            );
            self.catalog.raise_alarm("warning", "archive", &msg).await?;
        }
        Ok(report)
    }

    /// Open pools with their nearest trigger, and the archive jobs.
    pub async fn queue(&self) -> Result<QueueView> {
        let now = Timestamp::now();
        let pools = self
            .catalog
            .pools()
            .await?
            .into_iter()
            .map(|p| pool_view(p, now))
            .collect();
        let jobs = self
            .catalog
            .archive_jobs()
            .await?
            .into_iter()
            .map(|j| JobView {
                id: j.id,
                state: j.state,
                pool: j.pool,
                library: j.target.library,
                family: j.target.family.to_string(),
                files: j.files.len(),
                bytes: j.bytes,
                age_s: age_s(j.created, now),
                attempts: j.attempts,
                error: j.error,
            })
            .collect();
        Ok(QueueView { pools, jobs })
    }
}

fn pool_view(p: PoolSummary, now: Timestamp) -> PoolView {
    let age = age_s(p.oldest, now);
    let wait = p.limits.max_wait_ms as f64 / 1000.0;
    let candidates = [
        ("size", p.bytes as f64 / p.limits.target_size.max(1) as f64),
        ("files", p.files as f64 / p.limits.max_files.max(1) as f64),
        ("wait", if wait > 0.0 { age / wait } else { 1.0 }),
    ];
    let (nearest, progress) = candidates
        .into_iter()
        .fold(("size", -1.0), |best, c| if c.1 > best.1 { c } else { best });
    PoolView {
        key: p.key,
        rule: p.rule,
        library: p.target.library,
        family: p.target.family.to_string(),
        files: p.files,
        bytes: p.bytes,
        oldest_age_s: age,
        target_size: p.limits.target_size,
        max_files: p.limits.max_files,
        max_wait_s: wait,
        nearest,
        progress: progress.min(1.0),
    }
}
