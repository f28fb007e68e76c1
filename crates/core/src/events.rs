//! The file history's events on their way to the catalog (`history`
//! reads them back).
//!
//! Events are gathered in memory where they happen ([`EventLog`]) and
//! written to the catalog in batches by the [`HistoryWriter`], so no
//! request pays a catalog transaction for its history; reads are counted
//! per file between two writes, not recorded one by one. The tape copies
//! are the exception: the catalog records them in the transaction that
//! records the tape files. A crash loses at most the last
//! `[history] flush_ms` of events, never data; events older than
//! `retention_days` are forgotten.

use bale_catalog::{DynCatalog, EventKind, FileEvent};
use bale_util::background::{State, Status, Worker};
use bale_util::{FileId, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Events held in memory at most; beyond, new ones are dropped (and
/// counted) until the writer catches up: history must never take the
/// server's memory.
const HELD_MAX: usize = 200_000;

/// Events waiting to be written, shared by whatever records them.
#[derive(Clone, Default)]
pub struct EventLog {
    inner: Arc<Mutex<Pending>>,
    /// `[history] enabled = false`: nothing is kept.
    off: bool,
}

#[derive(Default)]
struct Pending {
    events: Vec<FileEvent>,
    /// Reads per file since the last write.
    reads: HashMap<FileId, u64>,
    dropped: u64,
}

impl EventLog {
    pub fn new(enabled: bool) -> EventLog {
        EventLog {
            off: !enabled,
            ..EventLog::default()
        }
    }

    /// Records an event; it carries the id of the request it happens in.
    pub fn add(&self, mut e: FileEvent) {
        if self.off {
            return;
        }
        if e.request.is_none() {
            e.request = bale_util::request::current();
        }
        let mut p = self.inner.lock().unwrap();
        if p.events.len() >= HELD_MAX {
            p.dropped += 1;
            return;
        }
        p.events.push(e);
    }

    /// An event of `kind` for each of `ids`, now, with `detail`.
    pub fn add_all(&self, ids: impl IntoIterator<Item = FileId>, kind: EventKind, detail: Option<String>) {
        let now = Timestamp::now();
        for id in ids {
            let mut e = FileEvent::new(id, kind, now);
            e.detail = detail.clone();
            self.add(e);
        }
    }

    /// Counts a read of `id`.
    pub fn read(&self, id: FileId) {
        if self.off {
            return;
        }
        let mut p = self.inner.lock().unwrap();
        if p.reads.len() < HELD_MAX {
            *p.reads.entry(id).or_default() += 1;
        }
    }

    /// What waits, reads as one counted event per file, in order.
    fn take(&self) -> (Vec<FileEvent>, u64) {
        let mut p = self.inner.lock().unwrap();
        let mut events = std::mem::take(&mut p.events);
        let now = Timestamp::now();
        events.extend(p.reads.drain().map(|(id, n)| {
            let mut e = FileEvent::new(id, EventKind::Read, now);
            e.count = n;
            e
        }));
        (events, std::mem::take(&mut p.dropped))
    }
}

/// Writes the events gathered every `every`, and forgets the old ones.
pub(crate) struct HistoryWriter {
    pub log: EventLog,
    pub catalog: DynCatalog,
    pub every: Duration,
    pub retention: Option<Duration>,
    pub pruned_at: Option<std::time::Instant>,
    pub written: u64,
    pub pruned: u64,
}

/// How often old events are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl HistoryWriter {
    /// Writes what waits now.
    pub(crate) async fn write(&mut self) -> std::result::Result<(), String> {
        let (events, dropped) = self.log.take();
        if dropped > 0 {
            tracing::warn!("history: {dropped} events were not kept (more were waiting than {HELD_MAX})");
        }
        for chunk in events.chunks(5000) {
            if let Err(e) = self.catalog.record_events(chunk).await {
                // History is not data: said, and not retried forever.
                return Err(format!("writing {} history events failed: {e}", chunk.len()));
            }
            self.written += chunk.len() as u64;
            metrics::counter!(bale_util::metrics::HISTORY_EVENTS).increment(chunk.len() as u64);
        }
        Ok(())
    }

    async fn prune(&mut self) -> std::result::Result<(), String> {
        let Some(keep) = self.retention else { return Ok(()) };
        if self.pruned_at.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return Ok(());
        }
        self.pruned_at = Some(std::time::Instant::now());
        let before = Timestamp(Timestamp::now().0 - keep.as_nanos() as i64);
        loop {
            let n = self
                .catalog
                .prune_events(before, 10_000)
                .await
                .map_err(|e| format!("forgetting old history failed: {e}"))?;
            self.pruned += n;
            if n < 10_000 {
                return Ok(());
            }
        }
    }
}

#[async_trait::async_trait]
impl Worker for HistoryWriter {
    fn name(&self) -> String {
        "history".into()
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        s.counters.insert("written".into(), self.written);
        s.counters.insert("pruned".into(), self.pruned);
        s
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> std::result::Result<State, String> {
        self.write().await?;
        if *stop.borrow() {
            return Ok(State::Done);
        }
        self.prune().await?;
        Ok(State::Idle)
    }

    async fn wait_for_work(&mut self) -> State {
        tokio::time::sleep(self.every).await;
        State::Busy
    }
}
