//! The service: bale's namespace operations with their permission checks,
//! over the catalog and the cache. The HTTP layer is a thin translation of
//! requests into these calls; the CLI talks to the HTTP layer.

use crate::access::AccessLog;
use crate::archive::Archiver;
use crate::auth::{validate_account_name, Auth, Principal};
use crate::committer::{Committer, CommitterConfig};
use crate::config::{Config, SyncModeConfig};
use crate::perms::{check, may_stat, Op, Resolved};
use crate::workers::{phase, AccessFlusher, Heartbeat, OnWayCheck, PoolWatcher};
use crate::{Error, Result};
use bale_cache::{Cache, IngestError, SyncMode};
use bale_catalog::{
    ArchiveJob, ArchiveRoute, AttrChange, CatalogError, DynCatalog, JobState, NewDir, NewFile, Node, Package,
    PackageMember, Tags, TapeCopy,
};
use bale_policy::FileFacts;
use bale_tape::TapeSystem;
use bale_util::background::Background;
use bale_util::durable::{create_dir_all_durable, write_file_durable};
use bale_util::{Adler32, FileId, NsPath, Timestamp};
use bytes::Bytes;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// Bodies up to this size are written to the cache while the namespace
/// checks of their PUT run.
const SMALL_BODY: u64 = 1 << 20;

/// Top-level names that belong to the HTTP interface, not the namespace.
pub const RESERVED_NAMES: [&str; 4] = ["api", ".well-known", "metrics", "ui"];

/// Options of a write.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Replace an existing file (never a directory).
    pub overwrite: bool,
    /// The Content-Length the client declared; a different byte count is refused.
    pub declared_len: Option<u64>,
    /// The adler32 the client declared (`Digest: adler32=...`).
    pub digest: Option<Adler32>,
}

/// Where a file stands on its way to tape.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ArchiveStatus {
    /// "cached" (not on its way to tape), "pooled" (waiting in a pool),
    /// "queued" (in an archive job), "failed" or "archived".
    pub state: &'static str,
    /// The open pool the file waits in.
    pub pool: Option<String>,
    /// The archive job while there is one.
    pub job: Option<i64>,
    /// The last error of the job, if an attempt failed.
    pub error: Option<String>,
    /// Its tape copies: volume, tape file, offset.
    pub copies: Vec<TapeCopy>,
}

/// Options of a directory creation.
#[derive(Clone, Debug, Default)]
pub struct MkdirOptions {
    /// Create missing parents; an existing directory is then not an error.
    pub parents: bool,
    /// Owner, group, mode of the new directories (owner and group: admin only).
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<u32>,
}

/// One page of a directory listing.
pub struct Listing {
    /// The listed node: a directory, or a file listed as itself.
    pub node: Node,
    pub entries: Vec<Node>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A recorded package with its members' paths (`bale package show`).
#[derive(Clone, Debug)]
pub struct PackageView {
    pub package: Package,
    pub members: Vec<MemberView>,
}

#[derive(Clone, Debug)]
pub struct MemberView {
    pub member: PackageMember,
    /// The file's path now; `None` once deleted (its bytes are dead), or
    /// when the user may not see it (then `hidden`, and only the file id shows).
    pub path: Option<String>,
    /// The member is a live file whose path the user may not see.
    pub hidden: bool,
}

pub struct Service {
    config: Config,
    catalog: DynCatalog,
    cache: Cache,
    auth: Auth,
    committer: Committer,
    tape: TapeSystem,
    archiver: Arc<Archiver>,
    access: Arc<AccessLog>,
    workers: Background,
}

/// A node whose heartbeat is older than this no longer holds the catalog;
/// a live one records one every sixth of it.
const CATALOG_STALE: Duration = Duration::from_secs(60);

/// This machine's name, for the catalog's record of who uses it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".to_string())
}

fn io_err(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Internal(format!("{what}: {e}"))
}

