//! Group commit of ingested files.
//!
//! Every PUT hands its received file to the committer, which works on
//! batches (everything that waited, up to `max_batch` files). For a batch it
//! runs, **at the same time**:
//! - the data sync (each file's own fsync, started by its writer as soon as
//!   the data was written and running in parallel, then one directory
//!   fsync; or in `syncfs` mode one syncfs), and
//! - ONE catalog transaction recording every file, each noted as *landing*
//!   on this node;
//!
//! and answers the requests only when both are done: a file is acknowledged
//! only after its data and its row are durable. Running the two at once
//! halves the latency of a write compared with one after the other; the
//! landing note covers the window where a row is durable before its data:
//! at start, `recover` checks every landing file's data against its row and
//! drops rows whose data did not make it (those were never acknowledged).
//! Landing notes are cleared by the next batch's transaction.
//!
//! Overwrites are the exception: an unfinished overwrite must not lose the
//! old version, so their rows are committed only after the sync.
//!
//! Small files are *inline* (`ingest.inline_max`): their data goes into the
//! catalog transaction with their landing notes, so that the batch needs no
//! data sync at all: one catalog commit (one flush) makes a whole batch of
//! small files durable, data and rows. Their cache copies are promoted by
//! rename and made durable later, many at once, by the *settler* (one
//! syncfs per round, `ingest.settle_ms`), which then settles their notes
//! and so drops the inline data from the catalog. Recovery rewrites the
//! cache copy of every inline file still landing.
//!
//! Promotion of committed files from `tmp/` to `files/` runs on its own
//! worker after the answers ([`crate::settle`]).

use crate::settle::{Promoter, Promotion, Settler, Synced, SETTLE_PER_BATCH};
use crate::{Error, Result};
use bale_cache::{Cache, InlineShare, StagedFile};
use bale_catalog::{CatalogError, Committed, DynCatalog, NewFile};
use bale_util::background::{Background, State as WorkerState, Status, Worker};
use bale_util::FileId;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

struct Job {
    file: NewFile,
    staged: StagedFile,
    reply: oneshot::Sender<Result<Committed>>,
}

#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::Sender<Job>,
    /// Writes past their checks that have not reached the committer yet.
    arriving: Arc<AtomicUsize>,
    /// Barriers: see [`Committer::settle_all`].
    barriers: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

/// Counts a write as arriving from its start until it is handed to the
/// committer (or fails): the committer waits briefly for arriving writes
/// to join a batch rather than leaving them for the next one.
pub(crate) struct Arriving(Arc<AtomicUsize>);

impl Drop for Arriving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Longest wait for arriving writes before a batch is committed.
const GATHER_MAX: Duration = Duration::from_micros(500);

/// How the committer works.
#[derive(Clone, Debug)]
pub(crate) struct CommitterConfig {
    /// Cache node whose files are committed (landing notes name it).
    pub node: String,
    /// Most files in one catalog transaction.
    pub max_batch: usize,
    /// How often landed inline files are synced and settled.
    pub settle_every: Duration,
}

impl Committer {
    /// Starts the committer and its promoter and settler as background
    /// workers (`phase`, `phase + 1`, `phase + 2`: each stops after the one
    /// that feeds it).
    pub(crate) fn spawn(
        catalog: DynCatalog,
        cache: Cache,
        config: CommitterConfig,
        workers: &Background,
        phase: u8,
    ) -> Committer {
        let (tx, rx) = mpsc::channel(config.max_batch * 4);
        let (barriers, barrier_rx) = mpsc::unbounded_channel();
        let arriving = Arc::new(AtomicUsize::new(0));
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let synced = Synced::default();
        let (promote_tx, promote_rx) = mpsc::channel::<Promotion>(16);
        workers.spawn(
            phase,
            CommitWorker {
                rx,
                barriers: barrier_rx,
                waiting: Vec::new(),
                max_batch: config.max_batch,
                stage: Stage {
                    catalog: catalog.clone(),
                    cache: cache.clone(),
                    node: config.node,
                    promote: promote_tx,
                    synced: synced.clone(),
                },
                arriving: arriving.clone(),
                settled: Vec::new(),
                batch: Vec::with_capacity(config.max_batch),
                closing: false,
                settle_after: config.settle_every,
                settle_due: false,
                files: 0,
                batches: 0,
            },
        );
        workers.spawn(phase + 1, Promoter::new(promote_rx, cache.clone(), settle_tx));
        workers.spawn(
            phase + 2,
            Settler::new(settle_rx, catalog, cache, synced, config.settle_every),
        );
        Committer { tx, arriving, barriers }
    }

