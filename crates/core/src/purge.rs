//! Purging cache copies of files that are safely on tape: the one way both
//! `bale purge` and the watermark purger remove data. The catalog marks
//! each file purged only if it is cached, on tape and unpinned (checked in
//! its transaction); only the files it marked lose their data, and only
//! after the mark. Residency changes are serialized with stages.

use crate::stager::Stager;
use crate::{Error, Result};
use bale_cache::Cache;
use bale_catalog::{DynCatalog, Node};
use bale_util::background::{State, Status, Worker};
use bale_util::{FileId, Timestamp};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Purges the cache copies of `plan` where the catalog allows it. Returns
/// the files and bytes purged.
pub(crate) async fn purge_nodes(
    catalog: &DynCatalog,
    cache: &Cache,
    stager: &Stager,
    plan: &[Node],
    now: Timestamp,
) -> Result<(usize, u64)> {
    let sizes: HashMap<FileId, u64> = plan.iter().filter_map(|n| n.file_id.map(|id| (id, n.size))).collect();
    let ids: Vec<FileId> = sizes.keys().copied().collect();
    let (mut files, mut bytes) = (0, 0);
    let _guard = stager.residency.lock().await;
    for chunk in ids.chunks(1000) {
        let purged = catalog.mark_purged(chunk, now).await?;
        bale_util::crash::point("purge.marked");
        files += purged.len();
        bytes += purged.iter().map(|id| sizes[id]).sum::<u64>();
        stager
            .events
            .add_all(purged.iter().copied(), bale_catalog::EventKind::Purged, None);
        let cache = cache.clone();
        tokio::task::spawn_blocking(move || purged.iter().try_for_each(|&id| cache.remove(id)))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(format!("removing purged cache copies failed: {e}")))?;
    }
    metrics::counter!(bale_util::metrics::PURGE_FILES).increment(files as u64);
    metrics::counter!(bale_util::metrics::PURGE_BYTES).increment(bytes);
    Ok((files, bytes))
}

/// The watermark purger: above `high` of the capacity it purges the least
/// recently read purgeable copies until use is under `low`; copies not
/// read for `max_age` go whatever the use.
pub(crate) struct Purger {
    pub catalog: DynCatalog,
    pub cache: Cache,
    pub stager: Arc<Stager>,
    /// Configured capacity in bytes (0: the filesystem's size).
    pub capacity: u64,
    pub cache_dir: PathBuf,
    pub high: f64,
    pub low: f64,
    pub max_age: Option<Duration>,
    pub every: Duration,
    pub files: u64,
    pub bytes: u64,
    /// Since when the cache is above its high mark (the purge lag).
    pub above_since: Option<std::time::Instant>,
}

impl Purger {
    fn capacity(&self) -> u64 {
        if self.capacity > 0 {
            return self.capacity;
        }
        rustix::fs::statvfs(&self.cache_dir)
            .map(|s| s.f_blocks * s.f_frsize)
            .unwrap_or(u64::MAX)
    }

    /// The cache's gauges, as this round found it.
    fn publish(&self, usage: &bale_catalog::CacheUsage, cap: f64) {
        use bale_util::metrics as m;
        let set = |name: &'static str, v: f64| metrics::gauge!(name).set(v);
        set(m::CACHE_CAPACITY, cap);
        set(m::CACHE_USED, usage.cached_bytes as f64);
        set(m::CACHE_FILES, usage.cached_files as f64);
        set(m::CACHE_PINNED, usage.pinned_bytes as f64);
        set(m::CACHE_PURGEABLE, usage.purgeable_bytes as f64);
        set(m::CACHE_HIGH, (self.high * cap).floor());
        set(m::CACHE_LOW, (self.low * cap).floor());
        if let Ok((free, _)) = self.cache.space() {
            set(m::CACHE_FS_FREE, free as f64);
        }
        set(
            m::PURGE_LAG,
            self.above_since.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        );
    }

    async fn round(&mut self) -> Result<()> {
        let now = Timestamp::now();
        let usage = self.catalog.cache_usage(now).await?;
        let cap = self.capacity() as f64;
        let mut need = 0u64;
        if usage.cached_bytes as f64 > self.high * cap {
            need = usage.cached_bytes - (self.low * cap) as u64;
            self.above_since.get_or_insert_with(std::time::Instant::now);
        } else {
            self.above_since = None;
        }
        self.publish(&usage, cap);
        let cutoff = self
            .max_age
            .map(|a| Timestamp(now.0 - a.as_nanos() as i64))
            .unwrap_or(Timestamp(i64::MIN));
        let mut plan = Vec::new();
        let mut planned = 0u64;
        // Least recently read first; enough to get under the low mark,
        // plus whatever is past its time in cache.
        let candidates = self.catalog.purge_candidates(now, 100_000).await?;
        for n in candidates {
            if planned < need || n.atime < cutoff {
                planned += n.size;
                plan.push(n);
            } else {
                break;
            }
        }
        if planned < need {
            // Above the high mark and not purgeable down to the low one:
            // the rest is pinned, held by stage requests or not yet on
            // tape. One alarm, its repeats counted (the message does not
            // change from round to round; `bale cache` has the figures).
            let msg = format!(
                "cache above its high mark ({:.0} % of {} bytes) with not enough to purge: \
                 the rest is pinned, held by stage requests or not yet on tape",
                self.high * 100.0,
                cap as u64
            );
            tracing::warn!("{msg}");
            self.catalog.raise_alarm("warning", "cache", &msg).await?;
        }
        if plan.is_empty() {
            return Ok(());
        }
        let (files, bytes) = purge_nodes(&self.catalog, &self.cache, &self.stager, &plan, now).await?;
        self.files += files as u64;
        self.bytes += bytes;
        tracing::info!(
            "purger: {} of {} cached bytes used ({:.0} % of the capacity); purged {files} copies, {bytes} bytes",
            usage.cached_bytes,
            cap as u64,
            100.0 * usage.cached_bytes as f64 / cap
        );
        Ok(())
    }
}

#[async_trait::async_trait]
impl Worker for Purger {
    fn name(&self) -> String {
        "purger".into()
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        s.counters.insert("files".into(), self.files);
        s.counters.insert("bytes".into(), self.bytes);
        s
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> std::result::Result<State, String> {
        if *stop.borrow() {
            return Ok(State::Done);
        }
        self.round().await.map_err(|e| format!("purging failed: {e}"))?;
        Ok(State::Idle)
    }

    async fn wait_for_work(&mut self) -> State {
        tokio::time::sleep(self.every).await;
        State::Busy
    }
}
