//! The library model and the scheduler.
//!
//! One task per drive asks the scheduler for work ([`State::assign`]), does
//! it (robot, load, locate, write or read, file mark, unload), charges the
//! modelled seconds to the drive and the volume, and records the result in
//! the catalog. The scheduler's rules:
//!
//! - Writes queue per (library, storage group, file family, wrapper). At
//!   most `file_family_width` volumes of a family are being written at once
//!   (a volume is being written while a drive holds it for that family).
//! - A drive keeps its volume while the volume has queued work: reads on
//!   it, or writes of its family that fit. A family volume that cannot hold
//!   the next tape file is marked full and another appendable volume of the
//!   family, or a blank one, is used (fullest appendable first).
//! - Reads are grouped per volume; a drive takes every pending read of a
//!   volume at once and serves them in tape order: one mount per volume
//!   per batch.
//! - Otherwise the oldest waiting request goes first (FIFO across queues).
//!   No request starves: once a request has waited `max_wait_s`, a drive
//!   gives up its mounted volume's remaining work to serve the oldest one.
//! - An idle drive unloads after `idle_unload_s`.
//!
//! The catalog is the truth: a tape file counts as written only when its
//! package row commits (after its synchronous file mark, or after the
//! buffered flush that covers it). A crash before that leaves the job
//! queued and the volume's end of data where the catalog says; at start,
//! tape files beyond it are discarded and the job is redone.

use crate::backend::{FsBackend, Label, Mounted, VolumeBackend};
use crate::config::{BackendKind, FileMarks, TapeConfig};
use crate::media::MediaProfile;
use crate::members::MemberSource;
use bale_catalog::{
    ArchiveJob, CatalogError, Drive, DriveState, DynCatalog, Family, NewMember, NewPackage, NewVolume, Package,
    TapeStats, Volume, VolumeState, VolumeWrite,
};
use bale_pack::{MemberMeta, PackError, Plan, ReadAhead};
use bale_util::{Adler32, FileId, Timestamp};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

#[derive(Debug, thiserror::Error)]
pub enum TapeError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

pub type Result<T, E = TapeError> = std::result::Result<T, E>;

/// A kind of modelled work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Charge {
    Robot,
    Load,
    Locate,
    Write,
    Read,
    Mark,
    Unload,
}

fn add_charge(s: &mut TapeStats, kind: Charge, secs: f64) {
    match kind {
        Charge::Robot => s.robot_s += secs,
        Charge::Load => s.load_s += secs,
        Charge::Locate => s.locate_s += secs,
        Charge::Write => s.write_s += secs,
        Charge::Read => s.read_s += secs,
        Charge::Mark => s.mark_s += secs,
        Charge::Unload => s.unload_s += secs,
    }
}

/// What happened, for operators and for tests that assert on order.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub seq: u64,
    pub time: Timestamp,
    pub drive: String,
    pub volume: String,
    /// mount, unload, write, read, flush, full, error, offline.
    pub kind: String,
    pub tape_file: Option<u32>,
    pub bytes: u64,
    pub detail: String,
}

const EVENTS_KEPT: usize = 100_000;

/// A fault to inject (tests, drills). Each fires once.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The next tape write on this volume fails halfway.
    WriteError { volume: String },
    /// The next tape file read on this volume fails.
    ReadError { volume: String },
    /// This drive fails at its next operation.
    DriveFailure { drive: String },
}

/// A tape file to read into a local file.
#[derive(Clone, Debug)]
pub struct ReadRequest {
    pub volume: String,
    pub seq: u32,
    pub dest: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadDone {
    pub bytes: u64,
    pub adler32: Adler32,
}

struct PendingRead {
    req: ReadRequest,
    since: Instant,
    attempts: u32,
    reply: oneshot::Sender<Result<ReadDone>>,
}

struct QueuedJob {
    job: ArchiveJob,
    since: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct QueueKey {
    library: String,
    family: Family,
}

impl QueueKey {
    fn of(job: &ArchiveJob) -> QueueKey {
        QueueKey {
            library: job.target.library.clone(),
            family: job.target.family.clone(),
        }
    }
}

struct Slot {
    library: String,
    online: bool,
    busy: bool,
    /// The volume this drive holds (or is about to mount).
    mounted: Option<String>,
    /// The family whose volume this drive holds for writing.
    writing: Option<QueueKey>,
    stats: TapeStats,
}

#[derive(Default)]
struct State {
    volumes: BTreeMap<String, Volume>,
    drives: BTreeMap<String, Slot>,
    writes: BTreeMap<QueueKey, VecDeque<QueuedJob>>,
    reads: BTreeMap<String, Vec<PendingRead>>,
    /// Jobs queued or being written, to refuse duplicates.
    known_jobs: HashSet<i64>,
    faults: Vec<Fault>,
    events: VecDeque<Event>,
    event_seq: u64,
    stopping: bool,
}

enum Work {
    Idle,
    Write { volume: String, job: QueuedJob },
    Read { volume: String, reqs: Vec<PendingRead> },
    Fail { job: QueuedJob, reason: String },
}

struct Lib {
    name: String,
    media: String,
    profile: MediaProfile,
    scale: f64,
    backend: Arc<dyn VolumeBackend>,
    robot: tokio::sync::Mutex<()>,
    marks: FileMarks,
    flush_bytes: u64,
    flush_files: u32,
    volume_capacity: u64,
    volume_prefix: String,
    mount_limit: u64,
}

struct Inner {
    catalog: DynCatalog,
    source: Arc<dyn MemberSource>,
    cfg: TapeConfig,
    libs: BTreeMap<String, Arc<Lib>>,
    state: Mutex<State>,
    wake: watch::Sender<u64>,
}

impl Inner {
    fn enqueue(&self, job: ArchiveJob) -> bool {
        {
            let mut st = self.state.lock().unwrap();
            if !st.known_jobs.insert(job.id) {
                tracing::debug!("archive job {} is already queued", job.id);
                return false;
            }
            st.writes.entry(QueueKey::of(&job)).or_default().push_back(QueuedJob {
                job,
                since: Instant::now(),
            });
        }
        self.wake.send_modify(|n| *n += 1);
        true
    }
}

/// The tape system: libraries, drives, volumes and the scheduler.
#[derive(Clone)]
pub struct TapeSystem {
    inner: Arc<Inner>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

/// Overhead of a package over its members' bytes, for capacity checks
/// before the exact plan is made: headers, the manifest, the end blocks.
fn estimate(job: &ArchiveJob) -> u64 {
    job.bytes + 2048 * (job.files.len() as u64 + 2) + 64 * 1024
}

impl State {
    /// Puts a job back at the head of its queue (it keeps its age).
    fn requeue_front(&mut self, job: QueuedJob) {
        self.writes.entry(QueueKey::of(&job.job)).or_default().push_front(job);
    }

    fn mounted_elsewhere(&self, label: &str, drive: &str) -> bool {
        self.drives
            .iter()
            .any(|(n, s)| n != drive && s.mounted.as_deref() == Some(label))
    }

    fn writers_of(&self, key: &QueueKey, except: &str) -> usize {
        self.drives
            .iter()
            .filter(|(n, s)| *n != except && s.mounted.is_some() && s.writing.as_ref() == Some(key))
            .count()
    }

