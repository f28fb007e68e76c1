//! The SQLite catalog: the embedded default.
//!
//! One writer connection (SQLite has one writer at a time anyway) and a few
//! reader connections, all in WAL mode with `synchronous=FULL`, so that a
//! committed transaction survives a power cut. Work runs on tokio's blocking
//! pool. Group commit happens above: a batch of files is one transaction.
//! The namespace steps the methods share are in `sqlite_namespace`.

use crate::model::*;
use crate::rules;
use crate::sqlite_common::*;
use crate::sqlite_namespace::*;
use crate::{Catalog, CatalogError, Result};
use async_trait::async_trait;
use bale_util::{NsPath, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const READERS: usize = 4;

/// Additive migrations, one numbered file each in `migrations/sqlite/`; each
/// runs once, in order, in its own transaction.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_namespace.sql"),
    include_str!("../migrations/sqlite/0002_landing.sql"),
    include_str!("../migrations/sqlite/0003_tape.sql"),
    include_str!("../migrations/sqlite/0004_pools.sql"),
    include_str!("../migrations/sqlite/0005_landing_inline_data.sql"),
    include_str!("../migrations/sqlite/0006_never_reused_ids.sql"),
    include_str!("../migrations/sqlite/0007_catalog_users.sql"),
    include_str!("../migrations/sqlite/0008_residency_and_pins.sql"),
    include_str!("../migrations/sqlite/0009_stage_requests.sql"),
    include_str!("../migrations/sqlite/0010_stage_holds.sql"),
    include_str!("../migrations/sqlite/0011_walk_function.sql"),
    include_str!("../migrations/sqlite/0012_alarm_folding.sql"),
    include_str!("../migrations/sqlite/0013_tape_copies.sql"),
    include_str!("../migrations/sqlite/0014_trial_fixes.sql"),
    include_str!("../migrations/sqlite/0015_webdav.sql"),
    include_str!("../migrations/sqlite/0016_quotas.sql"),
    include_str!("../migrations/sqlite/0017_file_history.sql"),
    include_str!("../migrations/sqlite/0018_status_page.sql"),
];

pub struct SqliteCatalog {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on stable storage before it returns (NORMAL may lose
    // the last transactions in WAL mode on power loss).
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Page cache of the writer, and of each reader (KiB): the readers' are
/// small, as each reader keeps its own copy and the kernel's page cache
/// holds the file anyway (four readers of 64 MiB made most of a server's
/// memory at ten million files).
const WRITER_CACHE_KIB: i64 = 65_536;
const READER_CACHE_KIB: i64 = 8_192;

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i64 = conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?;
    if current as usize > MIGRATIONS.len() {
        return Err(CatalogError::backend(
            format!(
                "catalog schema version {current} is newer than this bale knows ({})",
                MIGRATIONS.len()
            ),
            false,
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [i as i64 + 1])?;
        tx.commit()?;
    }
    Ok(())
}

/// Times a catalog call into `bale_catalog_transaction_seconds` when
/// dropped: waiting for a connection and the transaction itself.
struct Timing(std::time::Instant);

impl Timing {
    fn start() -> Timing {
        Timing(std::time::Instant::now())
    }
}

impl Drop for Timing {
    fn drop(&mut self) {
        metrics::histogram!(bale_util::metrics::CATALOG_SECONDS, "backend" => "sqlite")
            .record(self.0.elapsed().as_secs_f64());
    }
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteCatalog> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut writer = Connection::open(&path)
                .map_err(|e| CatalogError::backend(format!("cannot open {}: {e}", path.display()), false))?;
            configure(&writer)?;
            writer.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
            migrate(&mut writer)?;
            let mut readers = Vec::with_capacity(READERS);
            for _ in 0..READERS {
                let r = Connection::open(&path)?;
                configure(&r)?;
                r.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
                readers.push(Mutex::new(r));
            }
            Ok(SqliteCatalog {
                writer: Arc::new(Mutex::new(writer)),
                readers: Arc::new(readers),
                next_reader: AtomicUsize::new(0),
            })
        })
        .await?
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.readers.clone();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let _timed = Timing::start();
        let run = move || {
            // Take the first free reader, starting round-robin; wait on one if all are busy.
            for i in 0..readers.len() {
                if let Ok(conn) = readers[(start + i) % readers.len()].try_lock() {
                    return f(&conn);
                }
            }
            let conn = readers[start % readers.len()].lock().expect("reader lock");
            f(&conn)
        };
        // Reads are indexed lookups of microseconds: on a multi-threaded
        // runtime run them in place (tokio moves this worker's other tasks
        // away meanwhile) rather than paying two thread hops per read.
        match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(run),
            _ => tokio::task::spawn_blocking(run).await?,
        }
    }

    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let writer = self.writer.clone();
        let _timed = Timing::start();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().expect("writer lock");
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await?
    }
}

