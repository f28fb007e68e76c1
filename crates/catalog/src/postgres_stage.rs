//! Stage requests in the PostgreSQL catalog.

use crate::rows::{open_stage_packages_sql, stage_packages_sql, SETTLE_OPEN_SQL};
use crate::stage::{
    new_open, within_open_limit, BegunStage, NewStageFile, StageCatalog, StageFile, StagePackage, StageRequest,
    StageState, FORGET_SQL, OPEN_OF_OWNER_SQL, UNCACHED_MEMBERS_SQL,
};
use crate::{CatalogError, PostgresCatalog, Result};
use async_trait::async_trait;
use bale_util::{FileId, Timestamp};
use deadpool_postgres::GenericClient;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

fn texts(ids: &[FileId]) -> Vec<String> {
    ids.iter().map(|i| i.to_string()).collect()
}

/// Completes the requests among `requests` that have no open file left.
async fn complete_finished(tx: &impl GenericClient, requests: &[i64], at: Timestamp) -> Result<()> {
    tx.execute(
        "UPDATE stage_requests r SET completed = $2 WHERE r.id = ANY($1) AND r.completed IS NULL \
         AND NOT EXISTS (SELECT 1 FROM stage_files f WHERE f.request = r.id AND f.state IN ('SUBMITTED', 'STARTED'))",
        &[&requests, &at.0],
    )
    .await?;
    Ok(())
}