impl Service {
    /// Opens the catalog and cache, finishes what a crash interrupted, and
    /// starts the background tasks.
    pub async fn start(config: Config) -> Result<Arc<Service>> {
        config.validate().map_err(|e| Error::BadRequest(e.to_string()))?;
        create_dir_all_durable(&config.data_dir)
            .map_err(|e| Error::Internal(format!("cannot create data dir {}: {e}", config.data_dir.display())))?;
        let catalog = bale_catalog::open(&config.catalog_spec()).await?;
        let sync = match config.ingest.sync {
            SyncModeConfig::Fsync => SyncMode::Fsync,
            SyncModeConfig::Syncfs => SyncMode::Syncfs,
        };
        let cache = Cache::open(&config.cache_dir(), sync)
            .map_err(io_err("cannot open cache"))?
            .with_inline(
                config.ingest.inline_max.as_u64(),
                config.ingest.inline_pending_max.as_u64(),
            );
        let node = node_id(&config)?;
        // One node per catalog for now: refuse to start (before recovery or
        // the tape system touch anything) while another node is alive on it.
        let host = format!("{} ({})", hostname(), config.listen);
        catalog
            .claim_catalog(&node, &host, Timestamp::now(), CATALOG_STALE.as_nanos() as i64)
            .await
            .map_err(|e| match e {
                CatalogError::AlreadyExists(m) => Error::Conflict(m),
                e => e.into(),
            })?;
        recover(&catalog, &cache, &node).await?;
        let members = {
            let cache = cache.clone();
            Arc::new(bale_tape::CatalogMembers {
                catalog: catalog.clone(),
                open: move |id| cache.open_data(id),
            })
        };
        let workers = Background::new();
        {
            let catalog = catalog.clone();
            workers.on_dead(Arc::new(move |name: &str, msg: &str| {
                let (catalog, source, msg) = (catalog.clone(), format!("worker {name}"), msg.to_string());
                tokio::spawn(async move {
                    let text = format!("{source} died: {msg}");
                    if let Err(e) = catalog.raise_alarm("error", &source, &text).await {
                        tracing::error!("cannot raise the alarm \"{text}\": {e}");
                    }
                });
            }));
        }
        let tape = TapeSystem::start(
            catalog.clone(),
            members,
            config.tape.clone(),
            &config.data_dir,
            workers.spawner(phase::DRIVES),
        )
        .await?;
        let archiver = match Archiver::open(&config.archive.policy, &config.data_dir, catalog.clone(), tape.clone()) {
            Ok(a) => Arc::new(a),
            Err(e) => {
                workers.shutdown(Duration::from_secs(config.shutdown_deadline_s)).await;
                return Err(e);
            }
        };
        workers.spawn(
            phase::AGGREGATION,
            OnWayCheck {
                archiver: archiver.clone(),
                every: Duration::from_secs(config.archive.check_on_way_s),
                repaired: 0,
            },
        );
        workers.spawn(
            phase::AGGREGATION,
            PoolWatcher {
                archiver: archiver.clone(),
                every: Duration::from_millis(config.archive.check_ms),
                closed: 0,
            },
        );
        let committer = Committer::spawn(
            catalog.clone(),
            cache.clone(),
            CommitterConfig {
                node: node.clone(),
                max_batch: config.ingest.max_batch,
                settle_every: Duration::from_millis(config.ingest.settle_ms),
            },
            &workers,
            phase::COMMIT,
        );
        let access = Arc::new(AccessLog::default());
        workers.spawn(
            phase::ACCESS,
            AccessFlusher {
                access: access.clone(),
                catalog: catalog.clone(),
                every: Duration::from_millis(config.namespace.access_time_flush_ms.max(1)),
            },
        );
        workers.spawn(
            phase::HEARTBEAT,
            Heartbeat {
                catalog: catalog.clone(),
                node: node.clone(),
                every: CATALOG_STALE / 6,
            },
        );
        let svc = Arc::new(Service {
            auth: Auth::new(catalog.clone()),
            config,
            catalog,
            cache,
            committer,
            tape,
            archiver,
            access,
            workers,
        });
        svc.ensure_admin_token().await?;
        Ok(svc)
    }

    /// Stops the background workers in their order (aggregation, commits,
    /// access times, drives, the catalog heartbeat) within the configured
    /// deadline. Call after the HTTP server has finished its requests.
    pub async fn shutdown(&self) {
        let deadline = Duration::from_secs(self.config.shutdown_deadline_s);
        let aborted = self.workers.shutdown(deadline).await;
        if !aborted.is_empty() {
            tracing::error!(
                "stopped {} at the shutdown deadline ({deadline:?}); the next start recovers their work",
                aborted.join(", ")
            );
        }
    }

