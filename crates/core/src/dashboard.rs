//! What the status page shows, in pieces of bounded size: the node at a
//! glance (`status`), the open pools nearest to closing, the drives, a
//! page of stage requests (the caller's own; everyone's for
//! administrators) with the time left, the caller's pins, the open alarms
//! (administrators), and volumes a page at a time. Nothing here grows
//! with the files in the system: counts come from the catalog, lists are
//! pages.

use crate::auth::Principal;
use crate::authz::{allow, Action};
use crate::perms::Op;
use crate::service::Service;
use crate::status::NodeStatus;
use crate::Result;
use bale_catalog::{Alarm, StageState, VolumeState};
use bale_util::Timestamp;
use serde::Serialize;

/// Rows of each list at most.
pub const POOL_ROWS: usize = 50;
pub const REQUEST_ROWS: usize = 20;
pub const PIN_ROWS: usize = 20;
pub const ALARM_ROWS: usize = 50;
pub const VOLUME_ROWS: usize = 200;

#[derive(Clone, Debug, Serialize)]
pub struct Overview {
    pub user: String,
    pub admin: bool,
    pub status: NodeStatus,
    pub pools: Pools,
    pub drives: Vec<DriveRow>,
    pub requests: Requests,
    pub pins: Pins,
    /// Open alarms, for administrators.
    pub alarms: Option<Vec<AlarmRow>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Pools {
    pub total: usize,
    /// The nearest to closing first.
    pub rows: Vec<crate::archive::PoolView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DriveRow {
    pub name: String,
    pub library: String,
    pub activity: &'static str,
    pub volume: Option<String>,
    pub work: Option<String>,
    pub efficiency: Option<f64>,
    pub mounts: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Requests {
    pub total: u64,
    /// The caller's own only (not an administrator).
    pub mine: bool,
    pub rows: Vec<RequestRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RequestRow {
    pub id: i64,
    pub owner: String,
    pub created: Timestamp,
    pub completed: Option<Timestamp>,
    pub files: u64,
    pub done: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub open: u64,
    /// Seconds left by the tape system's timing model (open requests).
    pub time_left_s: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Pins {
    pub count: u64,
    pub bytes: u64,
    pub rows: Vec<PinRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PinRow {
    /// `None`: a file the caller may no longer see (a directory on its
    /// path lost their search permission).
    pub path: Option<String>,
    pub expires: Timestamp,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlarmRow {
    pub id: i64,
    pub severity: String,
    pub source: String,
    pub message: String,
    pub count: u64,
    pub time: Timestamp,
    pub last: Timestamp,
}

impl From<&Alarm> for AlarmRow {
    fn from(a: &Alarm) -> Self {
        AlarmRow {
            id: a.id,
            severity: a.severity.clone(),
            source: a.source.clone(),
            message: a.message.clone(),
            count: a.count,
            time: a.time,
            last: a.last,
        }
    }
}

/// A page of volumes.
#[derive(Clone, Debug, Serialize)]
pub struct VolumePage {
    /// Volumes that match the filter.
    pub total: usize,
    pub offset: usize,
    pub rows: Vec<VolumeRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VolumeRow {
    pub label: String,
    pub library: String,
    pub family: Option<String>,
    pub state: VolumeState,
    pub used: u64,
    pub capacity: u64,
    pub mounts: u64,
    pub mount_limit: u64,
    pub tape_files: u32,
    pub mounted_in: Option<String>,
}

impl Service {
    /// The status page's overview for `who`; `requests_before` pages the
    /// stage requests (ids below it).
    pub async fn overview(&self, who: &Principal, requests_before: Option<i64>) -> Result<Overview> {
        allow(who, Action::Status)?;
        allow(who, Action::QueueShow)?;
        allow(who, Action::Drives)?;
        let owner = (!who.admin).then_some(who.user.as_str());
        let now = Timestamp::now();
        let (status, queue, requests, pins) = tokio::join!(
            // The cache's figures shared by the pages polling within 5 s.
            self.status_within(who, std::time::Duration::from_secs(5)),
            self.archiver.queue(),
            self.catalog().stage_requests_page(owner, requests_before, REQUEST_ROWS),
            self.catalog().owned_pins(&who.user, now, PIN_ROWS),
        );
        let (status, queue, (total, requests), pins) = (status?, queue?, requests?, pins?);
        let mut pools = queue.pools;
        pools.sort_by(|a, b| b.progress.total_cmp(&a.progress));
        let pools = Pools {
            total: pools.len(),
            rows: pools.into_iter().take(POOL_ROWS).collect(),
        };
        let drives = self
            .tape()
            .drives()
            .into_iter()
            .map(|d| DriveRow {
                mounts: d.drive.stats.mounts,
                bytes_written: d.drive.stats.bytes_written,
                bytes_read: d.drive.stats.bytes_read,
                name: d.drive.name,
                library: d.drive.library,
                activity: d.activity,
                volume: d.volume,
                work: d.work,
                efficiency: d.efficiency,
            })
            .collect();
        let mut rows = Vec::with_capacity(requests.len());
        for r in requests {
            let n = |s: StageState| r.counts.iter().find(|c| c.0 == s).map_or(0, |c| c.1);
            let open = n(StageState::Submitted) + n(StageState::Started);
            let time_left_s = match open {
                0 => None,
                // Listed for the caller: their own, or an administrator.
                _ => Some(self.stage_time_left(r.id).await?),
            };
            rows.push(RequestRow {
                id: r.id,
                files: r.counts.iter().map(|c| c.1).sum(),
                done: n(StageState::Completed),
                failed: n(StageState::Failed),
                cancelled: n(StageState::Cancelled),
                open,
                owner: r.owner,
                created: r.created,
                completed: r.completed,
                time_left_s,
            });
        }
        let mut pin_rows = Vec::with_capacity(pins.first.len());
        for (path, expires) in pins.first {
            // Shown only where the caller may still look it up.
            let seen = self.authorize(who, Op::Stat, &path).await.is_ok();
            pin_rows.push(PinRow {
                path: seen.then(|| path.to_string()),
                expires,
            });
        }
        let alarms = match who.admin {
            true => Some(
                self.alarms(who, false)
                    .await?
                    .iter()
                    .take(ALARM_ROWS)
                    .map(AlarmRow::from)
                    .collect(),
            ),
            false => None,
        };
        Ok(Overview {
            user: who.user.clone(),
            admin: who.admin,
            status,
            pools,
            drives,
            requests: Requests {
                total,
                mine: owner.is_some(),
                rows,
            },
            pins: Pins {
                count: pins.count,
                bytes: pins.bytes,
                rows: pin_rows,
            },
            alarms,
        })
    }

    /// Volumes `offset..offset + limit` (at most [`VOLUME_ROWS`]) of those
    /// in `state` (any) whose label, family or library contains `text`, in
    /// library and label order.
    pub fn volume_page(
        &self,
        who: &Principal,
        offset: usize,
        limit: usize,
        state: Option<VolumeState>,
        text: Option<&str>,
    ) -> Result<VolumePage> {
        let mut vols = self.volumes(who)?;
        vols.retain(|v| {
            let v = &v.volume;
            state.is_none_or(|s| v.state == s)
                && text.is_none_or(|t| {
                    v.label.contains(t)
                        || v.library.contains(t)
                        || v.family.as_ref().is_some_and(|f| f.to_string().contains(t))
                })
        });
        vols.sort_by(|a, b| (&a.volume.library, &a.volume.label).cmp(&(&b.volume.library, &b.volume.label)));
        let rows = vols
            .iter()
            .skip(offset)
            .take(limit.min(VOLUME_ROWS))
            .map(|v| VolumeRow {
                label: v.volume.label.clone(),
                library: v.volume.library.clone(),
                family: v.volume.family.as_ref().map(|f| f.to_string()),
                state: v.volume.state,
                used: v.volume.used,
                capacity: v.volume.capacity,
                mounts: v.volume.stats.mounts,
                mount_limit: v.volume.mount_limit,
                tape_files: v.volume.tape_files,
                mounted_in: v.mounted_in.clone(),
            })
            .collect();
        Ok(VolumePage {
            total: vols.len(),
            offset,
            rows,
        })
    }
}
