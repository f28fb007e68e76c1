//! The node at a glance: `bale status` and the gauges of `/metrics`, read
//! from one place. The queues come from the catalog in one read, drives
//! and volumes from the tape system's memory, workers from the runner.
//! The gauges never walk files; `bale status` reads the cache's use as
//! `bale cache` does (one aggregate over the cached files).

use crate::auth::Principal;
use crate::authz::{allow, Action};
use crate::service::Service;
use crate::Result;
use bale_catalog::{Depths, VolumeState};
use bale_util::metrics as m;
use bale_util::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

/// What `bale status` shows. Workers and alarms (they name paths and
/// volumes) only for administrators.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub version: &'static str,
    pub catalog: &'static str,
    pub started: Timestamp,
    pub ready: bool,
    /// Why not, for administrators.
    pub not_ready: Option<String>,
    pub cache: CacheStatus,
    pub queue: QueueStatus,
    pub stage: StageStatus,
    pub drives: Vec<DriveStatus>,
    pub volumes: Vec<VolumeGroup>,
    pub workers: Option<Vec<WorkerStatus>>,
    pub alarms: Option<AlarmStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CacheStatus {
    pub capacity: u64,
    pub used: u64,
    pub files: u64,
    pub pinned: u64,
    pub purgeable: u64,
    pub purge_high: u64,
    pub purge_low: u64,
    pub filesystem_free: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueueStatus {
    pub pools_open: u64,
    pub pool_files: u64,
    pub pool_bytes: u64,
    pub oldest_pool_age_s: Option<f64>,
    /// Archive jobs and their bytes by state.
    pub jobs: BTreeMap<String, (u64, u64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageStatus {
    pub requests_open: u64,
    pub files_submitted: u64,
    pub files_started: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DriveStatus {
    pub name: String,
    pub library: String,
    /// idle, busy or offline.
    pub activity: &'static str,
    pub volume: Option<String>,
    pub efficiency: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VolumeGroup {
    pub library: String,
    pub state: VolumeState,
    pub count: u64,
    pub used: u64,
    pub capacity: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    pub state: &'static str,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlarmStatus {
    /// Open alarms by severity.
    pub open: BTreeMap<String, u64>,
    /// The latest open ones: (severity, source, message).
    pub latest: Vec<(String, String, String)>,
}

fn age_s(t: Timestamp, now: Timestamp) -> f64 {
    ((now.0 - t.0).max(0) as f64) / 1e9
}

/// Volumes by library and state, every state of every library listed.
fn volume_groups(vols: &[bale_tape::VolumeView], libraries: &[String]) -> Vec<VolumeGroup> {
    let empty = |library: &str, state: VolumeState| VolumeGroup {
        library: library.to_string(),
        state,
        count: 0,
        used: 0,
        capacity: 0,
    };
    let mut by: BTreeMap<(String, &'static str), VolumeGroup> = BTreeMap::new();
    for lib in libraries {
        for &state in VolumeState::ALL {
            by.insert((lib.clone(), state.as_str()), empty(lib, state));
        }
    }
    for v in vols {
        let (lib, state) = (&v.volume.library, v.volume.state);
        let g = by
            .entry((lib.clone(), state.as_str()))
            .or_insert_with(|| empty(lib, state));
        g.count += 1;
        g.used += v.volume.used;
        g.capacity += v.volume.capacity;
    }
    by.into_values().collect()
}

impl Service {
    /// The node at a glance.
    pub async fn status(&self, who: &Principal) -> Result<NodeStatus> {
        self.status_within(who, std::time::Duration::ZERO).await
    }

    /// The node at a glance, the cache's catalog figures at most
    /// `cache_age` old (the status page polls).
    pub(crate) async fn status_within(&self, who: &Principal, cache_age: std::time::Duration) -> Result<NodeStatus> {
        allow(who, Action::Status)?;
        let now = Timestamp::now();
        let (depths, cache, ready) = tokio::join!(
            self.catalog().depths(),
            self.cache_usage_within(who, cache_age),
            self.ready()
        );
        let (depths, cache) = (depths?, cache?);
        let tape = self.tape();
        let drives = tape
            .drives()
            .into_iter()
            .map(|d| DriveStatus {
                name: d.drive.name,
                library: d.drive.library,
                activity: d.activity,
                volume: d.volume,
                efficiency: d.efficiency,
            })
            .collect();
        let libraries: Vec<String> = tape.libraries().into_iter().map(|l| l.name).collect();
        let volumes = volume_groups(&tape.volumes(), &libraries);
        let (workers, alarms) = match who.admin {
            true => {
                let workers = self
                    .background()
                    .workers()
                    .into_iter()
                    .map(|w| WorkerStatus {
                        name: w.name,
                        state: w.state,
                        last_error: w.last_error,
                    })
                    .collect();
                let open = self.catalog().alarms(false).await?;
                let alarms = AlarmStatus {
                    open: depths.alarms.iter().cloned().collect(),
                    latest: open
                        .into_iter()
                        .take(5)
                        .map(|a| (a.severity, a.source, a.message))
                        .collect(),
                };
                (Some(workers), Some(alarms))
            }
            false => (None, None),
        };
        let Depths {
            pools_open,
            pool_files,
            pool_bytes,
            pool_oldest,
            jobs,
            stage_files,
            stage_requests,
            ..
        } = depths;
        let count = |s: bale_catalog::StageState| stage_files.iter().find(|f| f.0 == s).map_or(0, |f| f.1);
        Ok(NodeStatus {
            node: self.node.clone(),
            version: env!("CARGO_PKG_VERSION"),
            catalog: self.catalog_backend(),
            started: self.started,
            ready: ready.is_ok(),
            not_ready: ready.err().filter(|_| who.admin),
            cache: CacheStatus {
                capacity: cache.capacity,
                used: cache.usage.cached_bytes,
                files: cache.usage.cached_files,
                pinned: cache.usage.pinned_bytes,
                purgeable: cache.usage.purgeable_bytes,
                purge_high: cache.purge_high,
                purge_low: cache.purge_low,
                filesystem_free: cache.filesystem_free,
            },
            queue: QueueStatus {
                pools_open,
                pool_files,
                pool_bytes,
                oldest_pool_age_s: pool_oldest.map(|t| age_s(t, now)),
                jobs: jobs
                    .into_iter()
                    .map(|(s, n, b)| (s.as_str().to_string(), (n, b)))
                    .collect(),
            },
            stage: StageStatus {
                requests_open: stage_requests,
                files_submitted: count(bale_catalog::StageState::Submitted),
                files_started: count(bale_catalog::StageState::Started),
            },
            drives,
            volumes,
            workers,
            alarms,
        })
    }

    /// Sets the gauges read at scrape time: the queues (one catalog read),
    /// drives and volumes (memory), workers, open alarms. The cache's come
    /// from the purger's rounds.
    pub async fn refresh_gauges(&self) -> Result<()> {
        let d = self.catalog().depths().await?;
        let now = Timestamp::now();
        let g = |name: &'static str, v: f64| metrics::gauge!(name).set(v);
        g(m::POOLS_OPEN, d.pools_open as f64);
        g(m::POOL_FILES, d.pool_files as f64);
        g(m::POOL_BYTES, d.pool_bytes as f64);
        g(m::POOL_OLDEST_AGE, d.pool_oldest.map_or(0.0, |t| age_s(t, now)));
        for (state, n, bytes) in &d.jobs {
            metrics::gauge!(m::ARCHIVE_JOBS, "state" => state.as_str()).set(*n as f64);
            metrics::gauge!(m::ARCHIVE_JOB_BYTES, "state" => state.as_str()).set(*bytes as f64);
        }
        for (state, n) in &d.stage_files {
            let s = state.as_str().to_lowercase();
            metrics::gauge!(m::STAGE_FILES_OPEN, "state" => s).set(*n as f64);
        }
        for sev in ["warning", "error"] {
            let n = d.alarms.iter().find(|a| a.0 == sev).map_or(0, |a| a.1);
            metrics::gauge!(m::ALARMS_OPEN, "severity" => sev).set(n as f64);
        }
        for (sev, n) in d.alarms.iter().filter(|a| a.0 != "warning" && a.0 != "error") {
            metrics::gauge!(m::ALARMS_OPEN, "severity" => sev.clone()).set(*n as f64);
        }
        let tape = self.tape();
        for dv in tape.drives() {
            let (lib, name) = (dv.drive.library.clone(), dv.drive.name.clone());
            for state in ["idle", "busy", "offline"] {
                let v = if dv.activity == state { 1.0 } else { 0.0 };
                metrics::gauge!(m::DRIVE_STATE, "library" => lib.clone(), "drive" => name.clone(), "state" => state)
                    .set(v);
            }
            let s = &dv.drive.stats;
            for (kind, secs) in [
                ("robot", s.robot_s),
                ("load", s.load_s),
                ("locate", s.locate_s),
                ("write", s.write_s),
                ("read", s.read_s),
                ("mark", s.mark_s),
                ("unload", s.unload_s),
            ] {
                metrics::counter!(m::DRIVE_BUSY, "library" => lib.clone(), "drive" => name.clone(), "kind" => kind)
                    .absolute(secs.max(0.0) as u64);
            }
            let labels = [("library", lib), ("drive", name)];
            metrics::counter!(m::DRIVE_MOUNTS, &labels).absolute(s.mounts);
            metrics::counter!(m::DRIVE_WRITTEN_BYTES, &labels).absolute(s.bytes_written);
            metrics::counter!(m::DRIVE_READ_BYTES, &labels).absolute(s.bytes_read);
        }
        let libraries: Vec<String> = tape.libraries().into_iter().map(|l| l.name).collect();
        for v in volume_groups(&tape.volumes(), &libraries) {
            let labels = [("library", v.library), ("state", v.state.as_str().to_string())];
            metrics::gauge!(m::VOLUMES, &labels).set(v.count as f64);
            metrics::gauge!(m::VOLUME_USED_BYTES, &labels).set(v.used as f64);
            metrics::gauge!(m::VOLUME_CAPACITY_BYTES, &labels).set(v.capacity as f64);
        }
        for w in self.background().workers() {
            let up = if w.state == "dead" { 0.0 } else { 1.0 };
            metrics::gauge!(m::WORKER_UP, "worker" => w.name).set(up);
        }
        metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::samples::Gauges for Service {
    async fn refresh_gauges(&self) -> Result<()> {
        Service::refresh_gauges(self).await
    }
}
