//! What every half of the SQLite catalog uses: ids from the sequences,
//! node, job and package rows, archive jobs, pool membership, and what a
//! file's removal releases.

use crate::rows::{self, JOB_COLS};
use crate::rules;
use crate::*;
use bale_util::{FileId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

/// The next id of the sequence `name` (one of the rows migration v6
/// created); never one handed out before, even if its row is gone.
pub(crate) fn next_id(tx: &Transaction<'_>, name: &str) -> Result<i64> {
    Ok(tx
        .prepare_cached("UPDATE sequences SET next = next + 1 WHERE name = ?1 RETURNING next - 1")?
        .query_row([name], |r| r.get(0))?)
}

pub(crate) const NODE_COLS: &str =
    "id, parent, name, kind, owner, grp, mode, size, ctime, mtime, atime, file_id, adler32, \
     storage_group, file_family, file_family_width, wrapper, library, cached, write_once";

pub(crate) fn node_from_row(r: &Row<'_>) -> rusqlite::Result<Node> {
    rows::node(r, 0)
}

/// Adds a file to its pool inside the transaction recording the file; the
/// pool is created or takes the latest limits of its rule.
pub(crate) fn join_pool(tx: &Transaction<'_>, p: &PoolTarget, file: FileId, size: u64, at: Timestamp) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO pools (key, rule, library, storage_group, file_family, wrapper, width, target_size, max_files, \
         max_wait_ms, copies) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (key) DO UPDATE SET \
         rule = excluded.rule, width = excluded.width, target_size = excluded.target_size, \
         max_files = excluded.max_files, max_wait_ms = excluded.max_wait_ms, copies = excluded.copies",
    )?
    .execute(params![
        p.key,
        p.rule,
        p.target.library,
        p.target.family.storage_group,
        p.target.family.file_family,
        p.target.family.wrapper,
        p.target.width as i64,
        p.limits.target_size as i64,
        p.limits.max_files as i64,
        p.limits.max_wait_ms as i64,
        crate::rows::join_copies(&p.target)
    ])?;
    tx.prepare_cached("INSERT INTO pool_files (file_id, pool, size, joined) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![file.to_string(), p.key, size as i64, at.0])?;
    Ok(())
}

pub(crate) fn get_job(c: &Connection, id: i64) -> Result<Option<ArchiveJob>> {
    let mut st = c.prepare_cached(&format!("SELECT {JOB_COLS} FROM archive_jobs WHERE id = ?1"))?;
    let Some(mut job) = st.query_row([id], job_from_row).optional()? else {
        return Ok(None);
    };
    job_files(c, &mut job)?;
    Ok(Some(job))
}

pub(crate) fn package_from_row(r: &Row<'_>) -> rusqlite::Result<Package> {
    rows::package(r)
}

pub(crate) fn job_from_row(r: &Row<'_>) -> rusqlite::Result<ArchiveJob> {
    rows::job(r)
}

pub(crate) fn job_files(c: &Connection, job: &mut ArchiveJob) -> Result<()> {
    let mut st = c.prepare_cached("SELECT file_id FROM job_files WHERE job = ?1 ORDER BY file_id")?;
    let ids = st.query_map([job.id], |r| r.get::<_, String>(0))?;
    for id in ids {
        job.files.extend(FileId::parse(&id?));
    }
    Ok(())
}

/// Creates an archive job for `files` (id, size) inside a transaction;
/// `pool` names the pool it closes.
pub(crate) fn create_job(
    tx: &Transaction<'_>,
    t: &JobTarget,
    files: &[(FileId, u64)],
    at: Timestamp,
    pool: Option<&str>,
) -> Result<i64> {
    let bytes: u64 = files.iter().map(|f| f.1).sum();
    let id = next_id(tx, "archive_jobs")?;
    tx.prepare_cached(
        "INSERT INTO archive_jobs (id, state, library, storage_group, file_family, wrapper, width, bytes, created, \
         pool, copies) VALUES (?9, 'queued', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10)",
    )?
    .execute(params![
        t.library,
        t.family.storage_group,
        t.family.file_family,
        t.family.wrapper,
        t.width as i64,
        bytes as i64,
        at.0,
        pool,
        id,
        crate::rows::join_copies(t)
    ])?;
    let mut st = tx.prepare_cached("INSERT INTO job_files (job, file_id) VALUES (?1, ?2)")?;
    for (f, _) in files {
        st.execute(params![id, f.to_string()])?;
    }
    Ok(id)
}

/// What removing files means for tape: they leave unfinished archive jobs
/// (jobs left empty go) and open pools (pools left empty go), and their
/// members in recorded packages become dead bytes.
pub(crate) fn release_files(tx: &Transaction<'_>, nodes: &[Node]) -> Result<()> {
    // They no longer count against their storage groups' quotas.
    apply_usage(tx, &rules::usage_of(nodes, -1))?;
    let mut find = tx.prepare_cached("SELECT job FROM job_files WHERE file_id = ?1")?;
    let mut del = tx.prepare_cached("DELETE FROM job_files WHERE file_id = ?1")?;
    let mut drop_empty = tx.prepare_cached(
        "DELETE FROM archive_jobs WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM job_files WHERE job = ?1)",
    )?;
    let mut leave_pool = tx.prepare_cached("DELETE FROM pool_files WHERE file_id = ?1 RETURNING pool")?;
    let mut drop_pool = tx
        .prepare_cached("DELETE FROM pools WHERE key = ?1 AND NOT EXISTS (SELECT 1 FROM pool_files WHERE pool = ?1)")?;
    let mut dead = tx.prepare_cached(
        "UPDATE packages SET dead_members = dead_members + 1, \
         dead_bytes = dead_bytes + (SELECT m.size FROM members m WHERE m.package = packages.id AND m.file_id = ?1) \
         WHERE id IN (SELECT package FROM members WHERE file_id = ?1)",
    )?;
    // A file's pins go with it.
    let mut unpin = tx.prepare_cached("DELETE FROM pins WHERE file_id = ?1")?;
    for id in nodes.iter().filter_map(|n| n.file_id) {
        let id = id.to_string();
        dead.execute([&id])?;
        unpin.execute([&id])?;
        let pool: Option<String> = leave_pool.query_row([&id], |r| r.get(0)).optional()?;
        if let Some(pool) = pool {
            drop_pool.execute([pool])?;
        }
        let jobs: Vec<i64> = find.query_map([&id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        if jobs.is_empty() {
            continue;
        }
        del.execute([&id])?;
        for j in jobs {
            drop_empty.execute([j])?;
        }
    }
    Ok(())
}

/// Adds files and bytes to storage groups' use.
pub(crate) fn apply_usage(tx: &Transaction<'_>, deltas: &[(String, i64, i64)]) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO group_usage (storage_group, files, bytes) VALUES (?1, ?2, ?3) \
         ON CONFLICT (storage_group) DO UPDATE SET files = files + excluded.files, bytes = bytes + excluded.bytes",
    )?;
    for (g, files, bytes) in deltas.iter().filter(|d| d.1 != 0 || d.2 != 0) {
        st.execute(params![g, files, bytes])?;
    }
    Ok(())
}
