//! What every half of the PostgreSQL catalog uses: node, job and package
//! rows, archive jobs, pool membership, the lock that orders deletes
//! against package commits, and what a file's removal releases.

use crate::rows::{self, JOB_COLS};
use crate::*;
use bale_util::{FileId, Timestamp};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

pub(crate) const NODE_COLS: &str =
    "n.id, n.parent, n.name, n.kind, n.owner, n.grp, n.mode, n.size, n.ctime, n.mtime, n.atime, \
     n.file_id, n.adler32, n.storage_group, n.file_family, n.file_family_width, n.wrapper, n.library, n.cached, n.write_once";

pub(crate) fn node_from_row(r: &Row, o: usize) -> Result<Node> {
    rows::node(r, o)
}

/// Adds a file to its pool inside the transaction recording the file; the
/// pool is created or takes the latest limits of its rule.
pub(crate) async fn join_pool(
    tx: &impl GenericClient,
    p: &PoolTarget,
    file: FileId,
    size: u64,
    at: Timestamp,
) -> Result<()> {
    let st = tx
        .prepare_cached(
            "INSERT INTO pools (key, rule, library, storage_group, file_family, wrapper, width, target_size, \
             max_files, max_wait_ms, copies) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (key) DO UPDATE SET rule = excluded.rule, width = excluded.width, \
             target_size = excluded.target_size, max_files = excluded.max_files, \
             max_wait_ms = excluded.max_wait_ms, copies = excluded.copies",
        )
        .await?;
    tx.execute(
        &st,
        &[
            &p.key,
            &p.rule,
            &p.target.library,
            &p.target.family.storage_group,
            &p.target.family.file_family,
            &p.target.family.wrapper,
            &(p.target.width as i32),
            &(p.limits.target_size as i64),
            &(p.limits.max_files as i32),
            &(p.limits.max_wait_ms as i64),
            &crate::rows::join_copies(&p.target),
        ],
    )
    .await?;
    let st = tx
        .prepare_cached("INSERT INTO pool_files (file_id, pool, size, joined) VALUES ($1, $2, $3, $4)")
        .await?;
    tx.execute(&st, &[&file.to_string(), &p.key, &(size as i64), &at.0])
        .await?;
    Ok(())
}

pub(crate) async fn get_job(c: &impl GenericClient, id: i64) -> Result<Option<ArchiveJob>> {
    let row = c
        .query_opt(&format!("SELECT {JOB_COLS} FROM archive_jobs WHERE id = $1"), &[&id])
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut job = job_from_row(&row)?;
    job_files(c, &mut job).await?;
    Ok(Some(job))
}

pub(crate) fn file_id(s: &str) -> Result<FileId> {
    FileId::parse(s).ok_or_else(|| bad(format!("bad file id {s}")))
}

pub(crate) fn bad(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::backend(format!("unreadable catalog row: {e}"), false)
}

pub(crate) fn package_from_row(r: &Row) -> Result<Package> {
    rows::package(r)
}

pub(crate) fn job_from_row(r: &Row) -> Result<ArchiveJob> {
    rows::job(r)
}

pub(crate) async fn job_files(c: &impl GenericClient, job: &mut ArchiveJob) -> Result<()> {
    let st = c
        .prepare_cached("SELECT file_id FROM job_files WHERE job = $1 ORDER BY file_id")
        .await?;
    for r in c.query(&st, &[&job.id]).await? {
        job.files.extend(FileId::parse(r.get(0)));
    }
    Ok(())
}

/// The advisory lock that orders deletes against package commits.
pub(crate) const DEAD_COUNT_LOCK: i64 = 0x6261_6c65_0001;

/// Dead counts are exact under concurrency: transactions that delete files
/// share this lock, a package commit holds it alone (`commit_tape_files`).
/// Without it a member deleted while its package's commit is in flight is
/// counted by neither: the commit cannot see the uncommitted delete, and the
/// delete cannot see the uncommitted member rows. With it, whichever
/// transaction comes second sees the other committed (each statement of a
/// READ COMMITTED transaction sees what committed before it started).
/// Deleting transactions take it FIRST, before any row lock: one that held
/// a row lock while it queued behind a waiting package commit could close a
/// cycle with a transaction that holds the lock and waits for that row.
pub(crate) async fn lock_for_deletes(tx: &impl GenericClient) -> Result<()> {
    tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&DEAD_COUNT_LOCK])
        .await?;
    Ok(())
}

/// The advisory lock that keeps paths within their limit.
pub(crate) const PATH_LENGTH_LOCK: i64 = 0x6261_6c65_0004;

/// Paths stay within their limit under concurrency: a transaction that
/// creates or renames entries reads the length of their directory's path
/// under this lock shared; a move of a directory (which may lengthen every
/// path below it) holds it alone while it measures what is below. Without
/// it a file created below a directory while that directory moves to a
/// longer path is seen by neither check (READ COMMITTED: each reads what
/// committed before its statement). Taken after [`lock_for_deletes`] and
/// before any row lock.
pub(crate) async fn lock_for_paths(tx: &impl GenericClient, alone: bool) -> Result<()> {
    let sql = match alone {
        true => "SELECT pg_advisory_xact_lock($1)",
        false => "SELECT pg_advisory_xact_lock_shared($1)",
    };
    tx.execute(sql, &[&PATH_LENGTH_LOCK]).await?;
    Ok(())
}

