//! Last-access times, recorded when data is read and written to the catalog
//! in batches. Reads must not each cost a catalog transaction; losing the
//! last `access_time_flush_ms` of access history in a crash only makes the
//! purger slightly less accurate, never loses data.

use bale_catalog::{DynCatalog, NodeId};
use bale_util::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub(crate) struct AccessLog {
    pending: Mutex<HashMap<NodeId, Timestamp>>,
}

impl AccessLog {
    pub(crate) fn record(&self, id: NodeId) {
        self.pending.lock().unwrap().insert(id, Timestamp::now());
    }

    /// Writes what was recorded since the last flush.
    pub(crate) async fn flush(&self, catalog: &DynCatalog) {
        let touches: Vec<(NodeId, Timestamp)> =
            std::mem::take(&mut *self.pending.lock().unwrap()).into_iter().collect();
        if touches.is_empty() {
            return;
        }
        if let Err(e) = catalog.record_access(&touches).await {
            tracing::warn!("recording {} access times failed: {e}", touches.len());
            let mut p = self.pending.lock().unwrap();
            for (id, t) in touches {
                let e = p.entry(id).or_insert(t);
                *e = (*e).max(t);
            }
        }
    }
}
