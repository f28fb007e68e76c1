//! Tape copies read back and judged, and bad copies rewritten from good
//! ones: the machinery behind `bale verify` (`crate::verify`), the repair
//! worker and the scrub. See `crate::verify` for what they do together.

use crate::stager::copy_found_bad;
use crate::Result;
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
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// A tape copy that did not check out, or could not be read.
#[derive(Clone, Debug, Serialize)]
pub struct CopyProblem {
    pub package: String,
    pub volume: String,
    pub seq: u32,
    pub error: String,
}

/// What reading packages found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TapeCheck {
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
}

/// Where a verify's members go: nowhere. The package reader checks each
/// member's adler32 as the sink consumes it; the sink holds the rate.
struct VerifySink {
    throttle: Mutex<Throttle>,
}

impl MemberSink for VerifySink {
    fn member(&self, m: &ManifestMember, data: &mut dyn Read) -> std::io::Result<()> {
        // Sized to the member (small members are the many), at most 1 MiB.
        let mut buf = vec![0u8; (m.meta.size as usize).clamp(1, 1 << 20)];
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

/// Reads `pkgs` (already bad ones are skipped), judging each: good ones
/// are recorded as verified, bad ones marked bad.
pub(crate) async fn verify_packages(
    catalog: &DynCatalog,
    tape: &TapeSystem,
    pkgs: Vec<Package>,
    rate: Option<u64>,
    repair: &Notify,
) -> Result<TapeCheck> {
    let mut report = TapeCheck::default();
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
    Ok(report)
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
