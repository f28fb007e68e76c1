//! The scheduling decision: which drive does what next. Pure: no I/O, no
//! clock (the caller passes `now`), no channels; the drives act on what it
//! decides ([`Schedule::assign`]). The rules:
//!
//! - Writes queue per (library, file family). At most `file_family_width`
//!   volumes of a family are being written at once (a volume is being
//!   written while a drive holds it for that family).
//! - A drive keeps its volume while the volume has queued work: reads on
//!   it, or writes of its family that fit. A family volume that cannot hold
//!   the next tape file is marked full and another appendable volume of the
//!   family, or a blank one, is used (the mounted one first, then the
//!   fullest appendable, then a blank one).
//! - Reads are grouped per volume; a drive takes every pending read of a
//!   volume at once and serves them in tape order: one mount per volume
//!   per batch.
//! - Otherwise the oldest waiting request goes first (FIFO across queues).
//!   No request starves: once a request has waited `max_wait`, a drive
//!   gives up its mounted volume's remaining work to serve the oldest one.
//! - A job larger than every volume of its library fails at once.

use bale_catalog::{ArchiveJob, Family, TapeStats, Volume, VolumeState};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Something waiting for a drive since a moment.
pub(crate) trait Waiting {
    fn since(&self) -> Instant;
}

/// An archive job in a write queue, with the moment it joined.
pub(crate) struct QueuedJob {
    pub job: ArchiveJob,
    pub since: Instant,
}

/// A read of one tape file.
pub(crate) trait TapeRead: Waiting {
    /// The tape file to read (its sequence number on the volume).
    fn seq(&self) -> u32;

    /// Nobody waits for this read any more (its stage was cancelled): it is
    /// dropped, and a volume with nothing else to read is not mounted.
    fn abandoned(&self) -> bool {
        false
    }
}

impl Waiting for QueuedJob {
    fn since(&self) -> Instant {
        self.since
    }
}

/// A write queue: one per library and file family.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct QueueKey {
    pub library: String,
    pub family: Family,
}

impl QueueKey {
    pub fn of(job: &ArchiveJob) -> QueueKey {
        QueueKey {
            library: job.target.library.clone(),
            family: job.target.family.clone(),
        }
    }
}

/// What the scheduler knows of a drive.
pub(crate) struct Slot {
    pub library: String,
    pub online: bool,
    pub busy: bool,
    /// The volume this drive holds (or is about to mount).
    pub mounted: Option<String>,
    /// The family whose volume this drive holds for writing.
    pub writing: Option<QueueKey>,
    pub stats: TapeStats,
}

impl Slot {
    pub fn new(library: &str, online: bool, stats: TapeStats) -> Slot {
        Slot {
            library: library.to_string(),
            online,
            busy: false,
            mounted: None,
            writing: None,
            stats,
        }
    }
}

/// The scheduler's state: volumes, drives and the queues. `R` is a pending
/// read (the drives' reply channel; a plain value in the unit tests).
pub(crate) struct Schedule<R> {
    pub volumes: BTreeMap<String, Volume>,
    pub drives: BTreeMap<String, Slot>,
    pub writes: BTreeMap<QueueKey, VecDeque<QueuedJob>>,
    /// Pending reads per volume; a drive serves them in tape order.
    pub reads: BTreeMap<String, Vec<R>>,
    /// Jobs queued or being written, to refuse duplicates.
    pub known_jobs: HashSet<i64>,
    /// Write queues that wait for a volume none of the library has (no
    /// appendable volume of the family with room, no blank one): said once
    /// each (`newly_starved`), forgotten once they write again.
    pub starved: HashSet<QueueKey>,
    pub newly_starved: Vec<QueueKey>,
    /// Volumes each storage group may take per library (its quota), by
    /// (library, storage group): a family at it takes no blank volume.
    pub volume_limits: HashMap<(String, String), u32>,
}

impl<R> Default for Schedule<R> {
    fn default() -> Self {
        Schedule {
            volumes: BTreeMap::new(),
            drives: BTreeMap::new(),
            writes: BTreeMap::new(),
            reads: BTreeMap::new(),
            known_jobs: HashSet::new(),
            starved: HashSet::new(),
            newly_starved: Vec::new(),
            volume_limits: HashMap::new(),
        }
    }
}

