//! Stage requests: the `StageCatalog` half of the catalog. A request names
//! files (paths as sent); each file is SUBMITTED, STARTED (its package is
//! being read), COMPLETED (cached), FAILED (with its error) or CANCELLED.
//! A request is completed when none of its files is open any more.

use crate::Result;
use async_trait::async_trait;
use bale_util::{FileId, Timestamp};
use std::fmt;

/// The pin owner under which a stage request's holds on its files are
/// shown and released: `stage-request-ID`.
pub const STAGE_PIN_OWNER: &str = "stage-request-";

/// The request whose holds a pin owner names, if it names one.
pub(crate) fn stage_request_of(owner: &str) -> Option<i64> {
    owner.strip_prefix(STAGE_PIN_OWNER)?.parse().ok()
}

/// A staged file's state (the WLCG Tape REST API's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageState {
    Submitted,
    Started,
    Completed,
    Failed,
    Cancelled,
}

impl StageState {
    pub fn as_str(self) -> &'static str {
        match self {
            StageState::Submitted => "SUBMITTED",
            StageState::Started => "STARTED",
            StageState::Completed => "COMPLETED",
            StageState::Failed => "FAILED",
            StageState::Cancelled => "CANCELLED",
        }
    }

    /// Still to be done: submitted or started.
    pub fn is_open(self) -> bool {
        matches!(self, StageState::Submitted | StageState::Started)
    }
}

impl std::str::FromStr for StageState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "SUBMITTED" => StageState::Submitted,
            "STARTED" => StageState::Started,
            "COMPLETED" => StageState::Completed,
            "FAILED" => StageState::Failed,
            "CANCELLED" => StageState::Cancelled,
            _ => return Err(format!("unknown stage state {s:?}")),
        })
    }
}

