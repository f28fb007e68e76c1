//! A drive: its worker loop (ask the scheduler, do the work, wait) and its
//! mechanics: mount and unload with the robot, locate, charging the timing
//! model, taking the drive or a volume out of service when it fails. The
//! package write is in [`crate::write`], the read in [`crate::read`].

use crate::backend::{Mounted, VolumeBackend};
use crate::fault::{is_drive_failure, FaultyBackend};
use crate::media::Charge;
use crate::schedule::{QueuedJob, Schedule, Work};
use crate::state::{Inner, Lib, PendingRead};
use bale_catalog::{DriveState, NewPackage, TapeStats, VolumeState};
use bale_util::background::{State as WorkerState, Status, Worker};
use bale_util::FileId;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A tape file written but not yet covered by a synchronous mark.
pub(crate) struct Unflushed {
    pub package: NewPackage,
    pub job: QueuedJob,
}

pub(crate) struct DriveTask {
    pub sys: Arc<Inner>,
    pub lib: Arc<Lib>,
    pub name: String,
    /// The library's backend as this drive sees it (faults armed for it).
    backend: Arc<dyn VolumeBackend>,
    pub vol: Option<Box<dyn Mounted>>,
    /// Head position in bytes from the start of the tape.
    pub head: u64,
    /// Tape files written but not yet covered by a synchronous mark.
    pub pending: Vec<Unflushed>,
    wake: watch::Receiver<u64>,
    /// What the drive is doing, for `bale workers`.
    pub doing: Option<String>,
    pub jobs_written: u64,
    pub reads_done: u64,
    /// Reads dropped because nobody waited for them any more.
    pub reads_abandoned: u64,
    /// The job being written now (taken from its queue, not yet recorded,
    /// requeued or parked): with `pending`, what the drive holds.
    pub writing: Option<i64>,
}

impl Drop for DriveTask {
    /// A drive whose worker panicked (a bug) gives everything back: its
    /// slot goes offline and lets go of its volume, and the jobs it held
    /// are queued again from their catalog rows (or, failing that, by the
    /// on-its-way check). The worker runner raises the alarm.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(mut st) = self.sys.sched.lock() else { return };
        let held: Vec<i64> = self.pending.iter().map(|u| u.job.job.id).chain(self.writing).collect();
        for id in &held {
            st.known_jobs.remove(id);
        }
        if let Some(slot) = st.drives.get_mut(&self.name) {
            slot.online = false;
            slot.busy = false;
            slot.mounted = None;
            slot.writing = None;
        }
        drop(st);
        tracing::error!(
            "drive {} died holding job(s) {held:?}: taken offline; its jobs are handed over again",
            self.name
        );
        // The jobs are catalog rows: queue them again from there.
        let sys = self.sys.clone();
        if let (false, Ok(rt)) = (held.is_empty(), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                match sys.catalog.archive_jobs().await {
                    Ok(jobs) => jobs
                        .into_iter()
                        .filter(|j| held.contains(&j.id) && j.state == bale_catalog::JobState::Queued)
                        .for_each(|j| {
                            sys.enqueue(j);
                        }),
                    Err(e) => tracing::warn!("requeueing the jobs of a dead drive failed (the on-way check will): {e}"),
                }
            });
        }
        self.sys.wake();
    }
}

/// How a drive operation failed.
pub(crate) enum OpError {
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
    /// A filesystem is full (under the library, or the cache a read
    /// writes into): pause, then retry; nobody's fault, no attempt counted.
    NoSpace(String),
}

impl OpError {
    pub fn message(&self) -> String {
        match self {
            OpError::Drive(m) | OpError::Volume(m) | OpError::Data(m) | OpError::Other(m) | OpError::NoSpace(m) => {
                m.clone()
            }
            OpError::Member { message, .. } => message.clone(),
            OpError::Full => "end of tape".into(),
            OpError::Retry => "volume no longer writable".into(),
            OpError::Gone(id) => format!("member {id} left the namespace"),
        }
    }

    /// A backend error during `what`: the drive's fault or the medium's.
    pub fn from_io(what: &str, e: io::Error) -> OpError {
        if is_drive_failure(&e) {
            OpError::Drive(e.to_string())
        } else if crate::backend::is_host_full(&e) {
            OpError::NoSpace(format!("{what}: {e}"))
        } else {
            OpError::Volume(format!("{what}: {e}"))
        }
    }
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

#[async_trait::async_trait]
impl Worker for DriveTask {
    fn name(&self) -> String {
        format!("drive {}", self.name)
    }

    fn status(&self) -> Status {
        let mut s = Status {
            progress: self.doing.clone(),
            ..Status::default()
        };
        s.counters.insert("jobs_written".into(), self.jobs_written);
        s.counters.insert("reads_done".into(), self.reads_done);
        s.counters.insert("reads_abandoned".into(), self.reads_abandoned);
        s.counters.insert("unflushed".into(), self.pending.len() as u64);
        s
    }

