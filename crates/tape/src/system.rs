//! The tape system: its libraries, the shared state the drives work on,
//! start-up (reconciling every volume with the catalog) and the entry
//! points for archive jobs, reads and faults.
//!
//! The catalog is the truth: a tape file counts as written only when its
//! package row commits (after its synchronous file mark, or after the
//! buffered flush that covers it). A crash before that leaves the job
//! queued and the volume's end of data where the catalog says; at start,
//! tape files beyond it are discarded and the job is redone.

use crate::backend::{FsBackend, VolumeBackend};
use crate::config::{BackendKind, TapeConfig};
use crate::drive::DriveTask;
use crate::events::EventLog;
use crate::fault::{Fault, Faults};
use crate::media::MediaProfile;
use crate::members::MemberSource;
use crate::pace::Paced;
use crate::schedule::{Schedule, Slot};
use crate::state::{Inner, Lib, PendingRead, ReadDone, ReadRequest};
use crate::{Result, TapeError};
use bale_catalog::{ArchiveJob, DriveState, DynCatalog, VolumeState};
use bale_util::background::Spawner;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{oneshot, watch};

/// The tape system: libraries, drives, volumes and the scheduler.
#[derive(Clone)]
pub struct TapeSystem {
    pub(crate) inner: Arc<Inner>,
}

fn open_library(l: &crate::LibraryConfig, profile: MediaProfile, data_dir: &Path, time_scale: f64) -> Result<Lib> {
    let path = data_dir.join(&l.path);
    let fs = match l.backend {
        BackendKind::Emulated => FsBackend::emulated(&path)
            .map_err(|e| TapeError::Failed(format!("library {}: cannot create {}: {e}", l.name, path.display())))?,
        BackendKind::Directory => {
            FsBackend::directory(&path).map_err(|e| TapeError::Failed(format!("library {}: {e}", l.name)))?
        }
    };
    let mut backend: Arc<dyn VolumeBackend> = Arc::new(fs);
    // With a time scale, emulated transfers stream at the modelled rate.
    if time_scale > 0.0 && !backend.real_timing() {
        backend = Arc::new(Paced {
            inner: backend,
            rate: profile.rate.0 as f64 / time_scale,
        });
    }
    Ok(Lib {
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
    })
}

