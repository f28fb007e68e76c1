//! The catalog's aggregation records: open pools and their members, closing
//! a pool into an archive job, and the package views built on them.
//!
//! A small file joins its pool in the same transaction that records the
//! file, so a pool is never in memory only: after a crash every open pool
//! is exactly what the catalog says. Closing takes one package's worth of
//! the oldest members (never more than the pool's file limit, and past the
//! target size by at most the last member) and turns it into an archive job
//! in one transaction.

use crate::tape::{ArchiveJob, JobTarget, Package};
use crate::Result;
use async_trait::async_trait;
use bale_util::{Adler32, FileId, Timestamp};
use serde::Serialize;

/// When a pool closes: whichever limit is reached first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PoolLimits {
    /// Close once the members' bytes reach this (Enstore's minimal_file_size).
    pub target_size: u64,
    /// Close once this many files wait; a package never holds more.
    pub max_files: u32,
    /// Close once the oldest member waited this long.
    pub max_wait_ms: u64,
}

/// The pool a file joins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolTarget {
    /// The pool's key: rule, family and the rule's grouping.
    pub key: String,
    /// The policy rule that made the pool.
    pub rule: String,
    /// Where the pool's packages are written.
    pub target: JobTarget,
    /// The rule's limits; the latest member's limits are the pool's.
    pub limits: PoolLimits,
}

/// How a new file goes to tape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveRoute {
    /// Its own tape file: an archive job of one file.
    Direct(JobTarget),
    /// A member of a package: the file joins an open pool.
    Pool(PoolTarget),
}

/// An open pool as the queue view and the trigger check see it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolSummary {
    pub key: String,
    pub rule: String,
    pub target: JobTarget,
    pub limits: PoolLimits,
    pub files: u64,
    pub bytes: u64,
    /// When the oldest member joined.
    pub oldest: Timestamp,
}

/// One member of a recorded package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackageMember {
    pub file_id: FileId,
    /// Byte offset of the member's data in the tape file.
    pub offset: u64,
    pub size: u64,
    pub adler32: Adler32,
}

impl PoolLimits {
    /// Whether a pool of `files` members and `bytes`, whose oldest member
    /// joined at `oldest`, closes at `at`.
    pub fn triggered(&self, files: u64, bytes: u64, oldest: Timestamp, at: Timestamp) -> bool {
        files > 0
            && (files >= self.max_files as u64
                || bytes >= self.target_size
                || at.0.saturating_sub(oldest.0) >= self.max_wait_ms as i64 * 1_000_000)
    }
}

#[async_trait]
pub trait PoolCatalog: Send + Sync + 'static {
    /// Every open pool with its files, bytes and oldest member, by key.
    async fn pools(&self) -> Result<Vec<PoolSummary>>;

    /// The open pool a file waits in, if any.
    async fn pool_of(&self, file_id: FileId) -> Result<Option<String>>;

    /// Takes one package's worth of the pool's oldest members into a new
    /// archive job, in one transaction: at most `max_files` members, and
    /// stopping at the first member that brings the bytes to the target.
    /// Unless `force`, only if a trigger holds at `at` (files reach
    /// `max_files`, bytes reach the target, or the oldest member waited
    /// `max_wait_ms`), checked inside the transaction so that nodes closing
    /// the same pool never close more than the triggers say. `None` if
    /// nothing closed (no trigger, or the pool is empty or gone).
    async fn close_pool(&self, key: &str, at: Timestamp, force: bool) -> Result<Option<ArchiveJob>>;

    /// Takes a member out of a queued job (its cached data does not match
    /// its checksum) into a job of its own, parked as failed with `error`.
    /// The rest of the job stays queued; a job left empty goes.
    async fn hold_member(&self, job: i64, file_id: FileId, error: &str) -> Result<ArchiveJob>;

    /// Recorded packages, on one volume in tape order or all of them by
    /// volume and tape order.
    async fn packages(&self, volume: Option<&str>) -> Result<Vec<Package>>;

    /// A package and its members in data order.
    async fn package(&self, id: &str) -> Result<Option<(Package, Vec<PackageMember>)>>;
}
