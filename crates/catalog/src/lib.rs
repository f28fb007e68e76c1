//! The catalog: the durable record of bale's namespace, files and tokens.
//!
//! [`Catalog`] is a narrow async trait. It has two implementations that must
//! behave identically: [`SqliteCatalog`] (the embedded default: one file, WAL,
//! durable commits) and [`PostgresCatalog`] (a shared catalog for several
//! nodes). `conformance` (feature `conformance`, for tests only) holds one
//! test suite that runs against both.
//!
//! Every method is one transaction. Methods that change several rows (a
//! batch of new files, a recursive delete, a rename over an existing entry)
//! change all of them or none. The catalog enforces the namespace's
//! structural rules (unique names per directory, directories only removed
//! when empty unless asked to recurse, no directory moved beneath itself,
//! tags inherited at creation); permissions are the caller's business.

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod model;
pub mod ops;
mod pool;
mod postgres;
mod postgres_access;
mod postgres_common;
mod postgres_connect;
mod postgres_namespace;
mod postgres_ops;
mod postgres_pool;
mod postgres_residency;
mod postgres_stage;
mod postgres_tape;
mod residency;
mod rows;
mod rules;
mod sqlite;
mod sqlite_access;
mod sqlite_common;
mod sqlite_namespace;
mod sqlite_ops;
mod sqlite_pool;
mod sqlite_residency;
mod sqlite_stage;
mod sqlite_tape;
mod stage;
mod tape;

pub use error::{CatalogError, Result};
pub use model::*;
pub use ops::{Depths, EventKind, FileEvent, OpsCatalog, OwnedPins, StageRequestSummary};
pub use pool::*;
pub use postgres_connect::PostgresCatalog;
pub use residency::{CacheCatalog, CacheUsage, Pin};
/// Why files are kept in the cache (`CacheCatalog::cache_kept`).
pub mod kept {
    pub use crate::residency::{BEING_REPAIRED, NOT_ON_TAPE, PINNED, PURGEABLE, SETTLING};
}
pub use sqlite::SqliteCatalog;
pub use stage::{
    BegunStage, NewStageFile, StageCatalog, StageFile, StagePackage, StageRequest, StageState, STAGE_PIN_OWNER,
};
pub use tape::*;

use async_trait::async_trait;
use bale_util::{NsPath, Timestamp};
use std::sync::Arc;

/// A shared handle on whichever catalog backend is configured.
pub type DynCatalog = Arc<dyn Catalog>;

