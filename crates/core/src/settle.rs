//! After the group commit: the promoter moves committed files from `tmp/`
//! to `files/` (and removes replaced versions), the settler makes inline
//! files' cache copies durable a round at a time and settles their landing
//! notes. Both are background workers fed by the committer; each stops
//! after the one that feeds it, so nothing handed over is lost at shutdown.

use bale_cache::{Cache, InlineShare};
use bale_catalog::DynCatalog;
use bale_util::background::{State as WorkerState, Status, Worker};
use bale_util::FileId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// What a batch hands to the promoter once answered.
#[derive(Default)]
pub(crate) struct Promotion {
    /// Ordinary files, durable in `tmp/`: promoted durably.
    pub durable: Vec<FileId>,
    /// Inline files: promoted by rename, then settled.
    pub landed: Vec<(FileId, InlineShare)>,
    /// Replaced versions, removed.
    pub obsolete: Vec<FileId>,
    /// A barrier ([`crate::committer::Committer::settle_all`]): answered
    /// once everything handed over before it is promoted and settled.
    pub barrier: Option<oneshot::Sender<()>>,
}

/// What the promoter hands to the settler: inline files promoted, or a
/// barrier to answer once everything before it is settled.
pub(crate) enum ToSettle {
    Landed(Vec<(FileId, InlineShare)>),
    Barrier(oneshot::Sender<()>),
}

/// Inline files whose cache copies are durable, waiting for a transaction
/// to settle their landing notes: the committer's batches take a few each
/// ([`SETTLE_PER_BATCH`]), which costs no transaction of its own; the
/// settler settles what they leave for a whole round.
pub(crate) type Synced = Arc<std::sync::Mutex<Vec<(FileId, InlineShare)>>>;

/// Most synced inline files one batch settles (deleting their notes and
/// data), so that no batch takes long.
pub(crate) const SETTLE_PER_BATCH: usize = 32;

/// Committed files move to `files/`; replaced versions go. Returns the
/// inline files, for the settler.
async fn promote(cache: &Cache, p: Promotion) -> Option<Vec<(FileId, InlineShare)>> {
    if p.durable.is_empty() && p.landed.is_empty() && p.obsolete.is_empty() {
        return None;
    }
    let c = cache.clone();
    let landed: Vec<FileId> = p.landed.iter().map(|(id, _)| *id).collect();
    let (durable, obsolete) = (p.durable, p.obsolete);
    let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        c.promote(&durable)?;
        c.promote_landed(&landed)?;
        for id in obsolete {
            c.remove(id)?;
        }
        Ok(())
    })
    .await;
    if let Err(e) = done.map_err(std::io::Error::other).and_then(|r| r) {
        // Not fatal: the data is durable in tmp/ (or in the catalog), reads
        // find it there and recovery promotes it at the next start.
        tracing::warn!("promoting committed files failed: {e}");
    }
    (!p.landed.is_empty()).then_some(p.landed)
}

pub(crate) struct Promoter {
    rx: mpsc::Receiver<Promotion>,
    cache: Cache,
    settle: mpsc::UnboundedSender<ToSettle>,
    next: Option<Promotion>,
    files: u64,
}

impl Promoter {
    pub fn new(rx: mpsc::Receiver<Promotion>, cache: Cache, settle: mpsc::UnboundedSender<ToSettle>) -> Promoter {
        Promoter {
            rx,
            cache,
            settle,
            next: None,
            files: 0,
        }
    }

    async fn promote(&mut self, mut p: Promotion) {
        self.files += (p.durable.len() + p.landed.len()) as u64;
        let barrier = p.barrier.take();
        if let Some(landed) = promote(&self.cache, p).await {
            let _ = self.settle.send(ToSettle::Landed(landed));
        }
        // After what came before it: the settler answers it.
        if let Some(b) = barrier {
            let _ = self.settle.send(ToSettle::Barrier(b));
        }
    }
}

#[async_trait::async_trait]
impl Worker for Promoter {
    fn name(&self) -> String {
        "promoter".into()
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        s.counters.insert("files".into(), self.files);
        s
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<WorkerState, String> {
        if let Some(p) = self.next.take() {
            self.promote(p).await;
        }
        if *stop.borrow() {
            // The committer has stopped: take everything it handed over.
            while let Some(p) = self.rx.recv().await {
                self.promote(p).await;
            }
            return Ok(WorkerState::Done);
        }
        Ok(match self.rx.try_recv() {
            Ok(p) => {
                self.next = Some(p);
                WorkerState::Busy
            }
            Err(mpsc::error::TryRecvError::Empty) => WorkerState::Idle,
            Err(mpsc::error::TryRecvError::Disconnected) => WorkerState::Done,
        })
    }

    async fn wait_for_work(&mut self) -> WorkerState {
        match self.rx.recv().await {
            Some(p) => {
                self.next = Some(p);
                WorkerState::Busy
            }
            None => WorkerState::Done,
        }
    }
}

/// Makes the cache copies of inline files durable, a round at a time (one
/// syncfs for everything promoted during `every`), and hands them to the
/// committer's batches to settle; settles itself what the batches left
/// for a whole round (no writes arrive) and everything at shutdown. A
/// settled file gives its share of the inline budget back. What cannot be
/// settled stays landing, and recovery rewrites it from the catalog.
pub(crate) struct Settler {
    rx: mpsc::UnboundedReceiver<ToSettle>,
    catalog: DynCatalog,
    cache: Cache,
    synced: Synced,
    every: Duration,
    pending: Vec<(FileId, InlineShare)>,
    /// Barriers to answer at the end of this round, which then settles
    /// everything at once.
    barriers: Vec<oneshot::Sender<()>>,
    /// The promoter still hands over files.
    open: bool,
    settled: u64,
    /// When the files waiting in `pending` began to arrive, and (about)
    /// when those handed to `synced` did: the settle lag is the older.
    pending_since: Option<std::time::Instant>,
    synced_since: Option<std::time::Instant>,
}

impl Settler {
    pub fn new(
        rx: mpsc::UnboundedReceiver<ToSettle>,
        catalog: DynCatalog,
        cache: Cache,
        synced: Synced,
        every: Duration,
    ) -> Settler {
        Settler {
            rx,
            catalog,
            cache,
            synced,
            every,
            pending: Vec::new(),
            barriers: Vec::new(),
            open: true,
            settled: 0,
            pending_since: None,
            synced_since: None,
        }
    }
}

#[async_trait::async_trait]
impl Worker for Settler {
    fn name(&self) -> String {
        "settler".into()
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        s.counters.insert("settled".into(), self.settled);
        s.counters.insert("pending".into(), self.pending.len() as u64);
        s
    }

