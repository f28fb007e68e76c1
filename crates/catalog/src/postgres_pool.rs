//! The aggregation half of the PostgreSQL catalog.

use crate::pool::*;
use crate::postgres_common::*;
use crate::rows::{self, PACKAGE_COLS, POOL_COLS};
use crate::rules;
use crate::tape::{ArchiveJob, JobState, Package};
use crate::{CatalogError, PostgresCatalog, Result};
use async_trait::async_trait;
use bale_util::{Adler32, FileId, Timestamp};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

fn pool_from_row(r: &Row) -> Result<PoolTarget> {
    rows::pool(r)
}

#[async_trait]
impl PoolCatalog for PostgresCatalog {
    async fn pools(&self) -> Result<Vec<PoolSummary>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {POOL_COLS}, COUNT(f.file_id), COALESCE(SUM(f.size), 0)::bigint, MIN(f.joined) \
                     FROM pools p JOIN pool_files f ON f.pool = p.key GROUP BY p.key ORDER BY p.key"
                ),
                &[],
            )
            .await?;
        rows.iter().map(rows::pool_summary).collect()
    }

    async fn pool_of(&self, file_id: FileId) -> Result<Option<String>> {
        let c = self.probes.get().await?;
        let st = c
            .prepare_cached("SELECT pool FROM pool_files WHERE file_id = $1")
            .await?;
        let row = c.query_opt(&st, &[&file_id.to_string()]).await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn close_pool(&self, key: &str, at: Timestamp, force: bool) -> Result<Option<ArchiveJob>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // The pool's row lock makes closes of one pool take turns across nodes.
        let row = tx
            .query_opt(
                &format!("SELECT {POOL_COLS} FROM pools p WHERE p.key = $1 FOR UPDATE"),
                &[&key],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let pool = pool_from_row(&row)?;
        if !force {
            let r = tx
                .query_one(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0)::bigint, MIN(joined) FROM pool_files WHERE pool = $1",
                    &[&key],
                )
                .await?;
            let oldest = Timestamp(r.get::<_, Option<i64>>(2).unwrap_or(at.0));
            if !pool
                .limits
                .triggered(r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64, oldest, at)
            {
                return Ok(None);
            }
        }
        let rows = tx
            .query(
                "SELECT file_id, size FROM pool_files WHERE pool = $1 ORDER BY joined, file_id LIMIT $2",
                &[&key, &(pool.limits.max_files.max(1) as i64)],
            )
            .await?;
        let members = rows
            .iter()
            .map(|r| Ok((file_id(r.get(0))?, r.get::<_, i64>(1) as u64)))
            .collect::<Result<Vec<_>>>()?;
        let mut taken = rules::take_up_to_target(members, pool.limits.target_size);
        let ids: Vec<String> = taken.iter().map(|t| t.0.to_string()).collect();
        // Exactly the members this transaction removed from the pool go
        // into the job: a member deleted by a transaction that committed
        // while this one waited for its row is not taken (it would be a
        // job file of a file that no longer exists, queued for ever).
        let removed: std::collections::HashSet<String> = tx
            .query(
                "DELETE FROM pool_files WHERE file_id = ANY($1) RETURNING file_id",
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        taken.retain(|t| removed.contains(&t.0.to_string()));
        tx.execute(
            "DELETE FROM pools p WHERE p.key = $1 AND NOT EXISTS (SELECT 1 FROM pool_files f WHERE f.pool = p.key)",
            &[&key],
        )
        .await?;
        if taken.is_empty() {
            tx.commit().await?;
            return Ok(None);
        }
        let id = create_job(&tx, &pool.target, &taken, at, Some(key)).await?;
        let job = get_job(&tx, id).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn hold_member(&self, job: i64, file_id: FileId, error: &str) -> Result<ArchiveJob> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let old = get_job(&tx, job)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("archive job {job}")))?;
        let n = tx
            .execute(
                "DELETE FROM job_files WHERE job = $1 AND file_id = $2",
                &[&job, &file_id.to_string()],
            )
            .await?;
        if n == 0 {
            return Err(CatalogError::NotFound(format!("file {file_id} in archive job {job}")));
        }
        let size: i64 = tx
            .query_opt("SELECT size FROM nodes WHERE file_id = $1", &[&file_id.to_string()])
            .await?
            .map_or(0, |r| r.get(0));
        tx.execute(
            "UPDATE archive_jobs SET bytes = GREATEST(bytes - $2, 0) WHERE id = $1",
            &[&job, &size],
        )
        .await?;
        tx.execute(
            "DELETE FROM archive_jobs j WHERE j.id = $1 AND NOT EXISTS (SELECT 1 FROM job_files f WHERE f.job = j.id)",
            &[&job],
        )
        .await?;
        let held = create_job(&tx, &old.target, &[(file_id, size as u64)], old.created, None).await?;
        tx.execute(
            "UPDATE archive_jobs SET state = $2, attempts = 1, error = $3 WHERE id = $1",
            &[&held, &JobState::Failed.as_str(), &error],
        )
        .await?;
        let out = get_job(&tx, held).await?.expect("job just created");
        tx.commit().await?;
        Ok(out)
    }

    async fn packages(&self, volume: Option<&str>) -> Result<Vec<Package>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {PACKAGE_COLS} FROM packages p WHERE $1::text IS NULL OR p.volume = $1 \
                     ORDER BY p.volume, p.seq"
                ),
                &[&volume],
            )
            .await?;
        rows.iter().map(package_from_row).collect()
    }

    async fn package(&self, id: &str) -> Result<Option<(Package, Vec<PackageMember>)>> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                &format!("SELECT {PACKAGE_COLS} FROM packages p WHERE p.id = $1"),
                &[&id],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let rows = c
            .query(
                "SELECT file_id, data_offset, size, adler32 FROM members WHERE package = $1 ORDER BY data_offset",
                &[&id],
            )
            .await?;
        let members = rows
            .iter()
            .map(|r| {
                Ok(PackageMember {
                    file_id: file_id(r.get(0))?,
                    offset: r.get::<_, i64>(1) as u64,
                    size: r.get::<_, i64>(2) as u64,
                    adler32: Adler32(r.get::<_, i64>(3) as u32),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Some((package_from_row(&row)?, members)))
    }
}