#[async_trait]
pub trait Catalog:
    TapeCatalog + PoolCatalog + AccessCatalog + CacheCatalog + StageCatalog + ops::OpsCatalog + Send + Sync + 'static
{
    /// Short name of the backend, for logs and status ("sqlite", "postgres").
    fn backend(&self) -> &'static str;

    /// Gives back memory the backend holds in this process beyond what it
    /// needs now (SQLite: its connections' page caches, which a large
    /// transaction fills; the kernel's page cache keeps the file anyway).
    /// Connections busy at the moment are left alone.
    async fn release_memory(&self) {}

    /// The nodes along `path`: the root, then the node of each component
    /// in order, as far as they exist (the walk a lookup does anyway; its
    /// directories are what a permission check needs search rights on).
    async fn walk(&self, path: &NsPath) -> Result<Vec<Node>>;

    /// The node at `path`, if any.
    async fn lookup(&self, path: &NsPath) -> Result<Option<Node>> {
        let mut chain = self.walk(path).await?;
        Ok(if chain.len() == path.components().count() + 1 {
            chain.pop()
        } else {
            None
        })
    }

    /// The entry `name` in directory `dir`, if any.
    async fn child(&self, dir: NodeId, name: &str) -> Result<Option<Node>>;

    /// The entries of directory `dir` with any of `names` (those that
    /// exist, in no particular order): one round trip for a bulk request's
    /// files in one directory.
    async fn children_named(&self, dir: NodeId, names: &[String]) -> Result<Vec<Node>>;

    /// [`Catalog::walk`] of every path, in order, for bulk requests: each
    /// distinct parent directory is walked once and its named entries are
    /// fetched together, so 100,000 paths in a few directories cost a few
    /// round trips, not 100,000 walks.
    async fn walk_many(&self, paths: &[NsPath]) -> Result<Vec<Vec<Node>>> {
        use std::collections::HashMap;
        // Parent path -> the names asked for in it.
        let mut by_parent: HashMap<&str, Vec<String>> = HashMap::new();
        let mut parents: HashMap<&str, NsPath> = HashMap::new();
        for p in paths {
            if let (Some(parent), Some(name)) = (p.parent(), p.name()) {
                let key = &p.as_str()[..p.as_str().len() - name.len()];
                by_parent.entry(key).or_default().push(name.to_string());
                parents.entry(key).or_insert(parent);
            }
        }
        // Each parent's chain, and its entries by name.
        let mut found: HashMap<&str, (Vec<Node>, HashMap<String, Node>)> = HashMap::new();
        for (key, names) in by_parent {
            let parent = &parents[key];
            let chain = self.walk(parent).await?;
            let complete = chain.len() == parent.depth() + 1 && chain.last().is_some_and(|n| n.is_dir());
            let mut entries = HashMap::new();
            if complete {
                let dir = chain.last().expect("root").id;
                for chunk in names.chunks(10_000) {
                    for n in self.children_named(dir, chunk).await? {
                        entries.insert(n.name.clone(), n);
                    }
                }
            }
            found.insert(key, (chain, entries));
        }
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            let Some(name) = p.name() else {
                out.push(self.walk(p).await?);
                continue;
            };
            let key = &p.as_str()[..p.as_str().len() - name.len()];
            let (chain, entries) = &found[key];
            let mut chain = chain.clone();
            if let Some(n) = entries.get(name) {
                chain.push(n.clone());
            }
            out.push(chain);
        }
        Ok(out)
    }

    /// [`Catalog::walk`], and the tape copies of the entry at the end of
    /// the path when it is a file: what a stat with the archive status
    /// reads (one round trip on PostgreSQL).
    async fn walk_with_copies(&self, path: &NsPath) -> Result<(Vec<Node>, Vec<TapeCopy>)> {
        let chain = self.walk(path).await?;
        let leaf = chain.last().filter(|_| chain.len() == path.depth() + 1);
        let copies = match leaf.and_then(|n| n.file_id) {
            Some(id) => self.tape_copies(id).await?,
            None => Vec::new(),
        };
        Ok((chain, copies))
    }

    /// The node with this id, if any.
    async fn node(&self, id: NodeId) -> Result<Option<Node>>;

    /// The file node that carries this file id, if any.
    async fn node_by_file_id(&self, file_id: FileId) -> Result<Option<Node>>;

    /// The path of a node, rebuilt from its ancestors.
    async fn path_of(&self, id: NodeId) -> Result<NsPath>;

    /// The file nodes that carry these file ids, each with its path, as one
    /// consistent read (one query on PostgreSQL): what a package write and
    /// a package view need of their members. Files that no longer exist are
    /// left out; the order is the order of `ids`. A path is as the catalog
    /// holds it, not validated: a catalog of an older version may hold one
    /// over the length limit, which each caller judges for itself (a
    /// package write holds such a member back).
    async fn files_with_paths(&self, ids: &[FileId]) -> Result<Vec<(Node, String)>>;

    /// Up to `limit` children of `dir` in byte order of their names,
    /// starting after the name `after` (keyset pagination).
    async fn list(&self, dir: NodeId, after: Option<&str>, limit: usize) -> Result<Vec<Node>>;

    /// Creates a directory. It inherits its parent's tags.
    async fn create_dir(&self, dir: NewDir) -> Result<Node>;

    /// Records `entries` exactly as given, in ONE transaction, and returns
    /// their new ids in order: all or none (a name taken, a parent missing
    /// or not a directory, an invalid entry fail the lot). See
    /// [`ImportNode`]: a bulk load, not the write path.
    async fn import_nodes(&self, entries: &[ImportNode]) -> Result<Vec<NodeId>>;

    /// Records a batch of new files in ONE transaction (group commit). Each
    /// file succeeds or fails on its own (a name taken, a parent gone); the
    /// outer error means the whole batch failed and nothing was recorded.
    /// A file records its parent's tags as they are at commit.
    ///
    /// Every recorded file is also noted as *landing* on cache node `node`:
    /// its data may become durable only after this transaction (the
    /// committer syncs data and catalog concurrently). The same transaction
    /// clears the notes of `settled` files, whose data is durable now.
    async fn commit_files(&self, node: &str, files: &[NewFile], settled: &[FileId]) -> Result<Vec<Result<Committed>>>;

    /// Files noted as landing on cache node `node`, with their namespace
    /// nodes (`None` if removed since) and inline data. Recovery checks
    /// their cache copies, and rewrites them from the inline data.
    async fn landing_files(&self, node: &str) -> Result<Vec<LandingFile>>;

    /// Clears landing notes (and the inline data kept with them).
    async fn settle_files(&self, ids: &[FileId]) -> Result<()>;

    /// Removes a node. A non-empty directory needs `recursive`. With
    /// `only_owner`, every removed node must belong to that user or nothing
    /// is removed. Returns the removed file nodes (their data can go).
    async fn remove(&self, id: NodeId, recursive: bool, only_owner: Option<&str>) -> Result<Vec<Node>>;

    /// Moves and/or renames a node. With `overwrite`, a file or an empty
    /// directory at the destination is replaced; its removed file nodes are
    /// returned in `replaced`.
    async fn rename(&self, id: NodeId, new_parent: NodeId, new_name: &str, overwrite: bool) -> Result<Committed>;

    /// Replaces the tags of a directory. Only directories created later
    /// inherit them; files record the tags in force when they are created.
    async fn set_tags(&self, dir: NodeId, tags: &Tags) -> Result<Node>;

    /// Changes owner, group, mode and/or modification time of a node.
    async fn set_attrs(&self, id: NodeId, attrs: &AttrChange) -> Result<Node>;

    /// Sets a storage group's quota (replacing the one it had); an empty
    /// quota removes it.
    async fn set_quota(&self, quota: &Quota) -> Result<()>;

    /// Every quota, by storage group.
    async fn quotas(&self) -> Result<Vec<Quota>>;

    /// What every storage group holds in the namespace, by storage group.
    async fn group_usage(&self) -> Result<Vec<GroupUsage>>;

    /// The dead properties of these nodes, by node and then namespace and name.
    async fn dead_props(&self, ids: &[NodeId]) -> Result<Vec<(NodeId, DeadProp)>>;

    /// Applies a PROPPATCH to a node in one transaction: its changes in
    /// order, then the modification time if given. Nothing changes if any
    /// part fails (more than [`MAX_DEAD_PROPS`] properties, a node gone).
    async fn patch_props(&self, id: NodeId, changes: &[PropChange], mtime: Option<Timestamp>) -> Result<Node>;

    /// Moves last-access times forward (never back), in one transaction.
    async fn record_access(&self, touches: &[(NodeId, Timestamp)]) -> Result<()>;
}

