//! Namespace operations: stat, list, mkdir, read, delete, rename, copy, tags
//! and attributes, each authorized once (`authorize`, see `perms`).

use crate::auth::{validate_account_name, Principal};
use crate::config::OnReadMiss;
use crate::perms::{self, check, Op, Resolved};
use crate::put::PutOptions;
use crate::reserved::check_reserved;
use crate::service::Service;
use crate::{Error, Result};
use bale_catalog::{AttrChange, CatalogError, DeadProp, EventKind, FileEvent, NewDir, Node, NodeId, PropChange, Tags};
use bale_util::{FileId, NsPath, Timestamp};
use std::collections::HashMap;

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

impl Service {
    /// Walks `path` and checks that `who` may do `op` on it: every
    /// operation on a path goes through here (see `perms`).
    pub(crate) async fn authorize(&self, who: &Principal, op: Op, path: &NsPath) -> Result<Resolved> {
        let r = Resolved::new(path.clone(), self.catalog.walk(path).await?);
        check(who, op, &r)?;
        Ok(r)
    }

    /// The entry at `path`, if `who` may do `op` on it.
    pub(crate) async fn entry(&self, who: &Principal, op: Op, path: &NsPath) -> Result<Node> {
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
        // Creating for another owner or group is an administrator's (perms).
        let create = match opts.owner.is_some() || opts.group.is_some() {
            true => Op::CreateAs,
            false => Op::Create,
        };
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
            let r = self.authorize(who, create, path).await?;
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
                    self.authorize(who, create, &next_path).await?;
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

    /// The file at `path` if `who` may read its data: what a HEAD answers
    /// from (it never stages).
    pub async fn readable(&self, who: &Principal, path: &NsPath) -> Result<Node> {
        let r = Resolved::new(path.clone(), self.catalog.walk(path).await?);
        file_for(who, r, Op::Read)
    }

    /// The file at `path` if `who` may stage or pin it (`Op::Stage`).
    pub async fn stageable(&self, who: &Principal, path: &NsPath) -> Result<Node> {
        let r = Resolved::new(path.clone(), self.catalog.walk(path).await?);
        file_for(who, r, Op::Stage)
    }

    /// The file at each of `paths` (as sent: each parsed, walked and
    /// checked for `op` on its own, the catalog asked in bulk), in order.
    pub async fn files_for(&self, who: &Principal, paths: &[String], op: Op) -> Result<Vec<Result<Node>>> {
        Ok(self
            .resolve_many(paths)
            .await?
            .into_iter()
            .map(|r| file_for(who, r?, op))
            .collect())
    }

    /// Each of `paths` (as sent) parsed and walked, the walks done in bulk
    /// (`Catalog::walk_many`); a path that does not parse gets its error.
    /// Nothing is checked yet: each caller checks its own operation.
    pub(crate) async fn resolve_many(&self, paths: &[String]) -> Result<Vec<Result<Resolved>>> {
        let parsed: Vec<Result<NsPath>> = paths.iter().map(|p| Ok(NsPath::parse(p)?)).collect();
        let good: Vec<NsPath> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
        let mut chains = self.catalog.walk_many(&good).await?.into_iter();
        Ok(parsed
            .into_iter()
            .map(|p| p.map(|path| Resolved::new(path, chains.next().expect("walked"))))
            .collect())
    }
}

/// The file `r` resolves to, if `who` may do `op` (read, stage) on it
/// (stat on the path, then `op` on the file; a directory is refused).
fn file_for(who: &Principal, r: Resolved, op: Op) -> Result<Node> {
    if let Err(e) = check(who, Op::Stat, &r) {
        // A capability token that may not even stat the path is told the
        // scope the operation needs (storage.stage), not the first scope
        // that would allow a stat.
        if let (Error::InsufficientScope { .. }, Err(needed)) = (&e, check(who, op, &r)) {
            return Err(needed);
        }
        return Err(e);
    }
    if r.node().expect("checked").is_dir() {
        let path = &r.path;
        return Err(Error::IsADirectory(format!(
            "{path} is a directory: list it with PROPFIND or GET /api/v1/list{path}"
        )));
    }
    check(who, op, &r)?;
    Ok(r.into_node().expect("checked"))
}

impl Service {
    /// Opens the file at `path` for reading its data; a file whose only
    /// copy is on tape is staged first (or refused), as configured.
    pub async fn open(&self, who: &Principal, path: &NsPath) -> Result<(Node, tokio::fs::File)> {
        let node = self.readable(who, path).await?;
        let id = node
            .file_id
            .ok_or_else(|| Error::Internal(format!("{path} has no file id")))?;
        if !node.cached {
            self.read_miss(path, &node, id).await?;
        }
        match self.cache.open_read(id).await {
            Ok(f) if f.metadata().await.is_ok_and(|m| m.len() == node.size) => return Ok((node, f)),
            _ => {}
        }
        // The cache copy is missing or of the wrong size (a power cut took
        // data that had not reached the disk): never served short; a file
        // on tape is staged again.
        self.drop_bad_copy(path, &node, id).await?;
        self.read_miss(path, &node, id).await?;
        let f =
            self.cache.open_read(id).await.map_err(|e| {
                Error::Internal(format!("data of {path} (file id {id}) is missing from the cache: {e}"))
            })?;
        Ok((node, f))
    }