    /// The best volume for the next job of `key` on drive `drive`; family
    /// volumes too full for it are marked full on the way (`full`).
    fn pick_volume(&mut self, key: &QueueKey, need: u64, drive: &str, full: &mut Vec<String>) -> Option<String> {
        let here = self.drives[drive].mounted.clone();
        let mut best: Option<((u8, u64), String)> = None;
        let mut newly_full = Vec::new();
        for v in self.volumes.values() {
            if v.library != key.library || self.mounted_elsewhere(&v.label, drive) {
                continue;
            }
            let mounted_here = here.as_deref() == Some(v.label.as_str());
            let score = match (v.state, &v.family) {
                (VolumeState::Appendable, Some(f)) if *f == key.family => {
                    if v.remaining() < need {
                        newly_full.push(v.label.clone());
                        continue;
                    }
                    (if mounted_here { 0 } else { 1 }, v.remaining())
                }
                (VolumeState::Blank, _) if v.capacity >= need => (if mounted_here { 2 } else { 3 }, v.capacity),
                _ => continue,
            };
            if best.as_ref().is_none_or(|(s, _)| score < *s) {
                best = Some((score, v.label.clone()));
            }
        }
        for l in newly_full {
            if let Some(v) = self.volumes.get_mut(&l) {
                v.state = VolumeState::Full;
            }
            full.push(l);
        }
        best.map(|b| b.1)
    }

    fn claim(&mut self, drive: &str, volume: &str, writing: Option<QueueKey>) {
        let slot = self.drives.get_mut(drive).expect("drive");
        if slot.mounted.as_deref() != Some(volume) {
            slot.writing = None;
        }
        slot.mounted = Some(volume.to_string());
        if writing.is_some() {
            slot.writing = writing;
        }
        slot.busy = true;
    }

