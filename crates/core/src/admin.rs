//! Administration as operations of the service: the tape library, the
//! aggregation policy and queue, tokens and alarms. Each operation is an
//! [`Action`] of the authorization table (`authz`), checked first; the
//! HTTP layer only translates.

use crate::archive::{Closing, LoadedPolicy, QueueView};
use crate::auth::Principal;
use crate::authz::{allow, Action};
use crate::service::Service;
use crate::{Error, Result};
use bale_catalog::{Alarm, ArchiveJob, Package, TokenInfo, Volume, VolumeState};
use bale_tape::{DriveView, Event, Fault, LibraryView, VolumeView};
use bale_util::background::WorkerInfo;
use bale_util::{NsPath, Timestamp};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// A fault to inject (tests and drills); each fires once.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultPoint {
    /// The next tape write on this volume fails partway (a medium error).
    WriteError { volume: String },
    /// The next tape file read on this volume fails (a medium error).
    ReadError { volume: String },
    /// This drive fails at its next load, write or read.
    DriveFailure { drive: String },
    /// This background worker panics before its next unit of work: it shows
    /// as dead in `bale workers` and an alarm is raised.
    WorkerPanic { worker: String },
}

impl Service {
    /// Runs an administrative action (already allowed) and records it,
    /// with its result, in the audit log.
    pub(crate) async fn audited<T>(
        &self,
        who: &Principal,
        action: Action,
        target: &str,
        run: impl std::future::Future<Output = Result<T>>,
        detail: impl FnOnce(&T) -> String,
    ) -> Result<T> {
        let r = run.await;
        self.audit.action(who, action, target, &r, detail);
        r
    }

    pub fn volumes(&self, who: &Principal) -> Result<Vec<VolumeView>> {
        allow(who, Action::Volumes)?;
        Ok(self.tape().volumes())
    }

    /// Adds blank volumes to a library; `media`, if given, must be the
    /// library's.
    pub async fn add_volumes(
        &self,
        who: &Principal,
        library: &str,
        media: Option<&str>,
        count: u32,
        capacity: Option<u64>,
        prefix: Option<&str>,
    ) -> Result<Vec<Volume>> {
        allow(who, Action::VolumesAdd)?;
        let target = format!("{count} on library {library}");
        self.audited(
            who,
            Action::VolumesAdd,
            &target,
            self.add_volumes_now(library, media, count, capacity, prefix),
            |v| {
                format!(
                    "added {}",
                    v.iter().map(|v| v.label.as_str()).collect::<Vec<_>>().join(" ")
                )
            },
        )
        .await
    }

    async fn add_volumes_now(
        &self,
        library: &str,
        media: Option<&str>,
        count: u32,
        capacity: Option<u64>,
        prefix: Option<&str>,
    ) -> Result<Vec<Volume>> {
        if let Some(media) = media {
            let lib = self
                .tape()
                .libraries()
                .into_iter()
                .find(|l| l.name == library)
                .ok_or_else(|| Error::NotFound(format!("no library {library:?}")))?;
            if lib.media != media {
                return Err(Error::BadRequest(format!(
                    "library {} has {} drives; it cannot take {media} volumes",
                    lib.name, lib.media
                )));
            }
        }
        Ok(self.tape().add_volumes(library, count, capacity, prefix).await?)
    }

    pub async fn volume(&self, who: &Principal, label: &str) -> Result<(VolumeView, Vec<Package>)> {
        allow(who, Action::Volumes)?;
        Ok(self.tape().volume(label).await?)
    }

    pub async fn set_volume_state(&self, who: &Principal, label: &str, state: VolumeState) -> Result<Volume> {
        allow(who, Action::VolumeState)?;
        let target = format!("{label} to {state:?}");
        let run = async { Ok(self.tape().set_volume_state(label, state).await?) };
        self.audited(who, Action::VolumeState, &target, run, |_| String::new())
            .await
    }

    pub fn drives(&self, who: &Principal) -> Result<Vec<DriveView>> {
        allow(who, Action::Drives)?;
        Ok(self.tape().drives())
    }

    pub async fn set_drive_online(&self, who: &Principal, name: &str, online: bool) -> Result<DriveView> {
        allow(who, Action::DriveState)?;
        let target = format!("{name} {}", if online { "online" } else { "offline" });
        let run = async { Ok(self.tape().set_drive_online(name, online).await?) };
        self.audited(who, Action::DriveState, &target, run, |_| String::new())
            .await
    }

    pub fn libraries(&self, who: &Principal) -> Result<Vec<LibraryView>> {
        allow(who, Action::Libraries)?;
        Ok(self.tape().libraries())
    }