    /// One round: gather for `every`, one sync, settle what the batches
    /// left.
    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<WorkerState, String> {
        if *stop.borrow() && self.open {
            // The promoter has stopped: take everything it handed over.
            while let Some(m) = self.rx.recv().await {
                self.take(m);
            }
            self.open = false;
        }
        // Let a round gather (none at shutdown, nor for a barrier).
        let deadline = tokio::time::Instant::now() + self.every;
        while self.open && !self.pending.is_empty() && self.barriers.is_empty() {
            tokio::select! {
                m = self.rx.recv() => match m {
                    Some(m) => self.take(m),
                    None => self.open = false,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        metrics::gauge!(bale_util::metrics::INLINE_PENDING_BYTES).set(self.cache.inline_pending() as f64);
        self.show_lag();
        let round_started = self.pending_since.take().unwrap_or_else(std::time::Instant::now);
        let round = std::mem::take(&mut self.pending);
        let round_is_empty = round.is_empty();
        if !round.is_empty() {
            let (c, ids): (_, Vec<FileId>) = (self.cache.clone(), round.iter().map(|(id, _)| *id).collect());
            let done = tokio::task::spawn_blocking(move || c.sync_landed(&ids))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
            if let Err(e) = done {
                let msg = format!("syncing {} inline files failed: {e}", round.len());
                self.pending = round;
                self.pending_since = Some(round_started);
                if !self.open {
                    tracing::warn!("{msg}; recovery will rewrite them from the catalog");
                    return Ok(WorkerState::Done);
                }
                return Err(msg);
            }
            bale_util::crash::point("settle.synced");
        }
        // What the batches did not take since the last round, and at
        // shutdown or for a barrier everything, is settled here.
        let mut left: Vec<(FileId, InlineShare)> = std::mem::take(&mut *self.synced.lock().expect("synced"));
        if self.open && self.barriers.is_empty() {
            self.synced.lock().expect("synced").extend(round);
        } else {
            left.extend(round);
        }
        let done = if self.open {
            WorkerState::Idle
        } else {
            WorkerState::Done
        };
        if left.is_empty() {
            self.synced_since = (!round_is_empty).then_some(round_started);
            self.show_lag();
            self.barriers.drain(..).for_each(|b| {
                let _ = b.send(());
            });
            return Ok(done);
        }
        let ids: Vec<FileId> = left.iter().map(|(id, _)| *id).collect();
        match self.catalog.settle_files(&ids).await {
            Ok(()) => {
                self.settled += ids.len() as u64;
                metrics::counter!(bale_util::metrics::INLINE_SETTLED).increment(ids.len() as u64);
                self.synced_since = (!round_is_empty && self.open && self.barriers.is_empty()).then_some(round_started);
                self.show_lag();
                self.barriers.drain(..).for_each(|b| {
                    let _ = b.send(());
                });
            }
            Err(e) if self.open => {
                self.synced.lock().expect("synced").extend(left);
                return Err(format!("settling {} inline files failed: {e}", ids.len()));
            }
            Err(e) => {
                tracing::warn!(
                    "settling {} inline files at shutdown failed ({e}); recovery will rewrite them",
                    ids.len()
                );
            }
        }
        Ok(done)
    }

    /// Waits for files to settle; with synced files left by the batches,
    /// at most a round.
    async fn wait_for_work(&mut self) -> WorkerState {
        let idle = !self.synced.lock().expect("synced").is_empty();
        let next = match idle {
            true => tokio::time::timeout(self.every, self.rx.recv()).await.ok(),
            false => Some(self.rx.recv().await),
        };
        match next {
            Some(Some(m)) => self.take(m),
            Some(None) => self.open = false,
            None => {}
        }
        WorkerState::Busy
    }
}

impl Settler {
    /// Sets the settle lag: the age of the oldest files not settled.
    fn show_lag(&mut self) {
        if self.synced.lock().expect("synced").is_empty() {
            // The committer's batches settled them.
            self.synced_since = None;
        }
        let oldest = [self.pending_since, self.synced_since].into_iter().flatten().min();
        metrics::gauge!(bale_util::metrics::SETTLE_LAG).set(oldest.map_or(0.0, |t| t.elapsed().as_secs_f64()));
    }

    fn take(&mut self, m: ToSettle) {
        match m {
            ToSettle::Landed(v) => {
                if !v.is_empty() {
                    self.pending_since.get_or_insert_with(std::time::Instant::now);
                }
                self.pending.extend(v)
            }
            ToSettle::Barrier(b) => self.barriers.push(b),
        }
    }
}
