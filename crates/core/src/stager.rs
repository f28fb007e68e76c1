//! Staging: bringing files whose only copy is on tape back into the cache.
//!
//! A file is staged by staging its package: the tape system reads the
//! package once, streaming every member straight into the cache's stage
//! area (no copy of the package on disk), each member's adler32 and the
//! package's checked on the way; only when the whole package checked out
//! are the members moved into `files/` and marked cached, in ONE catalog
//! transaction, every member at once (as Enstore does). Requests for any
//! members of a package while its stage runs wait for that one stage: one
//! tape read, however many ask; waiters are woken by a channel, never by
//! polling. A member already cached keeps its copy; a member deleted
//! meanwhile is dropped. A failed read fails every waiter with its reason
//! (the drive has raised the alarm).
//!
//! Residency changes are serialized (`residency`): a purge (catalog mark,
//! then data removed) and a stage's promotion (check, move, mark) of the
//! same file never interleave.

use crate::{Error, Result};
use bale_cache::Cache;
use bale_catalog::{DynCatalog, Package};
use bale_pack::ManifestMember;
use bale_tape::{MemberSink, TapeSystem};
use bale_util::background::{State, Status, Worker};
use bale_util::{FileId, Timestamp};
use std::collections::HashMap;
use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Where a stage's members go: the cache's stage area.
struct CacheSink {
    cache: Cache,
    written: Mutex<Vec<FileId>>,
    /// Set when the stage is cancelled: the read stops at the next member.
    cancelled: AtomicBool,
}

impl MemberSink for CacheSink {
    fn member(&self, m: &ManifestMember, data: &mut dyn Read) -> std::io::Result<()> {
        let cancelled = || std::io::Error::new(std::io::ErrorKind::Interrupted, "the stage was cancelled");
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(cancelled());
        }
        // Noted before it is written: a member cut short (a bad package, a
        // cancel) is in the list its cleanup removes.
        self.written.lock().unwrap().push(m.meta.file_id);
        self.cache.write_staged(m.meta.file_id, data)?;
        // Cancelled while writing: the cleanup may have run before this
        // file was complete, so it goes here.
        if self.cancelled.load(Ordering::SeqCst) {
            self.cache.discard_staged(&[m.meta.file_id])?;
            return Err(cancelled());
        }
        Ok(())
    }
}

type Outcome = Option<std::result::Result<usize, String>>;

/// Package stages the stage worker keeps under way for stage requests at
/// once. A drive reads the queued packages of its volume in tape order;
/// when half the window is done the worker queues the next ones.
pub(crate) const STAGE_WINDOW: usize = 256;

/// What a stage's waiters see when it was cancelled.
const CANCELLED: &str = "the stage was cancelled";
/// How a stage that found the cache's filesystem full ends: its request
/// files stay open and the stage worker tries again in its next round.
const NO_SPACE: &str = "the cache filesystem is full";

/// A stage under way.
struct Inflight {
    rx: watch::Receiver<Outcome>,
    /// Its package's members; None while the stage is being set up.
    members: Option<Vec<FileId>>,
    /// A read-through GET asked for it: no request's cancel stops it.
    for_reader: bool,
    cancel: Arc<tokio::sync::Notify>,
}

pub(crate) struct Stager {
    /// File history: what was staged.
    pub(crate) events: crate::events::EventLog,
    catalog: DynCatalog,
    cache: Cache,
    tape: TapeSystem,
    /// Stages under way, by package id: their outcome when it comes.
    inflight: Mutex<HashMap<String, Inflight>>,
    /// Serializes changes of cache residency (stage promotions, purges).
    pub(crate) residency: tokio::sync::Mutex<()>,
    /// Wakes the stage worker: a request arrived.
    pub(crate) wake: tokio::sync::Notify,
    /// Wakes the repair worker: a copy was found bad.
    pub(crate) repair_wake: tokio::sync::Notify,
}

impl Stager {
    pub(crate) fn new(catalog: DynCatalog, cache: Cache, tape: TapeSystem, events: crate::events::EventLog) -> Stager {
        Stager {
            events,
            catalog,
            cache,
            tape,
            inflight: Mutex::new(HashMap::new()),
            residency: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            repair_wake: tokio::sync::Notify::new(),
        }
    }