    /// Returns once every file acknowledged before the call is settled:
    /// its landing note cleared, its data in `files/` and durable (inline
    /// files synced by the settler at once, not at its next round). What a
    /// purge waits for: a landing file is not purged, since recovery
    /// judges it by its cache copy. `false` if the workers stopped first.
    pub(crate) async fn settle_all(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.barriers.send(tx).is_err() {
            return false;
        }
        rx.await.is_ok()
    }

    /// Marks a write as on its way here; drop the guard when it is handed
    /// over or has failed.
    pub(crate) fn arriving(&self) -> Arriving {
        self.arriving.fetch_add(1, Ordering::AcqRel);
        Arriving(self.arriving.clone())
    }

    /// Records `file`, whose data is `staged`, and returns once both are durable.
    pub(crate) async fn commit(&self, file: NewFile, staged: StagedFile, arriving: Arriving) -> Result<Committed> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { file, staged, reply })
            .await
            .map_err(|_| Error::Unavailable("server is shutting down".into()))?;
        drop(arriving);
        rx.await
            .map_err(|_| Error::Internal("commit of the file was abandoned".into()))?
    }
}

struct Stage {
    catalog: DynCatalog,
    cache: Cache,
    node: String,
    promote: mpsc::Sender<Promotion>,
    synced: Synced,
}

/// The group commit, as a background worker: a batch per call.
struct CommitWorker {
    rx: mpsc::Receiver<Job>,
    barriers: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    /// Barriers received while waiting, for the next call.
    waiting: Vec<oneshot::Sender<()>>,
    max_batch: usize,
    stage: Stage,
    arriving: Arc<AtomicUsize>,
    /// Files acknowledged since the last transaction: their data is durable.
    settled: Vec<FileId>,
    batch: Vec<Job>,
    /// Shutting down: new files are refused, what is queued is committed.
    closing: bool,
    /// After this long without a batch, the landing notes of the files
    /// acknowledged since the last batch are cleared by a transaction of
    /// their own (a landing file is neither trusted by recovery nor
    /// purgeable, so its note must not wait for the next write for ever).
    settle_after: std::time::Duration,
    settle_due: bool,
    files: u64,
    batches: u64,
}

