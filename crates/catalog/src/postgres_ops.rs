//! Queue depths and file history in the PostgreSQL catalog.

use crate::ops::{
    all_job_states, open_stage_states, Depths, FileEvent, OpsCatalog, OwnedPins, StageRequestSummary, ALARM_DEPTH_SQL,
    EVENT_COLS, JOB_DEPTH_SQL, OWNED_PINS_FIRST_SQL, OWNED_PINS_SQL, POOL_DEPTH_SQL, STAGE_DEPTH_SQL,
    STAGE_REQUESTS_SQL, STAGE_REQUEST_PAGE_SQL, STAGE_REQUEST_STATES_SQL, STAGE_REQUEST_TOTAL_SQL,
};
use crate::rows::Columns;
use crate::CatalogError;
use crate::{rows, PostgresCatalog, Result};
use async_trait::async_trait;
use bale_util::{FileId, Timestamp};
use deadpool_postgres::GenericClient;

async fn pairs(c: &impl GenericClient, sql: &str) -> Result<Vec<(String, u64)>> {
    let rows = c.query(sql, &[]).await?;
    rows.iter().map(|r| Ok((r.text(0)?, r.int(1)? as u64))).collect()
}

/// The insert of events in their order, one row per element of the arrays.
const INSERT_EVENTS_SQL: &str = "INSERT INTO file_events (time, file_id, kind, path, who, request, package, \
     data_offset, volume, count, detail) \
     SELECT e.t, e.f, e.k, e.p, e.w, e.r, e.pk, e.o, e.v, e.n, e.d \
     FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::bigint[], $9::text[], $10::bigint[], $11::text[]) WITH ORDINALITY AS e(t, f, k, p, w, r, pk, o, v, n, d, i) \
     ORDER BY e.i";

#[async_trait]
impl OpsCatalog for PostgresCatalog {
    async fn depths(&self) -> Result<Depths> {
        let c = self.pool.get().await?;
        // Four statements, each its own snapshot: gauges, not accounts.
        let r = c.query_one(POOL_DEPTH_SQL, &[]).await?;
        let jobs = c
            .query(JOB_DEPTH_SQL, &[])
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.int(1)? as u64, r.int(2)? as u64)))
            .collect::<Result<Vec<_>>>()?;
        let stage_requests = c.query_one(STAGE_REQUESTS_SQL, &[]).await?.int(0)? as u64;
        Ok(Depths {
            pools_open: r.int(0)? as u64,
            pool_files: r.int(1)? as u64,
            pool_bytes: r.int(2)? as u64,
            pool_oldest: r.opt_int(3)?.map(Timestamp),
            jobs: all_job_states(jobs),
            stage_files: open_stage_states(pairs(&*c, STAGE_DEPTH_SQL).await?),
            stage_requests,
            alarms: pairs(&*c, ALARM_DEPTH_SQL).await?,
        })
    }

    async fn record_events(&self, events: &[FileEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let time: Vec<i64> = events.iter().map(|e| e.time.0).collect();
        let file: Vec<String> = events.iter().map(|e| e.file_id.to_string()).collect();
        let kind: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let path: Vec<Option<&str>> = events.iter().map(|e| e.path.as_deref()).collect();
        let who: Vec<Option<&str>> = events.iter().map(|e| e.who.as_deref()).collect();
        let request: Vec<Option<&str>> = events.iter().map(|e| e.request.as_deref()).collect();
        let package: Vec<Option<&str>> = events.iter().map(|e| e.package.as_deref()).collect();
        let offset: Vec<Option<i64>> = events.iter().map(|e| e.offset.map(|o| o as i64)).collect();
        let volume: Vec<Option<&str>> = events.iter().map(|e| e.volume.as_deref()).collect();
        let count: Vec<i64> = events.iter().map(|e| e.count as i64).collect();
        let detail: Vec<Option<&str>> = events.iter().map(|e| e.detail.as_deref()).collect();
        let c = self.pool.get().await?;
        c.execute(
            INSERT_EVENTS_SQL,
            &[
                &time, &file, &kind, &path, &who, &request, &package, &offset, &volume, &count, &detail,
            ],
        )
        .await?;
        Ok(())
    }

    async fn file_history(&self, file_id: FileId, limit: usize) -> Result<Vec<FileEvent>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT * FROM (SELECT id, {EVENT_COLS} FROM file_events WHERE file_id = $1 \
                     ORDER BY time DESC, id DESC LIMIT $2) e ORDER BY time, id"
                ),
                &[&file_id.to_string(), &(limit as i64)],
            )
            .await?;
        rows.iter().map(rows::file_event).collect()
    }

    async fn prune_events(&self, before: Timestamp, limit: usize) -> Result<u64> {
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "DELETE FROM file_events WHERE id IN \
                 (SELECT id FROM file_events WHERE time < $1 ORDER BY time LIMIT $2)",
                &[&before.0, &(limit as i64)],
            )
            .await?;
        Ok(n)
    }

    async fn stage_requests_page(
        &self,
        owner: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(u64, Vec<StageRequestSummary>)> {
        let c = self.pool.get().await?;
        let total: i64 = c.query_one(STAGE_REQUEST_TOTAL_SQL, &[&owner]).await?.get(0);
        let heads = c
            .query(
                STAGE_REQUEST_PAGE_SQL,
                &[&owner, &before.unwrap_or(i64::MAX), &(limit as i64)],
            )
            .await?;
        let counts = c.prepare_cached(STAGE_REQUEST_STATES_SQL).await?;
        let mut out = Vec::with_capacity(heads.len());
        for h in &heads {
            let id: i64 = h.get(0);
            let mut by_state = Vec::new();
            for r in c.query(&counts, &[&id]).await? {
                let state: String = r.get(0);
                by_state.push((state.parse().map_err(CatalogError::Invalid)?, r.get::<_, i64>(1) as u64));
            }
            out.push(StageRequestSummary {
                id,
                owner: h.get(1),
                created: Timestamp(h.get(2)),
                completed: h.get::<_, Option<i64>>(3).map(Timestamp),
                counts: by_state,
            });
        }
        Ok((total as u64, out))
    }

    async fn owned_pins(&self, owner: &str, now: Timestamp, limit: usize) -> Result<OwnedPins> {
        let (count, bytes) = {
            let c = self.pool.get().await?;
            let r = c.query_one(OWNED_PINS_SQL, &[&owner, &now.0]).await?;
            (r.get::<_, i64>(0), r.get::<_, i64>(1))
        };
        let nodes = {
            let c = self.pool.get().await?;
            c.query(OWNED_PINS_FIRST_SQL, &[&owner, &now.0, &(limit as i64)])
                .await?
        };
        let mut first = Vec::with_capacity(nodes.len());
        for r in &nodes {
            first.push((crate::Catalog::path_of(self, r.get(0)).await?, Timestamp(r.get(1))));
        }
        Ok(OwnedPins {
            count: count as u64,
            bytes: bytes as u64,
            first,
        })
    }
}