/// The requests with open files among `ids`, their rows locked (in id
/// order, so two transactions never wait on each other in a circle). The
/// lock serializes every change to one request's files: under READ
/// COMMITTED two transactions finishing the last two open files could each
/// see the other's still open, and neither would complete the request.
async fn requests_of(tx: &impl GenericClient, ids: &[FileId]) -> Result<Vec<i64>> {
    let requests: Vec<i64> = tx
        .query(
            "SELECT DISTINCT request FROM stage_files WHERE file_id = ANY($1) AND state IN ('SUBMITTED', 'STARTED')",
            &[&texts(ids)],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    lock_requests(tx, &requests).await?;
    Ok(requests)
}

/// The open stage files of `ids` (in any request) are STARTED at `at`,
/// and their requests started.
async fn mark_started(tx: &impl GenericClient, ids: &[FileId], at: Timestamp) -> Result<()> {
    let requests = requests_of(tx, ids).await?;
    tx.execute(
        "UPDATE stage_files SET state = 'STARTED', started = $2 \
         WHERE file_id = ANY($1) AND state IN ('SUBMITTED', 'STARTED') AND state = 'SUBMITTED'",
        &[&texts(ids), &at.0],
    )
    .await?;
    tx.execute(
        "UPDATE stage_requests SET started = $2 WHERE id = ANY($1) AND started IS NULL",
        &[&requests, &at.0],
    )
    .await?;
    Ok(())
}

async fn lock_requests(tx: &impl GenericClient, requests: &[i64]) -> Result<()> {
    tx.execute(
        "SELECT id FROM stage_requests WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &[&requests],
    )
    .await?;
    Ok(())
}

/// [`StageCatalog::release_holds`] on a connection or in a transaction
/// (`unpin` of a request's pin owner uses it too).
pub(crate) async fn release_holds(c: &impl GenericClient, request: Option<i64>, ids: &[FileId]) -> Result<usize> {
    Ok(c.execute(
        "UPDATE stage_files SET held_until = NULL WHERE file_id = ANY($1) AND held_until IS NOT NULL \
         AND ($2::bigint IS NULL OR request = $2)",
        &[&texts(ids), &request],
    )
    .await? as usize)
}

#[async_trait]
impl StageCatalog for PostgresCatalog {
    async fn create_stage_request(
        &self,
        owner: &str,
        at: Timestamp,
        lifetime_s: u64,
        files: Vec<NewStageFile>,
        max_open: u64,
    ) -> Result<i64> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        if max_open < u64::MAX {
            // One owner's requests are counted one after the other.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('bale stage requests of ' || $1))",
                &[&owner],
            )
            .await?;
            let open: i64 = tx
                .query_one(&OPEN_OF_OWNER_SQL.replace("?1", "$1"), &[&owner])
                .await?
                .get(0);
            let new = new_open(&files);
            within_open_limit(owner, open as u64, new, max_open)?;
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO stage_requests (owner, created, lifetime_s) VALUES ($1, $2, $3) RETURNING id",
                &[&owner, &at.0, &(lifetime_s as i64)],
            )
            .await?
            .get(0);
        // The rows go in by COPY (binary): for 100,000 files a third less
        // time than INSERT ... SELECT unnest(...) of the same rows.
        let held_until = at.0 + lifetime_s as i64 * 1_000_000_000;
        let sink = tx
            .copy_in(
                "COPY stage_files (request, idx, path, file_id, state, error, finished, held_until) \
                 FROM STDIN (FORMAT binary)",
            )
            .await?;
        let types = [
            Type::INT8,
            Type::INT4,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
        ];
        let mut rows = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
        for (i, f) in files.iter().enumerate() {
            let file_id = f.file_id.map(|f| f.to_string());
            let finished = (!f.state.is_open()).then_some(at.0);
            let held = f.file_id.map(|_| held_until);
            rows.as_mut()
                .write(&[
                    &id,
                    &(i as i32),
                    &f.path,
                    &file_id,
                    &f.state.as_str(),
                    &f.error,
                    &finished,
                    &held,
                ])
                .await?;
        }
        rows.finish().await?;
        // Files found cached: their rows are locked as a purge locks them
        // (`mark_purged`), so a purge either finished first (the file is
        // SUBMITTED again here) or waits and then sees this request's holds.
        let cached: Vec<String> = files
            .iter()
            .filter(|f| f.state == StageState::Completed)
            .filter_map(|f| f.file_id.map(|i| i.to_string()))
            .collect();
        if !cached.is_empty() {
            tx.query(
                "SELECT 1 FROM nodes WHERE file_id = ANY($1) ORDER BY id FOR SHARE",
                &[&cached],
            )
            .await?;
            tx.execute(
                "UPDATE stage_files SET state = 'SUBMITTED', finished = NULL WHERE request = $1 \
                 AND state = 'COMPLETED' AND file_id IN (SELECT file_id FROM nodes WHERE file_id = ANY($2) \
                 AND NOT cached)",
                &[&id, &cached],
            )
            .await?;
        }
        complete_finished(&tx, &[id], at).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn release_holds(&self, request: Option<i64>, ids: &[FileId]) -> Result<usize> {
        let c = self.pool.get().await?;
        release_holds(&*c, request, ids).await
    }

    async fn forget_finished_stage_requests(&self, before: Timestamp, now: Timestamp) -> Result<u64> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let ids: Vec<i64> = tx
            .query(
                &FORGET_SQL.replace("?1", "$1").replace("?2", "$2"),
                &[&before.0, &now.0],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        lock_requests(&tx, &ids).await?;
        tx.execute("DELETE FROM stage_files WHERE request = ANY($1)", &[&ids])
            .await?;
        tx.execute("DELETE FROM stage_requests WHERE id = ANY($1)", &[&ids])
            .await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    async fn release_request(&self, id: i64) -> Result<usize> {
        let c = self.pool.get().await?;
        Ok(c.execute(
            "UPDATE stage_files SET held_until = NULL WHERE request = $1 AND held_until IS NOT NULL",
            &[&id],
        )
        .await? as usize)
    }

    async fn stage_request(&self, id: i64) -> Result<Option<StageRequest>> {
        let c = self.pool.get().await?;
        let Some(h) = c
            .query_opt(
                "SELECT owner, created, started, completed, lifetime_s FROM stage_requests WHERE id = $1",
                &[&id],
            )
            .await?
        else {
            return Ok(None);
        };
        let rows = c
            .query(
                "SELECT path, file_id, state, error, started, finished FROM stage_files \
                 WHERE request = $1 ORDER BY idx",
                &[&id],
            )
            .await?;
        let mut files = Vec::with_capacity(rows.len());
        for r in &rows {
            files.push(StageFile {
                path: r.get(0),
                file_id: r.get::<_, Option<String>>(1).as_deref().and_then(FileId::parse),
                state: r.get::<_, String>(2).parse().map_err(CatalogError::Invalid)?,
                error: r.get(3),
                started: r.get::<_, Option<i64>>(4).map(Timestamp),
                finished: r.get::<_, Option<i64>>(5).map(Timestamp),
            });
        }
        Ok(Some(StageRequest {
            id,
            owner: h.get(0),
            created: Timestamp(h.get(1)),
            started: h.get::<_, Option<i64>>(2).map(Timestamp),
            completed: h.get::<_, Option<i64>>(3).map(Timestamp),
            lifetime_s: h.get::<_, i64>(4) as u64,
            files,
        }))
    }

    async fn open_stage_files(&self) -> Result<Vec<(i64, FileId)>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT request, file_id FROM stage_files WHERE state IN ('SUBMITTED', 'STARTED') \
                 AND file_id IS NOT NULL ORDER BY request, idx",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| FileId::parse(r.get(1)).map(|id| (r.get(0), id)))
            .collect())
    }

    async fn stage_files_started(&self, ids: &[FileId], at: Timestamp) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        mark_started(&tx, ids, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn begin_stages(&self, packages: &[String], at: Timestamp) -> Result<Vec<BegunStage>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let mut members: std::collections::HashMap<String, Vec<FileId>> = Default::default();
        for r in tx
            .query(
                "SELECT package, file_id FROM members WHERE package = ANY($1)",
                &[&packages],
            )
            .await?
        {
            let id: String = r.get(1);
            let id = FileId::parse(&id).ok_or_else(|| CatalogError::Invalid(format!("bad file id {id}")))?;
            members.entry(r.get(0)).or_default().push(id);
        }
        let needing: std::collections::HashSet<String> = tx
            .query(
                "SELECT DISTINCT m.package FROM members m JOIN nodes n ON n.file_id = m.file_id \
                 WHERE m.package = ANY($1) AND NOT n.cached",
                &[&packages],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let out: Vec<BegunStage> = packages
            .iter()
            .map(|p| BegunStage {
                members: members.get(p).cloned().unwrap_or_default(),
                needs_read: needing.contains(p),
            })
            .collect();
        let started: Vec<FileId> = out
            .iter()
            .filter(|b| b.needs_read)
            .flat_map(|b| b.members.iter().copied())
            .collect();
        mark_started(&tx, &started, at).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn stage_request_owner(&self, id: i64) -> Result<Option<String>> {
        let c = self.pool.get().await?;
        Ok(c.query_opt("SELECT owner FROM stage_requests WHERE id = $1", &[&id])
            .await?
            .map(|r| r.get(0)))
    }

    async fn stage_files_finished(&self, ids: &[FileId], at: Timestamp, error: Option<&str>) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let requests = requests_of(&tx, ids).await?;
        let state = match error {
            None => StageState::Completed,
            Some(_) => StageState::Failed,
        };
        tx.execute(
            "UPDATE stage_files SET state = $2, error = $3, finished = $4, started = COALESCE(started, $4) \
             WHERE file_id = ANY($1) AND state IN ('SUBMITTED', 'STARTED')",
            &[&texts(ids), &state.as_str(), &error, &at.0],
        )
        .await?;
        complete_finished(&tx, &requests, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn cancel_stage_files(&self, id: i64, paths: Option<&[String]>, at: Timestamp) -> Result<usize> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        lock_requests(&tx, &[id]).await?;
        let n = match paths {
            None => {
                tx.execute(
                    "UPDATE stage_files SET state = 'CANCELLED', finished = $2 \
                     WHERE request = $1 AND state IN ('SUBMITTED', 'STARTED')",
                    &[&id, &at.0],
                )
                .await?
            }
            Some(paths) => {
                tx.execute(
                    "UPDATE stage_files SET state = 'CANCELLED', finished = $3 \
                     WHERE request = $1 AND path = ANY($2) AND state IN ('SUBMITTED', 'STARTED')",
                    &[&id, &paths, &at.0],
                )
                .await?
            }
        };
        complete_finished(&tx, &[id], at).await?;
        tx.commit().await?;
        Ok(n as usize)
    }

    async fn delete_stage_request(&self, id: i64) -> Result<bool> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute("DELETE FROM stage_files WHERE request = $1", &[&id]).await?;
        let n = tx.execute("DELETE FROM stage_requests WHERE id = $1", &[&id]).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn stage_request_packages(&self, id: i64) -> Result<Vec<StagePackage>> {
        let c = self.pool.get().await?;
        let rows = c.query(&stage_packages_sql().replace("?1", "$1"), &[&id]).await?;
        rows.iter().map(crate::rows::stage_package).collect()
    }

    async fn stage_request_counts(&self, id: i64) -> Result<Option<(String, Vec<(StageState, u64)>)>> {
        let c = self.pool.get().await?;
        let Some(owner) = c
            .query_opt("SELECT owner FROM stage_requests WHERE id = $1", &[&id])
            .await?
        else {
            return Ok(None);
        };
        let rows = c
            .query(
                "SELECT state, COUNT(*) FROM stage_files WHERE request = $1 GROUP BY state",
                &[&id],
            )
            .await?;
        let mut counts = Vec::new();
        for r in &rows {
            let state: String = r.get(0);
            counts.push((state.parse().map_err(CatalogError::Invalid)?, r.get::<_, i64>(1) as u64));
        }
        Ok(Some((owner.get(0), counts)))
    }
    async fn settle_open_stage_files(&self, at: Timestamp) -> Result<u64> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Every unfinished request locked first, in id order, as every
        // change of a request's files locks it (`requests_of`).
        tx.execute(
            "SELECT id FROM stage_requests WHERE completed IS NULL ORDER BY id FOR UPDATE",
            &[],
        )
        .await?;
        let mut requests: Vec<i64> = Vec::new();
        for sql in SETTLE_OPEN_SQL {
            let rows = tx.query(&sql.replace("?1", "$1"), &[&at.0]).await?;
            requests.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
        }
        let n = requests.len() as u64;
        requests.sort_unstable();
        requests.dedup();
        complete_finished(&tx, &requests, at).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn open_stage_packages(&self, limit: usize) -> Result<Vec<crate::Package>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(&open_stage_packages_sql().replace("?1", "$1"), &[&(limit as i64)])
            .await?;
        rows.iter().map(crate::rows::package).collect()
    }

    async fn stage_packages_wanted(&self, packages: &[String]) -> Result<Vec<String>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT DISTINCT m.package FROM members m JOIN stage_files s ON s.file_id = m.file_id \
                 AND s.state IN ('SUBMITTED', 'STARTED') WHERE m.package = ANY($1)",
                &[&packages],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn uncached_members(&self, package: &str) -> Result<Vec<FileId>> {
        let c = self.pool.get().await?;
        let rows = c.query(&UNCACHED_MEMBERS_SQL.replace("?1", "$1"), &[&package]).await?;
        rows.iter()
            .map(|r| {
                let s: String = r.get(0);
                FileId::parse(&s).ok_or_else(|| CatalogError::Invalid(format!("bad file id {s}")))
            })
            .collect()
    }
}
