//! Cache residency and pins in the SQLite catalog.

use crate::residency::{held, pins_query, purgeable, CacheCatalog, CacheUsage, Pin, COPY_LOST_SQL};
use crate::sqlite_common::{node_from_row, NODE_COLS};
use crate::NodeId;
use crate::{Node, Result, SqliteCatalog};
use async_trait::async_trait;
use bale_util::{FileId, Timestamp};
use rusqlite::params;

/// The ids among `ids` whose one-row update (`update`, given the id as
/// text) changed a row.
fn changed(ids: Vec<FileId>, mut update: impl FnMut(&str) -> rusqlite::Result<usize>) -> rusqlite::Result<Vec<FileId>> {
    let mut out = Vec::new();
    for id in ids {
        if update(&id.to_string())? == 1 {
            out.push(id);
        }
    }
    Ok(out)
}

#[async_trait]
impl CacheCatalog for SqliteCatalog {
    async fn mark_purged(&self, ids: &[FileId], now: Timestamp) -> Result<Vec<FileId>> {
        let ids = ids.to_vec();
        self.write(move |tx| {
            let mut st = tx.prepare_cached(&format!(
                "UPDATE nodes AS n SET cached = 0 WHERE n.file_id = ?1 AND {}",
                purgeable("n.cached = 1", "?2")
            ))?;
            Ok(changed(ids, |id| st.execute(params![id, now.0]))?)
        })
        .await
    }

    async fn mark_staged(&self, ids: &[FileId]) -> Result<Vec<FileId>> {
        let ids = ids.to_vec();
        self.write(move |tx| {
            let mut st = tx.prepare_cached("UPDATE nodes SET cached = 1 WHERE file_id = ?1")?;
            Ok(changed(ids, |id| st.execute([id]))?)
        })
        .await
    }

    async fn purge_candidates(&self, now: Timestamp, limit: usize) -> Result<Vec<Node>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {NODE_COLS} FROM nodes n WHERE {} ORDER BY n.atime, n.id LIMIT ?2",
                purgeable("n.cached = 1", "?1")
            ))?;
            let rows = st.query_map(params![now.0, limit as i64], node_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn pin(&self, ids: &[FileId], owner: &str, now: Timestamp, expires: Timestamp) -> Result<usize> {
        let (ids, owner) = (ids.to_vec(), owner.to_string());
        self.write(move |tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO pins (file_id, owner, created, expires) \
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM nodes WHERE file_id = ?1) \
                 ON CONFLICT (file_id, owner) DO UPDATE SET expires = MAX(expires, excluded.expires)",
            )?;
            let mut n = 0;
            for id in ids {
                n += st.execute(params![id.to_string(), owner, now.0, expires.0])?;
            }
            Ok(n)
        })
        .await
    }

    async fn unpin(&self, ids: &[FileId], owner: &str) -> Result<usize> {
        let (ids, owner) = (ids.to_vec(), owner.to_string());
        self.write(move |tx| {
            let mut st = tx.prepare_cached("DELETE FROM pins WHERE file_id = ?1 AND owner = ?2")?;
            let mut n = 0;
            for id in &ids {
                n += st.execute(params![id.to_string(), owner])?;
            }
            if let Some(request) = crate::stage::stage_request_of(&owner) {
                n += crate::sqlite_stage::release_holds(tx, Some(request), &ids)?;
            }
            Ok(n)
        })
        .await
    }

    async fn pins(&self, id: FileId, now: Timestamp) -> Result<Vec<Pin>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&pins_query('?'))?;
            let rows = st.query_map(params![id.to_string(), now.0], |r| {
                Ok(Pin {
                    file_id: id,
                    owner: r.get(0)?,
                    created: Timestamp(r.get(1)?),
                    expires: Timestamp(r.get(2)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn expire_pins(&self, now: Timestamp) -> Result<usize> {
        self.write(move |tx| Ok(tx.execute("DELETE FROM pins WHERE expires <= ?1", [now.0])?))
            .await
    }

    async fn cache_usage(&self, now: Timestamp) -> Result<CacheUsage> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT COUNT(*), COALESCE(SUM(n.size), 0), \
                 COALESCE(SUM(CASE WHEN {h} THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN {h} THEN n.size ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN {p} THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN {p} THEN n.size ELSE 0 END), 0) \
                 FROM nodes n WHERE n.kind = 2 AND n.cached = 1",
                p = purgeable("n.cached = 1", "?1"),
                h = held("?1")
            ))?;
            let u = st.query_row([now.0], |r| {
                Ok(CacheUsage {
                    cached_files: r.get::<_, i64>(0)? as u64,
                    cached_bytes: r.get::<_, i64>(1)? as u64,
                    pinned_files: r.get::<_, i64>(2)? as u64,
                    pinned_bytes: r.get::<_, i64>(3)? as u64,
                    purgeable_files: r.get::<_, i64>(4)? as u64,
                    purgeable_bytes: r.get::<_, i64>(5)? as u64,
                })
            })?;
            Ok(u)
        })
        .await
    }

    async fn cache_kept(&self, now: Timestamp) -> Result<Vec<(String, u64, u64)>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&crate::residency::kept_sql("n.cached = 1", "?1"))?;
            let rows = st.query_map([now.0], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn cached_files(&self, after: NodeId, limit: usize) -> Result<Vec<Node>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {NODE_COLS} FROM nodes WHERE id > ?1 AND kind = 2 AND cached = 1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = st.query_map(params![after, limit as i64], node_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn mark_copies_lost(&self, ids: &[FileId]) -> Result<Vec<FileId>> {
        let ids = ids.to_vec();
        self.write(move |tx| {
            let mut st = tx.prepare_cached(&format!(
                "UPDATE nodes SET cached = 0 WHERE file_id = ?1 AND {COPY_LOST_SQL}"
            ))?;
            Ok(changed(ids, |id| st.execute([id]))?)
        })
        .await
    }
}
