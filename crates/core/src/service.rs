//! The service: start-up wiring (catalog, cache, recovery, the tape system,
//! the archiver, the committer and every background worker) and shutdown.
//! Its operations live by job: `namespace` (stat, list, mkdir, read,
//! delete, rename, copy, tags, attributes), `put` (the write path),
//! `inventory` (what is where), `admin` (tape, aggregation, tokens,
//! alarms, workers); `recovery` runs at start. The HTTP layer is a thin
//! translation of requests into these calls.

use crate::access::AccessLog;
use crate::archive::Archiver;
use crate::auth::Auth;
use crate::committer::{Committer, CommitterConfig};
use crate::config::{Config, SyncModeConfig};
use crate::error::io_err;
use crate::workers::{phase, AccessFlusher, Heartbeat, OnWayCheck, PoolWatcher};
use crate::{Error, Result};
use bale_cache::{Cache, SyncMode};
use bale_catalog::{CatalogClaim, CatalogError, DynCatalog};
use bale_tape::TapeSystem;
use bale_util::background::Background;
use bale_util::dirlock::{DirLock, LockError};
use bale_util::durable::{create_dir_all_durable, write_file_durable};
use bale_util::Timestamp;
use std::sync::Arc;
use std::time::Duration;

pub struct Service {
    pub(crate) config: Config,
    pub(crate) catalog: DynCatalog,
    pub(crate) cache: Cache,
    pub(crate) auth: Auth,
    pub(crate) audit: crate::audit::AuditLog,
    pub(crate) committer: Committer,
    pub(crate) tape: TapeSystem,
    pub(crate) archiver: Arc<Archiver>,
    pub(crate) access: Arc<AccessLog>,
    pub(crate) workers: Background,
    pub(crate) stager: Arc<crate::stager::Stager>,
    /// File history waiting to be written.
    pub(crate) events: crate::events::EventLog,
    /// This node's id and when it started.
    pub(crate) node: String,
    pub(crate) started: Timestamp,
    pub(crate) quota_cache: std::sync::Mutex<QuotaCache>,
    /// The figures behind the status page's charts.
    pub(crate) samples: Arc<crate::samples::Samples>,
    /// The catalog's cache figures last read, for pages that poll.
    pub(crate) cache_memo: tokio::sync::Mutex<Option<(std::time::Instant, bale_catalog::CacheUsage)>>,
    /// This process's hold on the data directory, until it exits.
    _lock: DirLock,
}

/// The quotas as last read, and when (`quota`: the checks before a PUT's
/// body use them for a few seconds).
#[derive(Default)]
pub(crate) struct QuotaCache {
    pub(crate) read: Option<std::time::Instant>,
    pub(crate) by_group: std::collections::HashMap<String, bale_catalog::Quota>,
}

/// A node whose heartbeat is older than this no longer holds the catalog;
/// a live one records one every sixth of it.
const CATALOG_STALE: Duration = Duration::from_secs(60);

/// The marker a running server keeps in its data directory; found at
/// start, it says the last run did not stop cleanly.
const RUNNING: &str = "RUNNING";

/// The running marker: its content before this start (none after a clean
/// stop) and where it is.
struct Marker {
    path: std::path::PathBuf,
    previous: Option<String>,
}

impl Marker {
    fn read(data_dir: &std::path::Path) -> Result<Marker> {
        let path = data_dir.join(RUNNING);
        let previous = match std::fs::read_to_string(&path) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::Internal(format!("cannot read {}: {e}", path.display()))),
        };
        Ok(Marker { path, previous })
    }

    /// The instance of the run that left the marker (its second line;
    /// markers before schema v14 name only the node): "" when none.
    fn predecessor(&self) -> &str {
        self.previous
            .as_deref()
            .and_then(|s| s.lines().nth(1))
            .map(str::trim)
            .unwrap_or("")
    }

    fn write(&self, node: &str, instance: &str) -> Result<()> {
        write_file_durable(&self.path, format!("{node}\n{instance}\n").as_bytes(), 0o644)
            .map_err(io_err("cannot write the running marker"))
    }

    /// Puts the marker back as this start found it.
    fn restore(&self) {
        let r = match &self.previous {
            Some(p) => write_file_durable(&self.path, p.as_bytes(), 0o644),
            None => remove_durable(&self.path),
        };
        if let Err(e) = r {
            tracing::warn!("cannot restore {}: {e}", self.path.display());
        }
    }
}