    /// Records a cached file whose data is missing or short as not cached
    /// and removes the bad data, when a tape copy exists; otherwise the
    /// file is lost: an alarm and an error.
    async fn drop_bad_copy(&self, path: &NsPath, node: &Node, id: FileId) -> Result<()> {
        let _residency = self.stager.residency.lock().await;
        let cache = self.cache.clone();
        let found = tokio::task::spawn_blocking(move || std::fs::metadata(cache.file_path(id)).map(|m| m.len()).ok())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let what = match found {
            Some(n) if n == node.size => return Ok(()),
            Some(n) => format!("{n} bytes in the cache, {} in the catalog", node.size),
            None => "no data in the cache".to_string(),
        };
        if !self
            .catalog
            .tape_copies(id)
            .await?
            .iter()
            .any(|c| c.package.bad.is_none())
        {
            let msg = format!("{path} (file id {id}): {what} and no good tape copy; the file is lost");
            self.catalog.raise_alarm("error", "cache", &msg).await?;
            return Err(Error::Internal(msg));
        }
        let msg = format!("{path} (file id {id}): {what}; staged again from tape");
        tracing::warn!("{msg}");
        self.catalog.raise_alarm("warning", "cache", &msg).await?;
        self.catalog.mark_copies_lost(&[id]).await?;
        self.cache
            .remove(id)
            .map_err(|e| Error::Internal(format!("cannot remove the bad data of {path}: {e}")))
    }

    /// A read of a file whose only copy is on tape: stage it and wait (up
    /// to `stage.read_wait_s`), or refuse, as configured.
    async fn read_miss(&self, path: &NsPath, node: &Node, id: FileId) -> Result<()> {
        let wait = std::time::Duration::from_secs(self.config.stage.read_wait_s);
        // The policy rule the file falls under may say; else the server.
        let policy = self.archiver.policy();
        let facts = bale_policy::FileFacts {
            path: path.as_str(),
            size: node.size,
            owner: &node.owner,
            group: &node.group,
            tags: &node.tags,
        };
        let mode = policy
            .policy
            .route(&facts)
            .rule
            .on_read_miss
            .unwrap_or(self.config.stage.on_read_miss);
        match mode {
            OnReadMiss::Error => Err(Error::OnTapeOnly(format!(
                "{path} is on tape only: stage it first (bale stage {path})"
            ))),
            OnReadMiss::Stage => {
                let stager = self.stager.clone();
                let p = path.to_string();
                // The stage goes on if this request gives up waiting.
                let stage = tokio::spawn(async move { stager.stage_file(id, &p).await });
                match tokio::time::timeout(wait, stage).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => Err(Error::Internal(format!("staging {path}: {e}"))),
                    Err(_) => Err(Error::Unavailable(format!(
                        "{path} is on tape only and is being staged; retry later"
                    ))),
                }
            }
        }
    }

    /// Counts a read of the file's data as an access (for LRU purging).
    pub fn record_read(&self, node: &Node) {
        self.access.record(node.id);
        if let Some(id) = node.file_id {
            self.events.read(id);
        }
    }

