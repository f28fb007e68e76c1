//! What operators see and change of the tape system: volumes, drives,
//! libraries, the event log and the queue; adding volumes, volume states,
//! drives in and out of service.

use crate::backend::Label;
use crate::config::FileMarks;
use crate::events::Event;
use crate::system::TapeSystem;
use crate::{Result, TapeError};
use bale_catalog::{ArchiveJob, Drive, DriveState, NewVolume, Package, TapeStats, Volume, VolumeState};
use bale_util::Timestamp;
use std::collections::HashSet;

#[derive(Clone, Debug)]
pub struct VolumeView {
    pub volume: Volume,
    pub efficiency: Option<f64>,
    pub mounted_in: Option<String>,
}

#[derive(Clone, Debug)]
pub struct DriveView {
    pub drive: Drive,
    /// idle, busy or offline.
    pub activity: &'static str,
    pub volume: Option<String>,
    /// What a busy drive does: "writing FAMILY" or "reading".
    pub work: Option<String>,
    pub efficiency: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct LibraryView {
    pub name: String,
    pub backend: String,
    pub media: String,
    pub scale: f64,
    /// Native rate after scaling, bytes/s.
    pub rate: u64,
    pub file_mark_s: f64,
    /// The media's timing model (after scaling).
    pub profile: crate::MediaProfile,
    pub file_marks: FileMarks,
    pub stats: TapeStats,
    /// Modelled seconds of work of every kind, summed over the drives.
    pub busy_s: f64,
    pub efficiency: Option<f64>,
}

impl TapeSystem {
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
        let catalog = &self.inner.catalog;
        let existing = catalog.volumes().await?;
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
        catalog.add_volumes(&new).await?;
        let labels: HashSet<&str> = new.iter().map(|v| v.label.as_str()).collect();
        let out: Vec<Volume> = catalog
            .volumes()
            .await?
            .into_iter()
            .filter(|v| labels.contains(v.label.as_str()))
            .collect();
        {
            let mut st = self.inner.sched.lock().unwrap();
            for v in &out {
                st.volumes.insert(v.label.clone(), v.clone());
            }
        }
        self.wake();
        Ok(out)
    }

    /// Every volume with its current counters.
    /// Sets the volume quotas, by (library, storage group), and lets the
    /// drives look at the queues again.
    pub fn set_volume_limits(&self, limits: std::collections::HashMap<(String, String), u32>) {
        self.inner.sched.lock().unwrap().volume_limits = limits;
        self.inner.wake();
    }

    pub fn volumes(&self) -> Vec<VolumeView> {
        let st = self.inner.sched.lock().unwrap();
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
            .sched
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
        if let Some(m) = self.inner.sched.lock().unwrap().volumes.get_mut(label) {
            m.state = v.state;
        }
        self.wake();
        Ok(v)
    }

    /// Every drive with what it is doing.
    pub fn drives(&self) -> Vec<DriveView> {
        let st = self.inner.sched.lock().unwrap();
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
                    work: (s.online && s.busy).then(|| match &s.writing {
                        Some(k) => format!("writing {}", k.family),
                        None => "reading".to_string(),
                    }),
                    efficiency: s.stats.efficiency(rate),
                }
            })
            .collect()
    }

    /// Takes a drive out of service or back in.
    pub async fn set_drive_online(&self, name: &str, online: bool) -> Result<DriveView> {
        if !self.inner.sched.lock().unwrap().drives.contains_key(name) {
            return Err(TapeError::NotFound(format!("no drive {name}")));
        }
        let state = if online {
            DriveState::Online
        } else {
            DriveState::Offline
        };
        self.inner.catalog.set_drive_state(name, state).await?;
        self.inner
            .sched
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
                    profile: l.profile.clone(),
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
        self.inner.events.lock().unwrap().after(after)
    }

    /// Archive jobs waiting for a drive, per queue.
    pub fn queued_jobs(&self) -> Vec<ArchiveJob> {
        let st = self.inner.sched.lock().unwrap();
        st.writes.values().flatten().map(|q| q.job.clone()).collect()
    }
}
