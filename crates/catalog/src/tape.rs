//! The catalog's tape records: volumes, drives, packages (tape files) and
//! their members, archive jobs and alarms.

use crate::Result;
use async_trait::async_trait;
use bale_util::{Adler32, FileId, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a volume holds: one (storage group, file family, wrapper).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Family {
    pub storage_group: String,
    pub file_family: String,
    pub wrapper: String,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.storage_group, self.file_family, self.wrapper)
    }
}

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} {s:?}; one of: {}",
                        stringify!($name).to_lowercase(),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// A volume's state. Blank and appendable volumes take writes; full and
    /// readonly ones are read; noaccess ones are neither (a fault); shelf
    /// volumes are out of the library.
    VolumeState {
        Blank = "blank",
        Appendable = "appendable",
        Full = "full",
        Readonly = "readonly",
        Noaccess = "noaccess",
        Shelf = "shelf",
    }
);

impl VolumeState {
    pub fn writable(self) -> bool {
        matches!(self, VolumeState::Blank | VolumeState::Appendable)
    }
    pub fn readable(self) -> bool {
        matches!(
            self,
            VolumeState::Appendable | VolumeState::Full | VolumeState::Readonly
        )
    }
}

text_enum!(
    /// An administrator's view of a drive: online drives are scheduled.
    DriveState {
        Online = "online",
        Offline = "offline",
    }
);

text_enum!(
    /// An archive job's state. Jobs that completed are removed: their
    /// record is the package.
    JobState {
        Queued = "queued",
        Failed = "failed",
    }
);

/// Wear and time accounting of a drive or a volume: modelled seconds by
/// kind of work, bytes and file marks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TapeStats {
    pub mounts: u64,
    pub robot_s: f64,
    pub load_s: f64,
    pub locate_s: f64,
    pub write_s: f64,
    pub read_s: f64,
    pub mark_s: f64,
    pub unload_s: f64,
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub file_marks: u64,
}

impl TapeStats {
    /// Modelled seconds of work of every kind.
    pub fn busy_s(&self) -> f64 {
        self.robot_s + self.load_s + self.locate_s + self.write_s + self.read_s + self.mark_s + self.unload_s
    }

    /// Bytes moved over what the busy time would move at `rate` bytes/s.
    pub fn efficiency(&self, rate: f64) -> Option<f64> {
        let busy = self.busy_s();
        (busy > 0.0 && rate > 0.0).then(|| (self.bytes_written + self.bytes_read) as f64 / (busy * rate))
    }

    pub fn add(&mut self, o: &TapeStats) {
        self.mounts += o.mounts;
        self.robot_s += o.robot_s;
        self.load_s += o.load_s;
        self.locate_s += o.locate_s;
        self.write_s += o.write_s;
        self.read_s += o.read_s;
        self.mark_s += o.mark_s;
        self.unload_s += o.unload_s;
        self.bytes_written += o.bytes_written;
        self.bytes_read += o.bytes_read;
        self.file_marks += o.file_marks;
    }
}

/// One tape cartridge.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Volume {
    pub label: String,
    pub library: String,
    pub media: String,
    pub capacity: u64,
    pub state: VolumeState,
    /// Bound at the first write; `None` while blank.
    pub family: Option<Family>,
    /// Bytes written (end of data as a byte position).
    pub used: u64,
    /// Tape files written: the sequence number the next one gets.
    pub tape_files: u32,
    /// Mounts after which the volume turns readonly (wear).
    pub mount_limit: u64,
    pub stats: TapeStats,
    pub created: Timestamp,
}

impl Volume {
    pub fn remaining(&self) -> u64 {
        self.capacity.saturating_sub(self.used)
    }
}

/// A volume to add to a library, blank.
#[derive(Clone, Debug)]
pub struct NewVolume {
    pub label: String,
    pub library: String,
    pub media: String,
    pub capacity: u64,
    pub mount_limit: u64,
    pub created: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Drive {
    pub name: String,
    pub library: String,
    pub state: DriveState,
    pub stats: TapeStats,
}

/// A package `p` of member `m` counts as a copy that archives its file:
/// the package is good and no copy of the file is still to be written.
/// SQL of both backends.
pub(crate) const GOOD_AND_COMPLETE: &str =
    "p.bad IS NULL AND NOT EXISTS (SELECT 1 FROM job_files j WHERE j.file_id = m.file_id)";

/// Where an archive job writes: a file family in a library.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct JobTarget {
    pub library: String,
    pub family: Family,
    /// The family's width: volumes written at once.
    pub width: u32,
    /// The libraries that get a copy of the files after this one, in
    /// order (several tape copies, each in its own library): the commit of
    /// this copy queues the next copy's job. Empty for the last copy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<String>,
}