/// Who may use the catalog: the nodes that use it, and API tokens.
#[async_trait]
pub trait AccessCatalog: Send + Sync + 'static {
    /// Registers one start of a cache node (`claim.instance` of
    /// `claim.node`) as the user of this catalog, in one transaction,
    /// unless another claim was seen less than `claim.stale_ns` ago: then
    /// `AlreadyExists` names it and when it was last seen. The one fresh
    /// claim that does not refuse is the node's own `claim.predecessor`:
    /// the instance that last ran on this node's data directory, which the
    /// caller knows is gone (it holds the directory's lock). Two processes
    /// with one node id (a copied data directory) are told apart by their
    /// instances. Several nodes on one catalog are not supported yet.
    async fn claim_catalog(&self, claim: &CatalogClaim) -> Result<()>;

    /// Records that this instance of `node` is alive at `now`; false when
    /// the catalog holds no claim of it (another process took it over).
    async fn heartbeat(&self, node: &str, instance: &str, now: Timestamp) -> Result<bool>;

    /// This instance of `node` stops using the catalog (a clean shutdown);
    /// another instance's claim is left alone.
    async fn release_catalog(&self, node: &str, instance: &str) -> Result<()>;

    /// Stores a new API token (only its hash).
    async fn create_token(&self, token: &NewToken) -> Result<TokenInfo>;

    /// The live (not revoked) token with this hash.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenInfo>>;

    /// Revokes a token by its public id; false if no live token has that id.
    async fn revoke_token(&self, id: &str, at: Timestamp) -> Result<bool>;

    /// All tokens, revoked ones included, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;
}

/// The refusal of a node that finds another live node on its catalog.
/// One start of a node claiming the catalog (`AccessCatalog::claim_catalog`).
#[derive(Clone, Debug)]
pub struct CatalogClaim {
    pub node: String,
    /// This start's id (a UUIDv7), new at every start.
    pub instance: String,
    /// The instance that last ran on this node's data directory, known
    /// to be gone ("" when none is known).
    pub predecessor: String,
    /// Where it runs, for the message another node gets.
    pub host: String,
    pub now: Timestamp,
    pub stale_ns: i64,
}

pub(crate) fn catalog_in_use(
    claim: &CatalogClaim,
    other: &str,
    instance: &str,
    host: &str,
    seen: Timestamp,
) -> CatalogError {
    let ago = (claim.now.0 - seen.0).max(0) as f64 / 1e9;
    if other == claim.node {
        return CatalogError::AlreadyExists(format!(
            "this catalog is in use by another process with this node's id {other} (instance {instance}, on \
             {host}, seen {ago:.0} s ago): a copy of this data directory runs elsewhere; stop it first (or \
             wait until it has been silent for a minute)"
        ));
    }
    CatalogError::AlreadyExists(format!(
        "this catalog is in use by node {other} on {host} (seen {ago:.0} s ago): several bale nodes on one \
         catalog are not supported yet; stop that node first (or wait until it has been silent for a minute)"
    ))
}

/// Opens the catalog named by `spec`: `sqlite:PATH` or a path for SQLite,
/// `postgres://...` or `postgresql://...` for PostgreSQL. Runs migrations.
pub async fn open(spec: &str) -> Result<DynCatalog> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        Ok(Arc::new(PostgresCatalog::connect(spec).await?))
    } else {
        let path = spec.strip_prefix("sqlite:").unwrap_or(spec);
        Ok(Arc::new(SqliteCatalog::open(std::path::Path::new(path)).await?))
    }
}
