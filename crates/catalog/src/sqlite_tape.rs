//! The tape half of the SQLite catalog.

use crate::model::Node;
use crate::rows::{self, stats_json, ALARM_COLS, DRIVE_COLS, JOB_COLS, PACKAGE_COLS, VOLUME_COLS};
use crate::rules;
use crate::sqlite_common::*;
use crate::tape::*;
use crate::{CatalogError, Result, SqliteCatalog};
use async_trait::async_trait;
use bale_util::{FileId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Row};

fn volume_from_row(r: &Row<'_>) -> rusqlite::Result<Volume> {
    rows::volume(r)
}

fn get_volume(c: &Connection, label: &str) -> Result<Option<Volume>> {
    let mut st = c.prepare_cached(&format!("SELECT {VOLUME_COLS} FROM volumes WHERE label = ?1"))?;
    Ok(st.query_row([label], volume_from_row).optional()?)
}

fn get_drive(c: &Connection, name: &str) -> Result<Option<Drive>> {
    let mut st = c.prepare_cached(&format!("SELECT {DRIVE_COLS} FROM drives WHERE name = ?1"))?;
    Ok(st.query_row([name], |r| rows::drive(r)).optional()?)
}

#[async_trait]
impl TapeCatalog for SqliteCatalog {
    async fn add_volumes(&self, volumes: &[NewVolume]) -> Result<()> {
        let volumes = volumes.to_vec();
        self.write(move |tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO volumes (label, library, media, capacity, state, mount_limit, created) \
                 VALUES (?1, ?2, ?3, ?4, 'blank', ?5, ?6) ON CONFLICT DO NOTHING",
            )?;
            for v in &volumes {
                let n = st.execute(params![
                    v.label,
                    v.library,
                    v.media,
                    v.capacity as i64,
                    v.mount_limit as i64,
                    v.created.0
                ])?;
                if n == 0 {
                    return Err(CatalogError::AlreadyExists(format!("volume {}", v.label)));
                }
            }
            Ok(())
        })
        .await
    }

    async fn volumes(&self) -> Result<Vec<Volume>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!("SELECT {VOLUME_COLS} FROM volumes ORDER BY label"))?;
            let rows = st.query_map([], volume_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn volume(&self, label: &str) -> Result<Option<Volume>> {
        let label = label.to_string();
        self.read(move |c| get_volume(c, &label)).await
    }

    async fn set_volume_state(&self, label: &str, state: VolumeState) -> Result<Volume> {
        let label = label.to_string();
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE volumes SET state = ?2 WHERE label = ?1",
                params![label, state.as_str()],
            )?;
            if n == 0 {
                return Err(CatalogError::NotFound(format!("volume {label}")));
            }
            Ok(get_volume(tx, &label)?.expect("updated volume"))
        })
        .await
    }

    async fn save_volume_stats(&self, label: &str, s: &TapeStats) -> Result<()> {
        let (label, s) = (label.to_string(), stats_json(s));
        self.write(move |tx| {
            tx.execute("UPDATE volumes SET stats = ?2 WHERE label = ?1", params![label, s])?;
            Ok(())
        })
        .await
    }

    async fn register_drives(&self, drives: &[(String, String)]) -> Result<()> {
        let drives = drives.to_vec();
        self.write(move |tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO drives (name, library, state) VALUES (?1, ?2, 'online') ON CONFLICT DO NOTHING",
            )?;
            for (name, lib) in &drives {
                st.execute(params![name, lib])?;
            }
            Ok(())
        })
        .await
    }

    async fn drives(&self) -> Result<Vec<Drive>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!("SELECT {DRIVE_COLS} FROM drives ORDER BY name"))?;
            let drives = st.query_map([], |r| rows::drive(r))?.collect::<rusqlite::Result<_>>()?;
            Ok(drives)
        })
        .await
    }

    async fn set_drive_state(&self, name: &str, state: DriveState) -> Result<Drive> {
        let name = name.to_string();
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE drives SET state = ?2 WHERE name = ?1",
                params![name, state.as_str()],
            )?;
            if n == 0 {
                return Err(CatalogError::NotFound(format!("drive {name}")));
            }
            Ok(get_drive(tx, &name)?.expect("updated drive"))
        })
        .await
    }

    async fn save_drive_stats(&self, name: &str, s: &TapeStats) -> Result<()> {
        let (name, s) = (name.to_string(), stats_json(s));
        self.write(move |tx| {
            tx.execute("UPDATE drives SET stats = ?2 WHERE name = ?1", params![name, s])?;
            Ok(())
        })
        .await
    }

    async fn archive_jobs(&self) -> Result<Vec<ArchiveJob>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!("SELECT {JOB_COLS} FROM archive_jobs ORDER BY id"))?;
            let mut jobs: Vec<ArchiveJob> = st.query_map([], job_from_row)?.collect::<rusqlite::Result<_>>()?;
            // Every job's files in one pass, not one query per job.
            let index: std::collections::HashMap<i64, usize> =
                jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
            let mut st = c.prepare_cached("SELECT job, file_id FROM job_files ORDER BY job, file_id")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                if let (Some(&i), Some(f)) = (index.get(&r.get::<_, i64>(0)?), FileId::parse(&r.get::<_, String>(1)?)) {
                    jobs[i].files.push(f);
                }
            }
            Ok(jobs)
        })
        .await
    }

    async fn job_of(&self, file_id: FileId) -> Result<Option<ArchiveJob>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {JOB_COLS} FROM archive_jobs WHERE id IN (SELECT job FROM job_files WHERE file_id = ?1) \
                 ORDER BY id LIMIT 1"
            ))?;
            let Some(mut job) = st.query_row([file_id.to_string()], job_from_row).optional()? else {
                return Ok(None);
            };
            job_files(c, &mut job)?;
            Ok(Some(job))
        })
        .await
    }

    async fn job_attempt_failed(&self, id: i64, error: &str, failed: bool) -> Result<()> {
        let error = error.to_string();
        self.write(move |tx| {
            let state = if failed { JobState::Failed } else { JobState::Queued };
            tx.execute(
                "UPDATE archive_jobs SET attempts = attempts + 1, error = ?2, state = ?3 WHERE id = ?1",
                params![id, error, state.as_str()],
            )?;
            Ok(())
        })
        .await
    }

    async fn retry_jobs(&self, id: Option<i64>) -> Result<Vec<ArchiveJob>> {
        self.write(move |tx| {
            if let Some(id) = id {
                let job = get_job(tx, id)?.ok_or_else(|| CatalogError::NotFound(format!("archive job {id}")))?;
                rules::retryable(&job)?;
            }
            let ids: Vec<i64> = tx
                .prepare_cached("SELECT id FROM archive_jobs WHERE state = ?1 AND (?2 IS NULL OR id = ?2) ORDER BY id")?
                .query_map(params![JobState::Failed.as_str(), id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                tx.execute(
                    "UPDATE archive_jobs SET state = ?2, attempts = 0, error = NULL WHERE id = ?1",
                    params![id, JobState::Queued.as_str()],
                )?;
                out.extend(get_job(tx, id)?);
            }
            Ok(out)
        })
        .await
    }

    async fn commit_tape_files(&self, vw: &VolumeWrite, packages: &[NewPackage]) -> Result<TapeCommit> {
        let (vw, packages) = (vw.clone(), packages.to_vec());
        self.write(move |tx| {
            let vol =
                get_volume(tx, &vw.label)?.ok_or_else(|| CatalogError::NotFound(format!("volume {}", vw.label)))?;
            let (mut seq, mut used) = (vol.tape_files, vol.used);
            let mut pkg = tx.prepare_cached(
                "INSERT INTO packages (id, volume, seq, position, size, adler32, members, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut mem = tx.prepare_cached(
                "INSERT INTO members (file_id, package, data_offset, size, adler32) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            // Exactly the files written leave the job; a job with files left
            // (none, unless something went wrong) stays queued.
            let mut done = tx.prepare_cached("DELETE FROM job_files WHERE job = ?1 AND file_id = ?2")?;
            let mut done_job = tx.prepare_cached(
                "DELETE FROM archive_jobs WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM job_files WHERE job = ?1)",
            )?;
            let mut unfinished = Vec::new();
            // The targets of the jobs written, for the copies they queue.
            let mut targets = std::collections::HashMap::new();
            for j in rules::jobs_of(&packages) {
                let t = tx
                    .prepare_cached(&format!("SELECT {JOB_COLS} FROM archive_jobs WHERE id = ?1"))?
                    .query_row([j], job_from_row)
                    .optional()?;
                targets.extend(t.map(|t| (j, t.target)));
            }
            let mut dead = tx.prepare_cached(
                "UPDATE packages SET (dead_members, dead_bytes) = (SELECT COUNT(*), COALESCE(SUM(m.size), 0) \
                 FROM members m WHERE m.package = ?1 \
                 AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.file_id = m.file_id)) WHERE id = ?1",
            )?;
            let mut packed = tx.prepare_cached(crate::ops::PACKED_EVENTS_SQL)?;
            let now = Timestamp::now();
            for p in &packages {
                let next = rules::continues(&vw.label, (seq, used), p)?;
                pkg.execute(params![
                    p.id,
                    vw.label,
                    p.seq as i64,
                    p.position as i64,
                    p.size as i64,
                    p.adler32.0 as i64,
                    p.members.len() as i64,
                    p.created.0
                ])?;
                for m in &p.members {
                    mem.execute(params![
                        m.file_id.to_string(),
                        p.id,
                        m.offset as i64,
                        m.size as i64,
                        m.adler32.0 as i64
                    ])?;
                }
                if let Some(j) = p.job {
                    for m in &p.members {
                        done.execute(params![j, m.file_id.to_string()])?;
                    }
                }
                packed.execute(params![now.0, vw.label, p.id])?;
                // Members deleted while the package was being written.
                dead.execute([&p.id])?;
                (seq, used) = next;
            }
            // Several tape copies: the next copy's job of what was written,
            // files deleted meanwhile left out, in this transaction.
            let mut queued = Vec::new();
            let mut live = tx.prepare_cached("SELECT 1 FROM nodes WHERE file_id = ?1")?;
            for (next, files) in rules::next_copies(&packages, &targets) {
                let mut keep = Vec::with_capacity(files.len());
                for f in files {
                    if live.exists([f.0.to_string()])? {
                        keep.push(f);
                    }
                }
                if !keep.is_empty() {
                    let id = create_job(tx, &next, &keep, Timestamp::now(), None)?;
                    queued.extend(get_job(tx, id)?);
                }
            }
            for j in rules::jobs_of(&packages) {
                if done_job.execute([j])? == 0 {
                    unfinished.extend(crate::sqlite_common::get_job(tx, j)?);
                }
            }
            tx.execute(
                "UPDATE volumes SET state = ?2, storage_group = ?3, file_family = ?4, wrapper = ?5, used = ?6, \
                 tape_files = ?7, stats = ?8 WHERE label = ?1",
                params![
                    vw.label,
                    vw.state.as_str(),
                    vw.family.storage_group,
                    vw.family.file_family,
                    vw.family.wrapper,
                    used as i64,
                    seq as i64,
                    stats_json(&vw.stats)
                ],
            )?;
            Ok(TapeCommit {
                volume: get_volume(tx, &vw.label)?.expect("volume"),
                unfinished,
                queued,
            })
        })
        .await
    }

    async fn stranded_files(&self, limit: usize) -> Result<Vec<Node>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {cols} FROM nodes n WHERE n.kind = 2 AND n.cached = 1 AND {STRANDED} LIMIT ?1",
                cols = NODE_COLS
            ))?;
            let rows = st.query_map([limit as i64], crate::sqlite_common::node_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn stuck_files(&self, now: Timestamp, grace_ns: i64, limit: usize) -> Result<Vec<(FileId, Timestamp)>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&stuck_sql("?1", "?2", "?3"))?;
            let rows = st.query_map(params![now.0, grace_ns, limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, Timestamp(r.get(1)?)))
            })?;
            let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(id, t)| FileId::parse(&id).map(|id| (id, t)))
                .collect())
        })
        .await
    }

    async fn reroute_files(&self, files: &[Reroute]) -> Result<Vec<ArchiveJob>> {
        let files = files.to_vec();
        self.write(move |tx| {
            let mut still = tx.prepare_cached(&format!("SELECT 1 FROM nodes n WHERE n.file_id = ?1 AND {STRANDED}"))?;
            let mut jobs = Vec::new();
            for f in &files {
                if !still.exists([f.file_id.to_string()])? {
                    continue;
                }
                match &f.route {
                    crate::ArchiveRoute::Direct(t) => {
                        let id = create_job(tx, t, &[(f.file_id, f.size)], f.at, None)?;
                        jobs.extend(crate::sqlite_common::get_job(tx, id)?);
                    }
                    crate::ArchiveRoute::Pool(p) => crate::sqlite_common::join_pool(tx, p, f.file_id, f.size, f.at)?,
                }
            }
            Ok(jobs)
        })
        .await
    }

    async fn copy_volumes(&self, ids: &[FileId]) -> Result<Vec<(FileId, String)>> {
        let ids = ids.to_vec();
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT p.volume FROM members m JOIN packages p ON p.id = m.package WHERE m.file_id = ?1 \
                 AND {GOOD_AND_COMPLETE}"
            ))?;
            let mut out = Vec::new();
            for id in ids {
                for v in st.query_map([id.to_string()], |r| r.get::<_, String>(0))? {
                    out.push((id, v?));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn tape_copies(&self, file_id: FileId) -> Result<Vec<TapeCopy>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {PACKAGE_COLS}, m.data_offset, \
                 EXISTS (SELECT 1 FROM job_files j WHERE j.file_id = m.file_id) \
                 FROM members m JOIN packages p ON p.id = m.package \
                 WHERE m.file_id = ?1 ORDER BY {order}",
                order = rows::COPY_ORDER
            ))?;
            let rows = st.query_map([file_id.to_string()], |r| {
                Ok(TapeCopy {
                    package: package_from_row(r)?,
                    offset: r.get::<_, i64>(rows::PACKAGE_NCOLS)? as u64,
                    file_in_job: r.get::<_, i64>(rows::PACKAGE_NCOLS + 1)? != 0,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn mark_package_bad(&self, id: &str, why: &str, at: Timestamp) -> Result<Option<Package>> {
        let (id, why) = (id.to_string(), why.to_string());
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE packages SET bad = ?2, bad_since = ?3 WHERE id = ?1 AND bad IS NULL",
                params![id, why, at.0],
            )?;
            if n > 0 {
                tx.prepare_cached(crate::ops::PACKAGE_EVENTS_SQL)?
                    .execute(params![at.0, "bad", why, id])?;
            }
            Ok(tx
                .prepare_cached(&format!("SELECT {PACKAGE_COLS} FROM packages p WHERE p.id = ?1"))?
                .query_row([&id], package_from_row)
                .optional()?)
        })
        .await
    }

    async fn package_verified(&self, id: &str, at: Timestamp) -> Result<()> {
        let id = id.to_string();
        self.write(move |tx| {
            tx.execute("UPDATE packages SET verified = ?2 WHERE id = ?1", params![id, at.0])?;
            tx.prepare_cached(crate::ops::PACKAGE_EVENTS_SQL)?.execute(params![
                at.0,
                "verified",
                None::<String>,
                id
            ])?;
            Ok(())
        })
        .await
    }

    async fn due_for_verify(&self, before: Timestamp, limit: usize) -> Result<Vec<Package>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {PACKAGE_COLS} FROM packages p WHERE p.bad IS NULL AND (p.verified IS NULL OR p.verified < ?1) \
                 AND {READABLE} \
                 ORDER BY p.verified IS NOT NULL, p.verified, p.volume, p.seq LIMIT ?2"
            ))?;
            let rows = st.query_map(params![before.0, limit as i64], package_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn repair_work(&self, limit: usize) -> Result<Vec<RepairFile>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&repair_work_sql("?1"))?;
            let rows = st.query_map([limit as i64], |r| rows::repair_file(r))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn queue_repair(&self, target: &JobTarget, files: &[(FileId, u64)]) -> Result<Option<ArchiveJob>> {
        let (target, files) = (target.clone(), files.to_vec());
        self.write(move |tx| {
            let mut still = tx.prepare_cached(&still_needs_repair_sql("?1", "?2", "n.cached = 1"))?;
            let mut keep = Vec::new();
            for f in files {
                if still.exists(params![f.0.to_string(), target.library])? {
                    keep.push(f);
                }
            }
            if keep.is_empty() {
                return Ok(None);
            }
            let id = create_job(tx, &target, &keep, Timestamp::now(), None)?;
            get_job(tx, id)
        })
        .await
    }

    async fn raise_alarm(&self, severity: &str, source: &str, message: &str) -> Result<Alarm> {
        let (severity, source, message) = (severity.to_string(), source.to_string(), message.to_string());
        self.write(move |tx| {
            let time = Timestamp::now();
            let open: Option<i64> = tx
                .query_row(
                    "SELECT id FROM alarms WHERE source = ?1 AND message = ?2 AND severity = ?3 \
                     AND acked_at IS NULL ORDER BY id LIMIT 1",
                    params![source, message, severity],
                    |r| r.get(0),
                )
                .optional()?;
            let id = match open {
                Some(id) => {
                    tx.execute(
                        "UPDATE alarms SET count = count + 1, last_time = MAX(last_time, ?2) WHERE id = ?1",
                        params![id, time.0],
                    )?;
                    id
                }
                None => {
                    let id = next_id(tx, "alarms")?;
                    tx.execute(
                        "INSERT INTO alarms (id, time, last_time, count, severity, source, message) \
                         VALUES (?1, ?2, ?2, 1, ?3, ?4, ?5)",
                        params![id, time.0, severity, source, message],
                    )?;
                    id
                }
            };
            Ok(
                tx.query_row(&format!("SELECT {ALARM_COLS} FROM alarms WHERE id = ?1"), [id], |r| {
                    rows::alarm(r)
                })?,
            )
        })
        .await
    }

    async fn alarms(&self, all: bool) -> Result<Vec<Alarm>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ALARM_COLS} FROM alarms WHERE ?1 OR acked_at IS NULL ORDER BY last_time DESC, id DESC"
            ))?;
            let rows = st.query_map([all], |r| rows::alarm(r))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn ack_alarm(&self, id: i64, by: &str, at: Timestamp) -> Result<Option<Alarm>> {
        let by = by.to_string();
        self.write(move |tx| {
            tx.execute(
                "UPDATE alarms SET acked_at = ?2, acked_by = ?3 WHERE id = ?1 AND acked_at IS NULL",
                params![id, at.0, by],
            )?;
            Ok(tx
                .query_row(&format!("SELECT {ALARM_COLS} FROM alarms WHERE id = ?1"), [id], |r| {
                    rows::alarm(r)
                })
                .optional()?)
        })
        .await
    }
}