    pub fn tape_events(&self, who: &Principal, after: u64) -> Result<Vec<Event>> {
        allow(who, Action::TapeEvents)?;
        Ok(self.tape().events(after))
    }

    pub fn inject_fault(&self, who: &Principal, fault: FaultPoint) -> Result<()> {
        allow(who, Action::Faults)?;
        let target = format!("{fault:?}");
        let r = self.inject_fault_now(fault);
        self.audit.action(who, Action::Faults, &target, &r, |_| String::new());
        r
    }

    fn inject_fault_now(&self, fault: FaultPoint) -> Result<()> {
        let tape = match fault {
            FaultPoint::WorkerPanic { worker } => {
                return match self.background().kill(&worker) {
                    true => Ok(()),
                    false => Err(Error::NotFound(format!("no running worker {worker:?}"))),
                }
            }
            FaultPoint::WriteError { volume } => Fault::WriteError { volume },
            FaultPoint::ReadError { volume } => Fault::ReadError { volume },
            FaultPoint::DriveFailure { drive } => Fault::DriveFailure { drive },
        };
        Ok(self.tape().inject(tape)?)
    }

    /// Every background worker with its state, counters and last error.
    /// Errors may name paths: for administrators.
    /// Whether this node can serve (`/readyz`): the catalog answers
    /// within two seconds, the cache takes a write, and no background
    /// worker is dead. An offline drive is normal operation, not a reason.
    /// The reason, for the log: the answer itself says no more than
    /// ready or not.
    pub async fn ready(&self) -> std::result::Result<(), String> {
        let probe = tokio::time::timeout(Duration::from_secs(2), self.catalog().node(bale_catalog::ROOT_ID));
        match probe.await {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => return Err("the catalog has no root directory".into()),
            Ok(Err(e)) => return Err(format!("the catalog does not answer: {e}")),
            Err(_) => return Err("the catalog did not answer within 2 s".into()),
        }
        let cache = self.cache.clone();
        match tokio::task::spawn_blocking(move || cache.writable()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("the cache takes no write: {e}")),
            Err(e) => return Err(format!("the cache probe failed: {e}")),
        }
        if let Some(w) = self.background().workers().into_iter().find(|w| w.state == "dead") {
            return Err(format!("worker {} is dead", w.name));
        }
        Ok(())
    }

    pub fn workers(&self, who: &Principal) -> Result<Vec<WorkerInfo>> {
        allow(who, Action::Workers)?;
        Ok(self.background().workers())
    }

    /// Alarms name paths and volumes: for administrators. Those not yet
    /// acknowledged, or every one.
    pub async fn alarms(&self, who: &Principal, all: bool) -> Result<Vec<Alarm>> {
        allow(who, Action::Alarms)?;
        Ok(self.catalog().alarms(all).await?)
    }

    /// Acknowledges an alarm: it leaves the list of open alarms, and a
    /// later repeat raises a new one.
    pub async fn ack_alarm(&self, who: &Principal, id: i64) -> Result<Alarm> {
        allow(who, Action::AlarmAck)?;
        let run = async {
            self.catalog()
                .ack_alarm(id, &who.user, Timestamp::now())
                .await?
                .ok_or_else(|| Error::NotFound(format!("no alarm {id}")))
        };
        self.audited(who, Action::AlarmAck, &format!("alarm {id}"), run, |_| String::new())
            .await
    }

    pub fn policy(&self, who: &Principal) -> Result<Arc<LoadedPolicy>> {
        allow(who, Action::PolicyShow)?;
        Ok(self.archiver().policy())
    }

    pub fn load_policy(&self, who: &Principal, text: &str) -> Result<Arc<LoadedPolicy>> {
        allow(who, Action::PolicyLoad)?;
        let origin = format!("loaded by {} with bale policy load", who.user);
        let r = self.archiver().load(text, &origin);
        self.audit
            .action(who, Action::PolicyLoad, &format!("{} bytes", text.len()), &r, |p| {
                format!("{} rule(s)", p.policy.rules.len())
            });
        r
    }

    /// Reads the configured policy file again (SIGHUP): a bad file is
    /// refused and the running policy stays. Returns what it did, for the
    /// log; `None` when no policy file is configured.
    pub fn reload_policy_file(&self) -> Option<Result<String>> {
        let path = &self.config().archive.policy;
        if path.as_os_str().is_empty() {
            return None;
        }
        let r = std::fs::read_to_string(path)
            .map_err(|e| Error::BadRequest(format!("cannot read {}: {e}", path.display())))
            .and_then(|text| {
                self.archiver()
                    .load(&text, &format!("{}, reloaded on SIGHUP", path.display()))
                    .map(|p| format!("policy {} reloaded: {} rule(s)", path.display(), p.policy.rules.len()))
            });
        let (result, detail) = match &r {
            Ok(d) => ("ok", d.clone()),
            Err(e) => ("failed", e.to_string()),
        };
        self.audit
            .local("policy-reload", &path.display().to_string(), result, &detail);
        Some(r)
    }

    pub async fn queue(&self, who: &Principal) -> Result<QueueView> {
        allow(who, Action::QueueShow)?;
        self.archiver().queue().await
    }

    /// Closes one open pool, or all of them, whole.
    pub async fn flush(&self, who: &Principal, pool: Option<&str>) -> Result<Vec<ArchiveJob>> {
        allow(who, Action::QueueFlush)?;
        let which = match pool {
            Some(key) => Closing::Pool(key),
            None => Closing::All,
        };
        let run = self.archiver().close_pools(which);
        self.audited(who, Action::QueueFlush, pool.unwrap_or("every pool"), run, |jobs| {
            format!("{} archive job(s)", jobs.len())
        })
        .await
    }

    /// Puts failed archive jobs back in the queue, attempts reset: one
    /// (which must be failed), or every failed job. For after the cause is
    /// fixed; the tape system takes them at once.
    pub async fn retry_jobs(&self, who: &Principal, job: Option<i64>) -> Result<Vec<ArchiveJob>> {
        allow(who, Action::QueueRetry)?;
        let target = job
            .map(|j| format!("job {j}"))
            .unwrap_or_else(|| "every failed job".into());
        let run = self.retry_jobs_now(who, job);
        self.audited(who, Action::QueueRetry, &target, run, |jobs| {
            format!("{} job(s) retried", jobs.len())
        })
        .await
    }

    async fn retry_jobs_now(&self, who: &Principal, job: Option<i64>) -> Result<Vec<ArchiveJob>> {
        let jobs = self.catalog().retry_jobs(job).await.map_err(|e| match e {
            bale_catalog::CatalogError::NotFound(m) => Error::NotFound(format!("no {m}; bale queue --all lists them")),
            e => e.into(),
        })?;
        for j in &jobs {
            tracing::info!(
                "archive job {} ({} file(s)) retried by {}",
                j.id,
                j.files.len(),
                who.user
            );
            self.tape().enqueue(j.clone());
        }
        Ok(jobs)
    }

    pub async fn tokens(&self, who: &Principal) -> Result<Vec<TokenInfo>> {
        allow(who, Action::Tokens)?;
        self.auth().list().await
    }

    /// A new token; returns its secret (shown once) and its record.
    pub async fn create_token(
        &self,
        who: &Principal,
        user: &str,
        group: &str,
        admin: bool,
        comment: &str,
    ) -> Result<(String, TokenInfo)> {
        allow(who, Action::TokenCreate)?;
        let target = format!(
            "user {user}, group {group}{}",
            if admin { ", administrator" } else { "" }
        );
        // The secret is never in the line: the token's id names it.
        let run = self.auth().create(user, group, admin, comment);
        self.audited(who, Action::TokenCreate, &target, run, |(_, info)| {
            format!("token {}", info.id)
        })
        .await
    }

    pub async fn revoke_token(&self, who: &Principal, id: &str) -> Result<()> {
        allow(who, Action::TokenRevoke)?;
        let run = self.auth().revoke(id);
        self.audited(who, Action::TokenRevoke, &format!("token {id}"), run, |_| String::new())
            .await
    }

    /// Who sends this `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal> {
        self.auth().authenticate(header).await
    }

    /// The catalog backend's name ("sqlite", "postgres").
    pub fn catalog_backend(&self) -> &'static str {
        self.catalog().backend()
    }
}