    /// Decides what drive `drive` does next (see the module's rules).
    fn assign(&mut self, drive: &str, max_wait: Duration, full: &mut Vec<String>) -> Work {
        let Some(slot) = self.drives.get(drive) else {
            return Work::Idle;
        };
        if !slot.online || self.stopping {
            return Work::Idle;
        }
        let library = slot.library.clone();
        let mounted = slot.mounted.clone();
        let writing = slot.writing.clone();
        let now = Instant::now();

        // Requests this drive could serve elsewhere, oldest first.
        let mut cands: Vec<(Instant, Option<QueueKey>, String)> = Vec::new();
        for (label, reqs) in &self.reads {
            let Some(v) = self.volumes.get(label) else { continue };
            if v.library != library || self.mounted_elsewhere(label, drive) || reqs.is_empty() {
                continue;
            }
            let since = reqs.iter().map(|r| r.since).min().expect("non-empty");
            cands.push((since, None, label.clone()));
        }
        for (key, q) in &self.writes {
            let Some(front) = q.front() else { continue };
            if key.library != library {
                continue;
            }
            let width = front.job.target.width.max(1) as usize;
            if self.writers_of(key, drive) >= width {
                continue;
            }
            cands.push((front.since, Some(key.clone()), String::new()));
        }
        cands.sort_by_key(|c| c.0);

        if let Some(v) = &mounted {
            let serves_here = |c: &(Instant, Option<QueueKey>, String)| match &c.1 {
                None => c.2 == *v,
                Some(k) => writing.as_ref() == Some(k),
            };
            let starving = cands
                .iter()
                .any(|c| !serves_here(c) && now.duration_since(c.0) >= max_wait);
            if !starving {
                if let Some(reqs) = self.reads.remove(v) {
                    self.claim(drive, v, None);
                    return Work::Read {
                        volume: v.clone(),
                        reqs,
                    };
                }
                if let Some(key) = &writing {
                    if let Some(need) = self.writes.get(key).and_then(|q| q.front()).map(|j| estimate(&j.job)) {
                        let vol = &self.volumes[v];
                        let bound = vol.family.as_ref().is_none_or(|f| *f == key.family);
                        if vol.state.writable() && bound && vol.remaining() >= need {
                            let job = self.writes.get_mut(key).and_then(|q| q.pop_front()).expect("front");
                            self.claim(drive, v, Some(key.clone()));
                            return Work::Write { volume: v.clone(), job };
                        }
                        if vol.state == VolumeState::Appendable && vol.remaining() < need {
                            self.volumes.get_mut(v).expect("volume").state = VolumeState::Full;
                            full.push(v.clone());
                        }
                    }
                }
            }
        }

        for (_, key, label) in cands {
            match key {
                None => {
                    let reqs = self.reads.remove(&label).expect("candidate");
                    self.claim(drive, &label, None);
                    return Work::Read { volume: label, reqs };
                }
                Some(key) => {
                    let need = estimate(&self.writes[&key].front().expect("candidate").job);
                    if let Some(vol) = self.pick_volume(&key, need, drive, full) {
                        let job = self.writes.get_mut(&key).and_then(|q| q.pop_front()).expect("front");
                        self.claim(drive, &vol, Some(key));
                        return Work::Write { volume: vol, job };
                    }
                    let largest = self
                        .volumes
                        .values()
                        .filter(|v| v.library == key.library)
                        .map(|v| v.capacity)
                        .max()
                        .unwrap_or(0);
                    if need > largest {
                        let job = self.writes.get_mut(&key).and_then(|q| q.pop_front()).expect("front");
                        return Work::Fail {
                            job,
                            reason: format!(
                                "{need} bytes do not fit on any volume of library {} (largest {largest})",
                                key.library
                            ),
                        };
                    }
                }
            }
        }
        Work::Idle
    }
}

impl TapeSystem {
    /// Opens the libraries of `cfg` (paths relative to `data_dir`), creates
    /// the initial volumes of new libraries, reconciles every volume with
    /// the catalog, loads the queued archive jobs and starts the drives.
    pub async fn start(
        catalog: DynCatalog,
        source: Arc<dyn MemberSource>,
        cfg: TapeConfig,
        data_dir: &Path,
    ) -> Result<TapeSystem> {
        cfg.validate().map_err(TapeError::Invalid)?;
        let profiles = cfg.profiles();
        let mut libs = BTreeMap::new();
        for l in &cfg.libraries {
            let path = data_dir.join(&l.path);
            let backend: Arc<dyn VolumeBackend> = match l.backend {
                BackendKind::Emulated => Arc::new(FsBackend::emulated(&path).map_err(|e| {
                    TapeError::Failed(format!("library {}: cannot create {}: {e}", l.name, path.display()))
                })?),
                BackendKind::Directory => Arc::new(
                    FsBackend::directory(&path).map_err(|e| TapeError::Failed(format!("library {}: {e}", l.name)))?,
                ),
            };
            let profile = profiles[&l.media].scaled(l.scale);
            libs.insert(
                l.name.clone(),
                Arc::new(Lib {
                    name: l.name.clone(),
                    media: l.media.clone(),
                    volume_capacity: l.volume_capacity.map(|c| c.0).unwrap_or(profile.capacity.0),
                    profile,
                    scale: l.scale,
                    backend,
                    robot: tokio::sync::Mutex::new(()),
                    marks: l.file_marks,
                    flush_bytes: l.flush_bytes.0,
                    flush_files: l.flush_files,
                    volume_prefix: l.volume_prefix.clone(),
                    mount_limit: l.mount_limit,
                }),
            );
        }
        let drive_names: Vec<(String, String)> = cfg
            .libraries
            .iter()
            .flat_map(|l| (1..=l.drives).map(move |i| (format!("{}-d{i}", l.name), l.name.clone())))
            .collect();
        catalog.register_drives(&drive_names).await?;
        let (wake, _) = watch::channel(0);
        let sys = TapeSystem {
            inner: Arc::new(Inner {
                catalog: catalog.clone(),
                source,
                cfg: cfg.clone(),
                libs,
                state: Mutex::new(State::default()),
                wake,
            }),
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        let existing = catalog.volumes().await?;
        for l in &cfg.libraries {
            let has = existing.iter().any(|v| v.library == l.name);
            if !has && l.initial_volumes > 0 {
                sys.add_volumes(&l.name, l.initial_volumes, None, None).await?;
            }
        }
        sys.reconcile().await?;
        {
            let drives = catalog.drives().await?;
            let mut st = sys.inner.state.lock().unwrap();
            for (name, lib) in &drive_names {
                let rec = drives.iter().find(|d| &d.name == name);
                st.drives.insert(
                    name.clone(),
                    Slot {
                        library: lib.clone(),
                        online: rec.is_none_or(|d| d.state == DriveState::Online),
                        busy: false,
                        mounted: None,
                        writing: None,
                        stats: rec.map(|d| d.stats.clone()).unwrap_or_default(),
                    },
                );
            }
        }
        for job in catalog.archive_jobs().await? {
            if job.state == bale_catalog::JobState::Queued {
                sys.enqueue(job);
            }
        }
        let mut tasks = sys.tasks.lock().unwrap();
        for (name, lib) in drive_names {
            let d = DriveTask {
                sys: sys.inner.clone(),
                lib: sys.inner.libs[&lib].clone(),
                name,
                vol: None,
                head: 0,
                pending: Vec::new(),
            };
            tasks.push(tokio::spawn(d.run()));
        }
        drop(tasks);
        Ok(sys)
    }

    /// Volumes whose media hold tape files beyond the catalog's end of data
    /// (a write interrupted before its commit) are cut back to it.
    async fn reconcile(&self) -> Result<()> {
        let volumes = self.inner.catalog.volumes().await?;
        let mut st_volumes = BTreeMap::new();
        for v in volumes {
            if let Some(lib) = self.inner.libs.get(&v.library) {
                match lib.backend.end_of_data(&v.label) {
                    Ok(n) if n > v.tape_files => {
                        let cut = lib
                            .backend
                            .truncate(&v.label, v.tape_files)
                            .map_err(|e| TapeError::Failed(format!("cannot reconcile volume {}: {e}", v.label)))?;
                        tracing::warn!(
                            "volume {}: discarded {cut} tape file(s) past the catalog's end of data ({}): \
                             writes interrupted before they were recorded",
                            v.label,
                            v.tape_files
                        );
                    }
                    Ok(n) if n < v.tape_files => {
                        let msg = format!(
                            "volume {} holds {n} tape files but the catalog records {}: set noaccess",
                            v.label, v.tape_files
                        );
                        tracing::error!("{msg}");
                        self.inner
                            .catalog
                            .raise_alarm("error", &format!("volume {}", v.label), &msg)
                            .await?;
                        let v = self
                            .inner
                            .catalog
                            .set_volume_state(&v.label, VolumeState::Noaccess)
                            .await?;
                        st_volumes.insert(v.label.clone(), v);
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("volume {}: cannot check its end of data: {e}", v.label),
                }
            }
            st_volumes.insert(v.label.clone(), v);
        }
        self.inner.state.lock().unwrap().volumes = st_volumes;
        Ok(())
    }

    fn wake(&self) {
        self.inner.wake.send_modify(|n| *n += 1);
    }

    /// Stops the drives after their current operation and saves counters.
    pub async fn shutdown(&self) {
        self.inner.state.lock().unwrap().stopping = true;
        self.wake();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
        for t in tasks {
            let _ = t.await;
        }
    }

    /// The configured libraries, in configuration order: the first is
    /// where files go whose directory names none (`bale_policy::target_for`).
    pub fn library_names(&self) -> Vec<String> {
        self.inner.cfg.libraries.iter().map(|l| l.name.clone()).collect()
    }

    /// The size from which files go straight to tape.
    pub fn direct_min_size(&self) -> u64 {
        self.inner.cfg.direct_min_size.0
    }

    /// Queues an archive job (already a catalog row). Returns false if the
    /// scheduler already has it (queued or being written): job ids are never
    /// reused, so that is the same job handed over twice, which happens when
    /// the archiver's check and a commit race to hand over a new job.
    pub fn enqueue(&self, job: ArchiveJob) -> bool {
        self.inner.enqueue(job)
    }

    /// The ids of the jobs the scheduler holds: queued or being written.
    pub fn known_jobs(&self) -> HashSet<i64> {
        self.inner.state.lock().unwrap().known_jobs.clone()
    }

    /// Reads tape files into local files, grouped per volume and in tape
    /// order. Each result says what was read; the tape file's adler32 is
    /// checked against the catalog.
    pub async fn read(&self, reqs: Vec<ReadRequest>) -> Vec<Result<ReadDone>> {
        let mut waits = Vec::with_capacity(reqs.len());
        {
            let mut st = self.inner.state.lock().unwrap();
            let now = Instant::now();
            for req in reqs {
                let (tx, rx) = oneshot::channel();
                let ok = st.volumes.get(&req.volume).map(|v| v.state.readable());
                match ok {
                    Some(true) => {
                        st.reads.entry(req.volume.clone()).or_default().push(PendingRead {
                            req,
                            since: now,
                            attempts: 0,
                            reply: tx,
                        });
                    }
                    Some(false) => {
                        let _ = tx.send(Err(TapeError::Invalid(format!(
                            "volume {} is {} and cannot be read",
                            req.volume, st.volumes[&req.volume].state
                        ))));
                    }
                    None => {
                        let _ = tx.send(Err(TapeError::NotFound(format!("no volume {}", req.volume))));
                    }
                }
                waits.push(rx);
            }
        }
        self.wake();
        let mut out = Vec::with_capacity(waits.len());
        for w in waits {
            out.push(
                w.await
                    .unwrap_or_else(|_| Err(TapeError::Failed("the tape system stopped".into()))),
            );
        }
        out
    }

    /// Arms a fault (tests and drills).
    pub fn inject(&self, fault: Fault) -> Result<()> {
        let mut st = self.inner.state.lock().unwrap();
        match &fault {
            Fault::WriteError { volume } | Fault::ReadError { volume } if !st.volumes.contains_key(volume) => {
                return Err(TapeError::NotFound(format!("no volume {volume}")));
            }
            Fault::DriveFailure { drive } if !st.drives.contains_key(drive) => {
                return Err(TapeError::NotFound(format!("no drive {drive}")));
            }
            _ => {}
        }
        st.faults.push(fault);
        Ok(())
    }

    /// Adds `count` blank volumes to a library, labelled `<prefix><number>`
    /// continuing the highest number in use with that prefix.
    pub async fn add_volumes(
        &self,
        library: &str,
        count: u32,
        capacity: Option<u64>,
        prefix: Option<&str>,
    ) -> Result<Vec<Volume>> {
        let lib = self
            .inner
            .libs
            .get(library)
            .ok_or_else(|| TapeError::NotFound(format!("no library {library:?}")))?
            .clone();
        if count == 0 || count > 10_000 {
            return Err(TapeError::Invalid("count must be 1 to 10000".into()));
        }
        let prefix = prefix.unwrap_or(&lib.volume_prefix);
        if prefix.is_empty() || prefix.len() > 16 || !prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(TapeError::Invalid(format!(
                "volume prefix {prefix:?} must be 1 to 16 letters and digits"
            )));
        }
        let capacity = capacity.unwrap_or(lib.volume_capacity);
        if capacity < 1 << 20 {
            return Err(TapeError::Invalid("a volume holds at least 1 MiB".into()));
        }
        let existing = self.inner.catalog.volumes().await?;
        let next = existing
            .iter()
            .filter_map(|v| v.label.strip_prefix(prefix).and_then(|n| n.parse::<u32>().ok()))
            .max()
            .map_or(1, |n| n + 1);
        let now = Timestamp::now();
        let new: Vec<NewVolume> = (next..next + count)
            .map(|n| NewVolume {
                label: format!("{prefix}{n:04}"),
                library: library.to_string(),
                media: lib.media.clone(),
                capacity,
                mount_limit: lib.mount_limit,
                created: now,
            })
            .collect();
        let backend = lib.backend.clone();
        let labels: Vec<Label> = new
            .iter()
            .map(|v| Label {
                label: v.label.clone(),
                media: v.media.clone(),
                owner: format!("bale library {library}"),
                created: now,
            })
            .collect();
        tokio::task::spawn_blocking(move || labels.iter().try_for_each(|l| backend.format(l)))
            .await
            .map_err(|e| TapeError::Failed(e.to_string()))?
            .map_err(|e| TapeError::Failed(format!("cannot label new volumes: {e}")))?;
        self.inner.catalog.add_volumes(&new).await?;
        let labels: HashSet<&str> = new.iter().map(|v| v.label.as_str()).collect();
        let out: Vec<Volume> = self
            .inner
            .catalog
            .volumes()
            .await?
            .into_iter()
            .filter(|v| labels.contains(v.label.as_str()))
            .collect();
        {
            let mut st = self.inner.state.lock().unwrap();
            for v in &out {
                st.volumes.insert(v.label.clone(), v.clone());
            }
        }
        self.wake();
        Ok(out)
    }

    /// Every volume with its current counters.
    pub fn volumes(&self) -> Vec<VolumeView> {
        let st = self.inner.state.lock().unwrap();
        st.volumes
            .values()
            .map(|v| {
                let rate = self.inner.libs.get(&v.library).map_or(0.0, |l| l.profile.rate.0 as f64);
                VolumeView {
                    efficiency: v.stats.efficiency(rate),
                    mounted_in: st
                        .drives
                        .iter()
                        .find(|(_, s)| s.mounted.as_deref() == Some(v.label.as_str()))
                        .map(|(n, _)| n.clone()),
                    volume: v.clone(),
                }
            })
            .collect()
    }

    /// A volume and its tape files in order.
    pub async fn volume(&self, label: &str) -> Result<(VolumeView, Vec<Package>)> {
        let view = self
            .volumes()
            .into_iter()
            .find(|v| v.volume.label == label)
            .ok_or_else(|| TapeError::NotFound(format!("no volume {label}")))?;
        let pkgs = self.inner.catalog.packages(Some(label)).await?;
        Ok((view, pkgs))
    }

    /// Sets a volume's state (administrators). A volume with data cannot go
    /// back to blank; a blank one cannot be made appendable.
    pub async fn set_volume_state(&self, label: &str, state: VolumeState) -> Result<Volume> {
        let cur = self
            .inner
            .state
            .lock()
            .unwrap()
            .volumes
            .get(label)
            .cloned()
            .ok_or_else(|| TapeError::NotFound(format!("no volume {label}")))?;
        if state == VolumeState::Blank && cur.tape_files > 0 {
            return Err(TapeError::Invalid(format!(
                "volume {label} holds {} tape files and cannot be made blank",
                cur.tape_files
            )));
        }
        if state == VolumeState::Appendable && cur.family.is_none() {
            return Err(TapeError::Invalid(format!(
                "volume {label} is blank; it becomes appendable at its first write"
            )));
        }
        let v = self.inner.catalog.set_volume_state(label, state).await?;
        let mut st = self.inner.state.lock().unwrap();
        if let Some(m) = st.volumes.get_mut(label) {
            m.state = v.state;
        }
        drop(st);
        self.wake();
        Ok(v)
    }

    /// Every drive with what it is doing.
    pub fn drives(&self) -> Vec<DriveView> {
        let st = self.inner.state.lock().unwrap();
        st.drives
            .iter()
            .map(|(name, s)| {
                let rate = self.inner.libs.get(&s.library).map_or(0.0, |l| l.profile.rate.0 as f64);
                DriveView {
                    drive: Drive {
                        name: name.clone(),
                        library: s.library.clone(),
                        state: if s.online {
                            DriveState::Online
                        } else {
                            DriveState::Offline
                        },
                        stats: s.stats.clone(),
                    },
                    activity: if !s.online {
                        "offline"
                    } else if s.busy {
                        "busy"
                    } else {
                        "idle"
                    },
                    volume: s.mounted.clone(),
                    efficiency: s.stats.efficiency(rate),
                }
            })
            .collect()
    }

    /// Takes a drive out of service or back in.
    pub async fn set_drive_online(&self, name: &str, online: bool) -> Result<DriveView> {
        if !self.inner.state.lock().unwrap().drives.contains_key(name) {
            return Err(TapeError::NotFound(format!("no drive {name}")));
        }
        let state = if online {
            DriveState::Online
        } else {
            DriveState::Offline
        };
        self.inner.catalog.set_drive_state(name, state).await?;
        self.inner
            .state
            .lock()
            .unwrap()
            .drives
            .get_mut(name)
            .expect("drive")
            .online = online;
        self.wake();
        Ok(self.drives().into_iter().find(|d| d.drive.name == name).expect("drive"))
    }

    /// Per library: its media, scale and the drives' summed counters.
    pub fn libraries(&self) -> Vec<LibraryView> {
        let drives = self.drives();
        self.inner
            .libs
            .values()
            .map(|l| {
                let mut stats = TapeStats::default();
                for d in drives.iter().filter(|d| d.drive.library == l.name) {
                    stats.add(&d.drive.stats);
                }
                LibraryView {
                    name: l.name.clone(),
                    backend: l.backend.kind().to_string(),
                    media: l.media.clone(),
                    scale: l.scale,
                    rate: l.profile.rate.0,
                    file_mark_s: l.profile.file_mark_s,
                    file_marks: l.marks,
                    efficiency: stats.efficiency(l.profile.rate.0 as f64),
                    busy_s: stats.busy_s(),
                    stats,
                }
            })
            .collect()
    }

    /// Events after `after` (a previous event's `seq`), oldest first.
    pub fn events(&self, after: u64) -> Vec<Event> {
        let st = self.inner.state.lock().unwrap();
        st.events.iter().filter(|e| e.seq > after).cloned().collect()
    }

    /// Archive jobs waiting for a drive, per queue.
    pub fn queued_jobs(&self) -> Vec<ArchiveJob> {
        let st = self.inner.state.lock().unwrap();
        st.writes.values().flatten().map(|q| q.job.clone()).collect()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct VolumeView {
    #[serde(flatten)]
    pub volume: Volume,
    pub efficiency: Option<f64>,
    pub mounted_in: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DriveView {
    #[serde(flatten)]
    pub drive: Drive,
    /// idle, busy or offline.
    pub activity: &'static str,
    pub volume: Option<String>,
    pub efficiency: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LibraryView {
    pub name: String,
    pub backend: String,
    pub media: String,
    pub scale: f64,
    /// Native rate after scaling, bytes/s.
    pub rate: u64,
    pub file_mark_s: f64,
    pub file_marks: FileMarks,
    pub stats: TapeStats,
    /// Modelled seconds of work of every kind, summed over the drives.
    pub busy_s: f64,
    pub efficiency: Option<f64>,
}

/// A tape file written but not yet covered by a synchronous mark.
struct Unflushed {
    package: NewPackage,
    job: QueuedJob,
}

struct DriveTask {
    sys: Arc<Inner>,
    lib: Arc<Lib>,
    name: String,
    vol: Option<Box<dyn Mounted>>,
    /// Head position in bytes from the start of the tape.
    head: u64,
    pending: Vec<Unflushed>,
}

/// How a drive operation failed.
enum OpError {
    /// The drive broke: it goes offline, its work goes back.
    Drive(String),
    /// The volume failed (write error, damaged label): it goes noaccess.
    Volume(String),
    /// End of tape: the volume is full.
    Full,
    /// The data to write is bad (a member changed in the cache): the job fails.
    Data(String),
    /// One member's cached data does not match its size or checksum: it is
    /// held back and the rest of the job is written.
    Member { file_id: FileId, message: String },
    /// A member left the namespace while it was being written (deleted or
    /// overwritten): the tape file is dropped and the job written again
    /// without it, no attempt counted.
    Gone(FileId),
    /// Anything else (catalog trouble): retry later.
    Other(String),
    /// Not this volume after all (it turned readonly): requeue, no attempt counted.
    Retry,
}

impl OpError {
    fn message(&self) -> String {
        match self {
            OpError::Drive(m) | OpError::Volume(m) | OpError::Data(m) | OpError::Other(m) => m.clone(),
            OpError::Member { message, .. } => message.clone(),
            OpError::Full => "end of tape".into(),
            OpError::Retry => "volume no longer writable".into(),
            OpError::Gone(id) => format!("member {id} left the namespace"),
        }
    }
}

impl DriveTask {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.sys.state.lock().unwrap()
    }

    fn event(&self, volume: &str, kind: &str, tape_file: Option<u32>, bytes: u64, detail: String) {
        let mut st = self.lock();
        st.event_seq += 1;
        let e = Event {
            seq: st.event_seq,
            time: Timestamp::now(),
            drive: self.name.clone(),
            volume: volume.to_string(),
            kind: kind.to_string(),
            tape_file,
            bytes,
            detail,
        };
        tracing::debug!(drive = %e.drive, volume = %e.volume, kind = %e.kind, tape_file = ?e.tape_file, "{}", e.detail);
        if st.events.len() >= EVENTS_KEPT {
            st.events.pop_front();
        }
        st.events.push_back(e);
    }

    /// Charges modelled seconds (or, on real media, the measured ones) to
    /// this drive and `volume`, and sleeps them times the time scale.
    async fn charge(&self, volume: &str, kind: Charge, modelled: f64, elapsed: Duration) {
        let real = self.lib.backend.real_timing();
        let secs = if real { elapsed.as_secs_f64() } else { modelled };
        {
            let mut st = self.lock();
            if let Some(s) = st.drives.get_mut(&self.name) {
                add_charge(&mut s.stats, kind, secs);
            }
            if let Some(v) = st.volumes.get_mut(volume) {
                add_charge(&mut v.stats, kind, secs);
            }
        }
        metrics::counter!("bale_tape_modelled_milliseconds_total", "kind" => format!("{kind:?}").to_lowercase())
            .increment((secs.max(0.0) * 1000.0) as u64);
        let scale = self.sys.cfg.time_scale;
        if !real && scale > 0.0 {
            let sleep = modelled * scale - elapsed.as_secs_f64();
            if sleep > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(sleep)).await;
            }
        }
    }

    fn count(&self, volume: &str, f: impl Fn(&mut TapeStats)) {
        let mut st = self.lock();
        if let Some(s) = st.drives.get_mut(&self.name) {
            f(&mut s.stats);
        }
        if let Some(v) = st.volumes.get_mut(volume) {
            f(&mut v.stats);
        }
    }

    fn take_fault(&self, pred: impl Fn(&Fault) -> bool) -> bool {
        let mut st = self.lock();
        match st.faults.iter().position(pred) {
            Some(i) => {
                st.faults.remove(i);
                true
            }
            None => false,
        }
    }

    fn drive_fails(&self) -> bool {
        self.take_fault(|f| matches!(f, Fault::DriveFailure { drive } if *drive == self.name))
    }

    async fn run(mut self) {
        let mut wake = self.sys.wake.subscribe();
        let max_wait = Duration::from_secs_f64(self.sys.cfg.max_wait_s.max(0.0));
        let idle_unload = Duration::from_secs_f64(self.sys.cfg.idle_unload_s.max(0.0));
        loop {
            wake.borrow_and_update();
            let mut full = Vec::new();
            let work = self.lock().assign(&self.name, max_wait, &mut full);
            for label in full {
                self.mark_full(&label, "cannot hold the next tape file").await;
            }
            match work {
                Work::Write { volume, job } => self.write(&volume, job).await,
                Work::Read { volume, reqs } => self.read(&volume, reqs).await,
                Work::Fail { job, reason } => self.fail_job(job, &reason).await,
                Work::Idle => {
                    if !self.pending.is_empty() {
                        self.flush_pending().await;
                        continue;
                    }
                    let (stopping, offline) = {
                        let mut st = self.lock();
                        let stopping = st.stopping;
                        let slot = st.drives.get_mut(&self.name).expect("drive");
                        slot.busy = false;
                        (stopping, !slot.online)
                    };
                    if stopping {
                        break;
                    }
                    if offline && self.vol.is_some() {
                        // Taken offline by an administrator: give the volume back.
                        self.unload().await;
                        continue;
                    }
                    let timeout = if self.vol.is_some() {
                        idle_unload
                    } else {
                        Duration::from_secs(3600)
                    };
                    tokio::select! {
                        r = wake.changed() => if r.is_err() { break },
                        _ = tokio::time::sleep(timeout) => {
                            // No wake in all that time: nothing for this volume.
                            self.unload().await;
                        }
                    }
                }
            }
        }
        if !self.pending.is_empty() {
            self.flush_pending().await;
        }
        self.save_stats(None).await;
    }

    /// Marks a volume full, in memory (if the scheduler has not already)
    /// and in the catalog.
    async fn mark_full(&self, label: &str, why: &str) {
        self.event(label, "full", None, 0, why.into());
        if let Some(v) = self.lock().volumes.get_mut(label) {
            v.state = VolumeState::Full;
        }
        if let Err(e) = self.sys.catalog.set_volume_state(label, VolumeState::Full).await {
            tracing::warn!("cannot mark volume {label} full: {e}");
        }
    }

    async fn save_stats(&self, volume: Option<&str>) {
        let (drive, vol) = {
            let st = self.lock();
            (
                st.drives.get(&self.name).map(|s| s.stats.clone()),
                volume.and_then(|v| st.volumes.get(v)).map(|v| v.stats.clone()),
            )
        };
        if let Some(d) = drive {
            if let Err(e) = self.sys.catalog.save_drive_stats(&self.name, &d).await {
                tracing::warn!("cannot save counters of drive {}: {e}", self.name);
            }
        }
        if let (Some(label), Some(s)) = (volume, vol) {
            if let Err(e) = self.sys.catalog.save_volume_stats(label, &s).await {
                tracing::warn!("cannot save counters of volume {label}: {e}");
            }
        }
    }

    /// Rewinds, unloads and puts the volume back in its slot.
    async fn unload(&mut self) {
        if !self.pending.is_empty() {
            self.flush_pending().await;
        }
        let Some(vol) = self.vol.take() else { return };
        let label = vol.label().label.clone();
        self.put_away(vol).await;
        {
            let mut st = self.lock();
            let slot = st.drives.get_mut(&self.name).expect("drive");
            if slot.mounted.as_deref() == Some(label.as_str()) {
                slot.mounted = None;
                slot.writing = None;
            }
        }
        self.sys.wake.send_modify(|n| *n += 1);
    }

    /// Rewind (a locate to the start), unload and the robot move back,
    /// charged to the volume; then its counters are saved.
    async fn put_away(&mut self, vol: Box<dyn Mounted>) {
        let label = vol.label().label.clone();
        self.eject(vol).await;
        let p = self.lib.profile.clone();
        self.charge(&label, Charge::Locate, p.locate_s(self.head), Duration::ZERO)
            .await;
        self.head = 0;
        self.charge(&label, Charge::Unload, p.unload_s, Duration::ZERO).await;
        {
            let _robot = self.lib.robot.lock().await;
            self.charge(&label, Charge::Robot, p.robot_s, Duration::ZERO).await;
        }
        self.event(&label, "unload", None, 0, String::new());
        self.save_stats(Some(&label)).await;
    }

    /// The backend's unload (rewind and eject); a failure is logged: the
    /// cartridge leaves the drive either way.
    async fn eject(&self, vol: Box<dyn Mounted>) {
        let label = vol.label().label.clone();
        match tokio::task::spawn_blocking(move || vol.unload()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("unloading {label} from {} failed: {e}", self.name),
            Err(e) => tracing::warn!("unloading {label} from {} failed: {e}", self.name),
        }
    }

    /// Makes `label` the mounted volume (unloading another one first).
    async fn mount(&mut self, label: &str) -> Result<(), OpError> {
        if self.vol.as_ref().is_some_and(|v| v.label().label == label) {
            return Ok(());
        }
        if self.vol.is_some() {
            // The slot already names the new volume; put the old one away.
            self.flush_pending().await;
            if let Some(vol) = self.vol.take() {
                self.put_away(vol).await;
            }
        }
        self.head = 0;
        if self.drive_fails() {
            return Err(OpError::Drive("the drive failed while loading".into()));
        }
        let p = self.lib.profile.clone();
        {
            let _robot = self.lib.robot.lock().await;
            self.charge(label, Charge::Robot, p.robot_s, Duration::ZERO).await;
        }
        let (backend, capacity) = (
            self.lib.backend.clone(),
            self.lock().volumes.get(label).map_or(0, |v| v.capacity),
        );
        let l = label.to_string();
        let t0 = Instant::now();
        let loaded = tokio::task::spawn_blocking(move || backend.load(&l, capacity))
            .await
            .map_err(|e| OpError::Other(e.to_string()))?;
        self.charge(label, Charge::Load, p.load_s, t0.elapsed()).await;
        let vol = loaded.map_err(|e| OpError::Volume(format!("cannot load: {e}")))?;
        self.vol = Some(vol);
        self.count(label, |s| s.mounts += 1);
        self.event(label, "mount", None, 0, String::new());
        // Wear: past its mount limit a volume is only read.
        let worn = {
            let st = self.lock();
            st.volumes
                .get(label)
                .filter(|v| v.stats.mounts >= v.mount_limit && (v.state.writable() || v.state == VolumeState::Full))
                .map(|v| (v.stats.mounts, v.mount_limit))
        };
        if let Some((mounts, limit)) = worn {
            let msg = format!("volume {label} reached {mounts} mounts (limit {limit}): now readonly");
            tracing::warn!("{msg}");
            if let Err(e) = self.sys.catalog.set_volume_state(label, VolumeState::Readonly).await {
                tracing::warn!("cannot make {label} readonly: {e}");
            }
            let _ = self
                .sys
                .catalog
                .raise_alarm("warning", &format!("volume {label}"), &msg)
                .await;
            if let Some(v) = self.lock().volumes.get_mut(label) {
                v.state = VolumeState::Readonly;
            }
        }
        Ok(())
    }

    /// Moves the head to tape file `seq` at byte `position`.
    async fn locate(&mut self, label: &str, seq: u32, position: u64) -> Result<(), OpError> {
        let vol = self.vol.as_mut().expect("mounted");
        if vol.position() == seq && self.head == position {
            return Ok(());
        }
        vol.locate(seq)
            .map_err(|e| OpError::Volume(format!("locate failed: {e}")))?;
        let dist = self.head.abs_diff(position);
        self.head = position;
        self.charge(label, Charge::Locate, self.lib.profile.locate_s(dist), Duration::ZERO)
            .await;
        Ok(())
    }

    /// Puts a job back at the front of its queue after a failed attempt.
    async fn requeue(&self, job: QueuedJob, error: &str) {
        let attempts = job.job.attempts + 1;
        let failed = attempts >= self.sys.cfg.write_attempts;
        if let Err(e) = self.sys.catalog.job_attempt_failed(job.job.id, error, failed).await {
            tracing::warn!("cannot record the failed attempt of job {}: {e}", job.job.id);
        }
        if failed {
            self.lock().known_jobs.remove(&job.job.id);
            let msg = format!("archive job {} failed {attempts} times, parked: {error}", job.job.id);
            tracing::error!("{msg}");
            let _ = self.sys.catalog.raise_alarm("error", "archive", &msg).await;
            return;
        }
        let mut job = job;
        job.job.attempts = attempts;
        job.job.error = Some(error.to_string());
        self.lock().requeue_front(job);
    }

    /// Takes a member with bad cached data out of its job (into a failed
    /// job of its own, with an alarm) and puts the rest back at the front.
    /// The partly written tape file is not recorded; the next write there
    /// overwrites it.
    async fn hold_back(&self, mut job: QueuedJob, file_id: FileId, message: &str) {
        let msg = format!("archive job {}: {message}; the member is held back", job.job.id);
        tracing::error!("{msg}");
        let _ = self.sys.catalog.raise_alarm("error", "archive", &msg).await;
        if let Err(e) = self.sys.catalog.hold_member(job.job.id, file_id, message).await {
            // Not recorded: the whole job is retried and meets the member again.
            tracing::warn!("cannot hold back {file_id} of job {}: {e}", job.job.id);
            self.requeue(job, message).await;
            return;
        }
        job.job.files.retain(|f| *f != file_id);
        let mut st = self.lock();
        if job.job.files.is_empty() {
            st.known_jobs.remove(&job.job.id);
        } else {
            st.requeue_front(job);
        }
    }

    async fn fail_job(&self, job: QueuedJob, reason: &str) {
        let _ = self.sys.catalog.job_attempt_failed(job.job.id, reason, true).await;
        self.lock().known_jobs.remove(&job.job.id);
        let msg = format!("archive job {} cannot be written: {reason}", job.job.id);
        tracing::error!("{msg}");
        let _ = self.sys.catalog.raise_alarm("error", "archive", &msg).await;
    }

    /// Handles a failed operation on `label`: the drive or volume is taken
    /// out of service with an alarm, and the work goes back to the queues.
    async fn op_failed(&mut self, label: &str, e: &OpError) {
        let (severity, source, msg) = match e {
            OpError::Drive(m) => (
                "error",
                format!("drive {}", self.name),
                format!("drive {}: {m}", self.name),
            ),
            OpError::Volume(m) => ("error", format!("volume {label}"), format!("volume {label}: {m}")),
            OpError::Full | OpError::Retry | OpError::Member { .. } | OpError::Gone(_) => return,
            OpError::Data(m) | OpError::Other(m) => ("warning", format!("drive {}", self.name), m.clone()),
        };
        tracing::error!("{msg}");
        self.event(label, "error", None, 0, msg.clone());
        let _ = self.sys.catalog.raise_alarm(severity, &source, &msg).await;
        match e {
            OpError::Drive(_) => {
                // The operator takes the cartridge out of the broken drive.
                self.vol = None;
                self.head = 0;
                let _ = self.sys.catalog.set_drive_state(&self.name, DriveState::Offline).await;
                let mut st = self.lock();
                let slot = st.drives.get_mut(&self.name).expect("drive");
                slot.online = false;
                slot.mounted = None;
                slot.writing = None;
                drop(st);
                self.event(label, "offline", None, 0, "drive failed".into());
            }
            OpError::Volume(_) => {
                let _ = self.sys.catalog.set_volume_state(label, VolumeState::Noaccess).await;
                if let Some(v) = self.lock().volumes.get_mut(label) {
                    v.state = VolumeState::Noaccess;
                }
                Box::pin(self.unload()).await;
                // Also when the load itself failed (nothing to unload).
                let mut st = self.lock();
                let slot = st.drives.get_mut(&self.name).expect("drive");
                if slot.mounted.as_deref() == Some(label) {
                    slot.mounted = None;
                    slot.writing = None;
                }
            }
            _ => {}
        }
        self.sys.wake.send_modify(|n| *n += 1);
    }

    /// Everything a package needs of its members: their metadata, in one
    /// read of the injected source (a member deleted since the job was
    /// queued is left out).
    async fn members(&self, job: &ArchiveJob) -> Result<Vec<MemberMeta>, OpError> {
        self.sys.source.members(&job.files).await.map_err(OpError::Other)
    }

    async fn write(&mut self, label: &str, job: QueuedJob) {
        match self.try_write(label, &job.job).await {
            Ok(Some(package)) => {
                self.pending.push(Unflushed { package, job });
                let (bytes, files): (u64, usize) =
                    (self.pending.iter().map(|u| u.package.size).sum(), self.pending.len());
                let flush_now = match self.lib.marks {
                    FileMarks::Sync => true,
                    FileMarks::Buffered => {
                        bytes >= self.lib.flush_bytes
                            || files as u32 >= self.lib.flush_files
                            || !self.more_writes(label)
                    }
                };
                if flush_now {
                    self.flush_pending().await;
                }
            }
            Ok(None) => {
                // Nothing left to write: every member was deleted meanwhile
                // (and the deletes removed the job with its last file).
                tracing::info!("archive job {}: every member was deleted", job.job.id);
                self.lock().known_jobs.remove(&job.job.id);
            }
            Err(OpError::Full) => {
                self.mark_full(label, "end of tape").await;
                self.lock().requeue_front(job);
            }
            Err(OpError::Data(m)) => self.fail_job(job, &m).await,
            Err(OpError::Member { file_id, message }) => self.hold_back(job, file_id, &message).await,
            Err(OpError::Gone(file_id)) => {
                // Not the job's fault: the next attempt plans without it.
                tracing::info!(
                    "archive job {}: {file_id} was deleted while being written; writing the rest",
                    job.job.id
                );
                self.event(
                    label,
                    "retry",
                    None,
                    0,
                    format!("job {}: member {file_id} gone", job.job.id),
                );
                self.lock().requeue_front(job);
            }
            Err(OpError::Retry) => {
                let mut st = self.lock();
                if let Some(slot) = st.drives.get_mut(&self.name) {
                    slot.writing = None;
                }
                st.requeue_front(job);
            }
            Err(e) => {
                let msg = e.message();
                // Tape files written since the last flush are not trusted.
                let pending = std::mem::take(&mut self.pending);
                for u in pending {
                    self.requeue(u.job, &msg).await;
                }
                self.requeue(job, &msg).await;
                self.op_failed(label, &e).await;
            }
        }
    }

    fn more_writes(&self, label: &str) -> bool {
        let st = self.lock();
        let slot = &st.drives[&self.name];
        slot.mounted.as_deref() == Some(label)
            && slot
                .writing
                .as_ref()
                .is_some_and(|k| st.writes.get(k).is_some_and(|q| !q.is_empty()))
    }

    /// Writes one job as one tape file. Returns the package to record.
    async fn try_write(&mut self, label: &str, job: &ArchiveJob) -> Result<Option<NewPackage>, OpError> {
        self.mount(label).await?;
        let (seq, position, capacity_left, writable) = {
            let st = self.lock();
            let v = &st.volumes[label];
            let pending: u64 = self.pending.iter().map(|u| u.package.size).sum();
            (
                v.tape_files + self.pending.len() as u32,
                v.used + pending,
                v.remaining().saturating_sub(pending),
                v.state.writable(),
            )
        };
        if !writable {
            return Err(OpError::Retry);
        }
        let members = self.members(job).await?;
        if members.is_empty() {
            return Ok(None);
        }
        let id = uuid::Uuid::now_v7().to_string();
        let created = Timestamp::now();
        let plan = Plan::new(&id, created, members).map_err(|e| OpError::Data(e.to_string()))?;
        if plan.size() > capacity_left {
            return Err(OpError::Full);
        }
        self.locate(label, seq, position).await?;
        if self.drive_fails() {
            return Err(OpError::Drive("the drive failed while writing".into()));
        }
        let inject = self.take_fault(|f| matches!(f, Fault::WriteError { volume } if volume == label));
        let mut vol = self.vol.take().expect("mounted");
        let source = self.sys.source.clone();
        // With a time scale, emulated writes stream at the modelled rate.
        let scale = self.sys.cfg.time_scale;
        let pace = (scale > 0.0 && !self.lib.backend.real_timing()).then(|| self.lib.profile.rate.0 as f64 / scale);
        let t0 = Instant::now();
        let ahead = ReadAhead {
            threads: self.sys.cfg.read_ahead_threads,
            window: self.sys.cfg.read_ahead_window.0,
            ..ReadAhead::default()
        };
        let (vol, r) = tokio::task::spawn_blocking(move || {
            let plan = plan;
            let limit = if inject { plan.size() / 2 } else { u64::MAX };
            let mut outcome = None;
            let unreadable = std::sync::Mutex::new(None);
            let r = vol.write_file(&mut |w| {
                let mut w = TapeSink {
                    inner: w,
                    fail_after: limit,
                    written: 0,
                    pace,
                    start: Instant::now(),
                };
                let open = |m: &bale_pack::ManifestMember| {
                    source.open(m.meta.file_id).inspect_err(|e| {
                        let mut u = unreadable.lock().unwrap();
                        u.get_or_insert_with(|| {
                            (
                                m.meta.file_id,
                                format!("cannot read {} from the cache: {e}", m.meta.path),
                            )
                        });
                    })
                };
                match plan.write_ahead(&mut w, ahead, open) {
                    Ok(done) => {
                        outcome = Some(Ok(done));
                        Ok(())
                    }
                    Err(PackError::Io(e)) => Err(e),
                    Err(e) => {
                        outcome = Some(Err(e));
                        Err(io::Error::other("bad member data"))
                    }
                }
            });
            (vol, (r, outcome, plan, unreadable.into_inner().unwrap()))
        })
        .await
        .map_err(|e| OpError::Other(e.to_string()))?;
        self.vol = Some(vol);
        let (r, outcome, plan, unreadable) = r;
        if let Some((file_id, m)) = unreadable {
            // A member deleted since the plan leaves it; otherwise the
            // cache's fault, not the tape's: the job is retried.
            return Err(match self.sys.source.exists(file_id).await {
                Ok(false) => OpError::Gone(file_id),
                _ => OpError::Other(m),
            });
        }
        let written = match (r, outcome) {
            (_, Some(Err(e))) => {
                return Err(match e.member() {
                    Some(i) => OpError::Member {
                        file_id: plan.manifest().members[i].meta.file_id,
                        message: format!("package {id} not written: {e}"),
                    },
                    None => OpError::Data(format!("package {id} not written: {e}")),
                })
            }
            (Ok(_), Some(Ok(done))) => done,
            (Err(e), _) if e.kind() == io::ErrorKind::StorageFull => return Err(OpError::Full),
            (Err(e), _) => return Err(OpError::Volume(format!("write error: {e}"))),
            (Ok(_), None) => return Err(OpError::Other("write finished without an outcome".into())),
        };
        self.head = position + written.size;
        self.charge(
            label,
            Charge::Write,
            self.lib.profile.transfer_s(written.size),
            t0.elapsed(),
        )
        .await;
        self.count(label, |s| {
            s.bytes_written += written.size;
            s.file_marks += 1;
        });
        self.event(
            label,
            "write",
            Some(seq),
            written.size,
            format!("package {id}, job {}", job.id),
        );
        let m = plan.manifest();
        Ok(Some(NewPackage {
            id,
            seq,
            position,
            size: written.size,
            adler32: written.adler32,
            created,
            members: m
                .members
                .iter()
                .map(|m| NewMember {
                    file_id: m.meta.file_id,
                    offset: m.offset,
                    size: m.meta.size,
                    adler32: m.meta.adler32,
                })
                .collect(),
            job: Some(job.id),
        }))
    }

    /// The synchronous file mark over every unflushed tape file, then ONE
    /// catalog transaction recording them.
    async fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(vol) = self.vol.take() else {
            let pending = std::mem::take(&mut self.pending);
            for u in pending {
                self.requeue(u.job, "volume lost before its flush").await;
            }
            return;
        };
        let label = vol.label().label.clone();
        let t0 = Instant::now();
        let (vol, r) = tokio::task::spawn_blocking(move || {
            let mut vol = vol;
            let r = vol.flush();
            (vol, r)
        })
        .await
        .expect("flush task");
        self.vol = Some(vol);
        self.charge(&label, Charge::Mark, self.lib.profile.file_mark_s, t0.elapsed())
            .await;
        self.event(&label, "flush", None, 0, format!("{} tape file(s)", self.pending.len()));
        let pending = std::mem::take(&mut self.pending);
        if let Err(e) = r {
            let msg = format!("flush failed: {e}");
            for u in pending {
                self.requeue(u.job, &msg).await;
            }
            self.op_failed(&label, &OpError::Volume(msg)).await;
            return;
        }
        let (family, stats, state) = {
            let st = self.lock();
            let v = &st.volumes[&label];
            let family = pending[0].job.job.target.family.clone();
            let state = if v.state == VolumeState::Blank {
                VolumeState::Appendable
            } else {
                v.state
            };
            (family, v.stats.clone(), state)
        };
        let packages: Vec<NewPackage> = pending.iter().map(|u| u.package.clone()).collect();
        let vw = VolumeWrite {
            label: label.clone(),
            family,
            state,
            stats,
        };
        match self.sys.catalog.commit_tape_files(&vw, &packages).await {
            Ok(done) => {
                {
                    let mut st = self.lock();
                    for u in &pending {
                        st.known_jobs.remove(&u.job.job.id);
                    }
                    let stats = st.volumes.get(&label).map(|m| m.stats.clone());
                    let mut v = done.volume;
                    if let Some(s) = stats {
                        v.stats = s;
                    }
                    st.volumes.insert(label.clone(), v);
                }
                // Files of a job that its package did not hold (there should
                // be none) stay queued: the job goes back to the scheduler.
                for job in done.unfinished {
                    let msg = format!(
                        "archive job {}: {} file(s) were not in its package and stay queued",
                        job.id,
                        job.files.len()
                    );
                    tracing::warn!("{msg}");
                    self.sys.enqueue(job);
                }
                metrics::counter!("bale_tape_files_written_total").increment(packages.len() as u64);
                self.save_stats(None).await;
            }
            Err(e) => {
                // Not recorded: the volume's end of data stays where the
                // catalog says and the next write there overwrites them.
                let msg = format!("recording tape files on {label} failed: {e}");
                for u in pending {
                    self.requeue(u.job, &msg).await;
                }
                self.op_failed(&label, &OpError::Other(msg)).await;
            }
        }
    }

    async fn read(&mut self, label: &str, mut reqs: Vec<PendingRead>) {
        reqs.sort_by_key(|r| r.req.seq);
        let packages = match self.sys.catalog.packages(Some(label)).await {
            Ok(p) => p,
            Err(e) => {
                for r in reqs {
                    let _ = r.reply.send(Err(TapeError::Catalog(e.clone())));
                }
                return;
            }
        };
        if let Err(e) = self.mount(label).await {
            let msg = e.message();
            self.op_failed(label, &e).await;
            self.retry_reads(reqs, &msg);
            return;
        }
        let mut rest = reqs.into_iter();
        while let Some(r) = rest.next() {
            let Some(pkg) = packages.iter().find(|p| p.seq == r.req.seq).cloned() else {
                let _ = r.reply.send(Err(TapeError::NotFound(format!(
                    "volume {label} has no tape file {} in the catalog",
                    r.req.seq
                ))));
                continue;
            };
            match self.read_one(label, &pkg, &r.req).await {
                Ok(done) => {
                    let _ = r.reply.send(Ok(done));
                }
                Err(OpError::Drive(m)) => {
                    let e = OpError::Drive(m.clone());
                    self.op_failed(label, &e).await;
                    let left: Vec<PendingRead> = std::iter::once(r).chain(rest).collect();
                    self.retry_reads(left, &m);
                    return;
                }
                Err(e) => {
                    let msg = e.message();
                    let alarm = format!("volume {label}: reading tape file {} failed: {msg}", pkg.seq);
                    tracing::error!("{alarm}");
                    self.event(label, "error", Some(pkg.seq), 0, alarm.clone());
                    let _ = self
                        .sys
                        .catalog
                        .raise_alarm("error", &format!("volume {label}"), &alarm)
                        .await;
                    self.retry_reads(vec![r], &msg);
                }
            }
        }
        self.save_stats(Some(label)).await;
    }

    /// Requeues reads that failed; those out of attempts fail.
    fn retry_reads(&self, reqs: Vec<PendingRead>, msg: &str) {
        let mut st = self.lock();
        for mut r in reqs {
            r.attempts += 1;
            if r.attempts >= self.sys.cfg.read_attempts {
                let _ = r.reply.send(Err(TapeError::Failed(format!(
                    "reading tape file {} of volume {} failed {} times: {msg}",
                    r.req.seq, r.req.volume, r.attempts
                ))));
            } else {
                st.reads.entry(r.req.volume.clone()).or_default().push(r);
            }
        }
        drop(st);
        self.sys.wake.send_modify(|n| *n += 1);
    }

    async fn read_one(&mut self, label: &str, pkg: &Package, req: &ReadRequest) -> Result<ReadDone, OpError> {
        self.locate(label, pkg.seq, pkg.position).await?;
        if self.drive_fails() {
            return Err(OpError::Drive("the drive failed while reading".into()));
        }
        let inject = self.take_fault(|f| matches!(f, Fault::ReadError { volume } if volume == label));
        let mut vol = self.vol.take().expect("mounted");
        let dest = req.dest.clone();
        let t0 = Instant::now();
        let (vol, r) = tokio::task::spawn_blocking(move || {
            let mut hash = bale_util::checksum::Adler32Hasher::new();
            let r = vol.read_file(&mut |src| {
                if inject {
                    return Err(io::Error::other("injected read error (medium error)"));
                }
                let mut out = std::fs::File::create(&dest)?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = src.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    hash.update(&buf[..n]);
                    io::Write::write_all(&mut out, &buf[..n])?;
                }
                out.sync_all()
            });
            (vol, r.map(|n| (n, hash.finish())))
        })
        .await
        .map_err(|e| OpError::Other(e.to_string()))?;
        self.vol = Some(vol);
        let (bytes, sum) = r.map_err(|e| OpError::Volume(e.to_string()))?;
        self.head = pkg.position + bytes;
        self.charge(label, Charge::Read, self.lib.profile.transfer_s(bytes), t0.elapsed())
            .await;
        self.count(label, |s| s.bytes_read += bytes);
        self.event(label, "read", Some(pkg.seq), bytes, format!("package {}", pkg.id));
        if bytes != pkg.size || sum != pkg.adler32 {
            let _ = std::fs::remove_file(&req.dest);
            return Err(OpError::Data(format!(
                "tape file {} has {bytes} bytes with adler32 {sum}; the catalog says {} bytes with {}",
                pkg.seq, pkg.size, pkg.adler32
            )));
        }
        Ok(ReadDone { bytes, adler32: sum })
    }
}

/// The stream to the tape file: fails after `fail_after` bytes (fault
/// injection) and, with `pace` (bytes per real second), streams no faster
/// than the modelled drive.
struct TapeSink<'a> {
    inner: &'a mut dyn io::Write,
    fail_after: u64,
    written: u64,
    pace: Option<f64>,
    start: Instant,
}

impl io::Write for TapeSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written >= self.fail_after {
            return Err(io::Error::other("injected write error (medium error)"));
        }
        let n = (buf.len() as u64).min(self.fail_after - self.written) as usize;
        let n = self.inner.write(&buf[..n])?;
        self.written += n as u64;
        if let Some(rate) = self.pace {
            let due = Duration::from_secs_f64(self.written as f64 / rate);
            if let Some(wait) = due.checked_sub(self.start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
