//! What operators look at: the depths of the queues in one round trip
//! (for `/metrics` and `bale status`), and each file's history (its
//! journey through the system, `bale history`).
//!
//! History is a table of events keyed by file id. Most are written in
//! batches by the service a moment after what they tell of (`bale_core`'s
//! event log); the tape copies are written in the transaction that
//! records the tape files, so a copy on tape always has its event. Old
//! events go by age (`[history] retention_days`).

use crate::{JobState, Result, StageState};
use async_trait::async_trait;
use bale_util::{FileId, Timestamp};
use serde::Serialize;

/// The queues at a glance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Depths {
    pub pools_open: u64,
    pub pool_files: u64,
    pub pool_bytes: u64,
    /// When the oldest file in an open pool joined it.
    pub pool_oldest: Option<Timestamp>,
    /// Archive jobs and their bytes, by state (every state, zeros too).
    pub jobs: Vec<(JobState, u64, u64)>,
    /// Stage request files not finished, by state (submitted, started).
    pub stage_files: Vec<(StageState, u64)>,
    /// Stage requests not finished.
    pub stage_requests: u64,
    /// Open alarms by severity ("warning", "error"; others as raised).
    pub alarms: Vec<(String, u64)>,
}

/// What happened to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Written by a client (PUT) or made by COPY.
    Written,
    /// Joined an aggregation pool.
    Pooled,
    /// Recorded in a tape file (a package or alone) on a volume: one per copy.
    Packed,
    /// A tape copy read back and found good.
    Verified,
    /// A tape copy read back and found bad.
    Bad,
    /// The cache copy purged (the file is on tape).
    Purged,
    /// Asked for by a stage request (`request`: "stage N").
    Requested,
    /// Made cached again from tape.
    Staged,
    /// Read by clients (counted: one event per file per flush of the
    /// access-time log, `count` the reads in it).
    Read,
    /// Renamed (MOVE).
    Moved,
    /// Replaced by a newer file at its path.
    Overwritten,
    /// Deleted.
    Deleted,
}

impl EventKind {
    pub const ALL: &'static [EventKind] = &[
        EventKind::Written,
        EventKind::Pooled,
        EventKind::Packed,
        EventKind::Verified,
        EventKind::Bad,
        EventKind::Purged,
        EventKind::Requested,
        EventKind::Staged,
        EventKind::Read,
        EventKind::Moved,
        EventKind::Overwritten,
        EventKind::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Written => "written",
            EventKind::Pooled => "pooled",
            EventKind::Packed => "packed",
            EventKind::Verified => "verified",
            EventKind::Bad => "bad",
            EventKind::Purged => "purged",
            EventKind::Requested => "requested",
            EventKind::Staged => "staged",
            EventKind::Read => "read",
            EventKind::Moved => "moved",
            EventKind::Overwritten => "overwritten",
            EventKind::Deleted => "deleted",
        }
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown file event kind {s:?}"))
    }
}

/// One event of a file's history. What does not apply is `None`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileEvent {
    /// Its place in the catalog's order (0 until recorded).
    pub seq: i64,
    pub time: Timestamp,
    pub file_id: FileId,
    pub kind: EventKind,
    /// The file's path at the time (written, moved: the new one; deleted).
    pub path: Option<String>,
    /// The user who caused it, if a user did.
    pub who: Option<String>,
    /// The HTTP request id, or "stage N" for a stage request.
    pub request: Option<String>,
    /// The tape file (package) and the member's data offset in it.
    pub package: Option<String>,
    pub offset: Option<u64>,
    pub volume: Option<String>,
    /// How many times (reads); 1 otherwise.
    pub count: u64,
    /// Anything else, in words (the client address, a pool, where from).
    pub detail: Option<String>,
}

impl FileEvent {
    pub fn new(file_id: FileId, kind: EventKind, time: Timestamp) -> FileEvent {
        FileEvent {
            seq: 0,
            time,
            file_id,
            kind,
            path: None,
            who: None,
            request: None,
            package: None,
            offset: None,
            volume: None,
            count: 1,
            detail: None,
        }
    }
}

/// The columns of `file_events` after its id, in the order both backends
/// insert and read them.
pub(crate) const EVENT_COLS: &str =
    "time, file_id, kind, path, who, request, package, data_offset, volume, count, detail";

/// The open pools: how many, their files and bytes, the oldest file.
pub(crate) const POOL_DEPTH_SQL: &str =
    "SELECT COUNT(DISTINCT pool), COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT), MIN(joined) FROM pool_files";
pub(crate) const JOB_DEPTH_SQL: &str =
    "SELECT state, COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM archive_jobs GROUP BY state";
/// Uses the partial index on open stage files.
pub(crate) const STAGE_DEPTH_SQL: &str =
    "SELECT state, COUNT(*) FROM stage_files WHERE state IN ('SUBMITTED', 'STARTED') GROUP BY state";
pub(crate) const STAGE_REQUESTS_SQL: &str = "SELECT COUNT(*) FROM stage_requests WHERE completed IS NULL";
pub(crate) const ALARM_DEPTH_SQL: &str =
    "SELECT severity, COUNT(*) FROM alarms WHERE acked_at IS NULL GROUP BY severity ORDER BY severity";

