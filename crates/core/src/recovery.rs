//! Crash recovery at start: landing files and `tmp/`.

use crate::error::io_err;
use crate::{Error, Result};
use bale_cache::Cache;
use bale_catalog::DynCatalog;
use bale_util::{Adler32, FileId};

/// Finishes what a crash interrupted.
///
/// 1. Landing files (recorded while their data was being synced): a file
///    whose data is complete stays; a file whose data is missing or short
///    was never acknowledged, and its row goes.
/// 2. `tmp/`: files whose catalog row exists are promoted; everything else
///    is an unacknowledged write and is removed.
/// 3. The stage area: members of a stage the crash interrupted (never
///    marked cached); their files are staged again when asked for.
pub(crate) async fn recover(catalog: &DynCatalog, cache: &Cache, node: &str) -> Result<()> {
    let c = cache.clone();
    let cleared = tokio::task::spawn_blocking(move || c.clear_stage())
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(io_err("cannot clear the stage area"))?;
    if cleared > 0 {
        tracing::info!("recovery: removed {cleared} member(s) of interrupted stages");
    }
    let landing = catalog.landing_files(node).await?;
    if !landing.is_empty() {
        let (mut kept, mut rewritten, mut dropped) = (0, 0, 0);
        for l in &landing {
            let Some(n) = &l.node else { continue };
            let (c, size, sum) = (cache.clone(), n.size, n.adler32.unwrap_or(Adler32(1)));
            let id = l.id;
            let complete = tokio::task::spawn_blocking(move || c.data_matches(id, size, sum))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
                .map_err(io_err("cannot check landing file"))?;
            let inline = l
                .inline
                .as_deref()
                .filter(|d| d.len() as u64 == size && Adler32::of(d) == sum);
            if complete {
                kept += 1;
            } else if let Some(data) = inline {
                // An inline file whose cache copy did not survive: its data
                // was committed with its row; write the copy again, durably.
                let (c, data) = (cache.clone(), data.to_vec());
                tokio::task::spawn_blocking(move || c.restore(id, &data))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
                    .map_err(io_err("cannot rewrite an inline file"))?;
                tracing::info!("recovery: rewrote {} (file id {id}) from its inline data", n.name);
                rewritten += 1;
            } else {
                tracing::warn!(
                    "recovery: dropping {} (file id {id}): its data never became durable",
                    n.name
                );
                catalog.remove(n.id, false, None).await?;
                cache.remove(id).map_err(io_err("cannot remove incomplete data"))?;
                dropped += 1;
            }
        }
        // What was found complete may still be only in the page cache (the
        // process died, not the machine): make it durable before the notes,
        // and the inline data with them, go.
        let ids: Vec<FileId> = landing.iter().map(|l| l.id).collect();
        let (c, landed) = (cache.clone(), ids.clone());
        tokio::task::spawn_blocking(move || c.sync_landed(&landed))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(io_err("cannot sync the cache"))?;
        catalog.settle_files(&ids).await?;
        tracing::info!(
            "recovery: {kept} landing files complete, {rewritten} rewritten from inline data, {dropped} incomplete and dropped"
        );
    }

    let (ids, junk) = cache.pending().map_err(io_err("cannot list cache tmp"))?;
    if ids.is_empty() && junk.is_empty() {
        return Ok(());
    }
    let mut committed = Vec::new();
    let mut orphans = Vec::new();
    for id in ids {
        if catalog.node_by_file_id(id).await?.is_some() {
            committed.push(id);
        } else {
            orphans.push(id);
        }
    }
    tracing::info!(
        "recovery: {} committed files promoted, {} unacknowledged writes discarded, {} stray entries removed",
        committed.len(),
        orphans.len(),
        junk.len()
    );
    let cache = cache.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        cache.promote(&committed)?;
        cache.discard_pending(&orphans, &junk)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(io_err("recovery of cache tmp failed"))
}
