//! Stage requests in the SQLite catalog.

use crate::rows::{open_stage_packages_sql, stage_packages_sql, PACKAGE_WANTED_SQL, SETTLE_OPEN_SQL};
use crate::sqlite_common::next_id;
use crate::stage::{
    new_open, within_open_limit, BegunStage, NewStageFile, StageCatalog, StageFile, StagePackage, StageRequest,
    StageState, FORGET_SQL, OPEN_OF_OWNER_SQL, UNCACHED_MEMBERS_SQL,
};
use crate::{CatalogError, Result, SqliteCatalog};
use async_trait::async_trait;
use bale_util::{FileId, Timestamp};
use rusqlite::{params, OptionalExtension, Transaction};

/// Completes the requests among `requests` that have no open file left.
fn complete_finished(tx: &Transaction<'_>, requests: &[i64], at: Timestamp) -> Result<()> {
    let mut st = tx.prepare_cached(
        "UPDATE stage_requests SET completed = ?2 WHERE id = ?1 AND completed IS NULL \
         AND NOT EXISTS (SELECT 1 FROM stage_files WHERE request = ?1 AND state IN ('SUBMITTED', 'STARTED'))",
    )?;
    for r in requests {
        st.execute(params![r, at.0])?;
    }
    Ok(())
}

/// The open stage files of `ids` (in any request) are STARTED at `at`,
/// and their requests started.
fn mark_started(tx: &Transaction<'_>, ids: &[FileId], at: Timestamp) -> Result<()> {
    let requests = requests_of(tx, ids)?;
    let mut st = tx.prepare_cached(
        // The IN term lets SQLite use the partial index of open files
        // (without it every update scans the table).
        "UPDATE stage_files SET state = 'STARTED', started = ?2 \
         WHERE file_id = ?1 AND state IN ('SUBMITTED', 'STARTED') AND state = 'SUBMITTED'",
    )?;
    for id in ids {
        st.execute(params![id.to_string(), at.0])?;
    }
    let mut st = tx.prepare_cached("UPDATE stage_requests SET started = ?2 WHERE id = ?1 AND started IS NULL")?;
    for r in requests {
        st.execute(params![r, at.0])?;
    }
    Ok(())
}

