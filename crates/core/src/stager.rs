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

/// What starting a new stage needs: where its outcome goes, and what
/// stops it.
type Started = (watch::Sender<Outcome>, Arc<tokio::sync::Notify>);

/// The book of package stages under way, by package id: one stage per
/// package however many ask (they join it and wait for its outcome), and
/// which of them a cancel may stop. No I/O: the stager does the reads and
/// tells the book when a stage ends.
#[derive(Default)]
struct Book {
    stages: HashMap<String, Inflight>,
}

impl Book {
    /// Joins the stage of package `id` under way, or books a new one (then
    /// with its sender and cancel, for the caller to start). A reader's
    /// interest sticks: no request's cancel stops that stage any more.
    fn join(&mut self, id: &str, for_reader: bool) -> (watch::Receiver<Outcome>, Option<Started>) {
        if let Some(f) = self.stages.get_mut(id) {
            f.for_reader |= for_reader;
            return (f.rx.clone(), None);
        }
        let (tx, rx) = watch::channel(None);
        let cancel = Arc::new(tokio::sync::Notify::new());
        self.stages.insert(
            id.to_string(),
            Inflight {
                rx: rx.clone(),
                members: None,
                for_reader,
                cancel: cancel.clone(),
            },
        );
        (rx, Some((tx, cancel)))
    }

    /// The stage's members are known: from now on a cancel may stop it.
    fn set_members(&mut self, id: &str, members: Vec<FileId>) {
        if let Some(f) = self.stages.get_mut(id) {
            f.members = Some(members);
        }
    }

    /// The stage ended (its outcome is sent by the caller); returns how
    /// many are still under way.
    fn end(&mut self, id: &str) -> usize {
        self.stages.remove(id);
        self.stages.len()
    }

    /// The stages a cancel might stop: no reader waits for them and their
    /// members are known.
    fn cancellable(&self) -> Vec<String> {
        self.stages
            .iter()
            .filter(|(_, f)| !f.for_reader && f.members.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Stops the stages among `candidates` that no request wants (not in
    /// `wanted`) and no reader waits for (one may have joined since the
    /// candidates were taken); returns how many.
    fn cancel(&self, candidates: &[String], wanted: &HashSet<String>) -> usize {
        let mut n = 0;
        for id in candidates.iter().filter(|id| !wanted.contains(*id)) {
            if let Some(f) = self.stages.get(id).filter(|f| !f.for_reader) {
                f.cancel.notify_one();
                n += 1;
            }
        }
        n
    }

    fn ids(&self) -> HashSet<String> {
        self.stages.keys().cloned().collect()
    }
}

pub(crate) struct Stager {
    /// File history: what was staged.
    pub(crate) events: crate::events::EventLog,
    catalog: DynCatalog,
    cache: Cache,
    tape: TapeSystem,
    /// Stages under way, by package id: their outcome when it comes.
    inflight: Mutex<Book>,
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
            inflight: Mutex::new(Book::default()),
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
            let mut book = self.inflight.lock().unwrap();
            for pkg in pkgs {
                let (rx, started) = book.join(&pkg.id, for_reader);
                out.push(rx);
                if let Some((tx, cancel)) = started {
                    new.push((pkg, tx, cancel));
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
                self.inflight.lock().unwrap().end(&pkg.id);
                let _ = tx.send(Some(Ok(0)));
                continue;
            }
            self.inflight.lock().unwrap().set_members(&pkg.id, b.members.clone());
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
                let left = me.inflight.lock().unwrap().end(&id);
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
        let candidates = self.inflight.lock().unwrap().cancellable();
        if candidates.is_empty() {
            return Ok(0);
        }
        let wanted: HashSet<String> = self
            .catalog
            .stage_packages_wanted(&candidates)
            .await?
            .into_iter()
            .collect();
        Ok(self.inflight.lock().unwrap().cancel(&candidates, &wanted))
    }

    /// The packages whose stages are under way.
    pub(crate) fn inflight_ids(&self) -> HashSet<String> {
        self.inflight.lock().unwrap().ids()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<FileId> {
        (0..n).map(|_| FileId::generate()).collect()
    }

    /// Whether `cancel` was notified (a permit is stored by notify_one).
    async fn notified(cancel: &tokio::sync::Notify) -> bool {
        tokio::time::timeout(Duration::from_millis(20), cancel.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn those_who_ask_for_a_package_under_way_join_its_one_stage() {
        let mut book = Book::default();
        let (mut first, started) = book.join("p1", false);
        let (tx, _cancel) = started.expect("a new stage");
        let (mut second, again) = book.join("p1", false);
        assert!(again.is_none(), "joined, not started twice");
        let (_, other) = book.join("p2", false);
        assert!(other.is_some(), "another package, another stage");
        assert_eq!(book.ids().len(), 2);
        tx.send(Some(Ok(3))).unwrap();
        for rx in [&mut first, &mut second] {
            let got = rx.wait_for(|o| o.is_some()).await.unwrap().clone();
            assert_eq!(got, Some(Ok(3)), "every waiter gets the one outcome");
        }
        assert_eq!(book.end("p1"), 1, "p2 is left");
        let (_, fresh) = book.join("p1", false);
        assert!(fresh.is_some(), "asked again after it ended: a fresh stage");
    }

    #[tokio::test]
    async fn a_cancel_stops_only_unwanted_stages_no_reader_waits_for() {
        let mut book = Book::default();
        let (_, a) = book.join("wanted", false);
        let (_, b) = book.join("unwanted", false);
        let (_, c) = book.join("read", true);
        let (_, d) = book.join("setting-up", false);
        let (_, e) = book.join("joined-by-reader", false);
        for id in ["wanted", "unwanted", "read", "joined-by-reader"] {
            book.set_members(id, ids(2));
        }
        let candidates = book.cancellable();
        assert!(!candidates.contains(&"read".to_string()), "a reader waits for it");
        assert!(!candidates.contains(&"setting-up".to_string()), "members not known yet");
        // A reader joins after the candidates were taken: spared too.
        let (_, none) = book.join("joined-by-reader", true);
        assert!(none.is_none());
        let wanted: HashSet<String> = ["wanted".to_string()].into();
        assert_eq!(book.cancel(&candidates, &wanted), 1);
        let cancel = |s: &Option<Started>| s.as_ref().unwrap().1.clone();
        assert!(notified(&cancel(&b)).await, "the unwanted stage is stopped");
        for (name, s) in [
            ("wanted", &a),
            ("read", &c),
            ("setting-up", &d),
            ("joined-by-reader", &e),
        ] {
            assert!(!notified(&cancel(s)).await, "{name} goes on");
        }
    }
}