    /// Removes a file or directory (`recursive` for a non-empty directory).
    /// Returns how many files were removed.
    pub async fn delete(&self, who: &Principal, path: &NsPath, recursive: bool) -> Result<usize> {
        if path.is_root() {
            return Err(Error::Forbidden("the root directory cannot be removed".into()));
        }
        let node = self.entry(who, Op::Remove, path).await?;
        let only_owner = perms::owner_bound(who);
        let removed = self
            .catalog
            .remove(node.id, recursive, only_owner)
            .await
            .map_err(|e| match e {
                CatalogError::NotEmpty(_) => Error::Conflict(format!("directory {path} is not empty")),
                e => e.into(),
            })?;
        self.drop_data(&removed).await;
        let now = Timestamp::now();
        for n in &removed {
            let Some(id) = n.file_id else { continue };
            let mut e = FileEvent::new(id, EventKind::Deleted, now);
            e.who = Some(who.user.clone());
            if n.id == node.id {
                e.path = Some(path.to_string());
            } else {
                e.detail = Some(format!("with directory {path}"));
            }
            self.events.add(e);
        }
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
        if to.is_root() {
            return Err(Error::Forbidden(format!("cannot move {from} onto the root directory")));
        }
        check_reserved(to)?;
        let node = self.entry(who, Op::Remove, from).await?;
        let target = self.authorize(who, Op::Create, to).await?;
        let to_parent = target.parent().expect("checked");
        let dest = target.node().cloned();
        if let (true, Some(d)) = (overwrite, &dest) {
            check(who, Op::Replace, &target)?;
            // A write-once tree keeps its files: no MOVE replaces one.
            if let (false, Some(dir)) = (d.is_dir() || d.id == node.id, target.write_once()) {
                return Err(Error::Conflict(format!(
                    "{to} exists in a write-once area ({dir} has the tag write_once=true): its files are \
                     never replaced; nothing was done"
                )));
            }
        }
        // RFC 4918 9.9.3: a directory in the way is deleted first, with
        // all it holds (as a recursive DELETE of it would be), unless it
        // holds the source.
        if let (true, Some(d)) = (overwrite, &dest) {
            if d.is_dir() && d.id != node.id {
                if from.starts_with(to) {
                    return Err(Error::Conflict(format!("cannot move {from} onto {to}, which holds it")));
                }
                if to.starts_with(from) {
                    return Err(Error::Conflict(format!(
                        "cannot move directory {from} beneath itself ({to}); nothing was done"
                    )));
                }
                self.delete(who, to, true).await?;
            }
        }
        let name = to.name().expect("not root");
        let committed = self
            .catalog
            .rename(node.id, to_parent.id, name, overwrite)
            .await
            .map_err(|e| match e {
                CatalogError::AlreadyExists(_) => Error::Exists(format!("{to} already exists")),
                CatalogError::NotEmpty(_) => Error::Conflict(format!("{to} is a non-empty directory")),
                CatalogError::TooLong(m) => Error::BadRequest(format!("cannot move {from} to {to}: {m}")),
                e => e.into(),
            })?;
        self.drop_data(&committed.replaced).await;
        let now = Timestamp::now();
        if let Some(id) = committed.node.file_id {
            let mut e = FileEvent::new(id, EventKind::Moved, now);
            e.path = Some(to.to_string());
            e.who = Some(who.user.clone());
            e.detail = Some(format!("from {from}"));
            self.events.add(e);
        }
        for old in committed.replaced.iter().filter_map(|n| n.file_id) {
            let mut e = FileEvent::new(old, EventKind::Overwritten, now);
            e.path = Some(to.to_string());
            e.who = Some(who.user.clone());
            e.detail = Some(format!("replaced by the entry moved from {from}"));
            self.events.add(e);
        }
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
        if to.is_root() {
            return Err(Error::Forbidden(format!("cannot copy {from} onto the root directory")));
        }
        check_reserved(to)?;
        let src = self.stat(who, from).await?;
        if src.is_dir() && to.starts_with(from) {
            return Err(Error::Conflict(format!(
                "cannot copy directory {from} into itself ({to})"
            )));
        }
        // The plan: relative paths of the directories to make and files to copy.
        let mut dirs: Vec<(String, u32, NodeId)> = Vec::new();
        let mut files: Vec<String> = Vec::new();
        if src.is_dir() {
            dirs.push((String::new(), src.mode, src.id));
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
                            dirs.push((child.clone(), n.mode, n.id));
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
        // Relative paths start with '/'; parsing normalizes "//". Every
        // path the copy makes must fit before anything is changed.
        let at = |rel: &str| {
            NsPath::parse(&format!("{to}{rel}"))
                .map_err(|e| Error::BadRequest(format!("cannot copy {from} to {to}: {to}{rel}: {e}")))
        };
        for rel in dirs.iter().map(|(r, _, _)| r).chain(&files) {
            at(rel)?;
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
        for (rel, mode, id) in &dirs {
            let opts = MkdirOptions {
                mode: Some(*mode),
                ..MkdirOptions::default()
            };
            let made = self.mkdir(who, &at(rel)?, &opts).await?;
            self.copy_props(*id, made.id).await?;
        }
        for rel in &files {
            let source = NsPath::parse(&format!("{from}{rel}"))?;
            let (node, file) = self.open(who, &source).await?;
            // A copy keeps the data's time, as `cp -p` does.
            let opts = PutOptions {
                overwrite: replaced && rel.is_empty() && !src.is_dir(),
                declared_len: Some(node.size),
                digest: node.adler32,
                expects_continue: false,
                mtime: Some(node.mtime),
                copy_of: Some(source.to_string()),
                ..PutOptions::default()
            };
            let (made, _) = self
                .put(who, &at(rel)?, &opts, tokio_util::io::ReaderStream::new(file))
                .await?;
            self.record_read(&node);
            self.copy_props(node.id, made.id).await?;
        }
        Ok(replaced)
    }

    /// The dead properties of these entries that `who` may see (those of
    /// entries it may read), by entry: the entry at `base`, or with
    /// `children` the entries of the directory `base`.
    pub async fn dead_props(
        &self,
        who: &Principal,
        base: &NsPath,
        nodes: &[Node],
        children: bool,
    ) -> Result<HashMap<NodeId, Vec<DeadProp>>> {
        let ids: Vec<NodeId> = nodes
            .iter()
            .filter(|n| match children {
                false => perms::may_read(who, n, base),
                true => base.join(&n.name).is_ok_and(|p| perms::may_read(who, n, &p)),
            })
            .map(|n| n.id)
            .collect();
        let mut out: HashMap<NodeId, Vec<DeadProp>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        for (id, p) in self.catalog.dead_props(&ids).await? {
            out.entry(id).or_default().push(p);
        }
        Ok(out)
    }

    /// Applies a PROPPATCH to the entry at `path`: dead properties set and
    /// removed in order, and the modification time, all or nothing. Needs
    /// write permission on the entry (as a write of its data does).
    pub async fn patch_props(
        &self,
        who: &Principal,
        path: &NsPath,
        changes: &[PropChange],
        mtime: Option<Timestamp>,
    ) -> Result<Node> {
        let node = self.entry(who, Op::Overwrite, path).await?;
        Ok(self.catalog.patch_props(node.id, changes, mtime).await?)
    }

    /// Gives node `to` the dead properties of node `from`, and only those
    /// (COPY: a file written over keeps none of its own, RFC 4918 9.8.4).
    async fn copy_props(&self, from: NodeId, to: NodeId) -> Result<()> {
        let props = self.catalog.dead_props(&[from, to]).await?;
        if props.is_empty() {
            return Ok(());
        }
        // The destination's own go first, then the source's are set.
        let (source, own): (Vec<_>, Vec<_>) = props.into_iter().partition(|(id, _)| *id == from);
        let changes: Vec<PropChange> = own
            .into_iter()
            .map(|(_, p)| PropChange::Remove { ns: p.ns, name: p.name })
            .chain(source.into_iter().map(|(_, p)| PropChange::Set(p)))
            .collect();
        self.catalog.patch_props(to, &changes, None).await?;
        Ok(())
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