/// Every job state with its counts, zeros for those without jobs.
pub(crate) fn all_job_states(found: Vec<(String, u64, u64)>) -> Vec<(JobState, u64, u64)> {
    JobState::ALL
        .iter()
        .map(|&s| {
            let (n, b) = found.iter().find(|f| f.0 == s.as_str()).map_or((0, 0), |f| (f.1, f.2));
            (s, n, b)
        })
        .collect()
}

/// Both open stage states with their counts.
pub(crate) fn open_stage_states(found: Vec<(String, u64)>) -> Vec<(StageState, u64)> {
    [StageState::Submitted, StageState::Started]
        .into_iter()
        .map(|s| {
            let n = found.iter().find(|f| f.0 == s.as_str()).map_or(0, |f| f.1);
            (s, n)
        })
        .collect()
}

/// The events of a tape file's members once it is recorded on `?2`/`$2`
/// (the volume) at `?1`/`$1`, package `?3`/`$3`: in the transaction that
/// records it.
pub(crate) const PACKED_EVENTS_SQL: &str =
    "INSERT INTO file_events (time, file_id, kind, package, data_offset, volume) \
     SELECT $1, file_id, 'packed', package, data_offset, $2 FROM members WHERE package = $3 ORDER BY data_offset";

/// An event of kind `$2` with detail `$3` for each member of package `$4`,
/// at `$1` (a copy verified or found bad): in the transaction that says so.
pub(crate) const PACKAGE_EVENTS_SQL: &str =
    "INSERT INTO file_events (time, file_id, kind, package, data_offset, volume, detail) \
     SELECT $1, m.file_id, $2, m.package, m.data_offset, p.volume, $3 FROM members m \
     JOIN packages p ON p.id = m.package WHERE m.package = $4 ORDER BY m.data_offset";

/// A stage request in a list (the status page): its files counted by
/// state in the catalog, never loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct StageRequestSummary {
    pub id: i64,
    pub owner: String,
    pub created: Timestamp,
    pub completed: Option<Timestamp>,
    pub counts: Vec<(StageState, u64)>,
}

/// An owner's live pins: how many, their bytes, and the first few by
/// expiry with their paths.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnedPins {
    pub count: u64,
    pub bytes: u64,
    pub first: Vec<(bale_util::NsPath, Timestamp)>,
}

/// The newest stage requests (of `$1`, or everyone's when it is NULL)
/// with an id below `$2`, at most `$3`.
pub(crate) const STAGE_REQUEST_PAGE_SQL: &str = "SELECT id, owner, created, completed FROM stage_requests \
     WHERE (owner = $1 OR $1 IS NULL) AND id < $2 ORDER BY id DESC LIMIT $3";
pub(crate) const STAGE_REQUEST_TOTAL_SQL: &str = "SELECT COUNT(*) FROM stage_requests WHERE (owner = $1 OR $1 IS NULL)";
/// The request's files by state: the primary key's prefix.
pub(crate) const STAGE_REQUEST_STATES_SQL: &str =
    "SELECT state, COUNT(*) FROM stage_files WHERE request = $1 GROUP BY state ORDER BY state";
/// An owner's live pins of existing files: count and bytes.
pub(crate) const OWNED_PINS_SQL: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(n.size), 0) AS BIGINT) FROM pins p \
     JOIN nodes n ON n.file_id = p.file_id AND n.kind = 2 WHERE p.owner = $1 AND p.expires > $2";
/// The first `$3` of them by expiry: their nodes and expiries.
pub(crate) const OWNED_PINS_FIRST_SQL: &str = "SELECT n.id, p.expires FROM pins p \
     JOIN nodes n ON n.file_id = p.file_id AND n.kind = 2 WHERE p.owner = $1 AND p.expires > $2 \
     ORDER BY p.expires, p.file_id LIMIT $3";

/// Events fetched for one history at most.
pub const HISTORY_LIMIT: usize = 10_000;

#[async_trait]
pub trait OpsCatalog: Send + Sync + 'static {
    /// The queues' depths, in one read.
    async fn depths(&self) -> Result<Depths>;

    /// Records events, in one transaction, in their order.
    async fn record_events(&self, events: &[FileEvent]) -> Result<()>;

    /// The newest `limit` events of a file, oldest first (by their time,
    /// then the catalog's order).
    async fn file_history(&self, file_id: FileId, limit: usize) -> Result<Vec<FileEvent>>;

    /// Forgets events older than `before`, at most `limit` of them (the
    /// oldest); returns how many went.
    async fn prune_events(&self, before: Timestamp, limit: usize) -> Result<u64>;

    /// The stage requests of `owner` (everyone's: `None`), newest first,
    /// those with an id below `before`, at most `limit`; and how many
    /// there are in all.
    async fn stage_requests_page(
        &self,
        owner: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(u64, Vec<StageRequestSummary>)>;

    /// `owner`'s live pins at `now`: counted, and the first `limit` by
    /// expiry with their paths.
    async fn owned_pins(&self, owner: &str, now: Timestamp, limit: usize) -> Result<OwnedPins>;
}