    /// One assignment of the scheduler; at shutdown, flushes what is
    /// written, saves the counters and ends.
    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<WorkerState, String> {
        self.wake.borrow_and_update();
        if *stop.borrow() {
            self.flush_pending().await;
            self.save_stats(None).await;
            self.doing = None;
            return Ok(WorkerState::Done);
        }
        let max_wait = Duration::from_secs_f64(self.sys.cfg.max_wait_s.max(0.0));
        let mut full = Vec::new();
        let (work, starved) = {
            let mut st = self.lock();
            let work = st.assign(&self.name, Instant::now(), max_wait, &mut full);
            let starved: Vec<_> = std::mem::take(&mut st.newly_starved)
                .into_iter()
                .map(|k| {
                    let quota = st.at_volume_quota(&k);
                    (k, quota)
                })
                .collect();
            (work, starved)
        };
        for label in full {
            self.mark_full(&label, "cannot hold the next tape file").await;
        }
        for (key, quota) in starved {
            // The operator must act: nothing is written for the family
            // until a volume is added (or one made writable), or the
            // storage group's volume quota is raised.
            let msg = match quota {
                Some(n) => format!(
                    "archive jobs of family {} wait: storage group {} has taken its quota of {n} volumes in \
                     library {} and none of them has room (bale quota set {} --volumes {}=N)",
                    key.family, key.family.storage_group, key.library, key.family.storage_group, key.library
                ),
                None => format!(
                    "archive jobs of family {} wait: library {} has no appendable volume of the family with \
                     room and no blank volume (bale volumes add --library {} --count N)",
                    key.family, key.library, key.library
                ),
            };
            tracing::error!("{msg}");
            let _ = self
                .sys
                .catalog
                .raise_alarm("error", &format!("library {}", key.library), &msg)
                .await;
        }
        match work {
            Work::Write { volume, job } => {
                self.doing = Some(format!("writing job {} to {volume}", job.job.id));
                self.writing = Some(job.job.id);
                self.write(&volume, job).await;
                self.writing = None;
            }
            Work::Read { volume, reqs } => {
                self.doing = Some(format!(
                    "reading {} of {volume}",
                    bale_util::human::plural(reqs.len() as u64, "tape file")
                ));
                self.read(&volume, reqs).await;
            }
            Work::Fail { job, reason } => self.fail_job(job, &reason).await,
            Work::Idle => {
                if !self.pending.is_empty() {
                    self.flush_pending().await;
                    return Ok(WorkerState::Busy);
                }
                let offline = {
                    let mut st = self.lock();
                    let slot = st.drives.get_mut(&self.name).expect("drive");
                    slot.busy = false;
                    !slot.online
                };
                if offline && self.vol.is_some() {
                    // Taken offline by an administrator: give the volume back.
                    self.unload().await;
                    return Ok(WorkerState::Busy);
                }
                self.doing = self
                    .vol
                    .as_ref()
                    .map(|v| format!("idle with {} mounted", v.label().label));
                return Ok(WorkerState::Idle);
            }
        }
        Ok(WorkerState::Busy)
    }

    /// Waits for a wake; a mounted volume is unloaded after `idle_unload_s`
    /// without one.
    async fn wait_for_work(&mut self) -> WorkerState {
        let idle_unload = Duration::from_secs_f64(self.sys.cfg.idle_unload_s.max(0.0));
        let timeout = if self.vol.is_some() {
            idle_unload
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            r = self.wake.changed() => if r.is_err() { return WorkerState::Done },
            _ = tokio::time::sleep(timeout) => {
                // No wake in all that time: nothing for this volume.
                self.unload().await;
            }
        }
        WorkerState::Busy
    }
}

impl DriveTask {
    pub fn new(sys: Arc<Inner>, lib: Arc<Lib>, name: String) -> DriveTask {
        let backend = Arc::new(FaultyBackend {
            inner: lib.backend.clone(),
            drive: name.clone(),
            faults: sys.faults.clone(),
        });
        let wake = sys.wake.subscribe();
        DriveTask {
            sys,
            lib,
            name,
            backend,
            vol: None,
            head: 0,
            pending: Vec::new(),
            wake,
            doing: None,
            jobs_written: 0,
            reads_done: 0,
            reads_abandoned: 0,
            writing: None,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Schedule<PendingRead>> {
        self.sys.sched.lock().unwrap()
    }

    pub fn event(&self, volume: &str, kind: &str, tape_file: Option<u32>, bytes: u64, detail: String) {
        self.sys
            .events
            .lock()
            .unwrap()
            .push(&self.name, volume, kind, tape_file, bytes, detail);
    }

    /// Charges modelled seconds (or, on real media, the measured ones) to
    /// this drive and `volume`, and sleeps them times the time scale
    /// (less what the operation already took).
    pub async fn charge(&self, volume: &str, kind: Charge, modelled: f64, elapsed: Duration) {
        let real = self.lib.backend.real_timing();
        let secs = if real { elapsed.as_secs_f64() } else { modelled };
        self.count(volume, |s| add_charge(s, kind, secs));
        let scale = self.sys.cfg.time_scale;
        if !real && scale > 0.0 {
            let sleep = modelled * scale - elapsed.as_secs_f64();
            if sleep > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(sleep)).await;
            }
        }
    }

