//! The server's background workers other than the committer's and the
//! drives': the pool watcher, the on-its-way check, the access-time
//! flusher and the catalog heartbeat; and the shutdown order of all of
//! them ([`phase`]).

use crate::access::AccessLog;
use crate::archive::{Archiver, Closing};
use bale_catalog::DynCatalog;
use bale_util::background::{State, Status, Worker};
use bale_util::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The shutdown order: lower phases stop first, each after the HTTP
/// server has finished its requests.
pub(crate) mod phase {
    /// Pool watcher, on-its-way check: no new archive jobs.
    pub const AGGREGATION: u8 = 0;
    /// Committer (then its promoter at +1 and settler at +2): what was
    /// received is committed, promoted and settled.
    pub const COMMIT: u8 = 1;
    /// Access times are written after the last reads.
    pub const ACCESS: u8 = 4;
    /// Drives finish their operation, flush and save their counters.
    pub const DRIVES: u8 = 5;
    /// Last: the catalog is free for another node once this one is done.
    pub const HEARTBEAT: u8 = 6;
}

/// Closes the pools whose triggers fired, every `every`.
pub(crate) struct PoolWatcher {
    pub archiver: Arc<Archiver>,
    pub every: Duration,
    pub closed: u64,
}

#[async_trait::async_trait]
impl Worker for PoolWatcher {
    fn name(&self) -> String {
        "pool watcher".into()
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        s.counters.insert("pools_closed".into(), self.closed);
        s
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<State, String> {
        if *stop.borrow() {
            return Ok(State::Done);
        }
        let jobs = self
            .archiver
            .close_pools(Closing::Due)
            .await
            .map_err(|e| format!("checking pools failed: {e}"))?;
        self.closed += jobs.len() as u64;
        Ok(State::Idle)
    }

    async fn wait_for_work(&mut self) -> State {
        tokio::time::sleep(self.every).await;
        State::Busy
    }
}

/// Checks every `every` (and at once) that every file is on its way to
/// tape and the scheduler holds every queued job.
pub(crate) struct OnWayCheck {
    pub archiver: Arc<Archiver>,
    pub every: Duration,
    /// How long after it was due a file on its way counts as stuck.
    pub stuck_after: Duration,
    pub repaired: u64,
}

#[async_trait::async_trait]
impl Worker for OnWayCheck {
    fn name(&self) -> String {
        "on-way check".into()
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        s.counters.insert("repaired".into(), self.repaired);
        s
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<State, String> {
        if *stop.borrow() {
            return Ok(State::Done);
        }
        let r = self
            .archiver
            .check_on_way(self.stuck_after)
            .await
            .map_err(|e| format!("checking that every file is on its way to tape failed: {e}"))?;
        self.repaired += (r.files_rerouted.len() + r.jobs_requeued.len()) as u64;
        Ok(State::Idle)
    }

    async fn wait_for_work(&mut self) -> State {
        tokio::time::sleep(self.every).await;
        State::Busy
    }
}

/// Writes recorded access times every `every`, and once more at shutdown.
pub(crate) struct AccessFlusher {
    pub access: Arc<AccessLog>,
    pub catalog: DynCatalog,
    pub every: Duration,
}

#[async_trait::async_trait]
impl Worker for AccessFlusher {
    fn name(&self) -> String {
        "access times".into()
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<State, String> {
        self.access.flush(&self.catalog).await;
        Ok(if *stop.borrow() { State::Done } else { State::Idle })
    }

    async fn wait_for_work(&mut self) -> State {
        tokio::time::sleep(self.every).await;
        State::Busy
    }
}

/// Records this node's heartbeat in the catalog every `every`; releases
/// the catalog at shutdown.
pub(crate) struct Heartbeat {
    pub catalog: DynCatalog,
    pub node: String,
    /// This start of the node.
    pub instance: String,
    pub beats: u64,
    pub every: Duration,
}

#[async_trait::async_trait]
impl Worker for Heartbeat {
    fn name(&self) -> String {
        "catalog heartbeat".into()
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<State, String> {
        if *stop.borrow() {
            if let Err(e) = self.catalog.release_catalog(&self.node, &self.instance).await {
                tracing::warn!("cannot release the catalog: {e}");
            }
            return Ok(State::Done);
        }
        let held = self
            .catalog
            .heartbeat(&self.node, &self.instance, Timestamp::now())
            .await
            .map_err(|e| format!("cannot record this node's heartbeat in the catalog: {e}"))?;
        // Now and then, what bursts of work freed goes back to the system:
        // the catalog's caches beyond their working set, the allocator's
        // free pages.
        self.beats += 1;
        if self.beats.is_multiple_of(3) {
            self.catalog.release_memory().await;
            bale_util::mem::trim_later().await;
        }
        if !held {
            // Silent too long (a frozen process), and another process
            // claimed the catalog meanwhile. Fencing its work is the
            // several-nodes issue's; here it is said loudly.
            return Err(format!(
                "this node's claim on the catalog (instance {}) was taken over by another process",
                self.instance
            ));
        }
        Ok(State::Idle)
    }

    async fn wait_for_work(&mut self) -> State {
        tokio::time::sleep(self.every).await;
        State::Busy
    }
}

/// What the cache check after a crash runs on (the service, which
/// implements it in `fsck`): repairs what it finds, judging only data
/// changed before `settled_before` (ns); returns (problems, repaired).
#[async_trait::async_trait]
pub(crate) trait CacheCheck: Send + Sync + 'static {
    async fn check_after_crash(&self, settled_before: i64) -> crate::Result<(u64, u64)>;
}

/// The cache check after a start that followed a crash: once, with
/// repair, in the background, judging everything changed before this
/// start.
pub(crate) struct CrashCheck {
    pub target: std::sync::Weak<dyn CacheCheck>,
    pub started: Timestamp,
    pub problems: u64,
    pub repaired: u64,
}

#[async_trait::async_trait]
impl Worker for CrashCheck {
    fn name(&self) -> String {
        "crash check".into()
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        s.counters.insert("problems".into(), self.problems);
        s.counters.insert("repaired".into(), self.repaired);
        s
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<State, String> {
        if *stop.borrow() {
            return Ok(State::Done);
        }
        let Some(target) = self.target.upgrade() else {
            return Ok(State::Done);
        };
        let (problems, repaired) = target
            .check_after_crash(self.started.0)
            .await
            .map_err(|e| format!("the cache check after a crash failed: {e}"))?;
        self.problems = problems;
        self.repaired = repaired;
        Ok(State::Done)
    }

    async fn wait_for_work(&mut self) -> State {
        State::Done
    }
}