/// What a drive is to do.
pub(crate) enum Work<R> {
    Idle,
    Write { volume: String, job: QueuedJob },
    Read { volume: String, reqs: Vec<R> },
    Fail { job: QueuedJob, reason: String },
}

/// Overhead of a package over its members' bytes, for capacity checks
/// before the exact plan is made: headers, the manifest, the end blocks.
pub(crate) fn estimate(job: &ArchiveJob) -> u64 {
    job.bytes + 2048 * (job.files.len() as u64 + 2) + 64 * 1024
}

/// A request this drive could serve: a read batch of a volume, or the
/// front job of a write queue.
struct Candidate {
    since: Instant,
    write: Option<QueueKey>,
    volume: String,
}

impl<R: TapeRead> Schedule<R> {
    /// Queues a job at the back of its queue. False if it is already held.
    pub fn enqueue(&mut self, job: ArchiveJob, now: Instant) -> bool {
        if !self.known_jobs.insert(job.id) {
            return false;
        }
        self.writes
            .entry(QueueKey::of(&job))
            .or_default()
            .push_back(QueuedJob { job, since: now });
        true
    }

    /// Puts a job back at the head of its queue (it keeps its age).
    pub fn requeue_front(&mut self, job: QueuedJob) {
        self.writes.entry(QueueKey::of(&job.job)).or_default().push_front(job);
    }

    /// Adds a read of `volume`.
    pub fn add_read(&mut self, volume: &str, read: R) {
        self.reads.entry(volume.to_string()).or_default().push(read);
    }

    /// Forgets the reads nobody waits for any more.
    fn drop_abandoned_reads(&mut self) {
        self.reads.retain(|_, reqs| {
            reqs.retain(|r| !r.abandoned());
            !reqs.is_empty()
        });
    }