    /// Applies `f` to the counters of this drive and of `volume`.
    pub fn count(&self, volume: &str, f: impl Fn(&mut TapeStats)) {
        let mut st = self.lock();
        if let Some(s) = st.drives.get_mut(&self.name) {
            f(&mut s.stats);
        }
        if let Some(v) = st.volumes.get_mut(volume) {
            f(&mut v.stats);
        }
    }

    /// Marks a volume full, in memory (if the scheduler has not already)
    /// and in the catalog.
    pub async fn mark_full(&self, label: &str, why: &str) {
        self.event(label, "full", None, 0, why.into());
        if let Some(v) = self.lock().volumes.get_mut(label) {
            v.state = VolumeState::Full;
        }
        if let Err(e) = self.sys.catalog.set_volume_state(label, VolumeState::Full).await {
            tracing::warn!("cannot mark volume {label} full: {e}");
        }
    }

    pub async fn save_stats(&self, volume: Option<&str>) {
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
    pub async fn unload(&mut self) {
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
        self.doing = None;
        self.sys.wake();
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
    pub async fn mount(&mut self, label: &str) -> Result<(), OpError> {
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
        let p = self.lib.profile.clone();
        {
            let _robot = self.lib.robot.lock().await;
            self.charge(label, Charge::Robot, p.robot_s, Duration::ZERO).await;
        }
        let (backend, capacity) = (
            self.backend.clone(),
            self.lock().volumes.get(label).map_or(0, |v| v.capacity),
        );
        let l = label.to_string();
        let t0 = Instant::now();
        let loaded = tokio::task::spawn_blocking(move || backend.load(&l, capacity))
            .await
            .map_err(|e| OpError::Other(e.to_string()))?;
        self.charge(label, Charge::Load, p.load_s, t0.elapsed()).await;
        let vol = loaded.map_err(|e| OpError::from_io("cannot load", e))?;
        self.vol = Some(vol);
        self.count(label, |s| s.mounts += 1);
        self.event(label, "mount", None, 0, String::new());
        self.check_wear(label).await;
        Ok(())
    }

    /// Wear: past its mount limit a volume is only read.
    async fn check_wear(&self, label: &str) {
        let worn = {
            let st = self.lock();
            st.volumes
                .get(label)
                .filter(|v| v.stats.mounts >= v.mount_limit && (v.state.writable() || v.state == VolumeState::Full))
                .map(|v| (v.stats.mounts, v.mount_limit))
        };
        let Some((mounts, limit)) = worn else { return };
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

    /// Moves the head to tape file `seq` at byte `position`.
    pub async fn locate(&mut self, label: &str, seq: u32, position: u64) -> Result<(), OpError> {
        let vol = self.vol.as_mut().expect("mounted");
        if vol.position() == seq && self.head == position {
            return Ok(());
        }
        vol.locate(seq).map_err(|e| OpError::from_io("locate failed", e))?;
        let dist = self.head.abs_diff(position);
        self.head = position;
        self.charge(label, Charge::Locate, self.lib.profile.locate_s(dist), Duration::ZERO)
            .await;
        Ok(())
    }

    /// Handles a failed operation on `label`: the drive or volume is taken
    /// out of service with an alarm, and the work goes back to the queues.
    pub async fn op_failed(&mut self, label: &str, e: &OpError) {
        let (severity, source, msg) = match e {
            OpError::Drive(m) => (
                "error",
                format!("drive {}", self.name),
                format!("drive {}: {m}", self.name),
            ),
            OpError::Volume(m) => ("error", format!("volume {label}"), format!("volume {label}: {m}")),
            OpError::Full | OpError::Retry | OpError::Member { .. } | OpError::Gone(_) => return,
            OpError::Data(m) | OpError::Other(m) => ("warning", format!("drive {}", self.name), m.clone()),
            OpError::NoSpace(m) => (
                "warning",
                format!("library {}", self.lib.name),
                format!("library {}: {m}; its work pauses and retries", self.lib.name),
            ),
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
        self.sys.wake();
    }
}