impl TapeSystem {
    /// Opens the libraries of `cfg` (paths relative to `data_dir`), creates
    /// the initial volumes of new libraries, reconciles every volume with
    /// the catalog, loads the queued archive jobs and starts one worker per
    /// drive with `workers`.
    pub async fn start(
        catalog: DynCatalog,
        source: Arc<dyn MemberSource>,
        cfg: TapeConfig,
        data_dir: &Path,
        workers: Spawner,
    ) -> Result<TapeSystem> {
        cfg.validate().map_err(TapeError::Invalid)?;
        let profiles = cfg.profiles();
        let mut libs = BTreeMap::new();
        for l in &cfg.libraries {
            let profile = profiles[&l.media].scaled(l.scale);
            libs.insert(
                l.name.clone(),
                Arc::new(open_library(l, profile, data_dir, cfg.time_scale)?),
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
                sched: Mutex::new(Schedule::default()),
                events: Mutex::new(EventLog::default()),
                faults: Faults::default(),
                wake,
            }),
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
            let mut st = sys.inner.sched.lock().unwrap();
            for (name, lib) in &drive_names {
                let rec = drives.iter().find(|d| &d.name == name);
                let online = rec.is_none_or(|d| d.state == DriveState::Online);
                let stats = rec.map(|d| d.stats.clone()).unwrap_or_default();
                st.drives.insert(name.clone(), Slot::new(lib, online, stats));
            }
        }
        for job in catalog.archive_jobs().await? {
            if job.state == bale_catalog::JobState::Queued {
                sys.enqueue(job);
            }
        }
        for (name, lib) in drive_names {
            workers.spawn(DriveTask::new(sys.inner.clone(), sys.inner.libs[&lib].clone(), name));
        }
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
        self.inner.sched.lock().unwrap().volumes = st_volumes;
        Ok(())
    }

    pub(crate) fn wake(&self) {
        self.inner.wake();
    }

    /// How many tape files volume `label` holds on its media, read from
    /// its library's backend (`None`: no such volume in a configured
    /// library). A drive writing to it may hold one more not yet recorded.
    pub fn media_end_of_data(&self, label: &str) -> Result<Option<u32>> {
        let st = self.inner.sched.lock().unwrap();
        let Some(v) = st.volumes.get(label) else {
            return Ok(None);
        };
        let Some(lib) = self.inner.libs.get(&v.library).cloned() else {
            return Ok(None);
        };
        drop(st);
        lib.backend
            .end_of_data(label)
            .map(Some)
            .map_err(|e| TapeError::Failed(format!("volume {label}: {e}")))
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
        self.inner.sched.lock().unwrap().known_jobs.clone()
    }

    /// Reads tape files into local files, grouped per volume and in tape
    /// order. Each result says what was read; the tape file's adler32 is
    /// checked against the catalog.
    pub async fn read(&self, reqs: Vec<ReadRequest>) -> Vec<Result<ReadDone>> {
        let mut waits = Vec::with_capacity(reqs.len());
        {
            let mut st = self.inner.sched.lock().unwrap();
            let now = Instant::now();
            for req in reqs {
                let (tx, rx) = oneshot::channel();
                let state = st.volumes.get(&req.volume).map(|v| v.state);
                match state {
                    Some(s) if s.readable() => {
                        let volume = req.volume.clone();
                        st.add_read(&volume, PendingRead::new(req, now, tx));
                    }
                    Some(s) => {
                        let _ = tx.send(Err(TapeError::Invalid(format!(
                            "volume {} is {s} and cannot be read",
                            req.volume
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

    /// Reads packages and hands every member to its read's sink while the
    /// tape streams (no copy of the package on disk); every member's size
    /// and adler32 and each tape file's are checked against the catalog.
    /// The reads are queued at once (one scheduler decision sees
    /// them all: each volume mounted once, its packages read in position
    /// order). Each receiver gets its read's outcome.
    pub fn unpack_many(
        &self,
        reads: Vec<(String, u32, Arc<dyn crate::members::MemberSink>)>,
    ) -> Vec<oneshot::Receiver<Result<ReadDone>>> {
        let mut out = Vec::with_capacity(reads.len());
        {
            let mut st = self.inner.sched.lock().unwrap();
            let now = Instant::now();
            for (volume, seq, sink) in reads {
                let (tx, rx) = oneshot::channel();
                match st.volumes.get(&volume).map(|v| v.state) {
                    Some(s) if s.readable() => {
                        let mut r = PendingRead::new(
                            ReadRequest {
                                volume: volume.clone(),
                                seq,
                                dest: std::path::PathBuf::new(),
                            },
                            now,
                            tx,
                        );
                        r.unpack = Some(sink);
                        st.add_read(&volume, r);
                    }
                    Some(s) => {
                        let _ = tx.send(Err(TapeError::Invalid(format!(
                            "volume {volume} is {s} and cannot be read"
                        ))));
                    }
                    None => {
                        let _ = tx.send(Err(TapeError::NotFound(format!("no volume {volume}"))));
                    }
                }
                out.push(rx);
            }
        }
        self.wake();
        out
    }

    /// Arms a fault (tests and drills).
    pub fn inject(&self, fault: Fault) -> Result<()> {
        {
            let st = self.inner.sched.lock().unwrap();
            match &fault {
                Fault::WriteError { volume } | Fault::ReadError { volume } if !st.volumes.contains_key(volume) => {
                    return Err(TapeError::NotFound(format!("no volume {volume}")));
                }
                Fault::DriveFailure { drive } if !st.drives.contains_key(drive) => {
                    return Err(TapeError::NotFound(format!("no drive {drive}")));
                }
                _ => {}
            }
        }
        self.inner.faults.arm(fault);
        Ok(())
    }
}