/// How long a purge waits for acknowledged files to settle.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a purge removed (or, dry, would remove).
#[derive(Clone, Debug, Default)]
pub struct PurgeReport {
    pub dry_run: bool,
    /// Cache copies removed (or to remove).
    pub files: usize,
    pub bytes: u64,
    /// Files asked for that may not be purged (not on tape, pinned, not
    /// cached), with the reason.
    pub kept: Vec<(String, String)>,
    /// With `all`: every file the cache keeps afterwards (or, dry, would
    /// keep), by reason: (reason, files, bytes).
    pub kept_by_reason: Vec<(String, u64, u64)>,
}

impl Service {
    /// Removes the cache copies of files that are on tape and not pinned:
    /// `paths` (files), or with `all` every such file. The plan comes
    /// first; the catalog re-checks each file in the transaction that marks
    /// it purged, and the data goes only after that. Administrators.
    pub async fn purge(&self, who: &Principal, paths: &[NsPath], all: bool, dry_run: bool) -> Result<PurgeReport> {
        allow(who, Action::Purge)?;
        let target = if all {
            "every purgeable file".to_string()
        } else {
            format!("{} path(s)", paths.len())
        } + if dry_run { " (dry run)" } else { "" };
        let run = self.purge_now(who, paths, all, dry_run);
        self.audited(who, Action::Purge, &target, run, |r| {
            format!("{} file(s), {} bytes", r.files, r.bytes)
        })
        .await
    }