/// Creates an archive job for `files` (id, size) inside a transaction;
/// `pool` names the pool it closes.
pub(crate) async fn create_job(
    tx: &impl GenericClient,
    t: &JobTarget,
    files: &[(FileId, u64)],
    at: Timestamp,
    pool: Option<&str>,
) -> Result<i64> {
    let bytes: u64 = files.iter().map(|f| f.1).sum();
    let st = tx
        .prepare_cached(
            "INSERT INTO archive_jobs (state, library, storage_group, file_family, wrapper, width, bytes, created, \
             pool, copies) VALUES ('queued', $1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .await?;
    let id: i64 = tx
        .query_one(
            &st,
            &[
                &t.library,
                &t.family.storage_group,
                &t.family.file_family,
                &t.family.wrapper,
                &(t.width as i32),
                &(bytes as i64),
                &at.0,
                &pool,
                &crate::rows::join_copies(t),
            ],
        )
        .await?
        .get(0);
    let ids: Vec<String> = files.iter().map(|f| f.0.to_string()).collect();
    tx.execute(
        "INSERT INTO job_files (job, file_id) SELECT $1, unnest($2::text[])",
        &[&id, &ids],
    )
    .await?;
    Ok(id)
}

/// What removing files means for tape: they leave unfinished archive jobs
/// (jobs left empty go) and open pools (pools left empty go), and their
/// members in recorded packages become dead bytes.
/// The caller takes the files off their storage groups' use at the end of
/// its transaction ([`crate::postgres_namespace::apply_usage`], last, so
/// that the use rows are always locked last and in one order).
pub(crate) async fn release_files(tx: &impl GenericClient, nodes: &[Node]) -> Result<()> {
    let ids: Vec<String> = nodes.iter().filter_map(|n| n.file_id).map(|f| f.to_string()).collect();
    if ids.is_empty() {
        return Ok(());
    }

    // Taken at the start of every transaction that may get here; again
    // here (a no-op then) so that no caller can forget it.
    lock_for_deletes(tx).await?;
    let st = tx
        .prepare_cached(
            "UPDATE packages p SET dead_members = p.dead_members + d.n, dead_bytes = p.dead_bytes + d.bytes \
             FROM (SELECT package, COUNT(*) AS n, SUM(size) AS bytes FROM members WHERE file_id = ANY($1) \
             GROUP BY package) d WHERE p.id = d.package",
        )
        .await?;
    tx.execute(&st, &[&ids]).await?;
    // The pools first, in key order, then their files: the order a pool's
    // close takes them in (its pool row FOR UPDATE, then its files), so
    // that a delete and a close of the same pool wait for each other
    // instead of deadlocking (found by the race test).
    let st = tx
        .prepare_cached(
            "SELECT key FROM pools WHERE key IN (SELECT pool FROM pool_files WHERE file_id = ANY($1)) \
             ORDER BY key FOR UPDATE",
        )
        .await?;
    tx.query(&st, &[&ids]).await?;
    let st = tx
        .prepare_cached(
            "WITH gone AS (DELETE FROM pool_files WHERE file_id = ANY($1) RETURNING pool) \
             DELETE FROM pools p WHERE p.key IN (SELECT pool FROM gone) \
             AND NOT EXISTS (SELECT 1 FROM pool_files f WHERE f.pool = p.key AND NOT f.file_id = ANY($1))",
        )
        .await?;
    tx.execute(&st, &[&ids]).await?;
    let st = tx
        .prepare_cached(
            "WITH gone AS (DELETE FROM job_files WHERE file_id = ANY($1) RETURNING job) \
             SELECT DISTINCT job FROM gone",
        )
        .await?;
    let jobs: Vec<i64> = tx.query(&st, &[&ids]).await?.iter().map(|r| r.get(0)).collect();
    // A file's pins go with it.
    let st = tx.prepare_cached("DELETE FROM pins WHERE file_id = ANY($1)").await?;
    tx.execute(&st, &[&ids]).await?;
    if !jobs.is_empty() {
        tx.execute(
            "DELETE FROM archive_jobs j WHERE j.id = ANY($1) AND NOT EXISTS (SELECT 1 FROM job_files f WHERE f.job = j.id)",
            &[&jobs],
        )
        .await?;
    }
    Ok(())
}

/// Locks the rows of nodes `ids` in id order. Every transaction that
/// changes several nodes takes their row locks this way first (a purge, a
/// stage's promotion, a delete of a tree, access times), so that two of
/// them never wait for each other in a circle (PostgreSQL would abort one
/// with 40P01: a purge racing a stage's promotion did, in a race run).
pub(crate) async fn lock_nodes(c: &impl GenericClient, ids: &[i64]) -> Result<()> {
    let st = c
        .prepare_cached("SELECT 1 FROM nodes WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .await?;
    c.query(&st, &[&ids]).await?;
    Ok(())
}

/// [`lock_nodes`] for the nodes of files `file_ids`.
pub(crate) async fn lock_files(c: &impl GenericClient, file_ids: &[String]) -> Result<()> {
    let st = c
        .prepare_cached("SELECT 1 FROM nodes WHERE file_id = ANY($1) ORDER BY id FOR UPDATE")
        .await?;
    c.query(&st, &[&file_ids]).await?;
    Ok(())
}
