//! Quotas per storage group, as Enstore has them: logical bytes and files
//! in the namespace (one count whatever the number of tape copies), and
//! volumes per library. The catalog checks bytes and files in the commit
//! that records a file (so concurrent writes never pass a quota); a PUT
//! checks them before its body is read too (before `100 Continue` when
//! the length is declared) and stops reading a body of undeclared length
//! at the quota. The tape scheduler gives a family whose storage group
//! has taken its volumes no blank one, and the drive says so in an alarm.

use crate::auth::Principal;
use crate::authz::{self, Action};
use crate::service::Service;
use crate::{Error, Result};
use bale_catalog::{GroupUsage, Quota, Tags};
use bale_util::human::Bytes as Size;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How long the quotas a PUT checks before its body are kept in memory
/// (the commit checks the catalog's own, always).
const CACHE_FOR: Duration = Duration::from_secs(5);

/// A storage group's quota and use.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct QuotaView {
    pub storage_group: String,
    /// Limits; none: no limit.
    pub bytes: Option<u64>,
    pub files: Option<u64>,
    pub used_bytes: u64,
    pub used_files: u64,
    /// Per library: the quota (if any) and the volumes the group holds.
    pub volumes: Vec<VolumeQuota>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct VolumeQuota {
    pub library: String,
    pub max: Option<u32>,
    pub used: u32,
}

/// A change of one storage group's quota: `None` leaves a limit as it is,
/// `Some(None)` removes it.
#[derive(Clone, Debug, Default)]
pub struct QuotaChange {
    pub bytes: Option<Option<u64>>,
    pub files: Option<Option<u64>>,
    /// Per library: a number of volumes, or `None` to remove the limit.
    pub volumes: BTreeMap<String, Option<u32>>,
}

/// Room a write has in its storage group: what the body may hold at most
/// (bytes), if the group has a byte quota.
pub(crate) struct Room {
    pub bytes: Option<u64>,
    pub group: String,
    pub quota: Option<u64>,
}

impl Service {
    /// Every storage group with a quota, files or volumes, with its use.
    pub async fn quotas(&self, who: &Principal) -> Result<Vec<QuotaView>> {
        authz::allow(who, Action::Quotas)?;
        let quotas = self.catalog.quotas().await?;
        let usage = self.catalog.group_usage().await?;
        let mut groups: Vec<String> = quotas
            .iter()
            .map(|q| q.storage_group.clone())
            .chain(usage.iter().filter(|u| u.files > 0).map(|u| u.storage_group.clone()))
            .collect();
        let volumes = self.tape.volumes();
        for v in &volumes {
            if let Some(f) = &v.volume.family {
                groups.push(f.storage_group.clone());
            }
        }
        groups.sort();
        groups.dedup();
        Ok(groups
            .into_iter()
            .map(|g| {
                let q = quotas.iter().find(|q| q.storage_group == g);
                let u = usage.iter().find(|u| u.storage_group == g).cloned().unwrap_or_default();
                let mut libs: BTreeMap<String, VolumeQuota> = BTreeMap::new();
                for v in volumes
                    .iter()
                    .filter(|v| v.volume.family.as_ref().is_some_and(|f| f.storage_group == g))
                {
                    let e = libs.entry(v.volume.library.clone()).or_insert_with(|| VolumeQuota {
                        library: v.volume.library.clone(),
                        max: None,
                        used: 0,
                    });
                    e.used += 1;
                }
                for (lib, n) in q.map(|q| &q.volumes).into_iter().flatten() {
                    libs.entry(lib.clone())
                        .or_insert_with(|| VolumeQuota {
                            library: lib.clone(),
                            max: None,
                            used: 0,
                        })
                        .max = Some(*n);
                }
                QuotaView {
                    storage_group: g,
                    bytes: q.and_then(|q| q.bytes),
                    files: q.and_then(|q| q.files),
                    used_bytes: u.bytes,
                    used_files: u.files,
                    volumes: libs.into_values().collect(),
                }
            })
            .collect())
    }

    /// Changes a storage group's quota (administrators). Returns it with
    /// its use.
    pub async fn set_quota(&self, who: &Principal, group: &str, change: &QuotaChange) -> Result<QuotaView> {
        authz::allow(who, Action::QuotaSet)?;
        let target = format!("storage group {group}");
        self.audited(
            who,
            Action::QuotaSet,
            &target,
            self.set_quota_now(who, group, change),
            |v| {
                let limit = |l: Option<u64>| l.map_or("none".to_string(), |n| n.to_string());
                let vols: Vec<String> = v
                    .volumes
                    .iter()
                    .filter_map(|q| q.max.map(|m| format!("{}={m}", q.library)))
                    .collect();
                format!(
                    "bytes {} files {} volumes {}",
                    limit(v.bytes),
                    limit(v.files),
                    if vols.is_empty() { "none".into() } else { vols.join(",") }
                )
            },
        )
        .await
    }