    /// Every pending read of `volume`, in tape order.
    fn take_reads(&mut self, volume: &str) -> Option<Vec<R>> {
        let mut reqs = self.reads.remove(volume)?;
        reqs.sort_by_key(|r| r.seq());
        Some(reqs)
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

    /// Whether the drive holding `label` for writing has more jobs of its family.
    pub fn more_writes(&self, drive: &str, label: &str) -> bool {
        let slot = &self.drives[drive];
        slot.mounted.as_deref() == Some(label)
            && slot
                .writing
                .as_ref()
                .is_some_and(|k| self.writes.get(k).is_some_and(|q| !q.is_empty()))
    }

    /// The volume quota of `key`'s storage group in its library, when the
    /// group has taken all of it: it may take no blank volume.
    pub fn at_volume_quota(&self, key: &QueueKey) -> Option<u32> {
        let group = &key.family.storage_group;
        let limit = *self.volume_limits.get(&(key.library.clone(), group.clone()))?;
        let bound = self
            .volumes
            .values()
            .filter(|v| v.library == key.library && v.family.as_ref().is_some_and(|f| &f.storage_group == group))
            .count();
        // A blank volume a drive took for the group counts before its
        // first tape file binds it.
        let claimed = self
            .drives
            .values()
            .filter(|d| d.writing.as_ref().is_some_and(|k| &k.family.storage_group == group))
            .filter_map(|d| d.mounted.as_ref().and_then(|l| self.volumes.get(l)))
            .filter(|v| v.library == key.library && v.family.is_none())
            .count();
        (bound + claimed >= limit as usize).then_some(limit)
    }

    /// The best volume for the next job of `key` on drive `drive`; family
    /// volumes too full for it are marked full on the way (`full`).
    fn pick_volume(&mut self, key: &QueueKey, need: u64, drive: &str, full: &mut Vec<String>) -> Option<String> {
        let here = self.drives[drive].mounted.clone();
        let blank_ok = self.at_volume_quota(key).is_none();
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
                (VolumeState::Blank, _) if blank_ok && v.capacity >= need => {
                    (if mounted_here { 2 } else { 3 }, v.capacity)
                }
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

    /// Requests drive `drive` could serve, oldest first.
    fn candidates(&self, drive: &str, library: &str) -> Vec<Candidate> {
        let mut cands = Vec::new();
        for (label, reqs) in &self.reads {
            let Some(v) = self.volumes.get(label) else { continue };
            if v.library != library || self.mounted_elsewhere(label, drive) || reqs.is_empty() {
                continue;
            }
            let since = reqs.iter().map(|r| r.since()).min().expect("non-empty");
            cands.push(Candidate {
                since,
                write: None,
                volume: label.clone(),
            });
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
            cands.push(Candidate {
                since: front.since,
                write: Some(key.clone()),
                volume: String::new(),
            });
        }
        cands.sort_by_key(|c| c.since);
        cands
    }

    /// Decides what drive `drive` does next (see the module's rules).
    /// Volumes found too full on the way are marked full here and named in
    /// `full` for the caller to record.
    pub fn assign(&mut self, drive: &str, now: Instant, max_wait: Duration, full: &mut Vec<String>) -> Work<R> {
        let Some(slot) = self.drives.get(drive) else {
            return Work::Idle;
        };
        if !slot.online {
            return Work::Idle;
        }
        let library = slot.library.clone();
        let mounted = slot.mounted.clone();
        let writing = slot.writing.clone();
        self.drop_abandoned_reads();
        let cands = self.candidates(drive, &library);

        if let Some(v) = &mounted {
            let serves_here = |c: &Candidate| match &c.write {
                None => c.volume == *v,
                Some(k) => writing.as_ref() == Some(k),
            };
            let starving = cands
                .iter()
                .any(|c| !serves_here(c) && now.saturating_duration_since(c.since) >= max_wait);
            if !starving {
                if let Some(work) = self.stay(drive, v, writing.as_ref(), full) {
                    return work;
                }
            }
        }

        for c in cands {
            match c.write {
                None => {
                    let reqs = self.take_reads(&c.volume).expect("candidate");
                    self.claim(drive, &c.volume, None);
                    return Work::Read { volume: c.volume, reqs };
                }
                Some(key) => {
                    let need = estimate(&self.writes[&key].front().expect("candidate").job);
                    if let Some(vol) = self.pick_volume(&key, need, drive, full) {
                        let job = self.writes.get_mut(&key).and_then(|q| q.pop_front()).expect("front");
                        self.starved.remove(&key);
                        self.claim(drive, &vol, Some(key));
                        return Work::Write { volume: vol, job };
                    }
                    // No volume at all (not only none free now): said once.
                    let blank_ok = self.at_volume_quota(&key).is_none();
                    let any = self.volumes.values().any(|v| {
                        v.library == key.library
                            && match (v.state, &v.family) {
                                (VolumeState::Appendable, Some(f)) => *f == key.family && v.remaining() >= need,
                                (VolumeState::Blank, _) => blank_ok && v.capacity >= need,
                                _ => false,
                            }
                    });
                    if !any && self.starved.insert(key.clone()) {
                        self.newly_starved.push(key.clone());
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

    /// Work on the mounted volume `v`: its reads, or the next job of the
    /// family it is held for if it fits (otherwise it is marked full).
    fn stay(&mut self, drive: &str, v: &str, writing: Option<&QueueKey>, full: &mut Vec<String>) -> Option<Work<R>> {
        if let Some(reqs) = self.take_reads(v) {
            self.claim(drive, v, None);
            return Some(Work::Read {
                volume: v.to_string(),
                reqs,
            });
        }
        let key = writing?;
        let need = self.writes.get(key).and_then(|q| q.front()).map(|j| estimate(&j.job))?;
        let vol = &self.volumes[v];
        let bound = vol.family.as_ref().is_none_or(|f| *f == key.family);
        if vol.state.writable() && bound && vol.remaining() >= need {
            let job = self.writes.get_mut(key).and_then(|q| q.pop_front()).expect("front");
            self.claim(drive, v, Some(key.clone()));
            return Some(Work::Write {
                volume: v.to_string(),
                job,
            });
        }
        if vol.state == VolumeState::Appendable && vol.remaining() < need {
            self.volumes.get_mut(v).expect("volume").state = VolumeState::Full;
            full.push(v.to_string());
        }
        None
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
