//! Cache residency and pins: the `CacheCatalog` half of the catalog.
//!
//! A file's data is cached from its write until it is purged; only a file
//! on tape (a member of a recorded package) without a live pin may be
//! purged, and the catalog checks that inside the transaction that marks
//! it purged, so no caller can remove the last copy. Staging marks it
//! cached again. A pin (owner, expiry) holds a cached file; several owners
//! may pin one file, and a file's pins go with the file. A stage request
//! holds the files it names through its own rows (no pin row each); they
//! are shown and released as pins of owner `stage-request-ID`.

use crate::model::{Node, NodeId};
use crate::Result;
use async_trait::async_trait;
use bale_util::{FileId, Timestamp};

/// A hold on a cached file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub file_id: FileId,
    pub owner: String,
    pub created: Timestamp,
    pub expires: Timestamp,
}

/// What the cache holds, as the catalog records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheUsage {
    pub cached_files: u64,
    pub cached_bytes: u64,
    /// Cached files with a live pin.
    pub pinned_files: u64,
    pub pinned_bytes: u64,
    /// Cached files on tape without a live pin: what a purge may remove.
    pub purgeable_files: u64,
    pub purgeable_bytes: u64,
}

/// The condition (SQL, both backends) that file node `n` is held in the
/// cache at the time bound to `now`: by a live pin, or by a stage request
/// that named it (its row's `held_until`, until the request is released;
/// see [`crate::STAGE_PIN_OWNER`]).
pub(crate) fn held(now: &str) -> String {
    format!(
        "(EXISTS (SELECT 1 FROM pins p WHERE p.file_id = n.file_id AND p.expires > {now}) \
         OR EXISTS (SELECT 1 FROM stage_files s WHERE s.file_id = n.file_id AND s.held_until > {now}))"
    )
}

/// The condition (SQL, both backends) that a file node `n` may be purged
/// at the time bound to `now`: cached (`cached` is the backend's spelling
/// of "n.cached is true"), on tape in a good copy with no copy still to
/// be written (several tape copies: purge requires all) and no bad copy waiting
/// for its rewrite, not held (no live pin, no stage request
/// holding it), and no longer landing (recovery judges a landing file by
/// its cache copy: purging one would make a crash drop the acknowledged
/// file).
pub(crate) fn purgeable(cached: &str, now: &str) -> String {
    format!(
        "n.kind = 2 AND {cached} \
         AND EXISTS (SELECT 1 FROM members m JOIN packages p ON p.id = m.package \
                     WHERE m.file_id = n.file_id AND {complete}) \
         AND NOT EXISTS (SELECT 1 FROM members m JOIN packages p ON p.id = m.package \
                         JOIN volumes v ON v.label = p.volume \
                         WHERE m.file_id = n.file_id AND p.bad IS NOT NULL AND {repair}) \
         AND NOT {held} \
         AND NOT EXISTS (SELECT 1 FROM landing l WHERE l.file_id = n.file_id)",
        held = held(now),
        complete = crate::tape::GOOD_AND_COMPLETE,
        repair = crate::tape::NEEDS_REPAIR
    )
}

/// Why the cache holds each cached file (SQL, both backends: `cached` and
/// `now` as for [`purgeable`]): every cached file counted once, under the
/// first reason that keeps it, or `purgeable`. Rows: reason, files, bytes.
pub(crate) fn kept_sql(cached: &str, now: &str) -> String {
    format!(
        "SELECT why, COUNT(*), COALESCE(SUM(size), 0) FROM (SELECT n.size, CASE \
         WHEN NOT EXISTS (SELECT 1 FROM members m JOIN packages p ON p.id = m.package \
                          WHERE m.file_id = n.file_id AND {complete}) THEN '{NOT_ON_TAPE}' \
         WHEN EXISTS (SELECT 1 FROM members m JOIN packages p ON p.id = m.package \
                      JOIN volumes v ON v.label = p.volume \
                      WHERE m.file_id = n.file_id AND p.bad IS NOT NULL AND {repair}) THEN '{BEING_REPAIRED}' \
         WHEN {held} THEN '{PINNED}' \
         WHEN EXISTS (SELECT 1 FROM landing l WHERE l.file_id = n.file_id) THEN '{SETTLING}' \
         ELSE '{PURGEABLE}' END AS why FROM nodes n WHERE n.kind = 2 AND {cached}) k GROUP BY why ORDER BY why",
        held = held(now),
        complete = crate::tape::GOOD_AND_COMPLETE,
        repair = crate::tape::NEEDS_REPAIR
    )
}

