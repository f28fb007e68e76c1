//! Cache residency and pins in the PostgreSQL catalog.

use crate::postgres_common::{node_from_row, NODE_COLS};
use crate::residency::{held, pins_query, purgeable, CacheCatalog, CacheUsage, Pin, COPY_LOST_SQL};
use crate::NodeId;
use crate::{Node, PostgresCatalog, Result};
use async_trait::async_trait;
use bale_util::{FileId, Timestamp};

fn texts(ids: &[FileId]) -> Vec<String> {
    ids.iter().map(|i| i.to_string()).collect()
}

fn parsed(rows: &[tokio_postgres::Row]) -> Vec<FileId> {
    rows.iter().filter_map(|r| FileId::parse(r.get(0))).collect()
}

#[async_trait]
impl CacheCatalog for PostgresCatalog {
    async fn mark_purged(&self, ids: &[FileId], now: Timestamp) -> Result<Vec<FileId>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // A pin taken by a transaction that commits while this one runs is
        // respected: the files' rows are locked first, and pins are taken
        // under the same row locks (`pin`), as are the holds of a stage
        // request on files it found cached (`create_stage_request`).
        crate::postgres_common::lock_files(&tx, &texts(ids)).await?;
        let rows = tx
            .query(
                &format!(
                    "UPDATE nodes AS n SET cached = FALSE WHERE n.file_id = ANY($1) AND {} RETURNING n.file_id",
                    purgeable("n.cached", "$2")
                ),
                &[&texts(ids), &now.0],
            )
            .await?;
        tx.commit().await?;
        Ok(parsed(&rows))
    }

    async fn mark_staged(&self, ids: &[FileId]) -> Result<Vec<FileId>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        crate::postgres_common::lock_files(&tx, &texts(ids)).await?;
        let rows = tx
            .query(
                "UPDATE nodes SET cached = TRUE WHERE file_id = ANY($1) RETURNING file_id",
                &[&texts(ids)],
            )
            .await?;
        tx.commit().await?;
        Ok(parsed(&rows))
    }

    async fn purge_candidates(&self, now: Timestamp, limit: usize) -> Result<Vec<Node>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {NODE_COLS} FROM nodes n WHERE {} ORDER BY n.atime, n.id LIMIT $2",
                    purgeable("n.cached", "$1")
                ),
                &[&now.0, &(limit as i64)],
            )
            .await?;
        rows.iter().map(|r| node_from_row(r, 0)).collect()
    }

    async fn pin(&self, ids: &[FileId], owner: &str, now: Timestamp, expires: Timestamp) -> Result<usize> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // The files' rows are locked, so that a purge in flight either
        // finishes first (the pin then holds an uncached file until it is
        // staged) or sees the pin.
        tx.query(
            "SELECT 1 FROM nodes WHERE file_id = ANY($1) ORDER BY id FOR SHARE",
            &[&texts(ids)],
        )
        .await?;
        let n = tx
            .execute(
                "INSERT INTO pins (file_id, owner, created, expires) \
                 SELECT n.file_id, $2, $3, $4 FROM nodes n WHERE n.file_id = ANY($1) \
                 ON CONFLICT (file_id, owner) DO UPDATE SET expires = GREATEST(pins.expires, EXCLUDED.expires)",
                &[&texts(ids), &owner, &now.0, &expires.0],
            )
            .await?;
        tx.commit().await?;
        Ok(n as usize)
    }

    async fn unpin(&self, ids: &[FileId], owner: &str) -> Result<usize> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let mut n = tx
            .execute(
                "DELETE FROM pins WHERE file_id = ANY($1) AND owner = $2",
                &[&texts(ids), &owner],
            )
            .await? as usize;
        if let Some(request) = crate::stage::stage_request_of(owner) {
            n += crate::postgres_stage::release_holds(&tx, Some(request), ids).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn pins(&self, id: FileId, now: Timestamp) -> Result<Vec<Pin>> {
        let c = self.pool.get().await?;
        let rows = c.query(&pins_query('$'), &[&id.to_string(), &now.0]).await?;
        Ok(rows
            .iter()
            .map(|r| Pin {
                file_id: id,
                owner: r.get(0),
                created: Timestamp(r.get(1)),
                expires: Timestamp(r.get(2)),
            })
            .collect())
    }

    async fn expire_pins(&self, now: Timestamp) -> Result<usize> {
        let c = self.pool.get().await?;
        Ok(c.execute("DELETE FROM pins WHERE expires <= $1", &[&now.0]).await? as usize)
    }

    async fn cache_kept(&self, now: Timestamp) -> Result<Vec<(String, u64, u64)>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &crate::residency::kept_sql("n.cached", "$1")
                    .replace("COALESCE(SUM(size), 0)", "COALESCE(SUM(size), 0)::bigint"),
                &[&now.0],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1) as u64,
                    r.get::<_, i64>(2) as u64,
                )
            })
            .collect())
    }

    async fn cache_usage(&self, now: Timestamp) -> Result<CacheUsage> {
        let c = self.pool.get().await?;
        let r = c
            .query_one(
                &format!(
                    "SELECT COUNT(*), COALESCE(SUM(n.size), 0)::bigint, \
                     COUNT(*) FILTER (WHERE {h}), \
                     COALESCE(SUM(n.size) FILTER (WHERE {h}), 0)::bigint, \
                     COUNT(*) FILTER (WHERE {p}), \
                     COALESCE(SUM(n.size) FILTER (WHERE {p}), 0)::bigint \
                     FROM nodes n WHERE n.kind = 2 AND n.cached",
                    p = purgeable("n.cached", "$1"),
                    h = held("$1")
                ),
                &[&now.0],
            )
            .await?;
        Ok(CacheUsage {
            cached_files: r.get::<_, i64>(0) as u64,
            cached_bytes: r.get::<_, i64>(1) as u64,
            pinned_files: r.get::<_, i64>(2) as u64,
            pinned_bytes: r.get::<_, i64>(3) as u64,
            purgeable_files: r.get::<_, i64>(4) as u64,
            purgeable_bytes: r.get::<_, i64>(5) as u64,
        })
    }

    async fn cached_files(&self, after: NodeId, limit: usize) -> Result<Vec<Node>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {NODE_COLS} FROM nodes n WHERE n.id > $1 AND n.kind = 2 AND n.cached \
                     ORDER BY n.id LIMIT $2"
                ),
                &[&after, &(limit as i64)],
            )
            .await?;
        rows.iter().map(|r| node_from_row(r, 0)).collect()
    }

    async fn mark_copies_lost(&self, ids: &[FileId]) -> Result<Vec<FileId>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        crate::postgres_common::lock_files(&tx, &texts(ids)).await?;
        let rows = tx
            .query(
                &format!(
                    "UPDATE nodes SET cached = FALSE WHERE file_id = ANY($1) AND {COPY_LOST_SQL} RETURNING file_id"
                ),
                &[&texts(ids)],
            )
            .await?;
        tx.commit().await?;
        Ok(parsed(&rows))
    }
}