/// Removes `path` and syncs its directory.
fn remove_durable(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    bale_util::durable::fsync_dir(path.parent().unwrap_or(std::path::Path::new(".")))
}

/// This machine's name, for the catalog's record of who uses it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".to_string())
}

impl Service {
    /// Opens the catalog and cache, finishes what a crash interrupted, and
    /// starts the background tasks.
    pub async fn start(config: Config) -> Result<Arc<Service>> {
        config.validate().map_err(|e| Error::BadRequest(e.to_string()))?;
        // A bad policy file stops the start before anything is created.
        let policy = Archiver::read_policy(&config.archive.policy, &config.data_dir)?;
        let libraries: Vec<String> = config.tape.libraries.iter().map(|l| l.name.clone()).collect();
        crate::archive::check_copy_libraries(&policy.policy, &libraries)
            .map_err(|e| Error::BadRequest(format!("invalid policy {}: {e}", policy.origin)))?;
        // So does an issuer whose keys do not read.
        let issuers =
            crate::auth::jwt::Issuers::load(&config.auth).map_err(|e| Error::BadRequest(format!("[auth]: {e}")))?;
        create_dir_all_durable(&config.data_dir)
            .map_err(|e| Error::Internal(format!("cannot create data dir {}: {e}", config.data_dir.display())))?;
        // One process per data directory, before anything in it is read
        // or changed: a second server would take the first one's start
        // for an unclean stop and "recover" its live data.
        let lock = DirLock::acquire(
            &config.data_dir,
            &format!(
                "bale serve, pid {}, listening on {}",
                std::process::id(),
                config.server.listen
            ),
        )
        .map_err(|e| match e {
            LockError::Held { .. } => Error::Conflict(e.to_string()),
            e => Error::Internal(e.to_string()),
        })?;
        let audit = crate::audit::AuditLog::open(config.audit_log_path().as_deref())
            .map_err(|e| Error::Internal(e.to_string()))?;
        let catalog = bale_catalog::open(&config.catalog_spec()).await?;
        let sync = match config.ingest.sync {
            SyncModeConfig::Fsync => SyncMode::Fsync,
            SyncModeConfig::Syncfs => SyncMode::Syncfs,
        };
        let cache = Cache::open(&config.cache_dir(), sync)
            .map_err(io_err("cannot open cache"))?
            .with_inline(
                config.ingest.inline_max.as_u64(),
                config.ingest.inline_pending_max.as_u64(),
            );
        let node = node_id(&config)?;
        // Whether the last run stopped cleanly: the marker is there while a
        // server runs and goes at a clean stop. It names the run (its
        // instance), which is the one claim on the catalog this start may
        // take over at once: that process is gone, since we hold the lock.
        let started = Timestamp::now();
        let marker = Marker::read(&config.data_dir)?;
        let crashed = marker.previous.is_some();
        let instance = uuid::Uuid::now_v7().to_string();
        marker.write(&node, &instance)?;
        // One node per catalog for now: refuse to start (before recovery or
        // the tape system touch anything) while another node is alive on it.
        let claim = CatalogClaim {
            node: node.clone(),
            instance: instance.clone(),
            predecessor: marker.predecessor().to_string(),
            host: format!("{} ({})", hostname(), config.server.listen),
            now: Timestamp::now(),
            stale_ns: CATALOG_STALE.as_nanos() as i64,
        };
        if let Err(e) = catalog.claim_catalog(&claim).await {
            // Refused: the data directory is left as it was.
            marker.restore();
            return Err(match e {
                CatalogError::AlreadyExists(m) => Error::Conflict(m),
                e => e.into(),
            });
        }
        crate::recovery::recover(&catalog, &cache, &node).await?;
        let members = {
            let cache = cache.clone();
            Arc::new(bale_tape::CatalogMembers {
                catalog: catalog.clone(),
                open: move |id| cache.open_data(id),
            })
        };
        let workers = Background::new();
        {
            let catalog = catalog.clone();
            workers.on_dead(Arc::new(move |name: &str, msg: &str| {
                let (catalog, source, msg) = (catalog.clone(), format!("worker {name}"), msg.to_string());
                tokio::spawn(async move {
                    let text = format!("{source} died: {msg}");
                    if let Err(e) = catalog.raise_alarm("error", &source, &text).await {
                        tracing::error!("cannot raise the alarm \"{text}\": {e}");
                    }
                });
            }));
        }
        let tape = TapeSystem::start(
            catalog.clone(),
            members,
            config.tape.clone(),
            &config.data_dir,
            workers.spawner(phase::DRIVES),
        )
        .await?;
        let archiver = Arc::new(Archiver::new(policy, &config.data_dir, catalog.clone(), tape.clone()));
        workers.spawn(
            phase::AGGREGATION,
            OnWayCheck {
                archiver: archiver.clone(),
                every: Duration::from_secs(config.archive.check_on_way_s),
                stuck_after: Duration::from_secs(config.archive.stuck_after_s),
                repaired: 0,
            },
        );
        workers.spawn(
            phase::AGGREGATION,
            PoolWatcher {
                archiver: archiver.clone(),
                every: Duration::from_millis(config.archive.check_ms),
                closed: 0,
            },
        );
        let committer = Committer::spawn(
            catalog.clone(),
            cache.clone(),
            CommitterConfig {
                node: node.clone(),
                max_batch: config.ingest.max_batch,
                settle_every: Duration::from_millis(config.ingest.settle_ms),
            },
            &workers,
            phase::COMMIT,
        );
        let access = Arc::new(AccessLog::default());
        workers.spawn(
            phase::ACCESS,
            AccessFlusher {
                access: access.clone(),
                catalog: catalog.clone(),
                every: Duration::from_millis(config.namespace.access_time_flush_ms.max(1)),
            },
        );
        workers.spawn(
            phase::HEARTBEAT,
            Heartbeat {
                catalog: catalog.clone(),
                node: node.clone(),
                instance,
                beats: 0,
                every: CATALOG_STALE / 6,
            },
        );
        let events = crate::events::EventLog::new(config.history.enabled);
        workers.spawn(
            phase::ACCESS,
            crate::events::HistoryWriter {
                log: events.clone(),
                catalog: catalog.clone(),
                every: Duration::from_millis(config.history.flush_ms.max(1)),
                retention: (config.history.retention_days > 0)
                    .then(|| Duration::from_secs(config.history.retention_days * 86_400)),
                pruned_at: None,
                written: 0,
                pruned: 0,
            },
        );
        let stager = Arc::new(crate::stager::Stager::new(
            catalog.clone(),
            cache.clone(),
            tape.clone(),
            events.clone(),
        ));
        workers.spawn(
            phase::AGGREGATION,
            crate::stager::StageWorker {
                catalog: catalog.clone(),
                stager: stager.clone(),
                every: Duration::from_secs(10),
                submitted: 0,
                keep_finished: Duration::from_secs(config.stage.keep_finished_s),
                forgot_at: None,
            },
        );
        workers.spawn(
            phase::AGGREGATION,
            crate::purge::Purger {
                catalog: catalog.clone(),
                cache: cache.clone(),
                stager: stager.clone(),
                capacity: config.cache.capacity.as_u64(),
                cache_dir: config.cache_dir(),
                high: config.cache.purge_high,
                low: config.cache.purge_low,
                max_age: (config.cache.max_time_in_cache_s > 0)
                    .then(|| Duration::from_secs(config.cache.max_time_in_cache_s)),
                every: Duration::from_millis(config.cache.purge_check_ms),
                files: 0,
                bytes: 0,
                above_since: None,
            },
        );
        workers.spawn(
            phase::AGGREGATION,
            crate::repair::RepairWorker {
                catalog: catalog.clone(),
                tape: tape.clone(),
                stager: stager.clone(),
                every: Duration::from_secs(config.verify.repair_check_s),
                queued: 0,
                staged: 0,
            },
        );
        if config.verify.scrub_period_s > 0 {
            workers.spawn(
                phase::AGGREGATION,
                crate::repair::Scrubber {
                    catalog: catalog.clone(),
                    tape: tape.clone(),
                    stager: stager.clone(),
                    period: Duration::from_secs(config.verify.scrub_period_s),
                    rate: Some(config.verify.scrub_rate.as_u64()).filter(|r| *r > 0),
                    verified: 0,
                    bad: 0,
                },
            );
        }
        let (config_data_dir, ui) = (config.data_dir.clone(), config.ui.clone());
        let svc = Arc::new(Service {
            _lock: lock,
            stager,
            auth: Auth::new(catalog.clone(), issuers),
            audit,
            config,
            catalog,
            cache,
            committer,
            tape,
            archiver,
            access,
            workers,
            events,
            node: node.clone(),
            started,
            quota_cache: Default::default(),
            cache_memo: Default::default(),
            samples: Arc::new(crate::samples::Samples::open(
                config_data_dir.join("ui-samples.jsonl"),
                ui.capacity(),
                Duration::from_secs(ui.sample_s),
            )),
        });
        let gauges: Arc<dyn crate::samples::Gauges> = svc.clone();
        svc.workers.spawn(
            phase::AGGREGATION,
            crate::samples::Sampler {
                samples: svc.samples.clone(),
                gauges: Arc::downgrade(&gauges),
                taken: 0,
            },
        );
        svc.ensure_admin_token().await?;
        svc.reload_quotas().await?;
        if crashed {
            tracing::warn!("the last run did not stop cleanly: checking the cache against the catalog");
            let target: Arc<dyn crate::workers::CacheCheck> = svc.clone();
            svc.workers.spawn(
                phase::AGGREGATION,
                crate::workers::CrashCheck {
                    target: Arc::downgrade(&target),
                    started,
                    problems: 0,
                    repaired: 0,
                },
            );
        }
        Ok(svc)
    }