impl JobTarget {
    /// The target of the copy after this one, if any: the first library
    /// of `copies`, the same family and width.
    pub fn next_copy(&self) -> Option<JobTarget> {
        let (library, rest) = self.copies.split_first()?;
        Some(JobTarget {
            library: library.clone(),
            family: self.family.clone(),
            width: self.width,
            copies: rest.to_vec(),
        })
    }
}

/// A durable request to write files to tape as one tape file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArchiveJob {
    pub id: i64,
    pub state: JobState,
    pub target: JobTarget,
    pub bytes: u64,
    pub created: Timestamp,
    pub attempts: u32,
    pub error: Option<String>,
    /// The pool the job closed, for aggregated packages.
    pub pool: Option<String>,
    pub files: Vec<FileId>,
}

/// One member of a package being recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMember {
    pub file_id: FileId,
    /// Byte offset of the member's data in the tape file.
    pub offset: u64,
    pub size: u64,
    pub adler32: Adler32,
}

/// A tape file just written, to record.
#[derive(Clone, Debug)]
pub struct NewPackage {
    pub id: String,
    pub seq: u32,
    /// Byte position of the tape file on the volume.
    pub position: u64,
    pub size: u64,
    pub adler32: Adler32,
    pub created: Timestamp,
    pub members: Vec<NewMember>,
    /// The archive job this completes (removed in the same transaction).
    pub job: Option<i64>,
}

/// A tape file: a package of one or more members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Package {
    pub id: String,
    pub volume: String,
    pub seq: u32,
    pub position: u64,
    pub size: u64,
    pub adler32: Adler32,
    pub members: u32,
    pub created: Timestamp,
    /// Members whose files were deleted since (their bytes stay on tape
    /// until the package is compacted).
    pub dead_members: u32,
    pub dead_bytes: u64,
    /// Set when a verify found the copy bad: why, and since when. Reads
    /// and purges look only at good copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad: Option<(String, Timestamp)>,
}

/// Where a file's data is on tape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TapeCopy {
    pub package: Package,
    /// Byte offset of the file's data within the tape file.
    pub offset: u64,
    /// The file is in an archive job: a copy of it is still to be written
    /// (several tape copies, or the rewrite of a bad copy). Read with the
    /// copies, so that a stat needs no second look.
    #[serde(skip)]
    pub file_in_job: bool,
}

/// The state of a volume after a tape write, recorded with its packages.
#[derive(Clone, Debug)]
pub struct VolumeWrite {
    pub label: String,
    pub family: Family,
    pub state: VolumeState,
    pub stats: TapeStats,
}

/// The condition (SQL, both backends) that a file node `n` is on no way
/// to tape: in no open pool, no archive job and no package.
pub(crate) const STRANDED: &str = "NOT EXISTS (SELECT 1 FROM pool_files p WHERE p.file_id = n.file_id) \
     AND NOT EXISTS (SELECT 1 FROM job_files j WHERE j.file_id = n.file_id) \
     AND NOT EXISTS (SELECT 1 FROM members m WHERE m.file_id = n.file_id)";

/// Files on their way to tape past their deadline, oldest first, for
/// `stuck_files`; `{now}`, `{grace}` and `{limit}` are the backend's
/// placeholders. A pooled file's deadline is its pool's maximum wait
/// after it joined, plus the grace; a file in an archive job (queued or
/// failed) is due the grace after the job was made.
pub(crate) fn stuck_sql(now: &str, grace: &str, limit: &str) -> String {
    format!(
        "SELECT file_id, since FROM ( \
           SELECT pf.file_id AS file_id, pf.joined AS since FROM pool_files pf JOIN pools p ON p.key = pf.pool \
             WHERE pf.joined + p.max_wait_ms * 1000000 + {grace} < {now} \
           UNION ALL \
           SELECT jf.file_id, j.created FROM job_files jf JOIN archive_jobs j ON j.id = jf.job \
             WHERE j.created + {grace} < {now} \
         ) s ORDER BY since, file_id LIMIT {limit}"
    )
}

/// What recording tape files did.
#[derive(Clone, Debug)]
pub struct TapeCommit {
    /// The volume as recorded now.
    pub volume: Volume,
    /// Jobs that still hold files their packages did not contain: they
    /// stay queued (a commit removes exactly the job files it wrote).
    pub unfinished: Vec<ArchiveJob>,
    /// The jobs of the next tape copies of what was written (several tape
    /// copies), queued in the same transaction: the caller hands them on.
    pub queued: Vec<ArchiveJob>,
}

/// The condition (SQL, both backends) that package `p` is on a volume
/// that can be read.
pub(crate) const READABLE: &str =
    "EXISTS (SELECT 1 FROM volumes v WHERE v.label = p.volume AND v.state IN ('appendable', 'full', 'readonly'))";

