//! The aggregation half of the SQLite catalog.

use crate::pool::*;
use crate::rows::{self, PACKAGE_COLS, POOL_COLS};
use crate::rules;
use crate::sqlite_common::*;
use crate::tape::{ArchiveJob, JobState, Package};
use crate::{CatalogError, Result, SqliteCatalog};
use async_trait::async_trait;
use bale_util::{Adler32, FileId, Timestamp};
use rusqlite::{params, OptionalExtension, Row};

fn pool_from_row(r: &Row<'_>) -> rusqlite::Result<PoolTarget> {
    rows::pool(r)
}

#[async_trait]
impl PoolCatalog for SqliteCatalog {
    async fn pools(&self) -> Result<Vec<PoolSummary>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {POOL_COLS}, COUNT(f.file_id), COALESCE(SUM(f.size), 0), MIN(f.joined) \
                 FROM pools p JOIN pool_files f ON f.pool = p.key GROUP BY p.key ORDER BY p.key"
            ))?;
            let rows = st.query_map([], |r| rows::pool_summary(r))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn pool_of(&self, file_id: FileId) -> Result<Option<String>> {
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT pool FROM pool_files WHERE file_id = ?1")?;
            Ok(st.query_row([file_id.to_string()], |r| r.get(0)).optional()?)
        })
        .await
    }

    async fn close_pool(&self, key: &str, at: Timestamp, force: bool) -> Result<Option<ArchiveJob>> {
        let key = key.to_string();
        self.write(move |tx| {
            let pool = tx
                .prepare_cached(&format!("SELECT {POOL_COLS} FROM pools p WHERE p.key = ?1"))?
                .query_row([&key], pool_from_row)
                .optional()?;
            let Some(pool) = pool else { return Ok(None) };
            if !force {
                let (files, bytes, oldest): (i64, i64, Option<i64>) = tx
                    .prepare_cached(
                        "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(joined) FROM pool_files WHERE pool = ?1",
                    )?
                    .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                let oldest = Timestamp(oldest.unwrap_or(at.0));
                if !pool.limits.triggered(files as u64, bytes as u64, oldest, at) {
                    return Ok(None);
                }
            }
            let members: Vec<(FileId, u64)> = tx
                .prepare_cached(
                    "SELECT file_id, size FROM pool_files WHERE pool = ?1 ORDER BY joined, file_id LIMIT ?2",
                )?
                .query_map(params![key, pool.limits.max_files.max(1) as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })?
                .map(|r| {
                    let (id, size) = r?;
                    let id = FileId::parse(&id).ok_or_else(|| CatalogError::Invalid(format!("bad file id {id}")))?;
                    Ok((id, size as u64))
                })
                .collect::<Result<_>>()?;
            let taken = rules::take_up_to_target(members, pool.limits.target_size);
            let mut leave = tx.prepare_cached("DELETE FROM pool_files WHERE file_id = ?1")?;
            for (id, _) in &taken {
                leave.execute([id.to_string()])?;
            }
            tx.execute(
                "DELETE FROM pools WHERE key = ?1 AND NOT EXISTS (SELECT 1 FROM pool_files WHERE pool = ?1)",
                [&key],
            )?;
            if taken.is_empty() {
                return Ok(None);
            }
            let id = create_job(tx, &pool.target, &taken, at, Some(&key))?;
            get_job(tx, id)
        })
        .await
    }

    async fn hold_member(&self, job: i64, file_id: FileId, error: &str) -> Result<ArchiveJob> {
        let error = error.to_string();
        self.write(move |tx| {
            let old = get_job(tx, job)?.ok_or_else(|| CatalogError::NotFound(format!("archive job {job}")))?;
            let n = tx.execute(
                "DELETE FROM job_files WHERE job = ?1 AND file_id = ?2",
                params![job, file_id.to_string()],
            )?;
            if n == 0 {
                return Err(CatalogError::NotFound(format!("file {file_id} in archive job {job}")));
            }
            let size: i64 = tx
                .query_row(
                    "SELECT size FROM nodes WHERE file_id = ?1",
                    [file_id.to_string()],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            tx.execute(
                "UPDATE archive_jobs SET bytes = MAX(bytes - ?2, 0) WHERE id = ?1",
                params![job, size],
            )?;
            tx.execute(
                "DELETE FROM archive_jobs WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM job_files WHERE job = ?1)",
                [job],
            )?;
            let held = create_job(tx, &old.target, &[(file_id, size as u64)], old.created, None)?;
            tx.execute(
                "UPDATE archive_jobs SET state = ?2, attempts = 1, error = ?3 WHERE id = ?1",
                params![held, JobState::Failed.as_str(), error],
            )?;
            Ok(get_job(tx, held)?.expect("job just created"))
        })
        .await
    }

    async fn packages(&self, volume: Option<&str>) -> Result<Vec<Package>> {
        let volume = volume.map(str::to_string);
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {PACKAGE_COLS} FROM packages p WHERE ?1 IS NULL OR p.volume = ?1 ORDER BY p.volume, p.seq"
            ))?;
            let rows = st.query_map([volume], package_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn package(&self, id: &str) -> Result<Option<(Package, Vec<PackageMember>)>> {
        let id = id.to_string();
        self.read(move |c| {
            let p = c
                .prepare_cached(&format!("SELECT {PACKAGE_COLS} FROM packages p WHERE p.id = ?1"))?
                .query_row([&id], package_from_row)
                .optional()?;
            let Some(p) = p else { return Ok(None) };
            let mut st = c.prepare_cached(
                "SELECT file_id, data_offset, size, adler32 FROM members WHERE package = ?1 ORDER BY data_offset",
            )?;
            let rows = st.query_map([&id], |r| {
                let f: String = r.get(0)?;
                Ok((f, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
            })?;
            let mut members = Vec::new();
            for row in rows {
                let (f, offset, size, sum) = row?;
                members.push(PackageMember {
                    file_id: FileId::parse(&f).ok_or_else(|| CatalogError::Invalid(format!("bad file id {f}")))?,
                    offset: offset as u64,
                    size: size as u64,
                    adler32: Adler32(sum as u32),
                });
            }
            Ok(Some((p, members)))
        })
        .await
    }
}