    async fn set_quota_now(&self, who: &Principal, group: &str, change: &QuotaChange) -> Result<QuotaView> {
        // A storage group is named as its tag is.
        Tags::default()
            .set("storage_group", Some(group))
            .map_err(|e| Error::BadRequest(e.replace("tag storage_group", "storage group")))?;
        let libraries = self.tape.library_names();
        for lib in change.volumes.keys() {
            if !libraries.contains(lib) {
                return Err(Error::BadRequest(format!(
                    "unknown library {lib:?}: the configured libraries are {}",
                    libraries.join(", ")
                )));
            }
        }
        let mut q = self
            .catalog
            .quotas()
            .await?
            .into_iter()
            .find(|q| q.storage_group == group)
            .unwrap_or_else(|| Quota {
                storage_group: group.to_string(),
                ..Quota::default()
            });
        if let Some(b) = change.bytes {
            q.bytes = b;
        }
        if let Some(f) = change.files {
            q.files = f;
        }
        for (lib, n) in &change.volumes {
            match n {
                Some(n) => q.volumes.insert(lib.clone(), *n),
                None => q.volumes.remove(lib),
            };
        }
        self.catalog.set_quota(&q).await?;
        self.reload_quotas().await?;
        let views = self.quotas(who).await?;
        Ok(views
            .into_iter()
            .find(|v| v.storage_group == group)
            .unwrap_or(QuotaView {
                storage_group: group.to_string(),
                bytes: None,
                files: None,
                used_bytes: 0,
                used_files: 0,
                volumes: Vec::new(),
            }))
    }

    /// Reads the quotas again: for the checks before a body, and the tape
    /// scheduler's volume quotas.
    pub(crate) async fn reload_quotas(&self) -> Result<()> {
        let quotas = self.catalog.quotas().await?;
        let mut limits = HashMap::new();
        for q in &quotas {
            for (lib, n) in &q.volumes {
                limits.insert((lib.clone(), q.storage_group.clone()), *n);
            }
        }
        self.tape.set_volume_limits(limits);
        let mut c = self.quota_cache.lock().expect("quota cache");
        c.by_group = quotas.into_iter().map(|q| (q.storage_group.clone(), q)).collect();
        c.read = Some(Instant::now());
        Ok(())
    }

    /// The quota of a storage group, as read at most [`CACHE_FOR`] ago.
    async fn quota_of(&self, group: &str) -> Result<Option<Quota>> {
        let fresh = {
            let c = self.quota_cache.lock().expect("quota cache");
            c.read.is_some_and(|t| t.elapsed() < CACHE_FOR)
        };
        if !fresh {
            self.reload_quotas().await?;
        }
        Ok(self
            .quota_cache
            .lock()
            .expect("quota cache")
            .by_group
            .get(group)
            .cloned())
    }

    /// Whether a file of `len` bytes (if declared) that replaces one of
    /// `replaced` bytes fits its storage group's quota now; the bytes it
    /// may hold at most. The commit checks again, atomically.
    pub(crate) async fn quota_room(&self, tags: &Tags, len: Option<u64>, replaced: Option<u64>) -> Result<Room> {
        let group = bale_catalog::group_of(tags).to_string();
        // Only a byte or file quota matters here (volumes are the scheduler's).
        let limited = self
            .quota_of(&group)
            .await?
            .filter(|q| q.bytes.is_some() || q.files.is_some());
        let Some(q) = limited else {
            return Ok(Room {
                bytes: None,
                group,
                quota: None,
            });
        };
        let u: GroupUsage = self
            .catalog
            .group_usage()
            .await?
            .into_iter()
            .find(|u| u.storage_group == group)
            .unwrap_or_default();
        if let (Some(max), None) = (q.files, replaced) {
            if u.files >= max {
                return Err(Error::InsufficientStorage(format!(
                    "storage group {group} is at its quota of {max} files ({} in use): nothing was received; \
                     delete files or ask for a larger quota (bale quota set {group} --files N)",
                    u.files
                )));
            }
        }
        let room = q
            .bytes
            .map(|max| max.saturating_add(replaced.unwrap_or(0)).saturating_sub(u.bytes));
        if let (Some(room), Some(len)) = (room, len) {
            if len > room {
                return Err(Error::InsufficientStorage(format!(
                    "storage group {group} has {} left of its quota of {} and this body is {}: nothing was \
                     received; delete files or ask for a larger quota (bale quota set {group} --bytes N)",
                    Size(room),
                    Size(q.bytes.unwrap_or(0)),
                    Size(len)
                )));
            }
        }
        Ok(Room {
            bytes: room,
            group,
            quota: q.bytes,
        })
    }
}