/// A live file with a bad tape copy in a library where it has no good
/// one: the copy is rewritten there (self-repair).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RepairFile {
    pub file_id: FileId,
    pub size: u64,
    /// Its data is in the cache: a job can write it now. Otherwise it is
    /// staged first, from a good copy.
    pub cached: bool,
    /// It has a good tape copy somewhere (another library, or the same
    /// library's other copy).
    pub has_good: bool,
    /// Where the new copy goes: the bad copy's library and family.
    pub target: JobTarget,
}

/// The condition (SQL, both backends) that member `m` of a bad package on
/// volume `v` still needs its copy rewritten: the file has no good copy in
/// that library and is in no archive job.
pub(crate) const NEEDS_REPAIR: &str = "NOT EXISTS (SELECT 1 FROM members m2 \
     JOIN packages p2 ON p2.id = m2.package JOIN volumes v2 ON v2.label = p2.volume \
     WHERE m2.file_id = m.file_id AND p2.bad IS NULL AND v2.library = v.library) \
     AND NOT EXISTS (SELECT 1 FROM job_files j WHERE j.file_id = m.file_id)";

/// The query of [`TapeCatalog::repair_work`]; `limit` its placeholder.
pub(crate) fn repair_work_sql(limit: &str) -> String {
    format!(
        "SELECT DISTINCT m.file_id, n.size, n.cached, v.library, COALESCE(v.storage_group, 'default'), \
         COALESCE(v.file_family, 'default'), COALESCE(v.wrapper, 'tar'), \
         EXISTS (SELECT 1 FROM members g JOIN packages gp ON gp.id = g.package \
                 WHERE g.file_id = m.file_id AND gp.bad IS NULL) \
         FROM packages p JOIN volumes v ON v.label = p.volume JOIN members m ON m.package = p.id \
         JOIN nodes n ON n.file_id = m.file_id \
         WHERE p.bad IS NOT NULL AND {NEEDS_REPAIR} ORDER BY m.file_id LIMIT {limit}"
    )
}

/// The check [`TapeCatalog::queue_repair`] makes of each file in its
/// transaction: live, cached, and still needing a copy in the library
/// `library`; `cached` is the backend's spelling of "n.cached is true".
pub(crate) fn still_needs_repair_sql(file: &str, library: &str, cached: &str) -> String {
    format!(
        "SELECT 1 FROM nodes n WHERE n.file_id = {file} AND {cached} AND EXISTS (SELECT 1 FROM members m \
         JOIN packages p ON p.id = m.package JOIN volumes v ON v.label = p.volume \
         WHERE m.file_id = n.file_id AND p.bad IS NOT NULL AND v.library = {library} AND {NEEDS_REPAIR})"
    )
}

/// A file to put back on its way to tape: into a pool, or into a direct job.
#[derive(Clone, Debug)]
pub struct Reroute {
    pub file_id: FileId,
    pub size: u64,
    pub route: crate::ArchiveRoute,
    pub at: Timestamp,
}

/// Something an operator must look at. Repeats of an alarm not yet
/// acknowledged (same severity, source and message) fold into it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alarm {
    pub id: i64,
    /// When it was first raised.
    pub time: Timestamp,
    /// When it was raised last.
    pub last: Timestamp,
    /// How many times it was raised.
    pub count: u64,
    /// "warning" or "error".
    pub severity: String,
    /// The component it is about: "volume VL0001", "drive lib1-d1",
    /// "worker stager", "cache".
    pub source: String,
    pub message: String,
    /// When and by whom it was acknowledged.
    pub acked: Option<(Timestamp, String)>,
}

