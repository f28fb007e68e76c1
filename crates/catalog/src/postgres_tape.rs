//! The tape half of the PostgreSQL catalog.

use crate::model::Node;
use crate::postgres_common::*;
use crate::rows::{self, stats_json, ALARM_COLS, DRIVE_COLS, JOB_COLS, PACKAGE_COLS, VOLUME_COLS};
use crate::rules;
use crate::tape::*;
use crate::{CatalogError, PostgresCatalog, Result};
use async_trait::async_trait;
use bale_util::{FileId, Timestamp};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

fn volume_from_row(r: &Row) -> Result<Volume> {
    rows::volume(r)
}

fn drive_from_row(r: &Row) -> Result<Drive> {
    rows::drive(r)
}

async fn get_volume(c: &impl GenericClient, label: &str) -> Result<Option<Volume>> {
    let st = c
        .prepare_cached(&format!("SELECT {VOLUME_COLS} FROM volumes WHERE label = $1"))
        .await?;
    c.query_opt(&st, &[&label])
        .await?
        .map(|r| volume_from_row(&r))
        .transpose()
}

/// The advisory lock that keeps two nodes from rerouting one file twice.
const REROUTE_LOCK: i64 = 0x6261_6c65_0002;

#[async_trait]
impl TapeCatalog for PostgresCatalog {
    async fn add_volumes(&self, volumes: &[NewVolume]) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let st = tx
            .prepare_cached(
                "INSERT INTO volumes (label, library, media, capacity, state, mount_limit, created) \
                 VALUES ($1, $2, $3, $4, 'blank', $5, $6) ON CONFLICT DO NOTHING",
            )
            .await?;
        for v in volumes {
            let n = tx
                .execute(
                    &st,
                    &[
                        &v.label,
                        &v.library,
                        &v.media,
                        &(v.capacity as i64),
                        &(v.mount_limit as i64),
                        &v.created.0,
                    ],
                )
                .await?;
            if n == 0 {
                return Err(CatalogError::AlreadyExists(format!("volume {}", v.label)));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn volumes(&self) -> Result<Vec<Volume>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(&format!("SELECT {VOLUME_COLS} FROM volumes ORDER BY label"), &[])
            .await?;
        rows.iter().map(volume_from_row).collect()
    }

    async fn volume(&self, label: &str) -> Result<Option<Volume>> {
        let c = self.pool.get().await?;
        get_volume(&*c, label).await
    }

    async fn set_volume_state(&self, label: &str, state: VolumeState) -> Result<Volume> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                &format!("UPDATE volumes SET state = $2 WHERE label = $1 RETURNING {VOLUME_COLS}"),
                &[&label, &state.as_str()],
            )
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("volume {label}")))?;
        volume_from_row(&row)
    }

    async fn save_volume_stats(&self, label: &str, s: &TapeStats) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE volumes SET stats = $2 WHERE label = $1",
            &[&label, &stats_json(s)],
        )
        .await?;
        Ok(())
    }

    async fn register_drives(&self, drives: &[(String, String)]) -> Result<()> {
        let c = self.pool.get().await?;
        for (name, lib) in drives {
            c.execute(
                "INSERT INTO drives (name, library, state) VALUES ($1, $2, 'online') ON CONFLICT DO NOTHING",
                &[name, lib],
            )
            .await?;
        }
        Ok(())
    }

    async fn drives(&self) -> Result<Vec<Drive>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(&format!("SELECT {DRIVE_COLS} FROM drives ORDER BY name"), &[])
            .await?;
        rows.iter().map(drive_from_row).collect()
    }

    async fn set_drive_state(&self, name: &str, state: DriveState) -> Result<Drive> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "UPDATE drives SET state = $2 WHERE name = $1 RETURNING name, library, state, stats",
                &[&name, &state.as_str()],
            )
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("drive {name}")))?;
        drive_from_row(&row)
    }

    async fn save_drive_stats(&self, name: &str, s: &TapeStats) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute("UPDATE drives SET stats = $2 WHERE name = $1", &[&name, &stats_json(s)])
            .await?;
        Ok(())
    }

    async fn archive_jobs(&self) -> Result<Vec<ArchiveJob>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(&format!("SELECT {JOB_COLS} FROM archive_jobs ORDER BY id"), &[])
            .await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        // Every job's files in one query, not one query per job.
        let index: std::collections::HashMap<i64, usize> = jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
        for r in c
            .query("SELECT job, file_id FROM job_files ORDER BY job, file_id", &[])
            .await?
        {
            if let (Some(&i), Some(f)) = (index.get(&r.get::<_, i64>(0)), FileId::parse(r.get(1))) {
                jobs[i].files.push(f);
            }
        }
        Ok(jobs)
    }

    async fn job_of(&self, file_id: FileId) -> Result<Option<ArchiveJob>> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {JOB_COLS} FROM archive_jobs WHERE id IN (SELECT job FROM job_files WHERE file_id = $1) \
                 ORDER BY id LIMIT 1"
            ))
            .await?;
        let row = c.query_opt(&st, &[&file_id.to_string()]).await?;
        let Some(row) = row else { return Ok(None) };
        let mut job = job_from_row(&row)?;
        job_files(&*c, &mut job).await?;
        Ok(Some(job))
    }

    async fn job_attempt_failed(&self, id: i64, error: &str, failed: bool) -> Result<()> {
        let c = self.pool.get().await?;
        let state = if failed { JobState::Failed } else { JobState::Queued };
        c.execute(
            "UPDATE archive_jobs SET attempts = attempts + 1, error = $2, state = $3 WHERE id = $1",
            &[&id, &error, &state.as_str()],
        )
        .await?;
        Ok(())
    }

    async fn retry_jobs(&self, id: Option<i64>) -> Result<Vec<ArchiveJob>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        if let Some(id) = id {
            let job = get_job(&tx, id)
                .await?
                .ok_or_else(|| CatalogError::NotFound(format!("archive job {id}")))?;
            rules::retryable(&job)?;
        }
        let rows = tx
            .query(
                "UPDATE archive_jobs SET state = $1, attempts = 0, error = NULL \
                 WHERE state = $2 AND ($3::bigint IS NULL OR id = $3) RETURNING id",
                &[&JobState::Queued.as_str(), &JobState::Failed.as_str(), &id],
            )
            .await?;
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(get_job(&tx, id).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn commit_tape_files(&self, vw: &VolumeWrite, packages: &[NewPackage]) -> Result<TapeCommit> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let vol = tx
            .query_opt(
                &format!("SELECT {VOLUME_COLS} FROM volumes WHERE label = $1 FOR UPDATE"),
                &[&vw.label],
            )
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("volume {}", vw.label)))?;
        let vol = volume_from_row(&vol)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DEAD_COUNT_LOCK])
            .await?;
        let (mut seq, mut used) = (vol.tape_files, vol.used);
        let mut unfinished = Vec::new();
        // The targets of the jobs written, for the copies they queue.
        let jobs = rules::jobs_of(packages);
        let mut targets = std::collections::HashMap::new();
        for r in tx
            .query(
                &format!("SELECT {JOB_COLS} FROM archive_jobs WHERE id = ANY($1)"),
                &[&jobs],
            )
            .await?
        {
            let job = rows::job(&r)?;
            targets.insert(job.id, job.target);
        }
        let pkg = tx
            .prepare_cached(
                "INSERT INTO packages (id, volume, seq, position, size, adler32, members, created) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .await?;
        let mem = tx
            .prepare_cached(
                "INSERT INTO members (file_id, package, data_offset, size, adler32) \
                 SELECT unnest($1::text[]), $2, unnest($3::bigint[]), unnest($4::bigint[]), unnest($5::bigint[])",
            )
            .await?;
        let now = Timestamp::now();
        for p in packages {
            let next = rules::continues(&vw.label, (seq, used), p)?;
            tx.execute(
                &pkg,
                &[
                    &p.id,
                    &vw.label,
                    &(p.seq as i32),
                    &(p.position as i64),
                    &(p.size as i64),
                    &(p.adler32.0 as i64),
                    &(p.members.len() as i32),
                    &p.created.0,
                ],
            )
            .await?;
            let ids: Vec<String> = p.members.iter().map(|m| m.file_id.to_string()).collect();
            let offsets: Vec<i64> = p.members.iter().map(|m| m.offset as i64).collect();
            let sizes: Vec<i64> = p.members.iter().map(|m| m.size as i64).collect();
            let sums: Vec<i64> = p.members.iter().map(|m| m.adler32.0 as i64).collect();
            tx.execute(&mem, &[&ids, &p.id, &offsets, &sizes, &sums]).await?;
            tx.execute(crate::ops::PACKED_EVENTS_SQL, &[&now.0, &vw.label, &p.id])
                .await?;
            if let Some(j) = p.job {
                // Exactly the files written leave the job; a job with files
                // left stays queued.
                tx.execute(
                    "DELETE FROM job_files WHERE job = $1 AND file_id = ANY($2)",
                    &[&j, &ids],
                )
                .await?;
            }
            // Members deleted while the package was being written.
            tx.execute(
                // One index probe of nodes per member: the LIMIT keeps the
                // planner from a hash anti-join over every node, which it
                // chose per package on a big catalog with stale statistics
                // (0.2-0.5 s a package at a million files).
                "UPDATE packages SET (dead_members, dead_bytes) = (SELECT COUNT(*)::int, COALESCE(SUM(m.size), 0)::bigint \
                 FROM members m LEFT JOIN LATERAL (SELECT 1 AS live FROM nodes n WHERE n.file_id = m.file_id LIMIT 1) l \
                 ON TRUE WHERE m.package = $1 AND l.live IS NULL) WHERE id = $1",
                &[&p.id],
            )
            .await?;
            (seq, used) = next;
        }
        // Several tape copies: the next copy's job of what was written,
        // files deleted meanwhile left out, in this transaction.
        let mut queued = Vec::new();
        for (next, files) in rules::next_copies(packages, &targets) {
            let ids: Vec<String> = files.iter().map(|f| f.0.to_string()).collect();
            let live: std::collections::HashSet<String> = tx
                .query("SELECT file_id FROM nodes WHERE file_id = ANY($1)", &[&ids])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let keep: Vec<(FileId, u64)> = files.into_iter().filter(|f| live.contains(&f.0.to_string())).collect();
            if !keep.is_empty() {
                let id = create_job(&tx, &next, &keep, Timestamp::now(), None).await?;
                queued.extend(crate::postgres_common::get_job(&tx, id).await?);
            }
        }
        for j in jobs {
            let gone = tx
                .execute(
                    "DELETE FROM archive_jobs WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM job_files WHERE job = $1)",
                    &[&j],
                )
                .await?;
            if gone == 0 {
                unfinished.extend(crate::postgres_common::get_job(&tx, j).await?);
            }
        }
        let row = tx
            .query_one(
                &format!(
                    "UPDATE volumes SET state = $2, storage_group = $3, file_family = $4, wrapper = $5, used = $6, \
                     tape_files = $7, stats = $8 WHERE label = $1 RETURNING {VOLUME_COLS}"
                ),
                &[
                    &vw.label,
                    &vw.state.as_str(),
                    &vw.family.storage_group,
                    &vw.family.file_family,
                    &vw.family.wrapper,
                    &(used as i64),
                    &(seq as i32),
                    &stats_json(&vw.stats),
                ],
            )
            .await?;
        let volume = volume_from_row(&row)?;
        tx.commit().await?;
        Ok(TapeCommit {
            volume,
            unfinished,
            queued,
        })
    }

    async fn stranded_files(&self, limit: usize) -> Result<Vec<Node>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {cols} FROM nodes n WHERE n.kind = 2 AND n.cached AND {STRANDED} LIMIT $1",
                    cols = NODE_COLS
                ),
                &[&(limit as i64)],
            )
            .await?;
        rows.iter()
            .map(|r| crate::postgres_common::node_from_row(r, 0))
            .collect()
    }

    async fn stuck_files(&self, now: Timestamp, grace_ns: i64, limit: usize) -> Result<Vec<(FileId, Timestamp)>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(&stuck_sql("$1", "$2", "$3"), &[&now.0, &grace_ns, &(limit as i64)])
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| FileId::parse(r.get(0)).map(|id| (id, Timestamp(r.get(1)))))
            .collect())
    }

    async fn reroute_files(&self, files: &[Reroute]) -> Result<Vec<ArchiveJob>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REROUTE_LOCK]).await?;
        let still = tx
            .prepare_cached(&format!("SELECT 1 FROM nodes n WHERE n.file_id = $1 AND {STRANDED}"))
            .await?;
        let mut jobs = Vec::new();
        for f in files {
            if tx.query_opt(&still, &[&f.file_id.to_string()]).await?.is_none() {
                continue;
            }
            match &f.route {
                crate::ArchiveRoute::Direct(t) => {
                    let id = create_job(&tx, t, &[(f.file_id, f.size)], f.at, None).await?;
                    jobs.extend(crate::postgres_common::get_job(&tx, id).await?);
                }
                crate::ArchiveRoute::Pool(p) => {
                    crate::postgres_common::join_pool(&tx, p, f.file_id, f.size, f.at).await?
                }
            }
        }
        tx.commit().await?;
        Ok(jobs)
    }

    async fn copy_volumes(&self, ids: &[FileId]) -> Result<Vec<(FileId, String)>> {
        let c = self.pool.get().await?;
        let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        let rows = c
            .query(
                &format!(
                    "SELECT m.file_id, p.volume FROM members m JOIN packages p ON p.id = m.package \
                     WHERE m.file_id = ANY($1) AND {GOOD_AND_COMPLETE}"
                ),
                &[&ids],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let f: String = r.get(0);
                let id = FileId::parse(&f).ok_or_else(|| CatalogError::Invalid(format!("bad file id {f}")))?;
                Ok((id, r.get(1)))
            })
            .collect()
    }

    async fn tape_copies(&self, file_id: FileId) -> Result<Vec<TapeCopy>> {
        let c = self.probes.get().await?;
        let st = c.prepare_cached(&copies_sql("$1")).await?;
        let rows = c.query(&st, &[&file_id.to_string()]).await?;
        rows.iter().map(copy_from_row).collect()
    }

    async fn mark_package_bad(&self, id: &str, why: &str, at: Timestamp) -> Result<Option<Package>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "UPDATE packages SET bad = $2, bad_since = $3 WHERE id = $1 AND bad IS NULL",
                &[&id, &why, &at.0],
            )
            .await?;
        if n > 0 {
            tx.execute(crate::ops::PACKAGE_EVENTS_SQL, &[&at.0, &"bad", &why, &id])
                .await?;
        }
        let p = tx
            .query_opt(
                &format!("SELECT {PACKAGE_COLS} FROM packages p WHERE p.id = $1"),
                &[&id],
            )
            .await?
            .map(|r| package_from_row(&r))
            .transpose()?;
        tx.commit().await?;
        Ok(p)
    }

    async fn package_verified(&self, id: &str, at: Timestamp) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute("UPDATE packages SET verified = $2 WHERE id = $1", &[&id, &at.0])
            .await?;
        tx.execute(
            crate::ops::PACKAGE_EVENTS_SQL,
            &[&at.0, &"verified", &None::<String>, &id],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_for_verify(&self, before: Timestamp, limit: usize) -> Result<Vec<Package>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {PACKAGE_COLS} FROM packages p WHERE p.bad IS NULL \
                     AND (p.verified IS NULL OR p.verified < $1) AND {READABLE} \
                     ORDER BY p.verified IS NOT NULL, p.verified, p.volume, p.seq LIMIT $2"
                ),
                &[&before.0, &(limit as i64)],
            )
            .await?;
        rows.iter().map(package_from_row).collect()
    }

    async fn repair_work(&self, limit: usize) -> Result<Vec<RepairFile>> {
        let c = self.pool.get().await?;
        let rows = c.query(&repair_work_sql("$1"), &[&(limit as i64)]).await?;
        rows.iter().map(rows::repair_file).collect()
    }

    async fn queue_repair(&self, target: &JobTarget, files: &[(FileId, u64)]) -> Result<Option<ArchiveJob>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let still = tx
            .prepare_cached(&still_needs_repair_sql("$1", "$2", "n.cached"))
            .await?;
        // Row locks on the files, in node id order, as a purge and a
        // delete take them: one racing the repair either comes first (the
        // file is gone or no longer cached) or after (it is in a job).
        let ids: Vec<String> = files.iter().map(|f| f.0.to_string()).collect();
        crate::postgres_common::lock_files(&tx, &ids).await?;
        let mut keep = Vec::new();
        for f in files {
            if tx
                .query_opt(&still, &[&f.0.to_string(), &target.library])
                .await?
                .is_some()
            {
                keep.push(*f);
            }
        }
        if keep.is_empty() {
            return Ok(None);
        }
        let id = create_job(&tx, target, &keep, Timestamp::now(), None).await?;
        let job = crate::postgres_common::get_job(&tx, id).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn raise_alarm(&self, severity: &str, source: &str, message: &str) -> Result<Alarm> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Raises of alarms take turns, so that repeats fold into one row
        // (under READ COMMITTED two could each find no open alarm).
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ALARM_LOCK]).await?;
        let time = Timestamp::now();
        let folded = tx
            .query_opt(
                &format!(
                    "UPDATE alarms SET count = count + 1, last_time = GREATEST(last_time, $4) \
                     WHERE id = (SELECT id FROM alarms WHERE source = $1 AND message = $2 AND severity = $3 \
                     AND acked_at IS NULL ORDER BY id LIMIT 1) RETURNING {ALARM_COLS}"
                ),
                &[&source, &message, &severity, &time.0],
            )
            .await?;
        let row = match folded {
            Some(row) => row,
            None => {
                tx.query_one(
                    &format!(
                        "INSERT INTO alarms (time, last_time, count, severity, source, message) \
                         VALUES ($1, $1, 1, $2, $3, $4) RETURNING {ALARM_COLS}"
                    ),
                    &[&time.0, &severity, &source, &message],
                )
                .await?
            }
        };
        tx.commit().await?;
        rows::alarm(&row)
    }

    async fn alarms(&self, all: bool) -> Result<Vec<Alarm>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {ALARM_COLS} FROM alarms WHERE $1 OR acked_at IS NULL ORDER BY last_time DESC, id DESC"
                ),
                &[&all],
            )
            .await?;
        rows.iter().map(rows::alarm).collect()
    }

    async fn ack_alarm(&self, id: i64, by: &str, at: Timestamp) -> Result<Option<Alarm>> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE alarms SET acked_at = $2, acked_by = $3 WHERE id = $1 AND acked_at IS NULL",
            &[&id, &at.0, &by],
        )
        .await?;
        c.query_opt(&format!("SELECT {ALARM_COLS} FROM alarms WHERE id = $1"), &[&id])
            .await?
            .map(|r| rows::alarm(&r))
            .transpose()
    }
}

