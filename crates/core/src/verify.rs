//! Verifying copies, and rewriting bad tape copies from good ones.
//!
//! `bale verify` re-reads a volume's packages (in tape order, one mount),
//! one package, or the cache, and checks every byte against the catalog:
//! a tape file's size and adler32 and each member's adler32 (the package
//! reader checks them as it streams, nothing is written), a cached file's
//! adler32 (the cache half of `bale fsck --checksums`, with repair). Reads
//! can be held to a byte rate. A tape copy whose data does not check out on
//! every attempt is marked bad in the catalog (`mark_package_bad`) with an
//! error alarm; a read through the stager that finds the same marks it
//! too. A copy that could not be read for another reason (a drive, a
//! volume out of service) is reported and not judged.
//!
//! A bad copy is rewritten by the repair worker ([`RepairWorker`]): every
//! live member of a bad package that has no good copy left in that
//! package's library gets a new copy there, written from the cache by an
//! archive job of the library's family; a member that is not cached is
//! first staged from a good copy elsewhere (pinned meanwhile). Its state is
//! the catalog's (bad packages, jobs), so a crash anywhere in it is picked
//! up by the next round. A file stays readable throughout: reads skip bad
//! copies and fall back from one good copy to the next. A file whose every
//! copy is bad and that is not cached cannot be rewritten: an error alarm.
//!
//! The scrub ([`Scrubber`], off unless `verify.scrub_period_s` is set)
//! verifies every good package once per period, the never verified and
//! longest unverified first, one at a time at `verify.scrub_rate`.

use crate::auth::Principal;
use crate::fsck::FsckReport;
use crate::service::Service;
use crate::{Error, Result};
use bale_catalog::{DynCatalog, JobTarget, Package};
use bale_pack::ManifestMember;
use bale_tape::{MemberSink, TapeError, TapeSystem};
use bale_util::background::{State, Status, Worker};
use bale_util::throttle::Throttle;
use bale_util::{FileId, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// What `bale verify` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyTarget {
    /// Every package on a volume, in tape order.
    Volume(String),
    /// One package.
    Package(String),
    /// Every cached file's data.
    Cache,
}

/// A tape copy that did not check out, or could not be read.
#[derive(Clone, Debug, Serialize)]
pub struct CopyProblem {
    pub package: String,
    pub volume: String,
    pub seq: u32,
    pub error: String,
}

/// What a verify found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Packages read.
    pub packages: u64,
    /// Of them, whose data checked out.
    pub good: u64,
    /// Bytes read from tape.
    pub bytes: u64,
    /// Copies found bad now: marked bad, rewritten from good copies.
    pub bad: Vec<CopyProblem>,
    /// Copies marked bad before: not read again.
    pub already_bad: Vec<String>,
    /// Copies that could not be read (not judged).
    pub unreadable: Vec<CopyProblem>,
    /// The cache's check (`--cache`).
    pub cache: Option<FsckReport>,
    pub seconds: f64,
}

impl VerifyReport {
    /// Problems found: bad copies, unreadable copies, cache problems.
    pub fn problems(&self) -> usize {
        self.bad.len() + self.unreadable.len() + self.cache.as_ref().map_or(0, |c| c.problems.len())
    }
}

/// Where a verify's members go: nowhere. The package reader checks each
/// member's adler32 as the sink consumes it; the sink holds the rate.
struct VerifySink {
    throttle: Mutex<Throttle>,
}

impl MemberSink for VerifySink {
    fn member(&self, _m: &ManifestMember, data: &mut dyn Read) -> std::io::Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = data.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            let wait = self.throttle.lock().unwrap().wait_after(n as u64);
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }
}

/// Records a tape copy found bad: the package marked bad (the first reason
/// stays) and an error alarm; the repair worker rewrites its files.
pub(crate) async fn copy_found_bad(catalog: &DynCatalog, pkg: &Package, why: &str) -> Result<()> {
    let now = Timestamp::now();
    let marked = catalog.mark_package_bad(&pkg.id, why, now).await?;
    let msg = format!(
        "package {} (tape file {} of volume {}) does not check out: {why}; the copy is marked bad and its \
         files are rewritten from their good copies",
        pkg.id, pkg.seq, pkg.volume
    );
    tracing::error!("{msg}");
    metrics::counter!("bale_verify_bad_copies_total").increment(1);
    if marked.is_some() {
        catalog
            .raise_alarm("error", &format!("volume {}", pkg.volume), &msg)
            .await?;
    }
    Ok(())
}