    /// The background workers (phase order), for `bale workers`.
    pub(crate) fn background(&self) -> &Background {
        &self.workers
    }

    /// The tape system: libraries, drives, volumes, the scheduler.
    pub(crate) fn tape(&self) -> &TapeSystem {
        &self.tape
    }

    /// Aggregation: the policy, pools, the queue.
    pub(crate) fn archiver(&self) -> &Archiver {
        &self.archiver
    }

    /// Where a file stands on its way to tape.
    pub async fn archive_status(&self, node: &Node) -> Result<Option<ArchiveStatus>> {
        let Some(id) = node.file_id else { return Ok(None) };
        let copies = self.catalog.tape_copies(id).await?;
        let job = if copies.is_empty() {
            self.catalog.job_of(id).await?
        } else {
            None
        };
        let pool = if copies.is_empty() && job.is_none() {
            self.catalog.pool_of(id).await?
        } else {
            None
        };
        let state = match (&copies[..], &job, &pool) {
            ([_, ..], _, _) => "archived",
            ([], Some(j), _) if j.state == JobState::Failed => "failed",
            ([], Some(_), _) => "queued",
            ([], None, Some(_)) => "pooled",
            ([], None, None) => "cached",
        };
        Ok(Some(ArchiveStatus {
            state,
            pool,
            job: job.as_ref().map(|j| j.id),
            error: job.and_then(|j| j.error),
            copies,
        }))
    }

    /// How the policy would route a file at `path` of `size` bytes owned by
    /// `owner`: the file need not exist; the tags are those of the nearest
    /// existing directory on the path (what a new file there would get).
    pub async fn policy_check(
        &self,
        who: &Principal,
        path: &NsPath,
        size: u64,
        owner: &str,
        group: &str,
    ) -> Result<crate::archive::Explanation> {
        // The nearest existing directory above the (maybe imaginary) file,
        // if `who` may see it.
        let chain = self.catalog.walk(path).await?;
        let known = chain.len().min(path.depth().max(1));
        let prefix = |i: usize| format!("/{}", path.components().take(i).collect::<Vec<_>>().join("/"));
        if let Some(i) = chain[..known].iter().position(|n| !n.is_dir()) {
            return Err(Error::Conflict(format!("{} is a file, not a directory", prefix(i))));
        }
        let nearest = known - 1;
        check(
            who,
            Op::Stat,
            &Resolved::new(NsPath::parse(&prefix(nearest))?, chain[..=nearest].to_vec()),
        )?;
        let tags = chain[nearest].tags.clone();
        self.archiver.explain(&FileFacts {
            path: path.as_str(),
            size,
            owner,
            group,
            tags: &tags,
        })
    }

    /// Recorded packages, all or on one volume.
    pub async fn packages(&self, volume: Option<&str>) -> Result<Vec<Package>> {
        if let Some(v) = volume {
            if self.catalog.volume(v).await?.is_none() {
                return Err(Error::NotFound(format!("no volume {v:?}")));
            }
        }
        Ok(self.catalog.packages(volume).await?)
    }