#[async_trait]
impl Catalog for SqliteCatalog {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn release_memory(&self) {
        let (writer, readers) = (self.writer.clone(), self.readers.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let conns = std::iter::once(&*writer).chain(readers.iter());
            for c in conns {
                if let Ok(c) = c.try_lock() {
                    let _ = c.execute_batch("PRAGMA shrink_memory");
                }
            }
        })
        .await;
    }

    async fn walk(&self, path: &NsPath) -> Result<Vec<Node>> {
        let path = path.clone();
        self.read(move |c| {
            let root = get_node(c, ROOT_ID)?.ok_or_else(|| CatalogError::backend("root missing", false))?;
            let mut chain = vec![root];
            for comp in path.components() {
                match get_child(c, chain.last().expect("root").id, comp)? {
                    Some(n) => chain.push(n),
                    None => break,
                }
            }
            Ok(chain)
        })
        .await
    }

    async fn node(&self, id: NodeId) -> Result<Option<Node>> {
        self.read(move |c| get_node(c, id)).await
    }

    async fn child(&self, dir: NodeId, name: &str) -> Result<Option<Node>> {
        let name = name.to_string();
        self.read(move |c| get_child(c, dir, &name)).await
    }

    async fn children_named(&self, dir: NodeId, names: &[String]) -> Result<Vec<Node>> {
        let names = names.to_vec();
        self.read(move |c| {
            let mut out = Vec::with_capacity(names.len());
            for name in &names {
                if let Some(n) = get_child(c, dir, name)? {
                    out.push(n);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn node_by_file_id(&self, file_id: FileId) -> Result<Option<Node>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE file_id = ?1"))?;
            Ok(st.query_row([file_id.to_string()], node_from_row).optional()?)
        })
        .await
    }

    async fn path_of(&self, id: NodeId) -> Result<NsPath> {
        self.read(move |c| path_of(c, id)).await
    }

    async fn files_with_paths(&self, ids: &[FileId]) -> Result<Vec<(Node, String)>> {
        let ids = ids.to_vec();
        self.read(move |c| {
            // One read transaction: every path is as of the same moment.
            let tx = c.unchecked_transaction()?;
            let mut st = tx.prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE file_id = ?1"))?;
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(n) = st.query_row([id.to_string()], node_from_row).optional()? {
                    let path = path_string(&tx, n.id)?;
                    out.push((n, path));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn list(&self, dir: NodeId, after: Option<&str>, limit: usize) -> Result<Vec<Node>> {
        let after = after.unwrap_or("").to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {NODE_COLS} FROM nodes WHERE parent = ?1 AND name > ?2 ORDER BY name LIMIT ?3"
            ))?;
            let rows = st.query_map(params![dir, after, limit as i64], node_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn create_dir(&self, d: NewDir) -> Result<Node> {
        self.write(move |tx| {
            let parent = dir_for_child(tx, d.parent)?;
            if get_child(tx, d.parent, &d.name)?.is_some() {
                return Err(CatalogError::AlreadyExists(d.name.clone()));
            }
            rules::fits(dir_len(tx, d.parent)?, &d.name, 0)?;
            let t = &parent.tags;
            let id = next_id(tx, "nodes")?;
            let mut st = tx.prepare_cached(&format!(
                "INSERT INTO nodes (id, parent, name, kind, owner, grp, mode, ctime, mtime, atime, \
                 storage_group, file_family, file_family_width, wrapper, library) \
                 VALUES (?12, ?1, ?2, 1, ?3, ?4, ?5, ?6, ?6, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING {NODE_COLS}"
            ))?;
            Ok(st.query_row(
                params![
                    d.parent,
                    d.name,
                    d.owner,
                    d.group,
                    d.mode as i64,
                    d.time.0,
                    t.storage_group,
                    t.file_family,
                    t.file_family_width.map(|w| w as i64),
                    t.wrapper,
                    t.library,
                    id
                ],
                node_from_row,
            )?)
        })
        .await
    }

    async fn import_nodes(&self, entries: &[ImportNode]) -> Result<Vec<NodeId>> {
        rules::check_import(entries)?;
        let entries = entries.to_vec();
        self.write(move |tx| {
            rules::check_import_lengths(&entries, |p| dir_len(tx, p))?;
            // One reservation of the whole range of ids.
            let n = entries.len() as i64;
            let first: i64 = tx
                .prepare_cached("UPDATE sequences SET next = next + ?2 WHERE name = ?1 RETURNING next - ?2")?
                .query_row(params!["nodes", n], |r| r.get(0))?;
            let mut checked = std::collections::HashSet::new();
            let mut st = tx.prepare_cached(
                "INSERT INTO nodes (id, parent, name, kind, owner, grp, mode, size, ctime, mtime, atime, file_id, \
                 adler32, storage_group, file_family, file_family_width, wrapper, library, cached) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            )?;
            let mut ids = Vec::with_capacity(entries.len());
            for (i, e) in entries.iter().enumerate() {
                let parent = match e.parent {
                    ImportParent::Node(p) => {
                        if checked.insert(p) {
                            dir_for_child(tx, p)?;
                        }
                        p
                    }
                    ImportParent::Entry(j) => ids[j],
                };
                let id = first + i as i64;
                let t = &e.tags;
                st.execute(params![
                    id,
                    parent,
                    e.name,
                    if e.kind == NodeKind::Dir { 1 } else { 2 },
                    e.owner,
                    e.group,
                    e.mode as i64,
                    e.size as i64,
                    e.ctime.0,
                    e.mtime.0,
                    e.atime.0,
                    e.file_id.map(|f| f.to_string()),
                    e.adler32.map(|a| a.0 as i64),
                    t.storage_group,
                    t.file_family,
                    t.file_family_width.map(|w| w as i64),
                    t.wrapper,
                    t.library,
                    e.cached
                ])
                .map_err(|err| match err.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::ConstraintViolation) => {
                        CatalogError::AlreadyExists(format!("import entry {i}: {:?} or its file id", e.name))
                    }
                    _ => err.into(),
                })?;
                ids.push(id);
            }
            apply_usage(tx, &rules::import_usage(&entries))?;
            Ok(ids)
        })
        .await
    }

    async fn commit_files(&self, node: &str, files: &[NewFile], settled: &[FileId]) -> Result<Vec<Result<Committed>>> {
        let files = files.to_vec();
        let settled = settled.to_vec();
        let node = node.to_string();
        self.write(move |tx| {
            settle(tx, &settled)?;
            let mut note =
                tx.prepare_cached("INSERT OR REPLACE INTO landing (file_id, node, data) VALUES (?1, ?2, ?3)")?;
            let mut out = Vec::with_capacity(files.len());
            let mut lens = rules::DirLengths::default();
            let mut tallies = rules::Tallies::new();
            for f in &files {
                match commit_one(tx, f, &mut lens, &mut tallies) {
                    // A failed database or a full disk fails the whole batch: the
                    // transaction may hold part of a file's writes.
                    Err(CatalogError::Backend { message, retryable }) => {
                        return Err(CatalogError::Backend { message, retryable })
                    }
                    Err(e @ CatalogError::Full(_)) => return Err(e),
                    r => {
                        if r.is_ok() {
                            note.execute(params![f.file_id.to_string(), node, f.inline.as_deref()])?;
                        }
                        out.push(r)
                    }
                }
            }
            apply_usage(tx, &rules::commit_usage(&tallies, []))?;
            Ok(out)
        })
        .await
    }

    async fn landing_files(&self, node: &str) -> Result<Vec<LandingFile>> {
        let node = node.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT file_id, data FROM landing WHERE node = ?1 ORDER BY file_id")?;
            let notes: Vec<(String, Option<Vec<u8>>)> = st
                .query_map([node], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut by_id = c.prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE file_id = ?1"))?;
            let mut out = Vec::with_capacity(notes.len());
            for (id, inline) in notes {
                let node = by_id.query_row([&id], node_from_row).optional()?;
                if let Some(id) = FileId::parse(&id) {
                    out.push(LandingFile { id, node, inline });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn settle_files(&self, ids: &[FileId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        self.write(move |tx| settle(tx, &ids)).await
    }

    async fn remove(&self, id: NodeId, recursive: bool, only_owner: Option<&str>) -> Result<Vec<Node>> {
        let only_owner = only_owner.map(str::to_string);
        self.write(move |tx| {
            rules::not_root(id, "removed")?;
            let node = get_node(tx, id)?.ok_or_else(|| CatalogError::NotFound(format!("node {id}")))?;
            let nodes = match rules::takes_subtree(&node, has_children(tx, id)?, recursive)? {
                true => subtree(tx, id)?,
                false => vec![node],
            };
            rules::owned_by(&nodes, only_owner.as_deref())?;
            delete_nodes(tx, &nodes)?;
            crate::sqlite_common::release_files(tx, &nodes)?;
            Ok(nodes.into_iter().filter(|n| !n.is_dir()).collect())
        })
        .await
    }

    async fn rename(&self, id: NodeId, new_parent: NodeId, new_name: &str, overwrite: bool) -> Result<Committed> {
        let new_name = new_name.to_string();
        self.write(move |tx| {
            rules::not_root(id, "moved")?;
            let node = get_node(tx, id)?.ok_or_else(|| CatalogError::NotFound(format!("node {id}")))?;
            dir_for_child(tx, new_parent)?;
            if node.is_dir() {
                rules::not_beneath(&node, &ancestors(tx, new_parent)?)?;
            }
            let to_len = dir_len(tx, new_parent)?;
            rules::fits(to_len, &new_name, 0)?;
            let from_len = match node.parent {
                Some(p) => dir_len(tx, p)?,
                None => 0,
            };
            // Paths below a directory grow only when its own path does.
            if node.is_dir() && to_len + new_name.len() > from_len + node.name.len() {
                let budget = bale_util::path::MAX_PATH_LEN.saturating_sub(to_len + 1 + new_name.len());
                rules::fits(to_len, &new_name, longest_below(tx, id, budget)?)?;
            }
            let dest = get_child(tx, new_parent, &new_name)?;
            let dest_full = match &dest {
                Some(d) if d.is_dir() => has_children(tx, d.id)?,
                _ => false,
            };
            let mut replaced = Vec::new();
            match rules::rename_onto(id, dest, dest_full, overwrite)? {
                rules::Onto::Free => {}
                rules::Onto::Itself => {
                    return Ok(Committed {
                        node,
                        replaced,
                        job: None,
                    })
                }
                rules::Onto::Replace(dest) => {
                    delete_nodes(tx, std::slice::from_ref(&dest))?;
                    crate::sqlite_common::release_files(tx, std::slice::from_ref(&dest))?;
                    if !dest.is_dir() {
                        replaced.push(*dest);
                    }
                }
            }
            tx.execute(
                "UPDATE nodes SET parent = ?1, name = ?2 WHERE id = ?3",
                params![new_parent, new_name, id],
            )?;
            let node = get_node(tx, id)?.expect("moved node");
            Ok(Committed {
                node,
                replaced,
                job: None,
            })
        })
        .await
    }

    async fn set_tags(&self, dir: NodeId, tags: &Tags) -> Result<Node> {
        let t = tags.clone();
        self.write(move |tx| {
            let n = get_node(tx, dir)?.ok_or_else(|| CatalogError::NotFound(format!("node {dir}")))?;
            if !n.is_dir() {
                return Err(CatalogError::NotADirectory(n.name));
            }
            tx.execute(
                "UPDATE nodes SET storage_group = ?1, file_family = ?2, file_family_width = ?3, wrapper = ?4, \
                 library = ?5, write_once = ?7 WHERE id = ?6",
                params![
                    t.storage_group,
                    t.file_family,
                    t.file_family_width.map(|w| w as i64),
                    t.wrapper,
                    t.library,
                    dir,
                    t.write_once.map(i64::from)
                ],
            )?;
            Ok(get_node(tx, dir)?.expect("tagged node"))
        })
        .await
    }

    async fn set_attrs(&self, id: NodeId, a: &AttrChange) -> Result<Node> {
        let a = a.clone();
        self.write(move |tx| {
            let n = get_node(tx, id)?.ok_or_else(|| CatalogError::NotFound(format!("node {id}")))?;
            tx.execute(
                "UPDATE nodes SET owner = ?1, grp = ?2, mode = ?3, mtime = ?4 WHERE id = ?5",
                params![
                    a.owner.unwrap_or(n.owner),
                    a.group.unwrap_or(n.group),
                    a.mode.unwrap_or(n.mode) as i64,
                    a.mtime.unwrap_or(n.mtime).0,
                    id
                ],
            )?;
            Ok(get_node(tx, id)?.expect("changed node"))
        })
        .await
    }

    async fn set_quota(&self, q: &Quota) -> Result<()> {
        let q = q.clone();
        self.write(move |tx| {
            tx.execute("DELETE FROM quotas WHERE storage_group = ?1", [&q.storage_group])?;
            tx.execute("DELETE FROM quota_volumes WHERE storage_group = ?1", [&q.storage_group])?;
            if q.is_empty() {
                return Ok(());
            }
            tx.execute(
                "INSERT INTO quotas (storage_group, max_bytes, max_files) VALUES (?1, ?2, ?3)",
                params![q.storage_group, q.bytes.map(|b| b as i64), q.files.map(|f| f as i64)],
            )?;
            for (lib, n) in &q.volumes {
                tx.execute(
                    "INSERT INTO quota_volumes (storage_group, library, max_volumes) VALUES (?1, ?2, ?3)",
                    params![q.storage_group, lib, n],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn quotas(&self) -> Result<Vec<Quota>> {
        self.read(|c| {
            let mut out: Vec<Quota> = c
                .prepare_cached("SELECT storage_group, max_bytes, max_files FROM quotas ORDER BY storage_group")?
                .query_map([], |r| {
                    Ok(Quota {
                        storage_group: r.get(0)?,
                        bytes: r.get::<_, Option<i64>>(1)?.map(|b| b as u64),
                        files: r.get::<_, Option<i64>>(2)?.map(|f| f as u64),
                        volumes: Default::default(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let vols: Vec<(String, String, u32)> = c
                .prepare_cached("SELECT storage_group, library, max_volumes FROM quota_volumes")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (g, lib, n) in vols {
                if let Some(q) = out.iter_mut().find(|q| q.storage_group == g) {
                    q.volumes.insert(lib, n);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn group_usage(&self) -> Result<Vec<GroupUsage>> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT storage_group, files, bytes FROM group_usage ORDER BY storage_group")?
                    .query_map([], |r| {
                        Ok(GroupUsage {
                            storage_group: r.get(0)?,
                            files: r.get::<_, i64>(1)?.max(0) as u64,
                            bytes: r.get::<_, i64>(2)?.max(0) as u64,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?,
            )
        })
        .await
    }

    async fn dead_props(&self, ids: &[NodeId]) -> Result<Vec<(NodeId, DeadProp)>> {
        let ids = ids.to_vec();
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT ns, name, xml FROM dead_props WHERE node = ?1 ORDER BY ns, name")?;
            let mut out = Vec::new();
            for id in ids {
                let rows = st.query_map([id], |r| {
                    Ok((
                        id,
                        DeadProp {
                            ns: r.get(0)?,
                            name: r.get(1)?,
                            xml: r.get(2)?,
                        },
                    ))
                })?;
                for r in rows {
                    out.push(r?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn patch_props(&self, id: NodeId, changes: &[PropChange], mtime: Option<Timestamp>) -> Result<Node> {
        let changes = changes.to_vec();
        self.write(move |tx| {
            get_node(tx, id)?.ok_or_else(|| CatalogError::NotFound(format!("node {id}")))?;
            let mut remove = tx.prepare_cached("DELETE FROM dead_props WHERE node = ?1 AND ns = ?2 AND name = ?3")?;
            for c in &changes {
                match c {
                    PropChange::Set(p) => put_props(tx, id, std::slice::from_ref(p))?,
                    PropChange::Remove { ns, name } => {
                        remove.execute(params![id, ns, name])?;
                    }
                }
            }
            let (count, bytes): (i64, i64) = tx.query_row(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(xml AS BLOB))), 0) FROM dead_props WHERE node = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            rules::props_fit(count as usize, bytes as usize)?;
            if let Some(t) = mtime {
                tx.execute("UPDATE nodes SET mtime = ?1 WHERE id = ?2", params![t.0, id])?;
            }
            Ok(get_node(tx, id)?.expect("patched node"))
        })
        .await
    }

    async fn record_access(&self, touches: &[(NodeId, Timestamp)]) -> Result<()> {
        if touches.is_empty() {
            return Ok(());
        }
        let touches = touches.to_vec();
        self.write(move |tx| {
            let mut st = tx.prepare_cached("UPDATE nodes SET atime = ?2 WHERE id = ?1 AND atime < ?2")?;
            for (id, t) in &touches {
                st.execute(params![id, t.0])?;
            }
            Ok(())
        })
        .await
    }
}