    /// Stages a package holding `file` and waits for it: its first good
    /// tape copy (good copies on readable volumes come first), and if that
    /// read fails the next one (several tape copies). Returns once the file
    /// is cached (or was already).
    pub(crate) async fn stage_file(self: &Arc<Self>, file: FileId, path: &str) -> Result<()> {
        let copies: Vec<_> = self
            .catalog
            .tape_copies(file)
            .await?
            .into_iter()
            .filter(|c| c.package.bad.is_none())
            .collect();
        if copies.is_empty() {
            return Err(Error::Conflict(format!(
                "{path} is not cached and has no good tape copy (file id {file})"
            )));
        }
        let n = copies.len();
        let mut last = None;
        for (i, copy) in copies.into_iter().enumerate() {
            let (id, volume) = (copy.package.id.clone(), copy.package.volume.clone());
            match self.stage_package(copy.package).await {
                Ok(_) => return Ok(()),
                // A full cache is not the copy's fault: another copy would
                // not fit either.
                Err(e @ Error::InsufficientStorage(_)) => return Err(e),
                Err(e) => {
                    if i + 1 < n {
                        tracing::warn!(
                            "{path}: staging its copy in package {id} on {volume} failed ({e}); trying its next copy"
                        );
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.expect("one copy at least"))
    }

    /// Stages one package for a reader, joining a stage of it already under
    /// way. Returns how many members it made cached.
    pub(crate) async fn stage_package(self: &Arc<Self>, pkg: Package) -> Result<usize> {
        let mut rx = self.start(vec![pkg], true).await.pop().expect("one");
        let outcome = rx
            .wait_for(|o| o.is_some())
            .await
            .map_err(|_| Error::Internal("the stage was abandoned".into()))?
            .clone()
            .expect("some");
        outcome.map_err(|e| match e.starts_with(NO_SPACE) {
            true => Error::InsufficientStorage(e),
            false => Error::Unavailable(e),
        })
    }

    /// Starts stages of `pkgs` (joining those under way), all queued to the
    /// tape system in one step: each volume is mounted once and its
    /// packages read in position order. Returns a receiver of each
    /// package's outcome.
    pub(crate) async fn stage_packages(self: &Arc<Self>, pkgs: Vec<Package>) -> Vec<watch::Receiver<Outcome>> {
        self.start(pkgs, false).await
    }

    async fn start(self: &Arc<Self>, pkgs: Vec<Package>, for_reader: bool) -> Vec<watch::Receiver<Outcome>> {
        let mut out = Vec::with_capacity(pkgs.len());
        let mut new = Vec::new();
        {
            let mut inflight = self.inflight.lock().unwrap();
            for pkg in pkgs {
                match inflight.get_mut(&pkg.id) {
                    Some(f) => {
                        f.for_reader |= for_reader;
                        out.push(f.rx.clone());
                    }
                    None => {
                        let (tx, rx) = watch::channel(None);
                        let cancel = Arc::new(tokio::sync::Notify::new());
                        inflight.insert(
                            pkg.id.clone(),
                            Inflight {
                                rx: rx.clone(),
                                members: None,
                                for_reader,
                                cancel: cancel.clone(),
                            },
                        );
                        out.push(rx);
                        new.push((pkg, tx, cancel));
                    }
                }
            }
        }
        if new.is_empty() {
            return out;
        }
        // The members of each package, for the requests' bookkeeping, and
        // their open stage files started: one catalog call for them all. A
        // package none of whose live members needs its copy any more (a
        // stage of it just finished) is done without a tape read. If the
        // call fails, every package is read (members unknown: the next
        // round of the stage worker settles the requests' files).
        let ids: Vec<String> = new.iter().map(|(p, _, _)| p.id.clone()).collect();
        let begun = match self.catalog.begin_stages(&ids, Timestamp::now()).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("recording the start of staging {} package(s) failed: {e}", ids.len());
                ids.iter()
                    .map(|_| bale_catalog::BegunStage {
                        members: Vec::new(),
                        needs_read: true,
                    })
                    .collect()
            }
        };
        let mut members = Vec::with_capacity(new.len());
        let mut needed = Vec::with_capacity(new.len());
        let mut finished = Vec::new();
        for ((pkg, tx, cancel), b) in new.into_iter().zip(begun) {
            if !b.needs_read {
                finished.extend_from_slice(&b.members);
                self.inflight.lock().unwrap().remove(&pkg.id);
                let _ = tx.send(Some(Ok(0)));
                continue;
            }
            if let Some(f) = self.inflight.lock().unwrap().get_mut(&pkg.id) {
                f.members = Some(b.members.clone());
            }
            members.push(b.members);
            needed.push((pkg, tx, cancel));
        }
        if !finished.is_empty() {
            let _ = self
                .catalog
                .stage_files_finished(&finished, Timestamp::now(), None)
                .await;
        }
        let new = needed;
        if new.is_empty() {
            return out;
        }
        let sinks: Vec<Arc<CacheSink>> = new
            .iter()
            .map(|_| {
                Arc::new(CacheSink {
                    cache: self.cache.clone(),
                    written: Mutex::new(Vec::new()),
                    cancelled: AtomicBool::new(false),
                })
            })
            .collect();
        let reads = self.tape.unpack_many(
            new.iter()
                .zip(&sinks)
                .map(|((p, _, _), sink)| (p.volume.clone(), p.seq, sink.clone() as Arc<dyn MemberSink>))
                .collect(),
        );
        for ((((pkg, tx, cancel), sink), mut read), members) in new.into_iter().zip(sinks).zip(reads).zip(members) {
            let me = self.clone();
            let started = std::time::Instant::now();
            tokio::spawn(async move {
                let id = pkg.id.clone();
                let done = tokio::select! {
                    r = &mut read => Some(r),
                    _ = cancel.notified() => None,
                };
                let outcome = match done {
                    Some(r) => {
                        let r =
                            r.unwrap_or_else(|_| Err(bale_tape::TapeError::Failed("the tape system stopped".into())));
                        let r = me.finish(pkg, &sink, r, &members).await;
                        if r.is_ok() {
                            metrics::histogram!(bale_util::metrics::STAGE_SECONDS)
                                .record(started.elapsed().as_secs_f64());
                        }
                        r
                    }
                    None => {
                        // Nobody waits for the read any more: the tape
                        // system drops it if queued, and a read under way
                        // stops at the next member. What was written goes.
                        drop(read);
                        sink.cancelled.store(true, Ordering::SeqCst);
                        let written = std::mem::take(&mut *sink.written.lock().unwrap());
                        let cache = me.cache.clone();
                        let _ = tokio::task::spawn_blocking(move || cache.discard_staged(&written)).await;
                        tracing::info!("stage of package {id} cancelled: no request needs it");
                        metrics::counter!(bale_util::metrics::STAGE_CANCELLED).increment(1);
                        Err(CANCELLED.to_string())
                    }
                };
                let cancelled = outcome.as_ref().is_err_and(|e| e == CANCELLED);
                let left = {
                    let mut inflight = me.inflight.lock().unwrap();
                    inflight.remove(&id);
                    inflight.len()
                };
                let _ = tx.send(Some(outcome));
                if cancelled || left == STAGE_WINDOW / 2 || left == 0 {
                    // A request that asked for the package meanwhile gets
                    // a fresh stage of it; half the window done, the
                    // worker queues the next packages.
                    me.wake.notify_one();
                }
            });
        }
        out
    }

    /// Cancels the stages no one needs any more: those no read-through GET
    /// asked for whose members have no open file in any stage request.
    /// Returns how many it cancelled.
    pub(crate) async fn cancel_unneeded(&self) -> Result<usize> {
        let candidates: Vec<String> = {
            let inflight = self.inflight.lock().unwrap();
            inflight
                .iter()
                .filter(|(_, f)| !f.for_reader && f.members.is_some())
                .map(|(id, _)| id.clone())
                .collect()
        };
        if candidates.is_empty() {
            return Ok(0);
        }
        let wanted: HashSet<String> = self
            .catalog
            .stage_packages_wanted(&candidates)
            .await?
            .into_iter()
            .collect();
        let inflight = self.inflight.lock().unwrap();
        let mut n = 0;
        for id in candidates.iter().filter(|id| !wanted.contains(*id)) {
            if let Some(f) = inflight.get(id).filter(|f| !f.for_reader) {
                f.cancel.notify_one();
                n += 1;
            }
        }
        Ok(n)
    }

    /// The packages whose stages are under way.
    pub(crate) fn inflight_ids(&self) -> HashSet<String> {
        self.inflight.lock().unwrap().keys().cloned().collect()
    }

    /// After a package's tape read: promotion and the catalog's marks, or
    /// the stage area cleaned up; and the stage requests' files finished.
    async fn finish(
        &self,
        pkg: Package,
        sink: &CacheSink,
        read: bale_tape::Result<bale_tape::ReadDone>,
        members: &[FileId],
    ) -> std::result::Result<usize, String> {
        let mut written = std::mem::take(&mut *sink.written.lock().unwrap());
        // A retried read writes its members again.
        written.sort();
        written.dedup();
        let r = match read {
            Ok(_) => self.promote(&pkg, written).await,
            Err(bale_tape::TapeError::NoSpace(m)) => {
                let cache = self.cache.clone();
                let _ = tokio::task::spawn_blocking(move || cache.discard_staged(&written)).await;
                let msg = format!("{NO_SPACE}: staging pauses until space is freed ({m})");
                tracing::warn!("package {}: {msg}", pkg.id);
                let _ = self.catalog.raise_alarm("warning", "cache", &msg).await;
                // The requests' files stay open: the next round stages them.
                return Err(msg);
            }
            Err(bale_tape::TapeError::BadData(m)) => {
                let cache = self.cache.clone();
                let _ = tokio::task::spawn_blocking(move || cache.discard_staged(&written)).await;
                // The copy is bad: marked so, its files rewritten from good
                // copies. The requests' files stay open: the next round
                // stages each from its next good copy, or fails it if it
                // has none.
                if let Err(e) = copy_found_bad(&self.catalog, &pkg, &m).await {
                    tracing::warn!("recording package {} as bad failed: {e}", pkg.id);
                }
                self.repair_wake.notify_one();
                self.wake.notify_one();
                return Err(format!(
                    "staging package {} from volume {} failed: its data does not check out: {m}",
                    pkg.id, pkg.volume
                ));
            }
            Err(e) => {
                let cache = self.cache.clone();
                let _ = tokio::task::spawn_blocking(move || cache.discard_staged(&written)).await;
                Err(format!(
                    "staging package {} from volume {} failed: {e}",
                    pkg.id, pkg.volume
                ))
            }
        };
        let now = Timestamp::now();
        let done = match &r {
            Ok(_) => self.catalog.stage_files_finished(members, now, None).await,
            Err(e) => self.catalog.stage_files_finished(members, now, Some(e)).await,
        };
        if let Err(e) = done {
            tracing::warn!("recording the end of staging package {} failed: {e}", pkg.id);
        }
        r
    }

    /// Moves the verified members that are live and not cached into the
    /// cache and marks them cached, in one transaction; drops the rest.
    async fn promote(&self, pkg: &Package, written: Vec<FileId>) -> std::result::Result<usize, String> {
        bale_util::crash::point("stage.unpacked");
        let _guard = self.residency.lock().await;
        // Which members need their copy: live and not cached.
        let nodes = self
            .catalog
            .files_with_paths(&written)
            .await
            .map_err(|e| format!("staging package {}: {e}", pkg.id))?;
        let wanted: Vec<FileId> = nodes
            .iter()
            .filter(|(n, _)| !n.cached)
            .filter_map(|(n, _)| n.file_id)
            .collect();
        let unwanted: Vec<FileId> = written.iter().copied().filter(|id| !wanted.contains(id)).collect();
        let cache = self.cache.clone();
        let w = wanted.clone();
        tokio::task::spawn_blocking(move || {
            cache.discard_staged(&unwanted)?;
            cache.promote_staged(&w)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("staging package {}: moving members into the cache failed: {e}", pkg.id))?;
        bale_util::crash::point("stage.promoted");
        let marked = self
            .catalog
            .mark_staged(&wanted)
            .await
            .map_err(|e| format!("staging package {}: {e}", pkg.id))?;
        // A member deleted between the look and the mark (a delete does
        // not wait for stages) left data that no file owns: it goes.
        let mut gone = Vec::new();
        for &id in wanted.iter().filter(|id| !marked.contains(id)) {
            if self
                .catalog
                .node_by_file_id(id)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                gone.push(id);
            }
        }
        if !gone.is_empty() {
            let cache = self.cache.clone();
            tokio::task::spawn_blocking(move || gone.iter().try_for_each(|&id| cache.remove(id)))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("staging package {}: removing members deleted meanwhile: {e}", pkg.id))?;
        }
        use bale_util::metrics as m;
        metrics::counter!(m::STAGE_PACKAGES).increment(1);
        metrics::counter!(m::STAGE_FILES).increment(marked.len() as u64);
        let bytes: u64 = nodes
            .iter()
            .filter(|(n, _)| n.file_id.is_some_and(|id| marked.contains(&id)))
            .map(|(n, _)| n.size)
            .sum();
        metrics::counter!(m::STAGE_BYTES).increment(bytes);
        self.events.add_all(
            marked.iter().copied(),
            bale_catalog::EventKind::Staged,
            Some(format!(
                "from package {} on volume {} (tape file {})",
                pkg.id, pkg.volume, pkg.seq
            )),
        );
        tracing::info!(
            "staged package {} from {} tape file {}: {} member(s) cached",
            pkg.id,
            pkg.volume,
            pkg.seq,
            marked.len()
        );
        Ok(marked.len())
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
    metrics::counter!(bale_util::metrics::VERIFY_BAD_COPIES).increment(1);
    if marked.is_some() {
        catalog
            .raise_alarm("error", &format!("volume {}", pkg.volume), &msg)
            .await?;
    }
    Ok(())
}

/// Turns the open files of every request into package stages.
pub(crate) struct StageWorker {
    pub catalog: DynCatalog,
    pub stager: Arc<Stager>,
    pub every: Duration,
    pub submitted: u64,
    /// How long finished requests are kept.
    pub keep_finished: Duration,
    pub forgot_at: Option<std::time::Instant>,
}

impl StageWorker {
    async fn round(&mut self) -> Result<()> {
        // Files that need no stage (deleted, cached, no good copy) are
        // finished in the catalog, set-based: none of them comes here.
        let now = Timestamp::now();
        self.catalog.settle_open_stage_files(now).await?;
        // Requests finished long ago, their holds ended, are forgotten (a
        // batch a minute).
        if self.forgot_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            self.forgot_at = Some(std::time::Instant::now());
            let before = Timestamp(now.0 - self.keep_finished.as_nanos() as i64);
            let n = self.catalog.forget_finished_stage_requests(before, now).await?;
            if n > 0 {
                tracing::info!("forgot {n} stage request(s) finished over {:?} ago", self.keep_finished);
            }
        }
        // Then a window of the packages the open files need, the volumes
        // in turn and each in tape order: what is held here is bounded by
        // the window, not by the number of open files.
        let inflight = self.stager.inflight_ids();
        if inflight.len() >= STAGE_WINDOW {
            return Ok(());
        }
        let room = STAGE_WINDOW - inflight.len();
        let new: Vec<Package> = self
            .catalog
            .open_stage_packages(STAGE_WINDOW + inflight.len())
            .await?
            .into_iter()
            .filter(|p| !inflight.contains(&p.id))
            .take(room)
            .collect();
        self.submitted += new.len() as u64;
        // Queued in one step; the stages finish the requests' files.
        self.stager.stage_packages(new).await;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Worker for StageWorker {
    fn name(&self) -> String {
        "stager".into()
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        s.counters.insert("packages".into(), self.submitted);
        s
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> std::result::Result<State, String> {
        if *stop.borrow() {
            return Ok(State::Done);
        }
        self.round()
            .await
            .map_err(|e| format!("staging requests failed: {e}"))?;
        Ok(State::Idle)
    }

    async fn wait_for_work(&mut self) -> State {
        tokio::select! {
            _ = self.stager.wake.notified() => {}
            _ = tokio::time::sleep(self.every) => {}
        }
        State::Busy
    }
}