/// Reads `pkgs` (already bad ones are skipped), judging each: good ones
/// are recorded as verified, bad ones marked bad.
pub(crate) async fn verify_packages(
    catalog: &DynCatalog,
    tape: &TapeSystem,
    pkgs: Vec<Package>,
    rate: Option<u64>,
    repair: &Notify,
) -> Result<VerifyReport> {
    let t0 = Instant::now();
    let mut report = VerifyReport::default();
    let (bad, pkgs): (Vec<Package>, Vec<Package>) = pkgs.into_iter().partition(|p| p.bad.is_some());
    report.already_bad = bad.into_iter().map(|p| p.id).collect();
    let sink = Arc::new(VerifySink {
        throttle: Mutex::new(Throttle::new(rate)),
    });
    // One request for all: a volume is mounted once, read in tape order.
    let reads = tape.unpack_many(
        pkgs.iter()
            .map(|p| (p.volume.clone(), p.seq, sink.clone() as Arc<dyn MemberSink>))
            .collect(),
    );
    for (pkg, read) in pkgs.into_iter().zip(reads) {
        report.packages += 1;
        let r = read
            .await
            .unwrap_or_else(|_| Err(TapeError::Failed("the tape system stopped".into())));
        let problem = |error: String| CopyProblem {
            package: pkg.id.clone(),
            volume: pkg.volume.clone(),
            seq: pkg.seq,
            error,
        };
        match r {
            Ok(done) => {
                report.good += 1;
                report.bytes += done.bytes;
                catalog.package_verified(&pkg.id, Timestamp::now()).await?;
            }
            Err(TapeError::BadData(m)) => {
                copy_found_bad(catalog, &pkg, &m).await?;
                repair.notify_one();
                report.bad.push(problem(m));
            }
            Err(e) => report.unreadable.push(problem(e.to_string())),
        }
    }
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

impl Service {
    /// `bale verify`: re-reads and re-checksums copies (administrators).
    /// `rate` (bytes a second) holds the reads back; `None`: the
    /// configured scrub rate.
    pub async fn verify(&self, who: &Principal, target: VerifyTarget, rate: Option<u64>) -> Result<VerifyReport> {
        crate::admin::allow(who, crate::admin::Who::Admin, "verify copies")?;
        let rate = rate.or(Some(self.config.verify.scrub_rate.as_u64())).filter(|r| *r > 0);
        let pkgs = match &target {
            VerifyTarget::Cache => return self.verify_cache(rate).await,
            VerifyTarget::Volume(label) => {
                if self.catalog.volume(label).await?.is_none() {
                    return Err(Error::NotFound(format!("no volume {label:?}; bale volumes lists them")));
                }
                self.catalog.packages(Some(label)).await?
            }
            VerifyTarget::Package(id) => match self.catalog.package(id).await? {
                Some((p, _)) => vec![p],
                None => return Err(Error::NotFound(format!("no package {id:?}; bale packages lists them"))),
            },
        };
        verify_packages(&self.catalog, &self.tape, pkgs, rate, &self.stager.repair_wake).await
    }

    /// The cache half: every cached file's data checksummed and repaired
    /// as `bale fsck --repair --checksums` does; a damaged copy of a file
    /// on tape is dropped (a read stages it back) with a warning alarm.
    async fn verify_cache(&self, rate: Option<u64>) -> Result<VerifyReport> {
        let t0 = Instant::now();
        let settle = self.config.cache.fsck_settle_s as i64 * 1_000_000_000;
        let fsck = self
            .check_cache_at_rate(true, true, Timestamp::now().0 - settle, rate)
            .await?;
        for p in fsck.problems.iter().filter(|p| p.kind == "bad checksum" && p.repaired) {
            let msg = format!(
                "the cache copy of {} was damaged (adler32 mismatch): dropped, a read stages the file from tape",
                p.path.as_deref().or(p.file_id.as_deref()).unwrap_or("a file")
            );
            self.catalog.raise_alarm("warning", "cache", &msg).await?;
        }
        Ok(VerifyReport {
            cache: Some(fsck),
            seconds: t0.elapsed().as_secs_f64(),
            ..VerifyReport::default()
        })
    }
}

/// The owner of the pins that keep files staged for their rewrite cached.
pub const REPAIR_PIN: &str = "bale-repair";

/// Rewrites bad tape copies from good ones (see the module).
pub(crate) struct RepairWorker {
    pub catalog: DynCatalog,
    pub tape: TapeSystem,
    pub stager: Arc<crate::stager::Stager>,
    pub every: Duration,
    pub queued: u64,
    pub staged: u64,
}

impl RepairWorker {
    /// One round; true if it made progress that the next round builds on.
    async fn round(&mut self) -> Result<bool> {
        let work = self.catalog.repair_work(2000).await?;
        if work.is_empty() {
            return Ok(false);
        }
        let now = Timestamp::now();
        let mut cached: BTreeMap<JobTarget, Vec<(FileId, u64)>> = BTreeMap::new();
        let mut to_stage = Vec::new();
        for w in &work {
            match (w.cached, w.has_good) {
                (true, _) => cached.entry(w.target.clone()).or_default().push((w.file_id, w.size)),
                (false, true) => to_stage.push(w.file_id),
                (false, false) => {
                    let msg = format!(
                        "file {}: every tape copy of it is bad and it is not cached: it cannot be rewritten",
                        w.file_id
                    );
                    tracing::error!("{msg}");
                    self.catalog.raise_alarm("error", "verify", &msg).await?;
                }
            }
        }
        let mut progress = false;
        for (target, files) in cached {
            if let Some(job) = self.catalog.queue_repair(&target, &files).await? {
                tracing::info!(
                    "archive job {}: rewriting {} file(s) with a bad copy into library {}",
                    job.id,
                    job.files.len(),
                    target.library
                );
                self.queued += job.files.len() as u64;
                self.tape.enqueue(job);
                progress = true;
            }
            // In a job now (or needing nothing): the job keeps them cached.
            let ids: Vec<FileId> = files.iter().map(|f| f.0).collect();
            self.catalog.unpin(&ids, REPAIR_PIN).await?;
        }
        if !to_stage.is_empty() {
            // Pinned so that no purge takes them between their stage and
            // their job; the pin outlives a crash and then runs out.
            let hour = Timestamp(now.0 + 3600 * 1_000_000_000);
            self.catalog.pin(&to_stage, REPAIR_PIN, now, hour).await?;
            let mut pkgs: BTreeMap<String, Package> = BTreeMap::new();
            for id in &to_stage {
                if let Some(c) = self
                    .catalog
                    .tape_copies(*id)
                    .await?
                    .into_iter()
                    .find(|c| c.package.bad.is_none())
                {
                    pkgs.entry(c.package.id.clone()).or_insert(c.package);
                }
            }
            for mut rx in self.stager.stage_packages(pkgs.into_values().collect()).await {
                let outcome = rx.wait_for(|o| o.is_some()).await.ok().and_then(|o| o.clone());
                match outcome {
                    Some(Ok(n)) => {
                        self.staged += n as u64;
                        progress = true;
                    }
                    Some(Err(e)) => tracing::warn!("staging a file for the rewrite of a bad copy failed: {e}"),
                    None => {}
                }
            }
        }
        Ok(progress)
    }
}

#[async_trait::async_trait]
impl Worker for RepairWorker {
    fn name(&self) -> String {
        "repair".into()
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        s.counters.insert("queued".into(), self.queued);
        s.counters.insert("staged".into(), self.staged);
        s
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> std::result::Result<State, String> {
        if *stop.borrow() {
            return Ok(State::Done);
        }
        match self.round().await {
            Ok(true) => Ok(State::Busy),
            Ok(false) => Ok(State::Idle),
            Err(e) => Err(format!("rewriting bad copies failed: {e}")),
        }
    }

    async fn wait_for_work(&mut self) -> State {
        tokio::select! {
            _ = self.stager.repair_wake.notified() => {}
            _ = tokio::time::sleep(self.every) => {}
        }
        State::Busy
    }
}

/// Verifies every good package once per period (see the module).
pub(crate) struct Scrubber {
    pub catalog: DynCatalog,
    pub tape: TapeSystem,
    pub stager: Arc<crate::stager::Stager>,
    pub period: Duration,
    pub rate: Option<u64>,
    pub verified: u64,
    pub bad: u64,
}

#[async_trait::async_trait]
impl Worker for Scrubber {
    fn name(&self) -> String {
        "scrub".into()
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        s.counters.insert("verified".into(), self.verified);
        s.counters.insert("bad".into(), self.bad);
        s
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> std::result::Result<State, String> {
        if *stop.borrow() {
            return Ok(State::Done);
        }
        let before = Timestamp(Timestamp::now().0 - self.period.as_nanos() as i64);
        let due = self
            .catalog
            .due_for_verify(before, 1)
            .await
            .map_err(|e| format!("scrub: {e}"))?;
        if due.is_empty() {
            return Ok(State::Throttled(
                (self.period / 20).clamp(Duration::from_secs(1), Duration::from_secs(60)),
            ));
        }
        let r = verify_packages(&self.catalog, &self.tape, due, self.rate, &self.stager.repair_wake)
            .await
            .map_err(|e| format!("scrub: {e}"))?;
        self.verified += r.good;
        self.bad += r.bad.len() as u64;
        if !r.unreadable.is_empty() {
            // Not judged; tried again next period. A pause keeps a volume
            // out of service from being asked for again at once.
            return Ok(State::Throttled(Duration::from_secs(10)));
        }
        Ok(State::Busy)
    }

    async fn wait_for_work(&mut self) -> State {
        // Never idle: it throttles itself between rounds.
        State::Busy
    }
}