    /// A package with its members and their paths.
    pub async fn package(&self, who: &Principal, id: &str) -> Result<PackageView> {
        let (package, members) = self
            .catalog
            .package(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no package {id:?}; bale packages lists them")))?;
        // Every live member's path in one catalog read; a user who is not
        // an administrator sees only the paths they may stat (a walk each,
        // the directories' answers remembered).
        let ids: Vec<FileId> = members.iter().map(|m| m.file_id).collect();
        let mut paths: std::collections::HashMap<FileId, NsPath> = self
            .catalog
            .files_with_paths(&ids)
            .await?
            .into_iter()
            .map(|(n, p)| (n.file_id.expect("a file"), p))
            .collect();
        let mut dir_visible: std::collections::HashMap<NsPath, bool> = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let (path, hidden) = match paths.remove(&m.file_id) {
                None => (None, false),
                Some(path) if who.admin => (Some(path.to_string()), false),
                Some(path) => {
                    let dir = path.parent().unwrap_or_else(NsPath::root);
                    let visible = match dir_visible.get(&dir) {
                        Some(v) => *v,
                        None => {
                            let v = may_stat(who, &Resolved::new(path.clone(), self.catalog.walk(&path).await?));
                            dir_visible.insert(dir, v);
                            v
                        }
                    };
                    if visible {
                        (Some(path.to_string()), false)
                    } else {
                        (None, true)
                    }
                }
            };
            out.push(MemberView {
                member: m,
                path,
                hidden,
            });
        }
        Ok(PackageView { package, members: out })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn catalog(&self) -> &DynCatalog {
        &self.catalog
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Writes `<data_dir>/admin.token` (mode 0600) unless it holds a live token.
    async fn ensure_admin_token(&self) -> Result<()> {
        let path = self.config.admin_token_path();
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let header = format!("Bearer {}", existing.trim());
            if self.auth.authenticate(Some(&header)).await.is_ok() {
                return Ok(());
            }
            tracing::warn!("{} holds no live token; issuing a new one", path.display());
        }
        let (token, _) = self
            .auth
            .create("admin", "admin", true, "admin token written at first start")
            .await?;
        write_file_durable(&path, format!("{token}\n").as_bytes(), 0o600)
            .map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))?;
        tracing::info!("wrote the admin token to {}", path.display());
        Ok(())
    }

    /// Walks `path` and checks that `who` may do `op` on it: every
    /// operation on a path goes through here (see `perms`).
    async fn authorize(&self, who: &Principal, op: Op, path: &NsPath) -> Result<Resolved> {
        let r = Resolved::new(path.clone(), self.catalog.walk(path).await?);
        check(who, op, &r)?;
        Ok(r)
    }

    /// The entry at `path`, if `who` may do `op` on it.
    async fn entry(&self, who: &Principal, op: Op, path: &NsPath) -> Result<Node> {
        let r = self.authorize(who, op, path).await?;
        Ok(r.node().expect("checked").clone())
    }

    pub async fn stat(&self, who: &Principal, path: &NsPath) -> Result<Node> {
        self.entry(who, Op::Stat, path).await
    }

    pub async fn list(&self, who: &Principal, path: &NsPath, after: Option<&str>, limit: usize) -> Result<Listing> {
        let node = self.entry(who, Op::List, path).await?;
        if !node.is_dir() {
            return Ok(Listing {
                entries: vec![node.clone()],
                node,
                next: None,
            });
        }
        let limit = limit.clamp(1, 100_000);
        let mut entries = self.catalog.list(node.id, after, limit + 1).await?;
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|n| n.name.clone())
        } else {
            None
        };
        Ok(Listing { node, entries, next })
    }

    pub async fn mkdir(&self, who: &Principal, path: &NsPath, opts: &MkdirOptions) -> Result<Node> {
        if (opts.owner.is_some() || opts.group.is_some()) && !who.admin {
            return Err(Error::Forbidden(
                "only an administrator may create directories for another owner".into(),
            ));
        }
        if let Some(o) = &opts.owner {
            validate_account_name("owner", o)?;
        }
        if let Some(g) = &opts.group {
            validate_account_name("group", g)?;
        }
        let mode = opts.mode.unwrap_or(self.config.namespace.dir_mode);
        if mode > 0o7777 {
            return Err(Error::BadRequest(format!("invalid mode {mode:o}: at most 7777")));
        }
        check_reserved(path)?;
        if path.is_root() {
            return Err(Error::Exists("/ already exists".into()));
        }
        let new_dir = |parent: &Node, name: &str| NewDir {
            parent: parent.id,
            name: name.to_string(),
            owner: opts.owner.clone().unwrap_or_else(|| who.user.clone()),
            group: opts.group.clone().unwrap_or_else(|| who.group.clone()),
            mode,
            time: Timestamp::now(),
        };
        if !opts.parents {
            let r = self.authorize(who, Op::Create, path).await?;
            if r.node().is_some() {
                return Err(Error::Exists(format!("{path} already exists")));
            }
            let name = path.name().expect("not root");
            return self
                .catalog
                .create_dir(new_dir(r.parent().expect("checked"), name))
                .await
                .map_err(|e| match e {
                    CatalogError::AlreadyExists(_) => Error::Exists(format!("{path} already exists")),
                    e => e.into(),
                });
        }
        let mut cur_path = NsPath::root();
        let mut cur = self.stat(who, &cur_path).await?;
        for name in path.components() {
            let next_path = cur_path.join(name)?;
            let r = self.authorize(who, Op::Stat, &next_path).await;
            let next = match r {
                Ok(r) => r.node().expect("checked").clone(),
                Err(Error::NotFound(_)) => {
                    self.authorize(who, Op::Create, &next_path).await?;
                    match self.catalog.create_dir(new_dir(&cur, name)).await {
                        Ok(n) => n,
                        // Created concurrently: fine for mkdir -p.
                        Err(CatalogError::AlreadyExists(_)) => self.stat(who, &next_path).await?,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e),
            };
            if !next.is_dir() {
                return Err(Error::Conflict(format!("{next_path} exists and is not a directory")));
            }
            cur = next;
            cur_path = next_path;
        }
        Ok(cur)
    }

    /// Whether `who` may create the file at `path`, or with the overwrite
    /// option write into the existing one; returns the parent directory.
    /// One walk of the path finds both (one catalog round trip).
    async fn put_checks(&self, who: &Principal, path: &NsPath, opts: &PutOptions) -> Result<Node> {
        let r = Resolved::new(path.clone(), self.catalog.walk(path).await?);
        match r.node() {
            Some(existing) if existing.is_dir() => {
                check(who, Op::Stat, &r)?;
                return Err(Error::IsADirectory(format!("{path} is a directory")));
            }
            Some(_) if !opts.overwrite => {
                check(who, Op::Stat, &r)?;
                return Err(Error::Exists(format!(
                    "{path} already exists; send 'Overwrite: T' (bale put --overwrite) to replace it"
                )));
            }
            // An overwrite is a write into the existing file.
            Some(_) => check(who, Op::Overwrite, &r)?,
            None => check(who, Op::Create, &r)?,
        }
        Ok(r.parent().expect("checked").clone())
    }

    /// Receives a file. Returns only once its data and catalog row are durable.
    pub async fn put<S, E>(&self, who: &Principal, path: &NsPath, opts: &PutOptions, body: S) -> Result<Node>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        // Counted as arriving from here: the committer waits briefly for
        // writes that will reach it within a fraction of a batch time.
        let arriving = self.committer.arriving();
        check_reserved(path)?;
        let id = FileId::generate();
        let ingest = async {
            self.cache
                .ingest(id, body, opts.declared_len)
                .await
                .map_err(|e| match e {
                    IngestError::Io(e) => Error::Internal(format!("cache write failed: {e}")),
                    e => Error::BadRequest(e.to_string()),
                })
        };
        // A small body (declared, and received whole with the headers as a
        // rule) is written to tmp/ on a blocking thread WHILE the namespace
        // checks run: they cost as much as the write, and a refused file's
        // staged data is removed again when dropped. A large body is
        // received only after the checks passed.
        let small = opts.declared_len.is_some_and(|n| n <= SMALL_BODY);
        let mut ingest = std::pin::pin!(ingest);
        let early = if small {
            futures::poll!(ingest.as_mut())
        } else {
            Poll::Pending
        };
        let parent = match self.put_checks(who, path, opts).await {
            Ok(parent) => parent,
            Err(e) => {
                // Let a write already under way finish, so that dropping it
                // removes its data.
                if small && early.is_pending() {
                    drop(ingest.await);
                }
                return Err(e);
            }
        };
        let staged = match early {
            Poll::Ready(staged) => staged,
            Poll::Pending => ingest.await,
        }?;
        let name = path.name().expect("not root");
        if let Some(declared) = opts.declared_len {
            if staged.size != declared {
                return Err(Error::BadRequest(format!(
                    "short body: received {} of the {declared} bytes declared by Content-Length",
                    staged.size
                )));
            }
        }
        if let Some(expected) = opts.digest {
            if expected != staged.adler32 {
                return Err(Error::ChecksumMismatch(format!(
                    "checksum mismatch for {path}: the client sent adler32={expected}, the data received has adler32={}; nothing was stored",
                    staged.adler32
                )));
            }
        }
        // Large files go to tape on their own as soon as they are durable;
        // the policy sends the rest direct or into a pool.
        let archive = self.archiver.route(&FileFacts {
            path: path.as_str(),
            size: staged.size,
            owner: &who.user,
            group: &who.group,
            tags: &parent.tags,
        })?;
        let file = NewFile {
            parent: parent.id,
            name: name.to_string(),
            file_id: id,
            owner: who.user.clone(),
            group: who.group.clone(),
            mode: self.config.namespace.file_mode,
            size: staged.size,
            adler32: staged.adler32,
            time: Timestamp::now(),
            replace: opts.overwrite,
            archive: Some(archive.clone()),
            // Filled in by the committer for inline files.
            inline: None,
        };
        let (file_id, size, time) = (file.file_id, file.size, file.time);
        let committed = self
            .committer
            .commit(file, staged, arriving)
            .await
            .map_err(|e| match e {
                Error::Exists(_) => Error::Exists(format!(
                    "{path} already exists; send 'Overwrite: T' (bale put --overwrite) to replace it"
                )),
                // The catalog names the entry; the client named a path.
                Error::IsADirectory(_) => Error::IsADirectory(format!("{path} is a directory")),
                e => e,
            })?;
        if let (Some(id), ArchiveRoute::Direct(target)) = (committed.job, archive) {
            self.tape.enqueue(ArchiveJob {
                id,
                state: JobState::Queued,
                target,
                bytes: size,
                created: time,
                attempts: 0,
                error: None,
                pool: None,
                files: vec![file_id],
            });
        }
        Ok(committed.node)
    }

    /// Opens a file's data. Call [`Service::record_read`] once bytes are sent.
    pub async fn open(&self, who: &Principal, path: &NsPath) -> Result<(Node, tokio::fs::File)> {
        let r = self.authorize(who, Op::Stat, path).await?;
        let node = r.node().expect("checked").clone();
        if node.is_dir() {
            return Err(Error::IsADirectory(format!(
                "{path} is a directory: list it with PROPFIND or GET /api/v1/list{path}"
            )));
        }
        check(who, Op::Read, &r)?;
        let id = node
            .file_id
            .ok_or_else(|| Error::Internal(format!("{path} has no file id")))?;
        let f =
            self.cache.open_read(id).await.map_err(|e| {
                Error::Internal(format!("data of {path} (file id {id}) is missing from the cache: {e}"))
            })?;
        Ok((node, f))
    }

    /// Counts a read of the file's data as an access (for LRU purging).
    pub fn record_read(&self, node: &Node) {
        self.access.record(node.id);
    }

    /// Removes a file or directory (`recursive` for a non-empty directory).
    /// Returns how many files were removed.
    pub async fn delete(&self, who: &Principal, path: &NsPath, recursive: bool) -> Result<usize> {
        if path.is_root() {
            return Err(Error::Forbidden("the root directory cannot be removed".into()));
        }
        let node = self.entry(who, Op::Remove, path).await?;
        let only_owner = (!who.admin).then_some(who.user.as_str());
        let removed = self
            .catalog
            .remove(node.id, recursive, only_owner)
            .await
            .map_err(|e| match e {
                CatalogError::NotEmpty(_) => Error::Conflict(format!("directory {path} is not empty")),
                e => e.into(),
            })?;
        self.drop_data(&removed).await;
        Ok(removed.len())
    }

    /// Removes the cached data of files that left the namespace.
    async fn drop_data(&self, nodes: &[Node]) {
        let ids: Vec<FileId> = nodes.iter().filter_map(|n| n.file_id).collect();
        if ids.is_empty() {
            return;
        }
        let cache = self.cache.clone();
        let r = tokio::task::spawn_blocking(move || ids.iter().try_for_each(|&id| cache.remove(id))).await;
        if let Err(e) = r.map_err(std::io::Error::other).and_then(|r| r) {
            tracing::warn!("removing data of deleted files failed: {e}");
        }
    }

    /// Moves `from` to `to`. Returns the moved node and whether an existing
    /// entry at `to` was replaced.
    pub async fn rename(&self, who: &Principal, from: &NsPath, to: &NsPath, overwrite: bool) -> Result<(Node, bool)> {
        if from.is_root() {
            return Err(Error::Forbidden("the root directory cannot be moved".into()));
        }
        if from == to {
            return Err(Error::Forbidden(format!(
                "cannot move {from} onto itself: source and destination are the same"
            )));
        }
        check_reserved(to)?;
        let node = self.entry(who, Op::Remove, from).await?;
        let target = self.authorize(who, Op::Create, to).await?;
        let to_parent = target.parent().expect("checked");
        let dest = target.node().cloned();
        if let (true, Some(_)) = (overwrite, &dest) {
            check(who, Op::Replace, &target)?;
        }
        let name = to.name().expect("not root");
        let committed = self
            .catalog
            .rename(node.id, to_parent.id, name, overwrite)
            .await
            .map_err(|e| match e {
                CatalogError::AlreadyExists(_) => Error::Exists(format!("{to} already exists")),
                CatalogError::NotEmpty(_) => Error::Conflict(format!("{to} is a non-empty directory")),
                e => e.into(),
            })?;
        self.drop_data(&committed.replaced).await;
        let replaced = dest.is_some_and(|d| d.id != committed.node.id);
        Ok((committed.node, replaced))
    }

    /// Copies `from` to `to` (WebDAV COPY; `cp`, or `cp -r` with
    /// `recursive`). The whole source is walked first (read and list
    /// permission on all of it) so that a refusal changes nothing. An
    /// existing file at `to` is written into (as `cp` does: it keeps its
    /// owner, group and mode; needs `w` on it); an existing directory is
    /// removed first (RFC 4918); with `overwrite` false an existing `to` is
    /// refused. Every copied byte is checked against the source's adler32.
    /// New directories take the source's mode and inherit their new
    /// parent's tags. Returns whether an existing entry was replaced.
    pub async fn copy(
        &self,
        who: &Principal,
        from: &NsPath,
        to: &NsPath,
        overwrite: bool,
        recursive: bool,
    ) -> Result<bool> {
        if from == to {
            return Err(Error::Forbidden(format!("cannot copy {from} onto itself")));
        }
        check_reserved(to)?;
        let src = self.stat(who, from).await?;
        if src.is_dir() && to.starts_with(from) {
            return Err(Error::Conflict(format!(
                "cannot copy directory {from} into itself ({to})"
            )));
        }
        // The plan: relative paths of the directories to make and files to copy.
        let mut dirs: Vec<(String, u32)> = Vec::new();
        let mut files: Vec<String> = Vec::new();
        if src.is_dir() {
            dirs.push((String::new(), src.mode));
            let mut todo = vec![String::new()];
            while recursive && !todo.is_empty() {
                let rel = todo.pop().expect("not empty");
                let dir = NsPath::parse(&format!("{from}{rel}"))?;
                let mut after: Option<String> = None;
                loop {
                    let page = self.list(who, &dir, after.as_deref(), 10_000).await?;
                    for n in &page.entries {
                        let child = format!("{rel}/{}", n.name);
                        if n.is_dir() {
                            dirs.push((child.clone(), n.mode));
                            todo.push(child);
                        } else {
                            let path = NsPath::parse(&format!("{from}{child}"))?;
                            self.entry(who, Op::Read, &path).await?;
                            files.push(child);
                        }
                    }
                    match page.next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
            }
        } else {
            self.entry(who, Op::Read, from).await?;
            files.push(String::new());
        }
        let target = self.authorize(who, Op::Create, to).await?;
        let replaced = match target.node() {
            Some(_) if !overwrite => {
                return Err(Error::Exists(format!("{to} already exists")));
            }
            Some(d) if d.is_dir() || src.is_dir() => {
                self.delete(who, to, true).await?;
                true
            }
            Some(_) => {
                check(who, Op::Overwrite, &target)?;
                true
            }
            None => false,
        };
        // Relative paths start with '/'; parsing normalizes "//".
        let at = |rel: &str| NsPath::parse(&format!("{to}{rel}"));
        for (rel, mode) in &dirs {
            let opts = MkdirOptions {
                mode: Some(*mode),
                ..MkdirOptions::default()
            };
            self.mkdir(who, &at(rel)?, &opts).await?;
        }
        for rel in &files {
            let source = NsPath::parse(&format!("{from}{rel}"))?;
            let (node, file) = self.open(who, &source).await?;
            let opts = PutOptions {
                overwrite: replaced && rel.is_empty() && !src.is_dir(),
                declared_len: Some(node.size),
                digest: node.adler32,
            };
            self.put(who, &at(rel)?, &opts, tokio_util::io::ReaderStream::new(file))
                .await?;
            self.record_read(&node);
        }
        Ok(replaced)
    }

    /// Sets (`Some`) or clears (`None`) tags on a directory.
    pub async fn set_tags(&self, who: &Principal, path: &NsPath, changes: &[(String, Option<String>)]) -> Result<Node> {
        let node = self.entry(who, Op::Tag, path).await?;
        if !node.is_dir() {
            return Err(Error::Conflict(format!(
                "{path} is a file: tags are set on directories (a file keeps the tags in force when it was written)"
            )));
        }
        if changes.is_empty() {
            return Err(Error::BadRequest("no tags given".into()));
        }
        let mut tags: Tags = node.tags.clone();
        for (k, v) in changes {
            tags.set(k, v.as_deref()).map_err(Error::BadRequest)?;
        }
        // A library tag must name a library this server has: otherwise
        // every later write below the directory would fail.
        if let Some(lib) = &tags.library {
            let libraries: Vec<String> = self.tape.libraries().into_iter().map(|l| l.name).collect();
            if !libraries.contains(lib) {
                return Err(Error::BadRequest(format!(
                    "unknown library {lib:?}: the configured libraries are {}",
                    libraries.join(", ")
                )));
            }
        }
        Ok(self.catalog.set_tags(node.id, &tags).await?)
    }

    /// Changes owner and group (administrators) or mode (the owner).
    pub async fn set_attrs(&self, who: &Principal, path: &NsPath, change: &AttrChange) -> Result<Node> {
        // Owner and group: administrators (who may change the mode too);
        // the mode alone: the owner.
        let op = if change.owner.is_some() || change.group.is_some() {
            Op::Chown
        } else {
            Op::Chmod
        };
        let node = self.entry(who, op, path).await?;
        if let Some(o) = &change.owner {
            validate_account_name("owner", o)?;
        }
        if let Some(g) = &change.group {
            validate_account_name("group", g)?;
        }
        if let Some(m) = change.mode {
            if m > 0o7777 {
                return Err(Error::BadRequest(format!("invalid mode {m:o}: at most 7777")));
            }
        }
        Ok(self.catalog.set_attrs(node.id, change).await?)
    }
}