impl fmt::Display for StageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The files a user has open in stage requests (the query both backends
/// run; `?1`: the owner).
pub(crate) const OPEN_OF_OWNER_SQL: &str = "SELECT COUNT(DISTINCT f.file_id) FROM stage_files f JOIN stage_requests r \
     ON r.id = f.request WHERE r.owner = ?1 AND f.state IN ('SUBMITTED', 'STARTED')";

/// The open files a new request adds: each file once, however often it
/// is named.
pub(crate) fn new_open(files: &[NewStageFile]) -> u64 {
    let open: std::collections::HashSet<_> = files
        .iter()
        .filter(|f| f.state.is_open())
        .filter_map(|f| f.file_id)
        .collect();
    open.len() as u64
}

/// Finished requests whose holds have all ended, completed before `?1`,
/// at most 1,000 of them (`?2`: now): what the stage worker forgets.
pub(crate) const FORGET_SQL: &str = "SELECT id FROM stage_requests r WHERE r.completed IS NOT NULL \
     AND r.completed < ?1 AND NOT EXISTS (SELECT 1 FROM stage_files f WHERE f.request = r.id AND f.held_until > ?2) \
     ORDER BY r.id LIMIT 1000";

/// Whether `new` more open files fit beside the `open` ones of `owner`.
pub(crate) fn within_open_limit(owner: &str, open: u64, new: u64, max: u64) -> Result<()> {
    if new > 0 && open.saturating_add(new) > max {
        return Err(crate::CatalogError::Limit(format!(
            "{owner} has {} open in stage requests and this request would add {new}: \
             at most {max} may be open at once; wait for some to finish (or cancel some) and send it again",
            bale_util::human::plural(open, "file")
        )));
    }
    Ok(())
}

/// A file of a new request, as the service resolved it.
#[derive(Clone, Debug)]
pub struct NewStageFile {
    /// As the client sent it.
    pub path: String,
    pub file_id: Option<FileId>,
    /// Submitted, or already decided: completed (on disk) or failed.
    pub state: StageState,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageFile {
    pub path: String,
    pub file_id: Option<FileId>,
    pub state: StageState,
    pub error: Option<String>,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageRequest {
    pub id: i64,
    pub owner: String,
    pub created: Timestamp,
    pub started: Option<Timestamp>,
    pub completed: Option<Timestamp>,
    pub lifetime_s: u64,
    /// In the order they were sent.
    pub files: Vec<StageFile>,
}

#[async_trait]
pub trait StageCatalog: Send + Sync + 'static {
    /// Records a request and its files in one transaction; returns its id
    /// (never reused). A request with no open file is completed at once.
    /// The request holds each of its files in the cache (against purging)
    /// for `lifetime_s` from `at`, until released. A file sent as
    /// COMPLETED (cached when resolved) that a purge took meanwhile is
    /// recorded SUBMITTED instead: a purge and a request serialize on the
    /// file, so a file the request says is on disk stays there. `max_open`
    /// bounds the files the owner has open (submitted or started) in all
    /// their requests, this one's included: past it nothing is recorded
    /// (`Limit`, saying how many are open). Concurrent requests of one
    /// owner are counted one after the other.
    async fn create_stage_request(
        &self,
        owner: &str,
        at: Timestamp,
        lifetime_s: u64,
        files: Vec<NewStageFile>,
        max_open: u64,
    ) -> Result<i64>;

    /// Ends the holds of request `request` (or of every request, `None`)
    /// on the files `ids`; returns how many holds ended.
    async fn release_holds(&self, request: Option<i64>, ids: &[FileId]) -> Result<usize>;

    /// Ends every hold of request `id` on its files; returns how many.
    async fn release_request(&self, id: i64) -> Result<usize>;

    /// A request with its files.
    async fn stage_request(&self, id: i64) -> Result<Option<StageRequest>>;

    /// Every open file of every request: (request, file id), for the
    /// stager to (re)submit, at start too.
    async fn open_stage_files(&self) -> Result<Vec<(i64, FileId)>>;

    /// The open files of `ids` (in any request) are started at `at`.
    async fn stage_files_started(&self, ids: &[FileId], at: Timestamp) -> Result<()>;

    /// The open files of `ids` (in any request) are finished at `at`:
    /// completed, or failed with `error`. Requests left with no open file
    /// are completed.
    async fn stage_files_finished(&self, ids: &[FileId], at: Timestamp, error: Option<&str>) -> Result<()>;

    /// Cancels the open files of request `id` (those whose path is in
    /// `paths`, or all). Returns how many were cancelled.
    async fn cancel_stage_files(&self, id: i64, paths: Option<&[String]>, at: Timestamp) -> Result<usize>;

    /// Forgets requests finished before `before` whose holds have all
    /// ended at `now` (a bounded batch); returns how many. Clients that
    /// never delete their requests do not grow the catalog for ever.
    async fn forget_finished_stage_requests(&self, before: Timestamp, now: Timestamp) -> Result<u64>;

    /// Deletes a request and its files. False if there was none.
    async fn delete_stage_request(&self, id: i64) -> Result<bool>;

    /// The members of `package` that exist and are not cached: what a
    /// stage of it is for (none: no tape read needed).
    async fn uncached_members(&self, package: &str) -> Result<Vec<FileId>>;

    /// Finishes, in one transaction, the open files of every request that
    /// need no stage: a file deleted (failed), cached (completed), or with
    /// no good tape copy (failed); requests left with no open file are
    /// completed. Returns how many files it finished. Set-based: nothing
    /// of the open files comes back to the caller.
    async fn settle_open_stage_files(&self, at: Timestamp) -> Result<u64>;

    /// The packages the open files of every request need (each file's
    /// first good copy), each once, at most `limit`: the volumes in turn,
    /// each volume's packages in tape order. The stage worker takes a
    /// window of them at a time.
    async fn open_stage_packages(&self, limit: usize) -> Result<Vec<crate::Package>>;

    /// Which of `packages` an open stage file still needs (one of its
    /// members is open in some request).
    async fn stage_packages_wanted(&self, packages: &[String]) -> Result<Vec<String>>;

    /// The packages behind request `id`'s files, for its progress: each
    /// file's FIRST good tape copy (files with none are left out), summed
    /// per package in the catalog (a request of a million files comes back
    /// as its packages, not its files), in volume and tape order.
    async fn stage_request_packages(&self, id: i64) -> Result<Vec<StagePackage>>;

    /// The stages of `packages` begin: for each (in order) its members'
    /// file ids and whether one of its live members is not cached (else
    /// no tape read is needed); the open stage files of the members of
    /// those that need one are STARTED at `at` (their requests started).
    /// A constant number of round trips, however many packages.
    async fn begin_stages(&self, packages: &[String], at: Timestamp) -> Result<Vec<BegunStage>>;

    /// Request `id`'s owner (one row read, none of its files); `None` if
    /// there is no such request.
    async fn stage_request_owner(&self, id: i64) -> Result<Option<String>>;

    /// Request `id`'s owner and how many of its files are in each state,
    /// counted in the catalog; `None` if there is no such request.
    async fn stage_request_counts(&self, id: i64) -> Result<Option<(String, Vec<(StageState, u64)>)>>;
}

/// A package's stage as it begins: its members, and whether a tape read
/// is needed (a live member is not cached).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BegunStage {
    pub members: Vec<FileId>,
    pub needs_read: bool,
}

/// A package behind a stage request's files: how many bytes of the
/// request's files its copies hold, of them COMPLETED, and whether one of
/// those files is still open.
#[derive(Clone, Debug, PartialEq)]
pub struct StagePackage {
    pub package: crate::Package,
    pub bytes: u64,
    pub bytes_done: u64,
    pub open: bool,
}

/// The query of [`StageCatalog::uncached_members`] (`?1`: the package).
pub(crate) const UNCACHED_MEMBERS_SQL: &str = "SELECT m.file_id FROM members m JOIN nodes n ON n.file_id = m.file_id \
     WHERE m.package = ?1 AND NOT n.cached";