#[async_trait::async_trait]
impl Worker for CommitWorker {
    fn name(&self) -> String {
        "committer".into()
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        s.counters.insert("files".into(), self.files);
        s.counters.insert("batches".into(), self.batches);
        s
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<WorkerState, String> {
        if *stop.borrow() && !self.closing {
            // New files are refused from now on; what is queued is committed.
            self.rx.close();
            self.closing = true;
        }
        // A barrier: every file acknowledged so far has been processed (a
        // batch is answered within a call); their notes are cleared now and
        // the barrier follows their promotions to the settler.
        let mut barriers = std::mem::take(&mut self.waiting);
        while let Ok(b) = self.barriers.try_recv() {
            barriers.push(b);
        }
        if !barriers.is_empty() {
            let settled = std::mem::take(&mut self.settled);
            if let Err(e) = self.stage.catalog.settle_files(&settled).await {
                self.settled.extend(settled);
                return Err(format!("clearing landing notes failed: {e}"));
            }
            for b in barriers {
                let p = Promotion {
                    barrier: Some(b),
                    ..Promotion::default()
                };
                let _ = self.stage.promote.send(p).await;
            }
        }
        if self.batch.is_empty() {
            if self.closing {
                if self.rx.recv_many(&mut self.batch, self.max_batch).await == 0 {
                    let settled = std::mem::take(&mut self.settled);
                    if let Err(e) = self.stage.catalog.settle_files(&settled).await {
                        tracing::warn!("clearing {} landing notes at shutdown failed: {e}", settled.len());
                    }
                    return Ok(WorkerState::Done);
                }
            } else {
                while self.batch.len() < self.max_batch {
                    match self.rx.try_recv() {
                        Ok(j) => self.batch.push(j),
                        Err(_) => break,
                    }
                }
                if self.batch.is_empty() {
                    if std::mem::take(&mut self.settle_due) && !self.settled.is_empty() {
                        let settled = std::mem::take(&mut self.settled);
                        if let Err(e) = self.stage.catalog.settle_files(&settled).await {
                            self.settled.extend(settled);
                            return Err(format!("clearing landing notes failed: {e}"));
                        }
                    }
                    return Ok(WorkerState::Idle);
                }
            }
        }
        gather(&mut self.rx, &mut self.batch, self.max_batch, &self.arriving).await;
        self.files += self.batch.len() as u64;
        self.batches += 1;
        // One batch at a time: measured faster than overlapping batches,
        // which only split the same fsyncs over smaller transactions.
        process(&self.stage, &mut self.settled, std::mem::take(&mut self.batch)).await;
        Ok(WorkerState::Busy)
    }

    async fn wait_for_work(&mut self) -> WorkerState {
        let (none_to_settle, after) = (self.settled.is_empty(), self.settle_after);
        let settle = async move {
            match none_to_settle {
                true => std::future::pending().await,
                false => tokio::time::sleep(after).await,
            }
        };
        tokio::select! {
            n = self.rx.recv_many(&mut self.batch, self.max_batch) => match n {
                // Every sender is gone: the service was dropped without a shutdown.
                0 => WorkerState::Done,
                _ => WorkerState::Busy,
            },
            _ = settle => {
                self.settle_due = true;
                WorkerState::Busy
            }
            Some(b) = self.barriers.recv() => {
                self.waiting.push(b);
                WorkerState::Busy
            }
        }
    }
}

/// Lets writes that are already on their way join the batch (PostgreSQL's
/// commit_delay with commit_siblings, made adaptive): waits only while some
/// are arriving, and at most [`GATHER_MAX`]. Without it, concurrent clients
/// split into groups that each wait for the other group's whole batch.
async fn gather(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>, max_batch: usize, arriving: &AtomicUsize) {
    let deadline = tokio::time::Instant::now() + GATHER_MAX;
    while batch.len() < max_batch && arriving.load(Ordering::Acquire) > 0 {
        tokio::select! {
            n = rx.recv_many(batch, max_batch - batch.len()) => if n == 0 { return },
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// Syncs and commits one batch, then answers its requests. `settled` holds
/// the files whose landing notes the batch's transaction clears (with a few
/// synced inline files); the batch adds its own acknowledged files for the
/// next one.
async fn process(stage: &Stage, settled: &mut Vec<FileId>, batch: Vec<Job>) {
    let (catalog, node) = (&stage.catalog, stage.node.as_str());
    metrics::histogram!(bale_util::metrics::COMMIT_BATCH_FILES).record(batch.len() as f64);
    let (mut replacing, mut fresh): (Vec<Job>, Vec<Job>) = batch
        .into_iter()
        .partition(|j| j.file.replace != bale_catalog::Replace::No);
    // An overwrite is recorded only once its data is durable in the cache.
    replacing.iter_mut().for_each(|j| j.staged.uninline());
    for j in &mut fresh {
        j.file.inline = j.staged.inline().cloned();
    }
    // A batch of inline files only needs its catalog commit.
    let data_sync = !replacing.is_empty() || fresh.iter().any(|j| j.file.inline.is_none());
    let files: Vec<NewFile> = fresh.iter().map(|j| j.file.clone()).collect();
    let settle_now = std::mem::take(settled);
    let taken: Vec<(FileId, InlineShare)> = {
        let mut synced = stage.synced.lock().expect("synced");
        let n = synced.len().min(SETTLE_PER_BATCH);
        synced.drain(..n).collect()
    };
    let settle_ids: Vec<FileId> = settle_now
        .iter()
        .copied()
        .chain(taken.iter().map(|(id, _)| *id))
        .collect();
    let (synced, committed) = tokio::join!(
        async {
            match data_sync {
                true => sync(&stage.cache, fresh.iter_mut().chain(replacing.iter_mut())).await,
                false => Ok(()),
            }
        },
        commit(catalog, node, &files, &settle_ids)
    );
    // Settled inline files give their budget back; if nothing was recorded
    // they wait for the next batch.
    match committed.is_ok() {
        true => metrics::counter!(bale_util::metrics::INLINE_SETTLED).increment(taken.len() as u64),
        false => stage.synced.lock().expect("synced").extend(taken),
    }

    let mut answers: Vec<(Job, Result<Committed>)> = Vec::new();
    match (synced, committed) {
        (Ok(()), Ok(results)) => {
            answers.extend(
                fresh
                    .into_iter()
                    .zip(results.into_iter().map(|r| r.map_err(Error::from))),
            );
            if !replacing.is_empty() {
                let files: Vec<NewFile> = replacing.iter().map(|j| j.file.clone()).collect();
                match commit(catalog, node, &files, &[]).await {
                    Ok(results) => answers.extend(
                        replacing
                            .into_iter()
                            .zip(results.into_iter().map(|r| r.map_err(Error::from))),
                    ),
                    Err(e) => answers.extend(replacing.into_iter().map(|j| (j, Err(e.clone())))),
                }
            }
        }
        (Ok(()), Err(e)) => {
            // Nothing was recorded; the earlier files still need settling.
            settled.extend(settle_now);
            answers.extend(fresh.into_iter().chain(replacing).map(|j| (j, Err(e.clone()))));
        }
        (Err(e), committed) => {
            // The data may not be durable: refuse every file and take back
            // the rows just recorded (if that fails too, their landing notes
            // make recovery check them at the next start).
            match committed {
                Ok(results) => {
                    for c in results.into_iter().flatten() {
                        if let Err(u) = catalog.remove(c.node.id, false, None).await {
                            tracing::error!("cannot take back the row of {}: {u}", c.node.name);
                        }
                    }
                }
                Err(_) => settled.extend(settle_now),
            }
            answers.extend(fresh.into_iter().chain(replacing).map(|j| (j, Err(e.clone()))));
        }
    }

    let mut p = Promotion::default();
    for (job, result) in answers {
        match result {
            Ok(c) => {
                match job.staged.keep() {
                    (id, Some(share)) => p.landed.push((id, share)),
                    (id, None) => p.durable.push(id),
                }
                p.obsolete.extend(c.replaced.iter().filter_map(|r| r.file_id));
                metrics::counter!(bale_util::metrics::INGEST_FILES).increment(1);
                metrics::counter!(bale_util::metrics::INGEST_BYTES).increment(c.node.size);
                let _ = job.reply.send(Ok(c));
            }
            // The staged data is removed as the job drops.
            Err(e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }
    // Inline files are settled by the settler once their copies are synced.
    settled.extend(p.durable.iter().copied());
    if !p.durable.is_empty() || !p.landed.is_empty() || !p.obsolete.is_empty() {
        let _ = stage.promote.send(p).await;
    }
}

/// Makes the data of every staged file of the batch durable: the files'
/// own fsyncs (started by their writers, already running) and the batch
/// sync of their directory entries run at the same time; the entries all
/// exist already, so the order does not matter.
async fn sync(cache: &Cache, jobs: impl Iterator<Item = &mut Job>) -> Result<()> {
    let c = cache.clone();
    let batch = tokio::task::spawn_blocking(move || c.sync_batch());
    let mut r = Ok(());
    for j in jobs {
        if let Err(e) = j.staged.wait_synced().await {
            r = Err(e);
        }
    }
    let b = batch.await.map_err(std::io::Error::other).and_then(|b| b);
    r.and(b).map_err(|e| {
        tracing::error!("cache sync failed: {e}");
        Error::Internal(format!("cache sync failed: {e}"))
    })
}

/// One transaction for a batch, retried while the catalog says it may help.
async fn commit(
    catalog: &DynCatalog,
    node: &str,
    files: &[NewFile],
    settled: &[FileId],
) -> Result<Vec<Result<Committed, CatalogError>>> {
    if files.is_empty() && settled.is_empty() {
        return Ok(Vec::new());
    }
    let mut attempt = 0;
    loop {
        match catalog.commit_files(node, files, settled).await {
            Err(CatalogError::Backend {
                message,
                retryable: true,
            }) if attempt < 5 => {
                attempt += 1;
                tracing::warn!("catalog commit failed (attempt {attempt}), retrying: {message}");
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            Err(e) => {
                tracing::error!("catalog commit of {} files failed: {e}", files.len());
                return Err(e.into());
            }
            Ok(r) => return Ok(r),
        }
    }
}