/// The reasons of [`CacheCatalog::cache_kept`].
pub const NOT_ON_TAPE: &str = "not on tape yet (every copy)";
pub const BEING_REPAIRED: &str = "a bad tape copy is being rewritten";
pub const PINNED: &str = "pinned or held by a stage request";
pub const SETTLING: &str = "its cache copy is still being made durable";
pub const PURGEABLE: &str = "purgeable";

/// A file's holds as pins: its own pins, and one for each stage request
/// holding it (owner `stage-request-ID`, created with the request); none
/// once the file is gone. SQL of both backends, `?1`/`$1` the file id and
/// `?2`/`$2` the time.
pub(crate) fn pins_query(p: char) -> String {
    format!(
        "SELECT owner, created, expires FROM pins WHERE file_id = {p}1 AND expires > {p}2 \
         UNION ALL \
         SELECT '{owner}' || s.request, MIN(r.created), MAX(s.held_until) FROM stage_files s \
         JOIN stage_requests r ON r.id = s.request WHERE s.file_id = {p}1 AND s.held_until > {p}2 \
         AND EXISTS (SELECT 1 FROM nodes n WHERE n.file_id = s.file_id) \
         GROUP BY s.request ORDER BY 1",
        owner = crate::STAGE_PIN_OWNER
    )
}

#[async_trait]
pub trait CacheCatalog: Send + Sync + 'static {
    /// Marks the cache copies of `ids` purged, each only if at `now` it is
    /// cached, on tape and without a live pin (checked in the transaction);
    /// returns the ids marked. The caller removes their data afterwards.
    async fn mark_purged(&self, ids: &[FileId], now: Timestamp) -> Result<Vec<FileId>>;

    /// Marks the cache copies of `ids` present again (staged; their data is
    /// durable in the cache). Returns the ids of the live files marked.
    async fn mark_staged(&self, ids: &[FileId]) -> Result<Vec<FileId>>;

    /// Up to `limit` files that may be purged at `now`, least recently read
    /// first (last data access; stat and listing do not count).
    async fn purge_candidates(&self, now: Timestamp, limit: usize) -> Result<Vec<Node>>;

    /// Pins `ids` for `owner` until `expires` (an owner's existing pin keeps
    /// the later expiry). Returns how many live files were pinned.
    async fn pin(&self, ids: &[FileId], owner: &str, now: Timestamp, expires: Timestamp) -> Result<usize>;

    /// Removes `owner`'s pins on `ids` (owner `stage-request-ID`: that
    /// request's holds on them too). Returns how many were removed.
    async fn unpin(&self, ids: &[FileId], owner: &str) -> Result<usize>;

    /// A file's live pins at `now`, by owner, the holds of stage requests
    /// among them.
    async fn pins(&self, id: FileId, now: Timestamp) -> Result<Vec<Pin>>;

    /// Deletes the pins expired at `now`. Returns how many.
    async fn expire_pins(&self, now: Timestamp) -> Result<usize>;

    /// What the cache holds at `now`.
    async fn cache_usage(&self, now: Timestamp) -> Result<CacheUsage>;

    /// Every cached file by why it is in the cache at `now` (the first
    /// reason that keeps it, or [`PURGEABLE`]): (reason, files, bytes).
    async fn cache_kept(&self, now: Timestamp) -> Result<Vec<(String, u64, u64)>>;

    /// Up to `limit` files the catalog says are cached, by id, after the
    /// node `after`: what `bale fsck` checks against the cache.
    async fn cached_files(&self, after: NodeId, limit: usize) -> Result<Vec<Node>>;

    /// Records that the cache copies of `ids` are gone (found missing or
    /// damaged), for the files that have a tape copy: a read stages them
    /// back. Pins and holds do not keep a copy that is not there. Returns
    /// the ids marked; a file without a tape copy stays as it is (it is
    /// lost, and only an operator can say what happens to it).
    async fn mark_copies_lost(&self, ids: &[FileId]) -> Result<Vec<FileId>>;
}

/// The condition of `mark_copies_lost`: cached, and on tape.
pub(crate) const COPY_LOST_SQL: &str = "cached AND EXISTS (SELECT 1 FROM members m WHERE m.file_id = nodes.file_id)";
