//! The file history's events on their way to the catalog (`history`
//! reads them back).
//!
//! Events are gathered in memory where they happen ([`EventLog`]) and
//! written to the catalog in batches by the [`HistoryWriter`], so no
//! request pays a catalog transaction for its history; reads are counted
//! per file and written once every [`READS_EVERY`] (a file read all day
//! gets 144 read events, not one per read or per second). The tape copies
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

/// Events held in memory at most, and their text (paths, details) in
/// bytes; beyond, new ones are dropped (and counted) until the writer
/// catches up: history must never take the server's memory. (While a
/// batch is being written, the next one gathers: twice this at most.)
const HELD_MAX: usize = 200_000;
const HELD_BYTES: usize = 64 << 20;

/// How often the read counts become events.
pub const READS_EVERY: Duration = Duration::from_secs(600);

/// Events waiting to be written, shared by whatever records them.
#[derive(Clone, Default)]
pub struct EventLog {
    inner: Arc<Mutex<Pending>>,
    /// Held from taking a batch to its commit: a reader that takes it
    /// after writing what waits sees every event recorded before.
    writing: Arc<tokio::sync::Mutex<()>>,
    /// `[history] enabled = false`: nothing is kept.
    off: bool,
}

#[derive(Default)]
struct Pending {
    events: Vec<FileEvent>,
    /// Bytes of the events' text.
    bytes: usize,
    /// Reads per file since their last write.
    reads: HashMap<FileId, u64>,
    reads_since: Option<std::time::Instant>,
    dropped: u64,
}

fn text_len(e: &FileEvent) -> usize {
    [&e.path, &e.who, &e.request, &e.package, &e.volume, &e.detail]
        .iter()
        .map(|t| t.as_ref().map_or(0, |s| s.len()))
        .sum()
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
        let len = text_len(&e);
        let mut p = self.inner.lock().unwrap();
        if p.events.len() >= HELD_MAX || p.bytes + len > HELD_BYTES {
            p.dropped += 1;
            return;
        }
        p.bytes += len;
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
        p.reads_since.get_or_insert_with(std::time::Instant::now);
        let full = p.reads.len() >= HELD_MAX;
        match p.reads.get_mut(&id) {
            Some(n) => *n += 1,
            None if !full => {
                p.reads.insert(id, 1);
            }
            None => p.dropped += 1,
        }
    }

    /// Writes what waits now to `catalog` (the read counts when due, or
    /// with `all_reads`), one writer at a time; returns how many events.
    pub(crate) async fn write_to(&self, catalog: &DynCatalog, all_reads: bool) -> std::result::Result<u64, String> {
        let _one_at_a_time = self.writing.lock().await;
        let (events, dropped) = self.take(all_reads);
        if dropped > 0 {
            tracing::warn!("history: {dropped} events were not kept (more were waiting than {HELD_MAX})");
        }
        let mut written = 0;
        for chunk in events.chunks(5000) {
            if let Err(e) = catalog.record_events(chunk).await {
                // History is not data: said, and not retried forever.
                return Err(format!("writing {} history events failed: {e}", chunk.len()));
            }
            written += chunk.len() as u64;
            metrics::counter!(bale_util::metrics::HISTORY_EVENTS).increment(chunk.len() as u64);
        }
        Ok(written)
    }

    /// Reads of `id` counted but not yet written.
    pub fn pending_reads(&self, id: FileId) -> u64 {
        self.inner.lock().unwrap().reads.get(&id).copied().unwrap_or(0)
    }

    /// What waits, in order; the read counts too (one counted event per
    /// file) once they are [`READS_EVERY`] old, or with `all_reads`.
    fn take(&self, all_reads: bool) -> (Vec<FileEvent>, u64) {
        let mut p = self.inner.lock().unwrap();
        let mut events = std::mem::take(&mut p.events);
        p.bytes = 0;
        let due = p.reads_since.is_some_and(|t| t.elapsed() >= READS_EVERY);
        if all_reads || due {
            p.reads_since = None;
            let now = Timestamp::now();
            events.extend(p.reads.drain().map(|(id, n)| {
                let mut e = FileEvent::new(id, EventKind::Read, now);
                e.count = n;
                e
            }));
        }
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
    async fn write(&mut self, all_reads: bool) -> std::result::Result<(), String> {
        self.written += self.log.write_to(&self.catalog, all_reads).await?;
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
        // At shutdown the read counts go too.
        let stopping = *stop.borrow();
        self.write(stopping).await?;
        if stopping {
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