    async fn purge_now(&self, who: &Principal, paths: &[NsPath], all: bool, dry_run: bool) -> Result<PurgeReport> {
        if all != paths.is_empty() {
            return Err(Error::BadRequest(
                "name the files to purge, or ask for all (not both)".into(),
            ));
        }
        // Files acknowledged and already on tape may still be settling
        // (landing: their cache copy not yet durable). Settled first, they
        // can be purged now rather than at a later purge.
        if tokio::time::timeout(SETTLE_WAIT, self.committer.settle_all())
            .await
            .is_err()
        {
            tracing::warn!("purge: the settler did not catch up within {SETTLE_WAIT:?}; settling files are kept");
        }
        let now = bale_util::Timestamp::now();
        let mut report = PurgeReport {
            dry_run,
            ..PurgeReport::default()
        };
        let mut plan: Vec<bale_catalog::Node> = Vec::new();
        if all {
            plan = self.catalog().purge_candidates(now, usize::MAX >> 1).await?;
        } else {
            for path in paths {
                let node = self.stat(who, path).await?;
                let reason = if node.is_dir() {
                    Some("a directory")
                } else if !node.cached {
                    Some("not cached")
                } else if self
                    .catalog()
                    .tape_copies(node.file_id.expect("a file"))
                    .await?
                    .is_empty()
                {
                    Some("not on tape yet")
                } else if !self
                    .catalog()
                    .pins(node.file_id.expect("a file"), now)
                    .await?
                    .is_empty()
                {
                    Some("pinned")
                } else {
                    None
                };
                match reason {
                    Some(r) => report.kept.push((path.to_string(), r.to_string())),
                    None => plan.push(node),
                }
            }
        }
        if dry_run {
            report.files = plan.len();
            report.bytes = plan.iter().map(|n| n.size).sum();
        } else {
            let (files, bytes) =
                crate::purge::purge_nodes(self.catalog(), &self.cache, &self.stager, &plan, now).await?;
            report.files = files;
            report.bytes = bytes;
        }
        if all {
            report.kept_by_reason = self
                .catalog()
                .cache_kept(now)
                .await?
                .into_iter()
                .filter(|(why, _, _)| !dry_run || why != bale_catalog::kept::PURGEABLE)
                .collect();
        }
        Ok(report)
    }

    /// What the cache holds: cached, pinned and purgeable files and bytes.
    /// What the cache holds, against its capacity and the purger's marks.
    pub async fn cache_usage(&self, who: &Principal) -> Result<CacheView> {
        self.cache_usage_within(who, std::time::Duration::ZERO).await
    }

    /// The cache at a glance, its catalog figures read at most `max_age`
    /// ago: pages that poll share one aggregate over the cached files
    /// (one reader at a time computes it, the others wait and take it).
    pub(crate) async fn cache_usage_within(&self, who: &Principal, max_age: std::time::Duration) -> Result<CacheView> {
        allow(who, Action::CacheUsage)?;
        let usage = {
            let mut memo = self.cache_memo.lock().await;
            match &*memo {
                Some((at, u)) if !max_age.is_zero() && at.elapsed() <= max_age => u.clone(),
                _ => {
                    let u = self.catalog().cache_usage(bale_util::Timestamp::now()).await?;
                    *memo = Some((std::time::Instant::now(), u.clone()));
                    u
                }
            }
        };
        let (free, total) = self
            .cache
            .space()
            .map_err(|e| Error::Internal(format!("cannot read the cache filesystem's space: {e}")))?;
        let c = &self.config().cache;
        // As the purger counts it: the configured capacity, else the filesystem's size.
        let capacity = match c.capacity.as_u64() {
            0 => total,
            n => n,
        };
        Ok(CacheView {
            usage,
            capacity,
            filesystem_free: free,
            purge_high: (c.purge_high * capacity as f64) as u64,
            purge_low: (c.purge_low * capacity as f64) as u64,
        })
    }
}

/// The cache at a glance: what it holds (files and bytes cached, pinned,
/// purgeable), its capacity, the free space of its filesystem, and the
/// purger's marks in bytes (above the high one it purges down to the low
/// one).
#[derive(Clone, Debug)]
pub struct CacheView {
    pub usage: bale_catalog::CacheUsage,
    pub capacity: u64,
    pub filesystem_free: u64,
    pub purge_high: u64,
    pub purge_low: u64,
}