/// The requests with open files among `ids`.
fn requests_of(tx: &Transaction<'_>, ids: &[FileId]) -> Result<Vec<i64>> {
    let mut st = tx.prepare_cached(
        "SELECT DISTINCT request FROM stage_files WHERE file_id = ?1 AND state IN ('SUBMITTED', 'STARTED')",
    )?;
    let mut out = Vec::new();
    for id in ids {
        for r in st.query_map([id.to_string()], |r| r.get(0))? {
            out.push(r?);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// [`StageCatalog::release_holds`] inside a transaction (`unpin` of a
/// request's pin owner uses it too).
pub(crate) fn release_holds(tx: &Transaction<'_>, request: Option<i64>, ids: &[FileId]) -> Result<usize> {
    let mut st = tx.prepare_cached(
        "UPDATE stage_files SET held_until = NULL WHERE file_id = ?1 AND held_until IS NOT NULL \
         AND (?2 IS NULL OR request = ?2)",
    )?;
    let mut n = 0;
    for id in ids {
        n += st.execute(params![id.to_string(), request])?;
    }
    Ok(n)
}

#[async_trait]
impl StageCatalog for SqliteCatalog {
    async fn create_stage_request(
        &self,
        owner: &str,
        at: Timestamp,
        lifetime_s: u64,
        files: Vec<NewStageFile>,
        max_open: u64,
    ) -> Result<i64> {
        let owner = owner.to_string();
        self.write(move |tx| {
            if max_open < u64::MAX {
                let open: i64 = tx
                    .prepare_cached(OPEN_OF_OWNER_SQL)?
                    .query_row([&owner], |r| r.get(0))?;
                let new = new_open(&files);
                within_open_limit(&owner, open as u64, new, max_open)?;
            }
            let id = next_id(tx, "stage_requests")?;
            tx.execute(
                "INSERT INTO stage_requests (id, owner, created, lifetime_s) VALUES (?1, ?2, ?3, ?4)",
                params![id, owner, at.0, lifetime_s as i64],
            )?;
            let mut st = tx.prepare_cached(
                "INSERT INTO stage_files (request, idx, path, file_id, state, error, finished, held_until) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let held_until = at.0 + lifetime_s as i64 * 1_000_000_000;
            for (i, f) in files.iter().enumerate() {
                let finished = (!f.state.is_open()).then_some(at.0);
                st.execute(params![
                    id,
                    i as i64,
                    f.path,
                    f.file_id.map(|f| f.to_string()),
                    f.state.as_str(),
                    f.error,
                    finished,
                    f.file_id.map(|_| held_until)
                ])?;
            }
            // Files found cached that a purge took since (the one writer
            // orders this transaction after it).
            tx.execute(
                "UPDATE stage_files SET state = 'SUBMITTED', finished = NULL WHERE request = ?1 \
                 AND state = 'COMPLETED' AND file_id IN (SELECT file_id FROM nodes WHERE kind = 2 AND cached = 0)",
                [id],
            )?;
            complete_finished(tx, &[id], at)?;
            Ok(id)
        })
        .await
    }

    async fn release_holds(&self, request: Option<i64>, ids: &[FileId]) -> Result<usize> {
        let ids = ids.to_vec();
        self.write(move |tx| release_holds(tx, request, &ids)).await
    }

    async fn forget_finished_stage_requests(&self, before: Timestamp, now: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            let ids: Vec<i64> = tx
                .prepare_cached(FORGET_SQL)?
                .query_map(params![before.0, now.0], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut files = tx.prepare_cached("DELETE FROM stage_files WHERE request = ?1")?;
            let mut reqs = tx.prepare_cached("DELETE FROM stage_requests WHERE id = ?1")?;
            for id in &ids {
                files.execute([id])?;
                reqs.execute([id])?;
            }
            Ok(ids.len() as u64)
        })
        .await
    }

    async fn release_request(&self, id: i64) -> Result<usize> {
        self.write(move |tx| {
            Ok(tx.execute(
                "UPDATE stage_files SET held_until = NULL WHERE request = ?1 AND held_until IS NOT NULL",
                [id],
            )?)
        })
        .await
    }

    async fn stage_request(&self, id: i64) -> Result<Option<StageRequest>> {
        self.read(move |c| {
            let head = c
                .prepare_cached(
                    "SELECT owner, created, started, completed, lifetime_s FROM stage_requests WHERE id = ?1",
                )?
                .query_row([id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .optional()?;
            let Some((owner, created, started, completed, lifetime_s)) = head else {
                return Ok(None);
            };
            let mut st = c.prepare_cached(
                "SELECT path, file_id, state, error, started, finished FROM stage_files \
                 WHERE request = ?1 ORDER BY idx",
            )?;
            let rows = st.query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            })?;
            let mut files = Vec::new();
            for r in rows {
                let (path, file_id, state, error, started, finished) = r?;
                files.push(StageFile {
                    path,
                    file_id: file_id.as_deref().and_then(FileId::parse),
                    state: state.parse().map_err(CatalogError::Invalid)?,
                    error,
                    started: started.map(Timestamp),
                    finished: finished.map(Timestamp),
                });
            }
            Ok(Some(StageRequest {
                id,
                owner,
                created: Timestamp(created),
                started: started.map(Timestamp),
                completed: completed.map(Timestamp),
                lifetime_s: lifetime_s as u64,
                files,
            }))
        })
        .await
    }

    async fn open_stage_files(&self) -> Result<Vec<(i64, FileId)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT request, file_id FROM stage_files WHERE state IN ('SUBMITTED', 'STARTED') \
                 AND file_id IS NOT NULL ORDER BY request, idx",
            )?;
            let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for r in rows {
                let (req, id) = r?;
                out.extend(FileId::parse(&id).map(|id| (req, id)));
            }
            Ok(out)
        })
        .await
    }

    async fn stage_files_started(&self, ids: &[FileId], at: Timestamp) -> Result<()> {
        let ids = ids.to_vec();
        self.write(move |tx| mark_started(tx, &ids, at)).await
    }

    async fn begin_stages(&self, packages: &[String], at: Timestamp) -> Result<Vec<BegunStage>> {
        let packages = packages.to_vec();
        self.write(move |tx| {
            let mut members = tx.prepare_cached("SELECT file_id FROM members WHERE package = ?1")?;
            let mut uncached = tx.prepare_cached(&format!("SELECT EXISTS ({UNCACHED_MEMBERS_SQL})"))?;
            let mut out = Vec::with_capacity(packages.len());
            let mut started = Vec::new();
            for p in &packages {
                let mut ids = Vec::new();
                for r in members.query_map([p], |r| r.get::<_, String>(0))? {
                    let r = r?;
                    ids.push(FileId::parse(&r).ok_or_else(|| CatalogError::Invalid(format!("bad file id {r}")))?);
                }
                let needs_read: bool = uncached.query_row([p], |r| r.get(0))?;
                if needs_read {
                    started.extend_from_slice(&ids);
                }
                out.push(BegunStage {
                    members: ids,
                    needs_read,
                });
            }
            mark_started(tx, &started, at)?;
            Ok(out)
        })
        .await
    }

    async fn stage_request_owner(&self, id: i64) -> Result<Option<String>> {
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT owner FROM stage_requests WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn stage_files_finished(&self, ids: &[FileId], at: Timestamp, error: Option<&str>) -> Result<()> {
        let (ids, error) = (ids.to_vec(), error.map(str::to_string));
        self.write(move |tx| {
            let requests = requests_of(tx, &ids)?;
            let state = match error {
                None => StageState::Completed,
                Some(_) => StageState::Failed,
            };
            let mut st = tx.prepare_cached(
                "UPDATE stage_files SET state = ?2, error = ?3, finished = ?4, started = COALESCE(started, ?4) \
                 WHERE file_id = ?1 AND state IN ('SUBMITTED', 'STARTED')",
            )?;
            for id in &ids {
                st.execute(params![id.to_string(), state.as_str(), error, at.0])?;
            }
            complete_finished(tx, &requests, at)
        })
        .await
    }

    async fn cancel_stage_files(&self, id: i64, paths: Option<&[String]>, at: Timestamp) -> Result<usize> {
        let paths = paths.map(|p| p.to_vec());
        self.write(move |tx| {
            let n = match &paths {
                None => tx.execute(
                    "UPDATE stage_files SET state = 'CANCELLED', finished = ?2 \
                     WHERE request = ?1 AND state IN ('SUBMITTED', 'STARTED')",
                    params![id, at.0],
                )?,
                Some(paths) => {
                    let mut st = tx.prepare_cached(
                        "UPDATE stage_files SET state = 'CANCELLED', finished = ?3 \
                         WHERE request = ?1 AND path = ?2 AND state IN ('SUBMITTED', 'STARTED')",
                    )?;
                    let mut n = 0;
                    for p in paths {
                        n += st.execute(params![id, p, at.0])?;
                    }
                    n
                }
            };
            complete_finished(tx, &[id], at)?;
            Ok(n)
        })
        .await
    }

    async fn delete_stage_request(&self, id: i64) -> Result<bool> {
        self.write(move |tx| {
            tx.execute("DELETE FROM stage_files WHERE request = ?1", [id])?;
            Ok(tx.execute("DELETE FROM stage_requests WHERE id = ?1", [id])? == 1)
        })
        .await
    }

    async fn stage_request_packages(&self, id: i64) -> Result<Vec<StagePackage>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&stage_packages_sql())?;
            let rows = st.query_map([id], |r| crate::rows::stage_package(r))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn stage_request_counts(&self, id: i64) -> Result<Option<(String, Vec<(StageState, u64)>)>> {
        self.read(move |c| {
            let owner: Option<String> = c
                .prepare_cached("SELECT owner FROM stage_requests WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            let Some(owner) = owner else { return Ok(None) };
            let mut st =
                c.prepare_cached("SELECT state, COUNT(*) FROM stage_files WHERE request = ?1 GROUP BY state")?;
            let rows = st.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut counts = Vec::new();
            for r in rows {
                let (state, n) = r?;
                counts.push((state.parse().map_err(CatalogError::Invalid)?, n as u64));
            }
            Ok(Some((owner, counts)))
        })
        .await
    }
    async fn settle_open_stage_files(&self, at: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            let mut requests = Vec::new();
            for sql in SETTLE_OPEN_SQL {
                let mut st = tx.prepare_cached(sql)?;
                for r in st.query_map([at.0], |r| r.get::<_, i64>(0))? {
                    requests.push(r?);
                }
            }
            let n = requests.len() as u64;
            requests.sort_unstable();
            requests.dedup();
            complete_finished(tx, &requests, at)?;
            Ok(n)
        })
        .await
    }

    async fn open_stage_packages(&self, limit: usize) -> Result<Vec<crate::Package>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&open_stage_packages_sql())?;
            let rows = st.query_map([limit as i64], |r| crate::rows::package(r))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn stage_packages_wanted(&self, packages: &[String]) -> Result<Vec<String>> {
        let packages = packages.to_vec();
        self.read(move |c| {
            let mut st = c.prepare_cached(PACKAGE_WANTED_SQL)?;
            let mut out = Vec::new();
            for p in packages {
                if st.exists([&p])? {
                    out.push(p);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn uncached_members(&self, package: &str) -> Result<Vec<FileId>> {
        let package = package.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(UNCACHED_MEMBERS_SQL)?;
            let rows = st.query_map([package], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for r in rows {
                let r = r?;
                out.push(FileId::parse(&r).ok_or_else(|| CatalogError::Invalid(format!("bad file id {r}")))?);
            }
            Ok(out)
        })
        .await
    }
}