/// The tape half of the catalog.
#[async_trait]
pub trait TapeCatalog: Send + Sync + 'static {
    /// Adds blank volumes; all or none (a label taken fails the lot).
    async fn add_volumes(&self, volumes: &[NewVolume]) -> Result<()>;

    /// Every volume, by label.
    async fn volumes(&self) -> Result<Vec<Volume>>;

    async fn volume(&self, label: &str) -> Result<Option<Volume>>;

    async fn set_volume_state(&self, label: &str, state: VolumeState) -> Result<Volume>;

    async fn save_volume_stats(&self, label: &str, stats: &TapeStats) -> Result<()>;

    /// Records drives that are not recorded yet (online); keeps the rest.
    async fn register_drives(&self, drives: &[(String, String)]) -> Result<()>;

    /// Every drive, by name.
    async fn drives(&self) -> Result<Vec<Drive>>;

    async fn set_drive_state(&self, name: &str, state: DriveState) -> Result<Drive>;

    async fn save_drive_stats(&self, name: &str, stats: &TapeStats) -> Result<()>;

    /// Archive jobs not yet done, oldest first.
    async fn archive_jobs(&self) -> Result<Vec<ArchiveJob>>;

    /// The unfinished archive job holding a file, if any.
    async fn job_of(&self, file_id: FileId) -> Result<Option<ArchiveJob>>;

    /// Records a failed attempt of a job; `failed` parks it as failed.
    async fn job_attempt_failed(&self, id: i64, error: &str, failed: bool) -> Result<()>;

    /// Puts failed archive jobs back in the queue with no attempt counted,
    /// in one transaction: job `id` (which must be failed), or every failed
    /// job. What an administrator does once the cause is fixed. Returns the
    /// jobs requeued, with their files.
    async fn retry_jobs(&self, id: Option<i64>) -> Result<Vec<ArchiveJob>>;

    /// Records tape files just written on a volume, in ONE transaction:
    /// the packages and their members, the completed jobs removed, the
    /// volume's end of data, binding, state and counters. The packages must
    /// continue the volume's sequence exactly (the first has the volume's
    /// current `tape_files` as its number), or nothing is recorded.
    async fn commit_tape_files(&self, volume: &VolumeWrite, packages: &[NewPackage]) -> Result<TapeCommit>;

    /// Up to `limit` live files that are on no way to tape: in no open
    /// pool, no archive job (queued or failed) and no package. There
    /// should be none; the archiver alarms and reroutes any it finds.
    /// Only cached files are looked at (through the purge-order index): a
    /// file whose cache copy is gone was purged, which took a tape copy, so
    /// the check costs the size of the cache, not of the archive.
    async fn stranded_files(&self, limit: usize) -> Result<Vec<crate::Node>>;

    /// Up to `limit` files still not on tape `grace_ns` after they were due
    /// (a pooled file: its pool's maximum wait after it joined; a file in
    /// an archive job: when the job was made), with the time they began
    /// to wait, oldest first: Enstore's "stuck in transition".
    async fn stuck_files(&self, now: Timestamp, grace_ns: i64, limit: usize) -> Result<Vec<(FileId, Timestamp)>>;

    /// Puts stranded files back on their way in ONE transaction: each joins
    /// its pool or gets a direct archive job. A file that is gone or on its
    /// way meanwhile is skipped. Returns the direct jobs created.
    async fn reroute_files(&self, files: &[Reroute]) -> Result<Vec<ArchiveJob>>;

    /// The tape copies of a file, in the order a read tries them: good
    /// copies on readable volumes first, bad copies last.
    async fn tape_copies(&self, file_id: FileId) -> Result<Vec<TapeCopy>>;

    /// Marks a package (one tape copy) bad: a verify or a read found its
    /// data does not check out. Returns the package as it is now, `None`
    /// if there is no such package; a package already bad keeps its first
    /// reason. Its live members are then rewritten from good copies
    /// ([`TapeCatalog::repair_work`]).
    async fn mark_package_bad(&self, id: &str, why: &str, at: Timestamp) -> Result<Option<Package>>;

    /// Records that a package was read and found good at `at`.
    async fn package_verified(&self, id: &str, at: Timestamp) -> Result<()>;

    /// Up to `limit` good packages on readable volumes not verified since
    /// `before` (never verified first, then the longest ago): the scrub's
    /// next work.
    async fn due_for_verify(&self, before: Timestamp, limit: usize) -> Result<Vec<Package>>;

    /// Up to `limit` live files that need a copy rewritten: members of a
    /// bad package with no good copy in that package's library and in no
    /// archive job.
    async fn repair_work(&self, limit: usize) -> Result<Vec<RepairFile>>;

    /// Queues the rewrite of `files` into `target` (one archive job, no
    /// further copies), each re-checked in the transaction: still live,
    /// cached, and still needing a copy in that library. Returns the job,
    /// `None` if no file needed it any more.
    async fn queue_repair(&self, target: &JobTarget, files: &[(FileId, u64)]) -> Result<Option<ArchiveJob>>;

    /// The volume of every good tape copy of each of `ids`: (file, volume)
    /// pairs, in no order; a file without a good copy, or with a copy still
    /// to be written (its job queued), has none: it is archived once all
    /// its copies are. One round trip, for bulk requests (archiveinfo).
    async fn copy_volumes(&self, ids: &[FileId]) -> Result<Vec<(FileId, String)>>;

    /// Raises an alarm, or counts a repeat into the one not yet
    /// acknowledged with the same severity, source and message.
    async fn raise_alarm(&self, severity: &str, source: &str, message: &str) -> Result<Alarm>;

    /// The alarms not yet acknowledged (`all`: every alarm), the one
    /// raised last first.
    async fn alarms(&self, all: bool) -> Result<Vec<Alarm>>;

    /// Acknowledges an alarm (again: it keeps its first acknowledgement);
    /// `None` if there is no such alarm. A later repeat raises a new one.
    async fn ack_alarm(&self, id: i64, by: &str, at: Timestamp) -> Result<Option<Alarm>>;
}