fn check_reserved(path: &NsPath) -> Result<()> {
    if path.depth() >= 1 {
        let top = path.components().next().expect("depth >= 1");
        if RESERVED_NAMES.contains(&top) {
            return Err(Error::BadRequest(format!(
                "/{top} is reserved for the HTTP interface and cannot be used in the namespace"
            )));
        }
    }
    Ok(())
}

/// This node's id: read from `<data_dir>/node.id`, created at first start.
fn node_id(config: &Config) -> Result<String> {
    let path = config.data_dir.join("node.id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Internal(format!("cannot read {}: {e}", path.display())))
        }
        _ => {
            let id = uuid::Uuid::now_v7().to_string();
            write_file_durable(&path, format!("{id}\n").as_bytes(), 0o644)
                .map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))?;
            Ok(id)
        }
    }
}

/// Finishes what a crash interrupted.
///
/// 1. Landing files (recorded while their data was being synced): a file
///    whose data is complete stays; a file whose data is missing or short
///    was never acknowledged, and its row goes.
/// 2. `tmp/`: files whose catalog row exists are promoted; everything else
///    is an unacknowledged write and is removed.
async fn recover(catalog: &DynCatalog, cache: &Cache, node: &str) -> Result<()> {
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
        let c = cache.clone();
        tokio::task::spawn_blocking(move || c.sync_landed())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(io_err("cannot sync the cache"))?;
        let ids: Vec<FileId> = landing.iter().map(|l| l.id).collect();
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
