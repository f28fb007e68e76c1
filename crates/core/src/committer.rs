//! Group commit of ingested files.
//!
//! Every PUT hands its received file to one committer task. The committer
//! takes everything waiting (up to `max_batch`) and, for the whole batch:
//! 1. makes the data durable (`Cache::sync_batch`: one directory fsync, the
//!    files having been fsynced by their writers in parallel; or one syncfs);
//! 2. records every file in ONE catalog transaction;
//! 3. answers each request: only now is its file acknowledged;
//! 4. moves the committed files from `tmp/` into `files/` and syncs their
//!    directories.
//!
//! While a batch is committed the next one gathers, so the cost of a sync
//! and a transaction is shared by all concurrent writers, and each file is
//! still acknowledged only after its own data and row are durable. A crash
//! between any two steps is repaired by `Service::recover` at start.

use crate::{Error, Result};
use bale_cache::{Cache, StagedFile};
use bale_catalog::{Committed, DynCatalog, NewFile};
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
    let mut jobs = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        commit_batch(std::mem::take(&mut jobs), &catalog, &cache).await;
    }
}

async fn commit_batch(jobs: Vec<Job>, catalog: &DynCatalog, cache: &Cache) {
    let n = jobs.len();
    metrics::histogram!("bale_commit_batch_files").record(n as f64);

    // 1. Data and directory entries durable.
    let c = cache.clone();
    let synced = tokio::task::spawn_blocking(move || c.sync_batch()).await;
    if let Err(e) = synced.map_err(std::io::Error::other).and_then(|r| r) {
        tracing::error!("cache sync failed, refusing {n} files: {e}");
        for j in jobs {
            let _ = j
                .reply
                .send(Err(Error::Internal(format!("cache sync failed: {e}"))));
        }
        return; // the staged files are removed as the jobs drop
    }

    // 2. One transaction for the batch, retried while the catalog says it may help.
    let files: Vec<NewFile> = jobs.iter().map(|j| j.file.clone()).collect();
    let mut attempt = 0;
    let results = loop {
        match catalog.commit_files(&files).await {
            Err(bale_catalog::CatalogError::Backend {
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
            return;
        }
    };

    // 3. Acknowledge; 4. promote the committed files and drop replaced data.
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
            Err(e) => {
                let _ = job.reply.send(Err(e.into()));
            }
        }
    }
    let c = cache.clone();
    let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        c.promote(&promote)?;
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
