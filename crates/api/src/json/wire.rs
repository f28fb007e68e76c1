//! The JSON the tape and aggregation endpoints answer with. Defined here,
//! field by field, and filled from the core's and the catalog's types: a
//! catalog row that gains or renames a column does not change the wire.

use bale_catalog::{Alarm, Family, Package, TapeStats, Volume};
use bale_core::tape::{DriveView, Event, FileMarks, LibraryView, VolumeView};
use bale_core::{MemberView, PackageView};
use bale_util::background::WorkerInfo;
use bale_util::Timestamp;
use serde::Serialize;

/// Modelled seconds by kind of work, bytes and marks, of a drive or volume.
#[derive(Serialize)]
pub struct Stats {
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

impl From<&TapeStats> for Stats {
    fn from(s: &TapeStats) -> Stats {
        Stats {
            mounts: s.mounts,
            robot_s: s.robot_s,
            load_s: s.load_s,
            locate_s: s.locate_s,
            write_s: s.write_s,
            read_s: s.read_s,
            mark_s: s.mark_s,
            unload_s: s.unload_s,
            bytes_written: s.bytes_written,
            bytes_read: s.bytes_read,
            file_marks: s.file_marks,
        }
    }
}

#[derive(Serialize)]
pub struct FamilyJson {
    pub storage_group: String,
    pub file_family: String,
    pub wrapper: String,
}

impl From<&Family> for FamilyJson {
    fn from(f: &Family) -> FamilyJson {
        FamilyJson {
            storage_group: f.storage_group.clone(),
            file_family: f.file_family.clone(),
            wrapper: f.wrapper.clone(),
        }
    }
}

/// A volume (`volumes add`, `volumes state`).
#[derive(Serialize)]
pub struct VolumeJson {
    pub label: String,
    pub library: String,
    pub media: String,
    pub capacity: u64,
    /// blank, appendable, full, readonly, noaccess.
    pub state: &'static str,
    pub family: Option<FamilyJson>,
    pub used: u64,
    pub tape_files: u32,
    pub mount_limit: u64,
    pub stats: Stats,
    pub created: Timestamp,
}

impl From<&Volume> for VolumeJson {
    fn from(v: &Volume) -> VolumeJson {
        VolumeJson {
            label: v.label.clone(),
            library: v.library.clone(),
            media: v.media.clone(),
            capacity: v.capacity,
            state: v.state.as_str(),
            family: v.family.as_ref().map(FamilyJson::from),
            used: v.used,
            tape_files: v.tape_files,
            mount_limit: v.mount_limit,
            stats: Stats::from(&v.stats),
            created: v.created,
        }
    }
}

/// A volume with what the tape system knows of it now (`volumes`).
#[derive(Serialize)]
pub struct VolumeStatus {
    #[serde(flatten)]
    pub volume: VolumeJson,
    pub efficiency: Option<f64>,
    pub mounted_in: Option<String>,
}

impl From<&VolumeView> for VolumeStatus {
    fn from(v: &VolumeView) -> VolumeStatus {
        VolumeStatus {
            volume: VolumeJson::from(&v.volume),
            efficiency: v.efficiency,
            mounted_in: v.mounted_in.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct DriveJson {
    pub name: String,
    pub library: String,
    /// online or offline.
    pub state: &'static str,
    pub stats: Stats,
    /// idle, busy or offline.
    pub activity: &'static str,
    pub volume: Option<String>,
    pub efficiency: Option<f64>,
}

impl From<&DriveView> for DriveJson {
    fn from(d: &DriveView) -> DriveJson {
        DriveJson {
            name: d.drive.name.clone(),
            library: d.drive.library.clone(),
            state: d.drive.state.as_str(),
            stats: Stats::from(&d.drive.stats),
            activity: d.activity,
            volume: d.volume.clone(),
            efficiency: d.efficiency,
        }
    }
}

#[derive(Serialize)]
pub struct LibraryJson {
    pub name: String,
    pub backend: String,
    pub media: String,
    pub scale: f64,
    /// Native rate after scaling, bytes/s.
    pub rate: u64,
    pub file_mark_s: f64,
    /// The rest of the media's timing model (after scaling): capacity in
    /// bytes, seconds of a robot move, a load, an unload, a full locate.
    pub capacity: u64,
    pub robot_s: f64,
    pub load_s: f64,
    pub unload_s: f64,
    pub full_locate_s: f64,
    /// sync or buffered.
    pub file_marks: &'static str,
    pub stats: Stats,
    pub busy_s: f64,
    pub efficiency: Option<f64>,
}

impl From<&LibraryView> for LibraryJson {
    fn from(l: &LibraryView) -> LibraryJson {
        LibraryJson {
            name: l.name.clone(),
            backend: l.backend.clone(),
            media: l.media.clone(),
            scale: l.scale,
            rate: l.rate,
            file_mark_s: l.file_mark_s,
            capacity: l.profile.capacity.0,
            robot_s: l.profile.robot_s,
            load_s: l.profile.load_s,
            unload_s: l.profile.unload_s,
            full_locate_s: l.profile.full_locate_s,
            file_marks: match l.file_marks {
                FileMarks::Sync => "sync",
                FileMarks::Buffered => "buffered",
            },
            stats: Stats::from(&l.stats),
            busy_s: l.busy_s,
            efficiency: l.efficiency,
        }
    }
}

#[derive(Serialize)]
pub struct EventJson {
    pub seq: u64,
    pub time: Timestamp,
    pub drive: String,
    pub volume: String,
    pub kind: String,
    pub tape_file: Option<u32>,
    pub bytes: u64,
    pub detail: String,
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> EventJson {
        EventJson {
            seq: e.seq,
            time: e.time,
            drive: e.drive.clone(),
            volume: e.volume.clone(),
            kind: e.kind.clone(),
            tape_file: e.tape_file,
            bytes: e.bytes,
            detail: e.detail.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct AlarmJson {
    pub id: i64,
    /// When it was first raised.
    pub time: Timestamp,
    /// When it was raised last, and how many times in all.
    pub last: Timestamp,
    pub count: u64,
    pub severity: String,
    /// The component it is about.
    pub source: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
}

impl From<&Alarm> for AlarmJson {
    fn from(a: &Alarm) -> AlarmJson {
        AlarmJson {
            id: a.id,
            time: a.time,
            last: a.last,
            count: a.count,
            severity: a.severity.clone(),
            source: a.source.clone(),
            message: a.message.clone(),
            acked_at: a.acked.as_ref().map(|(at, _)| *at),
            acked_by: a.acked.as_ref().map(|(_, by)| by.clone()),
        }
    }
}

/// A tape file (a package) as listed.
#[derive(Serialize)]
pub struct TapeFileJson {
    pub id: String,
    pub volume: String,
    pub seq: u32,
    pub position: u64,
    pub size: u64,
    pub adler32: String,
    pub members: u32,
    pub created: Timestamp,
    pub dead_members: u32,
    pub dead_bytes: u64,
    /// Why a verify found this copy bad (absent for a good copy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad_since: Option<Timestamp>,
}

impl From<&Package> for TapeFileJson {
    fn from(p: &Package) -> TapeFileJson {
        TapeFileJson {
            id: p.id.clone(),
            volume: p.volume.clone(),
            seq: p.seq,
            position: p.position,
            size: p.size,
            adler32: p.adler32.to_string(),
            members: p.members,
            created: p.created,
            dead_members: p.dead_members,
            dead_bytes: p.dead_bytes,
            bad: p.bad.as_ref().map(|b| b.0.clone()),
            bad_since: p.bad.as_ref().map(|b| b.1),
        }
    }
}

/// A package with its members (`package show`): `member_count` is their
/// number and `members` the list.
#[derive(Serialize)]
pub struct PackageJson {
    pub id: String,
    pub volume: String,
    pub seq: u32,
    pub position: u64,
    pub size: u64,
    pub adler32: String,
    pub created: Timestamp,
    pub dead_members: u32,
    pub dead_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad: Option<String>,
    pub member_count: u32,
    pub members: Vec<MemberJson>,
}

#[derive(Serialize)]
pub struct MemberJson {
    pub file_id: String,
    pub offset: u64,
    pub size: u64,
    pub adler32: String,
    /// The file's path now; null once deleted (its bytes are dead) or when
    /// the user may not see it (then `hidden`).
    pub path: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

impl From<&MemberView> for MemberJson {
    fn from(m: &MemberView) -> MemberJson {
        MemberJson {
            file_id: m.member.file_id.to_string(),
            offset: m.member.offset,
            size: m.member.size,
            adler32: m.member.adler32.to_string(),
            path: m.path.clone(),
            hidden: m.hidden,
        }
    }
}

impl From<&PackageView> for PackageJson {
    fn from(v: &PackageView) -> PackageJson {
        let p = &v.package;
        PackageJson {
            id: p.id.clone(),
            volume: p.volume.clone(),
            seq: p.seq,
            position: p.position,
            size: p.size,
            adler32: p.adler32.to_string(),
            created: p.created,
            dead_members: p.dead_members,
            dead_bytes: p.dead_bytes,
            bad: p.bad.as_ref().map(|b| b.0.clone()),
            member_count: p.members,
            members: v.members.iter().map(MemberJson::from).collect(),
        }
    }
}

/// Maps a list with `From`.
pub fn all<'a, T: 'a, W: From<&'a T>>(items: &'a [T]) -> Vec<W> {
    items.iter().map(W::from).collect()
}

/// A background worker (`bale workers`).
#[derive(Serialize)]
pub struct WorkerJson {
    pub name: String,
    /// Shutdown phase: lower phases stop first.
    pub phase: u8,
    /// busy, throttled, idle, stopping, done, dead or aborted.
    pub state: &'static str,
    pub started: Timestamp,
    pub calls: u64,
    pub errors: u64,
    pub consecutive_errors: u32,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// What it is doing, in words.
    pub progress: Option<String>,
    pub counters: std::collections::BTreeMap<String, u64>,
}

impl From<&WorkerInfo> for WorkerJson {
    fn from(w: &WorkerInfo) -> WorkerJson {
        WorkerJson {
            name: w.name.clone(),
            phase: w.phase,
            state: w.state,
            started: w.started,
            calls: w.calls,
            errors: w.errors,
            consecutive_errors: w.consecutive_errors,
            last_error: w.last_error.clone(),
            last_error_at: w.last_error_at,
            progress: w.status.progress.clone(),
            counters: w.status.counters.clone(),
        }
    }
}

/// The cache's usage (`bale cache`).
#[derive(Serialize)]
pub struct CacheJson {
    pub cached_files: u64,
    pub cached_bytes: u64,
    pub pinned_files: u64,
    pub pinned_bytes: u64,
    pub purgeable_files: u64,
    pub purgeable_bytes: u64,
    /// The configured capacity, else the cache filesystem's size.
    pub capacity_bytes: u64,
    pub filesystem_free_bytes: u64,
    /// The purger's marks: above the high one it purges to the low one.
    pub purge_high_bytes: u64,
    pub purge_low_bytes: u64,
}

impl From<&bale_core::admin::CacheView> for CacheJson {
    fn from(v: &bale_core::admin::CacheView) -> CacheJson {
        let u = &v.usage;
        CacheJson {
            capacity_bytes: v.capacity,
            filesystem_free_bytes: v.filesystem_free,
            purge_high_bytes: v.purge_high,
            purge_low_bytes: v.purge_low,
            cached_files: u.cached_files,
            cached_bytes: u.cached_bytes,
            pinned_files: u.pinned_files,
            pinned_bytes: u.pinned_bytes,
            purgeable_files: u.purgeable_files,
            purgeable_bytes: u.purgeable_bytes,
        }
    }
}

/// What a purge did (`bale purge`).
#[derive(Serialize)]
pub struct PurgeJson {
    pub dry_run: bool,
    pub files: usize,
    pub bytes: u64,
    /// Files asked for and kept, with the reason.
    pub kept: Vec<KeptJson>,
    /// With `all`: every file still cached (dry: that would be), by reason.
    pub kept_by_reason: Vec<KeptCountJson>,
}

#[derive(Serialize)]
pub struct KeptCountJson {
    pub reason: String,
    pub files: u64,
    pub bytes: u64,
}

#[derive(Serialize)]
pub struct KeptJson {
    pub path: String,
    pub reason: String,
}

impl From<&bale_core::admin::PurgeReport> for PurgeJson {
    fn from(r: &bale_core::admin::PurgeReport) -> PurgeJson {
        PurgeJson {
            dry_run: r.dry_run,
            files: r.files,
            bytes: r.bytes,
            kept: r
                .kept
                .iter()
                .map(|(p, why)| KeptJson {
                    path: p.clone(),
                    reason: why.clone(),
                })
                .collect(),
            kept_by_reason: r
                .kept_by_reason
                .iter()
                .map(|(reason, files, bytes)| KeptCountJson {
                    reason: reason.clone(),
                    files: *files,
                    bytes: *bytes,
                })
                .collect(),
        }
    }
}

/// A live pin (`bale pins`).
#[derive(Serialize)]
pub struct PinJson {
    pub owner: String,
    pub created: Timestamp,
    pub expires: Timestamp,
}

impl From<&bale_catalog::Pin> for PinJson {
    fn from(p: &bale_catalog::Pin) -> PinJson {
        PinJson {
            owner: p.owner.clone(),
            created: p.created,
            expires: p.expires,
        }
    }
}
