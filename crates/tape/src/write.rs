//! The package write: a job's members become one tape file (a package)
//! streamed from the cache with read-ahead, then, after the synchronous
//! file mark (at once, or buffered over several tape files), one catalog
//! transaction records the packages. What goes wrong is classified
//! ([`OpError`]): a bad member is held back, a deleted one dropped, a full
//! volume swapped, a failed volume or drive taken out of service, and the
//! job requeued with its attempt counted where it was its own fault.

use crate::config::FileMarks;
use crate::drive::{DriveTask, OpError, Unflushed};
use crate::media::Charge;
use crate::members::BadMember;
use crate::schedule::QueuedJob;
use bale_catalog::{ArchiveJob, NewMember, NewPackage, VolumeState, VolumeWrite};
use bale_pack::{MemberMeta, PackError, Plan, ReadAhead};
use bale_util::{FileId, Timestamp};
use std::io;
use std::time::Instant;

/// How long a drive waits before it retries a write that found the
/// library's filesystem full.
const NO_SPACE_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

impl DriveTask {
    /// Writes `job` to `label`, then flushes when the library's file marks
    /// say so; every outcome goes back to the queues or the catalog.
    pub(crate) async fn write(&mut self, label: &str, job: QueuedJob) {
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
                            || !self.lock().more_writes(&self.name, label)
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
            Err(OpError::NoSpace(m)) => {
                // The filesystem under the library is full: nobody's fault.
                // The partial tape file is overwritten by the next write.
                self.op_failed(label, &OpError::NoSpace(m)).await;
                tokio::time::sleep(NO_SPACE_PAUSE).await;
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

    /// Everything a package needs of its members: their metadata, in one
    /// read of the injected source (a member deleted since the job was
    /// queued is left out). A member that cannot go into a package (a path
    /// the catalog holds that is not valid, a name tar cannot carry) leaves
    /// the job for a failed job of its own, with its reason and an alarm:
    /// it never fails its neighbours.
    async fn members(&self, job: &ArchiveJob) -> Result<Vec<MemberMeta>, OpError> {
        let found = self.sys.source.members(&job.files).await.map_err(OpError::Other)?;
        let mut good = Vec::with_capacity(found.len());
        for m in found {
            let bad = match m {
                Ok(m) => match Plan::check_member(&m) {
                    Ok(()) => {
                        good.push(m);
                        continue;
                    }
                    Err(e) => BadMember {
                        file_id: m.file_id,
                        why: format!("{}: {e}", m.path),
                    },
                },
                Err(bad) => bad,
            };
            let msg = format!(
                "archive job {}: member {} cannot be written: {}; it is held back in a failed job \
                 (bale queue retry, once the cause is fixed)",
                job.id, bad.file_id, bad.why
            );
            tracing::error!("{msg}");
            let _ = self.sys.catalog.raise_alarm("error", "archive", &msg).await;
            // Not recorded: the job is retried with the member still in it.
            self.sys
                .catalog
                .hold_member(job.id, bad.file_id, &bad.why)
                .await
                .map_err(|e| OpError::Other(format!("cannot hold back {} of job {}: {e}", bad.file_id, job.id)))?;
        }
        Ok(good)
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
        let f = &job.target.family;
        let family = bale_pack::PackageFamily {
            storage_group: f.storage_group.clone(),
            file_family: f.file_family.clone(),
            wrapper: f.wrapper.clone(),
        };
        let plan = Plan::new_for(&id, created, Some(family), members).map_err(|e| OpError::Data(e.to_string()))?;
        if plan.size() > capacity_left {
            return Err(OpError::Full);
        }
        self.locate(label, seq, position).await?;
        let mut vol = self.vol.take().expect("mounted");
        let source = self.sys.source.clone();
        let t0 = Instant::now();
        let ahead = ReadAhead {
            threads: self.sys.cfg.read_ahead_threads,
            window: self.sys.cfg.read_ahead_window.0,
            ..ReadAhead::default()
        };
        let (vol, r) = tokio::task::spawn_blocking(move || {
            let plan = plan;
            let mut outcome = None;
            let unreadable = std::sync::Mutex::new(None::<(FileId, String)>);
            let r = vol.write_file(&mut |w| {
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
                match plan.write_ahead(&mut &mut *w, ahead, open) {
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
            (Err(e), _) => return Err(OpError::from_io("write error", e)),
            (Ok(_), None) => return Err(OpError::Other("write finished without an outcome".into())),
        };
        bale_util::crash::point("tape.written");
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
    pub(crate) async fn flush_pending(&mut self) {
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
        self.event(
            &label,
            "flush",
            None,
            0,
            bale_util::human::plural(self.pending.len() as u64, "tape file"),
        );
        let pending = std::mem::take(&mut self.pending);
        if let Err(e) = r {
            let e = OpError::from_io("flush failed", e);
            if let OpError::NoSpace(_) = e {
                // Written again after a pause; the volume is not blamed.
                self.op_failed(&label, &e).await;
                tokio::time::sleep(NO_SPACE_PAUSE).await;
                let mut st = self.lock();
                for u in pending {
                    st.requeue_front(u.job);
                }
                return;
            }
            let msg = e.message();
            for u in pending {
                self.requeue(u.job, &msg).await;
            }
            self.op_failed(&label, &e).await;
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
        bale_util::crash::point("tape.flushed");
        let packages: Vec<NewPackage> = pending.iter().map(|u| u.package.clone()).collect();
        let vw = VolumeWrite {
            label: label.clone(),
            family,
            state,
            stats,
        };
        match self.sys.catalog.commit_tape_files(&vw, &packages).await {
            Ok(done) => {
                bale_util::crash::point("tape.recorded");
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
                self.jobs_written += pending.len() as u64;
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
                // Several tape copies: the next copy of what was written,
                // queued by the commit, goes to its library's drives.
                if !done.queued.is_empty() {
                    bale_util::crash::point("copy.queued");
                }
                for job in done.queued {
                    tracing::info!(
                        "archive job {}: the next copy of {} file(s), to library {}",
                        job.id,
                        job.files.len(),
                        job.target.library
                    );
                    self.sys.enqueue(job);
                }
                {
                    use bale_util::metrics as m;
                    let lib = self.lib.name.clone();
                    let files: usize = packages.iter().map(|p| p.members.len()).sum();
                    let bytes: u64 = packages.iter().flat_map(|p| &p.members).map(|m| m.size).sum();
                    metrics::counter!(m::TAPE_FILES_WRITTEN, "library" => lib.clone()).increment(packages.len() as u64);
                    metrics::counter!(m::PACKED_FILES, "library" => lib.clone()).increment(files as u64);
                    metrics::counter!(m::PACKED_BYTES, "library" => lib).increment(bytes);
                }
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

    /// Parks a job that can never be written, with an alarm.
    pub(crate) async fn fail_job(&self, job: QueuedJob, reason: &str) {
        let _ = self.sys.catalog.job_attempt_failed(job.job.id, reason, true).await;
        self.lock().known_jobs.remove(&job.job.id);
        let msg = format!("archive job {} cannot be written: {reason}", job.job.id);
        tracing::error!("{msg}");
        let _ = self.sys.catalog.raise_alarm("error", "archive", &msg).await;
    }
}
