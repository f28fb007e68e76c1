//! Group commit of ingested files.
//!
//! Every PUT hands its received file to the committer. The committer is a
//! pipeline of three stages, each on its own task, each working on a whole
//! batch (everything that waited, up to `max_batch` files):
//! 1. **sync**: make the batch's data and `tmp/` entries durable
//!    (`Cache::sync_batch`: one directory fsync, the files having been
//!    fsynced by their writers in parallel; or one syncfs);
//! 2. **commit**: record every file of the batch in ONE catalog
//!    transaction, then answer each request: only now is a file
//!    acknowledged;
//! 3. **promote**: move the committed files from `tmp/` to `files/`
//!    (`Cache::promote`, crash-safe on its own).
//!
//! While one batch commits, the next one syncs and a third gathers, so the
//! cost of a sync and of a transaction is shared by all concurrent writers,
//! and each file is still acknowledged only after its own data and row are
//! durable. A crash between any two steps is repaired by `recover` at start.

use crate::{Error, Result};
use bale_cache::{Cache, StagedFile};
use bale_catalog::{CatalogError, Committed, DynCatalog, NewFile};
use bale_util::FileId;
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
}

impl Committer {
    pub(crate) fn spawn(
        catalog: DynCatalog,
        cache: Cache,
        max_batch: usize,
    ) -> (Committer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(max_batch * 4);
        let h = tokio::spawn(run(rx, catalog, cache, max_batch));
        (Committer { tx }, h)
    }

    /// Records `file`, whose data is `staged`, and returns once both are durable.
    pub(crate) async fn commit(&self, file: NewFile, staged: StagedFile) -> Result<Committed> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                file,
                staged,
                reply,
            })
            .await
            .map_err(|_| Error::Unavailable("server is shutting down".into()))?;
        rx.await
            .map_err(|_| Error::Internal("commit of the file was abandoned".into()))?
    }
}

async fn run(mut rx: mpsc::Receiver<Job>, catalog: DynCatalog, cache: Cache, max_batch: usize) {
    // Synced batches queue for the commit stage, which merges all that wait
    // into one transaction: a transaction costs about the same whatever its
    // size, so the slowest stage sets the batch size, not the fastest.
    let (synced_tx, mut synced_rx) = mpsc::channel::<Vec<Job>>(max_batch);
    let (promote_tx, mut promote_rx) = mpsc::channel::<(Vec<FileId>, Vec<FileId>)>(4);
    let promote_cache = cache.clone();
    let promote_stage = tokio::spawn(async move {
        while let Some((ids, obsolete)) = promote_rx.recv().await {
            promote(&promote_cache, ids, obsolete).await;
        }
    });
    let commit_stage = tokio::spawn(async move {
        let mut batches = Vec::new();
        while synced_rx.recv_many(&mut batches, max_batch).await > 0 {
            let mut jobs: Vec<Job> = batches.drain(..).flatten().collect();
            // recv_many counts batches; keep a transaction within max_batch files.
            while jobs.len() > max_batch {
                let rest = jobs.split_off(max_batch);
                if let Some(done) = commit(jobs, &catalog).await {
                    let _ = promote_tx.send(done).await;
                }
                jobs = rest;
            }
            if let Some(done) = commit(jobs, &catalog).await {
                let _ = promote_tx.send(done).await;
            }
        }
    });
    let mut jobs = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        let batch = std::mem::take(&mut jobs);
        if let Some(batch) = sync(batch, &cache).await {
            if synced_tx.send(batch).await.is_err() {
                break;
            }
        }
    }
    drop(synced_tx);
    let _ = commit_stage.await;
    let _ = promote_stage.await;
}

/// Stage 1: makes the batch's data durable; on failure answers every job.
async fn sync(jobs: Vec<Job>, cache: &Cache) -> Option<Vec<Job>> {
    let n = jobs.len();
    metrics::histogram!("bale_commit_batch_files").record(n as f64);
    let c = cache.clone();
    let synced = tokio::task::spawn_blocking(move || c.sync_batch()).await;
    if let Err(e) = synced.map_err(std::io::Error::other).and_then(|r| r) {
        tracing::error!("cache sync failed, refusing {n} files: {e}");
        for j in jobs {
            let _ = j
                .reply
                .send(Err(Error::Internal(format!("cache sync failed: {e}"))));
        }
        return None; // the staged files are removed as the jobs drop
    }
    Some(jobs)
}

/// Stage 2: one transaction for the batch (retried while the catalog says
/// it may help), then the answers. Returns what stage 3 has to do: files
/// to promote, and data of replaced files to remove.
async fn commit(jobs: Vec<Job>, catalog: &DynCatalog) -> Option<(Vec<FileId>, Vec<FileId>)> {
    let n = jobs.len();
    let files: Vec<NewFile> = jobs.iter().map(|j| j.file.clone()).collect();
    let mut attempt = 0;
    let results = loop {
        match catalog.commit_files(&files).await {
            Err(CatalogError::Backend {
                message,
                retryable: true,
            }) if attempt < 5 => {
                attempt += 1;
                tracing::warn!("catalog commit failed (attempt {attempt}), retrying: {message}");
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            r => break r,
        }
    };
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("catalog commit of {n} files failed: {e}");
            let e = Error::from(e);
            for j in jobs {
                let _ = j.reply.send(Err(e.clone()));
            }
            return None;
        }
    };
    let mut promote = Vec::with_capacity(n);
    let mut obsolete = Vec::new();
    for (job, result) in jobs.into_iter().zip(results) {
        match result {
            Ok(c) => {
                promote.push(job.staged.keep());
                obsolete.extend(c.replaced.iter().filter_map(|r| r.file_id));
                metrics::counter!("bale_ingest_files_total").increment(1);
                metrics::counter!("bale_ingest_bytes_total").increment(c.node.size);
                let _ = job.reply.send(Ok(c));
            }
            // The staged data goes as the job drops.
            Err(e) => {
                let _ = job.reply.send(Err(e.into()));
            }
        }
    }
    Some((promote, obsolete))
}

/// Stage 3: committed files move to `files/`; replaced versions go.
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
