//! Queue depths and file history in the SQLite catalog.

use crate::ops::{
    all_job_states, open_stage_states, Depths, FileEvent, OpsCatalog, OwnedPins, StageRequestSummary, ALARM_DEPTH_SQL,
    EVENT_COLS, JOB_DEPTH_SQL, OWNED_PINS_FIRST_SQL, OWNED_PINS_SQL, POOL_DEPTH_SQL, STAGE_DEPTH_SQL,
    STAGE_REQUESTS_SQL, STAGE_REQUEST_PAGE_SQL, STAGE_REQUEST_STATES_SQL, STAGE_REQUEST_TOTAL_SQL,
};
use crate::CatalogError;
use crate::{rows, Result, SqliteCatalog};
use async_trait::async_trait;
use bale_util::{FileId, Timestamp};
use rusqlite::{params, Connection};

fn pairs(c: &Connection, sql: &str) -> Result<Vec<(String, u64)>> {
    let mut st = c.prepare_cached(sql)?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[async_trait]
impl OpsCatalog for SqliteCatalog {
    async fn depths(&self) -> Result<Depths> {
        self.read(|c| {
            let (pools_open, pool_files, pool_bytes, oldest) =
                c.prepare_cached(POOL_DEPTH_SQL)?.query_row([], |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                })?;
            let mut st = c.prepare_cached(JOB_DEPTH_SQL)?;
            let jobs = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let stage_requests = c
                .prepare_cached(STAGE_REQUESTS_SQL)?
                .query_row([], |r| r.get::<_, i64>(0))? as u64;
            Ok(Depths {
                pools_open,
                pool_files,
                pool_bytes,
                pool_oldest: oldest.map(Timestamp),
                jobs: all_job_states(jobs),
                stage_files: open_stage_states(pairs(c, STAGE_DEPTH_SQL)?),
                stage_requests,
                alarms: pairs(c, ALARM_DEPTH_SQL)?,
            })
        })
        .await
    }

    async fn record_events(&self, events: &[FileEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.write(move |tx| {
            let mut st = tx.prepare_cached(&format!(
                "INSERT INTO file_events ({EVENT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?;
            for e in &events {
                st.execute(params![
                    e.time.0,
                    e.file_id.to_string(),
                    e.kind.as_str(),
                    e.path,
                    e.who,
                    e.request,
                    e.package,
                    e.offset.map(|o| o as i64),
                    e.volume,
                    e.count as i64,
                    e.detail
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn file_history(&self, file_id: FileId, limit: usize) -> Result<Vec<FileEvent>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT * FROM (SELECT id, {EVENT_COLS} FROM file_events WHERE file_id = ?1 \
                 ORDER BY time DESC, id DESC LIMIT ?2) ORDER BY time, id"
            ))?;
            let rows = st.query_map(params![file_id.to_string(), limit as i64], |r| rows::file_event(r))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn prune_events(&self, before: Timestamp, limit: usize) -> Result<u64> {
        self.write(move |tx| {
            let n = tx.execute(
                "DELETE FROM file_events WHERE id IN \
                 (SELECT id FROM file_events WHERE time < ?1 ORDER BY time LIMIT ?2)",
                params![before.0, limit as i64],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn stage_requests_page(
        &self,
        owner: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(u64, Vec<StageRequestSummary>)> {
        let owner = owner.map(str::to_string);
        self.read(move |c| {
            let total = c
                .prepare_cached(STAGE_REQUEST_TOTAL_SQL)?
                .query_row([&owner], |r| r.get::<_, i64>(0))? as u64;
            let mut st = c.prepare_cached(STAGE_REQUEST_PAGE_SQL)?;
            let heads = st
                .query_map(params![owner, before.unwrap_or(i64::MAX), limit as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut counts = c.prepare_cached(STAGE_REQUEST_STATES_SQL)?;
            let mut out = Vec::with_capacity(heads.len());
            for (id, owner, created, completed) in heads {
                let mut by_state = Vec::new();
                for r in counts.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                    let (state, n) = r?;
                    by_state.push((state.parse().map_err(CatalogError::Invalid)?, n as u64));
                }
                out.push(StageRequestSummary {
                    id,
                    owner,
                    created: Timestamp(created),
                    completed: completed.map(Timestamp),
                    counts: by_state,
                });
            }
            Ok((total, out))
        })
        .await
    }

    async fn owned_pins(&self, owner: &str, now: Timestamp, limit: usize) -> Result<OwnedPins> {
        let owner = owner.to_string();
        self.read(move |c| {
            let (count, bytes) = c
                .prepare_cached(OWNED_PINS_SQL)?
                .query_row(params![owner, now.0], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })?;
            let mut st = c.prepare_cached(OWNED_PINS_FIRST_SQL)?;
            let nodes = st
                .query_map(params![owner, now.0, limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut first = Vec::with_capacity(nodes.len());
            for (node, expires) in nodes {
                first.push((crate::sqlite_namespace::path_of(c, node)?, Timestamp(expires)));
            }
            Ok(OwnedPins {
                count: count as u64,
                bytes: bytes as u64,
                first,
            })
        })
        .await
    }
}