    /// Stops the background workers in their order (aggregation, commits,
    /// access times, drives, the catalog heartbeat) within the configured
    /// deadline. Call after the HTTP server has finished its requests.
    pub async fn shutdown(&self) {
        let deadline = Duration::from_secs(self.config.shutdown_deadline_s);
        let aborted = self.workers.shutdown(deadline).await;
        if !aborted.is_empty() {
            tracing::error!(
                "stopped {} at the shutdown deadline ({deadline:?}); the next start recovers their work",
                aborted.join(", ")
            );
        } else if let Err(e) = remove_durable(&self.config.data_dir.join(RUNNING)) {
            tracing::warn!("cannot remove the running marker (the next start checks the cache): {e}");
        }
    }

    /// The figures behind the status page's charts.
    pub fn samples(&self) -> &crate::samples::Samples {
        &self.samples
    }

    /// The background workers (phase order), for `bale workers`.
    pub(crate) fn background(&self) -> &Background {
        &self.workers
    }

    /// The tape system: libraries, drives, volumes, the scheduler.
    pub(crate) fn tape(&self) -> &TapeSystem {
        &self.tape
    }

    /// Aggregation: the policy, pools, the queue.
    pub(crate) fn archiver(&self) -> &Archiver {
        &self.archiver
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn catalog(&self) -> &DynCatalog {
        &self.catalog
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The audit log (the HTTP layer records refusals in it).
    pub fn audit(&self) -> &crate::audit::AuditLog {
        &self.audit
    }

    /// Writes `<data_dir>/admin.token` (mode 0600) unless it holds a live token.
    async fn ensure_admin_token(&self) -> Result<()> {
        let path = self.config.admin_token_path();
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let header = format!("Bearer {}", existing.trim());
            if self.auth.authenticate(Some(&header)).await.is_ok() {
                return Ok(());
            }
            tracing::warn!("{} holds no live token; issuing a new one", path.display());
        }
        let (token, _) = self
            .auth
            .create("admin", "admin", true, "admin token written at first start")
            .await?;
        write_file_durable(&path, format!("{token}\n").as_bytes(), 0o600)
            .map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))?;
        tracing::info!("wrote the admin token to {}", path.display());
        Ok(())
    }
}

/// This node's id: read from `<data_dir>/node.id`, created at first start.
pub(crate) fn node_id(config: &Config) -> Result<String> {
    let path = config.data_dir.join("node.id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Internal(format!("cannot read {}: {e}", path.display())))
        }
        _ => {
            let id = uuid::Uuid::now_v7().to_string();
            write_file_durable(&path, format!("{id}\n").as_bytes(), 0o644)
                .map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))?;
            Ok(id)
        }
    }
}
