//! Staging: bringing files whose only copy is on tape back into the cache.
//!
//! A file is staged by staging its package: the tape system reads the
//! package once, streaming every member straight into the cache's stage
//! area (no copy of the package on disk), each member's adler32 and the
//! package's checked on the way; only when the whole package checked out
//! are the members moved into `files/` and marked cached, in ONE catalog
//! transaction, every member at once (as Enstore does). Requests for any
//! members of a package while its stage runs wait for that one stage: one
//! tape read, however many ask; waiters are woken by a channel, never by
//! polling. A member already cached keeps its copy; a member deleted
//! meanwhile is dropped. A failed read fails every waiter with its reason
//! (the drive has raised the alarm).
//!
//! Residency changes are serialized (`residency`): a purge (catalog mark,
//! then data removed) and a stage's promotion (check, move, mark) of the
//! same file never interleave.

use crate::{Error, Result};
use bale_cache::Cache;
use bale_catalog::{DynCatalog, Package};
use bale_pack::ManifestMember;
use bale_tape::{MemberSink, TapeSystem};
use bale_util::FileId;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Where a stage's members go: the cache's stage area.
struct CacheSink {
    cache: Cache,
    written: Mutex<Vec<FileId>>,
}

impl MemberSink for CacheSink {
    fn member(&self, m: &ManifestMember, data: &mut dyn Read) -> std::io::Result<()> {
        self.cache.write_staged(m.meta.file_id, data)?;
        self.written.lock().unwrap().push(m.meta.file_id);
        Ok(())
    }
}

type Outcome = Option<std::result::Result<usize, String>>;

pub(crate) struct Stager {
    catalog: DynCatalog,
    cache: Cache,
    tape: TapeSystem,
    /// Stages under way, by package id: their outcome when it comes.
    inflight: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
    /// Serializes changes of cache residency (stage promotions, purges).
    pub(crate) residency: tokio::sync::Mutex<()>,
}

impl Stager {
    pub(crate) fn new(catalog: DynCatalog, cache: Cache, tape: TapeSystem) -> Stager {
        Stager {
            catalog,
            cache,
            tape,
            inflight: Mutex::new(HashMap::new()),
            residency: tokio::sync::Mutex::new(()),
        }
    }

    /// Stages the package holding `file` (its first tape copy) and waits
    /// for it. Returns once the file is cached (or was already).
    pub(crate) async fn stage_file(self: &Arc<Self>, file: FileId, path: &str) -> Result<()> {
        let copies = self.catalog.tape_copies(file).await?;
        let Some(copy) = copies.into_iter().next() else {
            return Err(Error::Conflict(format!(
                "{path} is not cached and has no tape copy (file id {file})"
            )));
        };
        self.stage_package(copy.package).await.map(|_| ())
    }

    /// Stages one package, joining a stage of it already under way.
    /// Returns how many members it made cached.
    pub(crate) async fn stage_package(self: &Arc<Self>, pkg: Package) -> Result<usize> {
        let mut rx = {
            let mut inflight = self.inflight.lock().unwrap();
            match inflight.get(&pkg.id) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    inflight.insert(pkg.id.clone(), rx.clone());
                    let me = self.clone();
                    tokio::spawn(async move {
                        let id = pkg.id.clone();
                        let outcome = me.run(pkg).await;
                        me.inflight.lock().unwrap().remove(&id);
                        let _ = tx.send(Some(outcome));
                    });
                    rx
                }
            }
        };
        let outcome = rx
            .wait_for(|o| o.is_some())
            .await
            .map_err(|_| Error::Internal("the stage was abandoned".into()))?
            .clone()
            .expect("some");
        outcome.map_err(Error::Unavailable)
    }

    /// One stage: the tape read into the stage area, then promotion and
    /// the catalog's mark, or the stage area cleaned up.
    async fn run(&self, pkg: Package) -> std::result::Result<usize, String> {
        let sink = Arc::new(CacheSink {
            cache: self.cache.clone(),
            written: Mutex::new(Vec::new()),
        });
        let read = self.tape.unpack(&pkg.volume, pkg.seq, sink.clone()).await;
        let written = std::mem::take(&mut *sink.written.lock().unwrap());
        if let Err(e) = read {
            let cache = self.cache.clone();
            let w = written.clone();
            let _ = tokio::task::spawn_blocking(move || cache.discard_staged(&w)).await;
            return Err(format!(
                "staging package {} from volume {} failed: {e}",
                pkg.id, pkg.volume
            ));
        }
        let _guard = self.residency.lock().await;
        // Which members need their copy: live and not cached.
        let nodes = self
            .catalog
            .files_with_paths(&written)
            .await
            .map_err(|e| format!("staging package {}: {e}", pkg.id))?;
        let wanted: Vec<FileId> = nodes
            .iter()
            .filter(|(n, _)| !n.cached)
            .filter_map(|(n, _)| n.file_id)
            .collect();
        let unwanted: Vec<FileId> = written.iter().copied().filter(|id| !wanted.contains(id)).collect();
        let cache = self.cache.clone();
        let w = wanted.clone();
        tokio::task::spawn_blocking(move || {
            cache.discard_staged(&unwanted)?;
            cache.promote_staged(&w)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("staging package {}: moving members into the cache failed: {e}", pkg.id))?;
        let marked = self
            .catalog
            .mark_staged(&wanted)
            .await
            .map_err(|e| format!("staging package {}: {e}", pkg.id))?;
        metrics::counter!("bale_stage_packages_total").increment(1);
        metrics::counter!("bale_stage_files_total").increment(marked.len() as u64);
        tracing::info!(
            "staged package {} from {} tape file {}: {} member(s) cached",
            pkg.id,
            pkg.volume,
            pkg.seq,
            marked.len()
        );
        Ok(marked.len())
    }
}