/// The advisory lock that makes raises of alarms take turns.
const ALARM_LOCK: i64 = 0x6261_6c65_0003;

/// A file's tape copies in the order reads try them (`COPY_ORDER`: good
/// ones on readable volumes first), with the file id and whether the file
/// is in an archive job after them; `file_id` is
/// an SQL expression. Two index probes, for connections that keep one plan
/// (`probes`): the subquery is fenced (OFFSET 0) so that no plan made
/// before the tables had statistics can hash-join all packages.
pub(crate) fn copies_sql(file_id: &str) -> String {
    format!(
        "SELECT {PACKAGE_COLS}, m.data_offset, m.file_id, \
         EXISTS (SELECT 1 FROM job_files j WHERE j.file_id = m.file_id) FROM members m, \
         LATERAL (SELECT * FROM packages p WHERE p.id = m.package OFFSET 0) p \
         WHERE m.file_id = {file_id} ORDER BY {order}",
        order = rows::COPY_ORDER
    )
}

pub(crate) fn copy_from_row(r: &tokio_postgres::Row) -> Result<TapeCopy> {
    Ok(TapeCopy {
        package: package_from_row(r)?,
        offset: r.get::<_, i64>(rows::PACKAGE_NCOLS) as u64,
        file_in_job: r.get::<_, bool>(rows::PACKAGE_NCOLS + 2),
    })
}
