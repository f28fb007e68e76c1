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
//! Promotion of committed files from `tmp/` to `files/` runs on its own task
//! after the answers.

use crate::{Error, Result};
use bale_cache::{Cache, StagedFile};
use bale_catalog::{CatalogError, Committed, DynCatalog, NewFile};
use bale_util::FileId;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

struct Job {
    file: NewFile,
    staged: StagedFile,
    reply: oneshot::Sender<Result<Committed>>,
}

#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::Sender<Job>,
    stop: Arc<tokio::sync::Notify>,
    /// Writes past their checks that have not reached the committer yet.
    arriving: Arc<AtomicUsize>,
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

impl Committer {
    /// Starts the committer for cache node `node`.
    pub(crate) fn spawn(
        catalog: DynCatalog,
        cache: Cache,
        node: String,
        max_batch: usize,
    ) -> (Committer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(max_batch * 4);
        let arriving = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(tokio::sync::Notify::new());
        let h = tokio::spawn(run(rx, catalog, cache, node, max_batch, arriving.clone(), stop.clone()));
        (Committer { tx, stop, arriving }, h)
    }

    /// Stops taking files, commits what is queued, clears the landing notes
    /// and ends the committer task.
    pub(crate) fn stop(&self) {
        self.stop.notify_one();
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
    promote: mpsc::Sender<(Vec<FileId>, Vec<FileId>)>,
}

async fn run(
    mut rx: mpsc::Receiver<Job>,
    catalog: DynCatalog,
    cache: Cache,
    node: String,
    max_batch: usize,
    arriving: Arc<AtomicUsize>,
    stop: Arc<tokio::sync::Notify>,
) {
    let (promote_tx, mut promote_rx) = mpsc::channel::<(Vec<FileId>, Vec<FileId>)>(16);
    let promote_cache = cache.clone();
    let promote_stage = tokio::spawn(async move {
        while let Some((ids, obsolete)) = promote_rx.recv().await {
            promote(&promote_cache, ids, obsolete).await;
        }
    });
    let stage = Stage {
        catalog,
        cache,
        node,
        promote: promote_tx,
    };
    // Files acknowledged since the last transaction: their data is durable.
    let mut settled: Vec<FileId> = Vec::new();
    let mut batch = Vec::with_capacity(max_batch);
    let mut closing = false;
    loop {
        let n = if closing {
            rx.recv_many(&mut batch, max_batch).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, max_batch) => n,
                _ = stop.notified() => {
                    // New files are refused from now on; what is queued is committed.
                    rx.close();
                    closing = true;
                    continue;
                }
            }
        };
        if n == 0 {
            break;
        }
        gather(&mut rx, &mut batch, max_batch, &arriving).await;
        // One batch at a time: measured faster than overlapping batches,
        // which only split the same fsyncs over smaller transactions.
        process(&stage, &mut settled, std::mem::take(&mut batch)).await;
    }
    if let Err(e) = stage.catalog.settle_files(&settled).await {
        tracing::warn!("clearing {} landing notes at shutdown failed: {e}", settled.len());
    }
    drop(stage);
    let _ = promote_stage.await;
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
/// the files whose landing notes the batch's transaction clears; the batch
/// adds its own acknowledged files for the next one.
async fn process(stage: &Stage, settled: &mut Vec<FileId>, batch: Vec<Job>) {
    let (catalog, node) = (&stage.catalog, stage.node.as_str());
    metrics::histogram!("bale_commit_batch_files").record(batch.len() as f64);
    let (mut replacing, mut fresh): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(|j| j.file.replace);
    let files: Vec<NewFile> = fresh.iter().map(|j| j.file.clone()).collect();
    let settle_now = std::mem::take(settled);
    let (synced, committed) = tokio::join!(
        sync(&stage.cache, fresh.iter_mut().chain(replacing.iter_mut())),
        commit(catalog, node, &files, &settle_now)
    );

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

    let mut promoted = Vec::new();
    let mut obsolete = Vec::new();
    for (job, result) in answers {
        match result {
            Ok(c) => {
                promoted.push(job.staged.keep());
                obsolete.extend(c.replaced.iter().filter_map(|r| r.file_id));
                metrics::counter!("bale_ingest_files_total").increment(1);
                metrics::counter!("bale_ingest_bytes_total").increment(c.node.size);
                let _ = job.reply.send(Ok(c));
            }
            // The staged data is removed as the job drops.
            Err(e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }
    settled.extend(promoted.iter().copied());
    if !promoted.is_empty() || !obsolete.is_empty() {
        let _ = stage.promote.send((promoted, obsolete)).await;
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

/// Committed files move to `files/`; replaced versions go.
async fn promote(cache: &Cache, ids: Vec<FileId>, obsolete: Vec<FileId>) {
    let c = cache.clone();
    let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        c.promote(&ids)?;
        for id in obsolete {
            c.remove(id)?;
        }
        Ok(())
    })
    .await;
    if let Err(e) = done.map_err(std::io::Error::other).and_then(|r| r) {
        // Not fatal: the data is durable in tmp/, reads find it there and
        // recovery promotes it at the next start.
        tracing::warn!("promoting committed files failed: {e}");
    }
}
