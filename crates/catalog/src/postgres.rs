//! The PostgreSQL catalog: one catalog shared by several bale nodes.
//!
//! Same schema and semantics as the SQLite catalog (the conformance suite
//! holds both to it). Names use the "C" collation so that listings are in
//! byte order on both backends. Migrations take an advisory lock so that
//! nodes starting together do not race. Connections and migrations are in
//! `postgres_connect`, the namespace steps the methods share in
//! `postgres_namespace`.

use crate::model::*;
use crate::postgres_common::*;
use crate::postgres_namespace::*;
use crate::postgres_tape::{copies_sql, copy_from_row};
use crate::rules;
use crate::{Catalog, CatalogError, PostgresCatalog, Result, TapeCatalog, TapeCopy};
use async_trait::async_trait;
use bale_util::{NsPath, Timestamp};
use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;

/// The nodes along a path (`$1`, its components), root first.
fn walk_sql() -> String {
    format!("SELECT {NODE_COLS} FROM bale_walk($1::text[]) WITH ORDINALITY AS n ORDER BY n.ordinality")
}

#[async_trait]
impl Catalog for PostgresCatalog {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn walk(&self, path: &NsPath) -> Result<Vec<Node>> {
        let comps: Vec<String> = path.components().map(str::to_string).collect();
        let c = self.probes.get().await?;
        // One round trip: `bale_walk` (schema v11) probes the (parent,
        // name) index once per component with plans it keeps.
        let st = c.prepare_cached(&walk_sql()).await?;
        let rows = c.query(&st, &[&comps]).await?;
        rows.iter().map(|r| node_from_row(r, 0)).collect()
    }

    async fn walk_with_copies(&self, path: &NsPath) -> Result<(Vec<Node>, Vec<TapeCopy>)> {
        let comps: Vec<String> = path.components().map(str::to_string).collect();
        let c = self.probes.get().await?;
        let walk = c.prepare_cached(&walk_sql()).await?;
        // The copies of the file at the end of the walk, found by a second
        // walk in the same statement; both statements are sent before
        // either answer is read (tokio-postgres pipelines them): one round
        // trip instead of two.
        let copies = c
            .prepare_cached(&copies_sql(
                "(SELECT w.file_id FROM bale_walk($1::text[]) WITH ORDINALITY AS w ORDER BY w.ordinality DESC LIMIT 1)",
            ))
            .await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&comps];
        let (chain, copies) = tokio::try_join!(c.query(&walk, &params), c.query(&copies, &params))?;
        let chain: Vec<Node> = chain.iter().map(|r| node_from_row(r, 0)).collect::<Result<_>>()?;
        let leaf = chain
            .last()
            .filter(|_| chain.len() == path.depth() + 1)
            .and_then(|n| n.file_id);
        let Some(leaf) = leaf else {
            return Ok((chain, Vec::new()));
        };
        let leaf_text = leaf.to_string();
        if copies
            .iter()
            .all(|r| r.get::<_, &str>(crate::rows::PACKAGE_NCOLS + 1) == leaf_text)
        {
            let copies = copies.iter().map(copy_from_row).collect::<Result<_>>()?;
            return Ok((chain, copies));
        }
        // The path changed hands between the two walks: ask by file id.
        drop(c);
        let copies = self.tape_copies(leaf).await?;
        Ok((chain, copies))
    }

    async fn node(&self, id: NodeId) -> Result<Option<Node>> {
        let c = self.pool.get().await?;
        get_node(&*c, id).await
    }

    async fn child(&self, dir: NodeId, name: &str) -> Result<Option<Node>> {
        let c = self.pool.get().await?;
        get_child(&*c, dir, name).await
    }

    async fn children_named(&self, dir: NodeId, names: &[String]) -> Result<Vec<Node>> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {NODE_COLS} FROM nodes n WHERE n.parent = $1 AND n.name = ANY($2)"
            ))
            .await?;
        c.query(&st, &[&dir, &names])
            .await?
            .iter()
            .map(|r| node_from_row(r, 0))
            .collect()
    }

    async fn node_by_file_id(&self, file_id: FileId) -> Result<Option<Node>> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes n WHERE n.file_id = $1"))
            .await?;
        c.query_opt(&st, &[&file_id.to_string()])
            .await?
            .map(|r| node_from_row(&r, 0))
            .transpose()
    }

    async fn path_of(&self, id: NodeId) -> Result<NsPath> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "WITH RECURSIVE up(id, parent, name, depth) AS ( \
                   SELECT id, parent, name, 0 FROM nodes WHERE id = $1 \
                   UNION ALL \
                   SELECT n.id, n.parent, n.name, up.depth + 1 FROM nodes n JOIN up ON n.id = up.parent) \
                 SELECT name FROM up WHERE parent IS NOT NULL ORDER BY depth DESC",
            )
            .await?;
        let rows = c.query(&st, &[&id]).await?;
        if rows.is_empty() && id != ROOT_ID && get_node(&*c, id).await?.is_none() {
            return Err(CatalogError::NotFound(format!("node {id}")));
        }
        let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        NsPath::parse(&format!("/{}", names.join("/"))).map_err(|e| CatalogError::backend(e, false))
    }

    async fn files_with_paths(&self, ids: &[FileId]) -> Result<Vec<(Node, String)>> {
        let c = self.pool.get().await?;
        let keys: Vec<String> = ids.iter().map(|f| f.to_string()).collect();
        // One statement (one snapshot): walk every file up to the root,
        // prefixing names, and keep the walks that reached it.
        let st = c
            .prepare_cached(&format!(
                "WITH RECURSIVE up(leaf, parent, path) AS ( \
                   SELECT n.id, n.parent, n.name::text FROM nodes n WHERE n.file_id = ANY($1) \
                   UNION ALL \
                   SELECT up.leaf, p.parent, p.name || '/' || up.path FROM up JOIN nodes p ON p.id = up.parent \
                   WHERE p.parent IS NOT NULL) \
                 SELECT '/' || up.path, {NODE_COLS} FROM up JOIN nodes n ON n.id = up.leaf WHERE up.parent = 1"
            ))
            .await?;
        let rows = c.query(&st, &[&keys]).await?;
        let mut by_id = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let node = node_from_row(r, 1)?;
            let Some(id) = node.file_id else { continue };
            by_id.insert(id, (node, r.get::<_, String>(0)));
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    async fn list(&self, dir: NodeId, after: Option<&str>, limit: usize) -> Result<Vec<Node>> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {NODE_COLS} FROM nodes n WHERE n.parent = $1 AND n.name > $2 ORDER BY n.name LIMIT $3"
            ))
            .await?;
        let rows = c.query(&st, &[&dir, &after.unwrap_or(""), &(limit as i64)]).await?;
        rows.iter().map(|r| node_from_row(r, 0)).collect()
    }

    async fn create_dir(&self, d: NewDir) -> Result<Node> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        lock_for_paths(&tx, false).await?;
        let parent = dir_for_child(&tx, d.parent).await?;
        rules::fits(dir_len(&tx, d.parent).await?, &d.name, 0)?;
        let t = &parent.tags;
        let st = tx
            .prepare_cached(&format!(
                "INSERT INTO nodes AS n (parent, name, kind, owner, grp, mode, ctime, mtime, atime, \
                 storage_group, file_family, file_family_width, wrapper, library) \
                 VALUES ($1, $2, 1, $3, $4, $5, $6, $6, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (parent, name) DO NOTHING RETURNING {NODE_COLS}"
            ))
            .await?;
        let row = tx
            .query_opt(
                &st,
                &[
                    &d.parent,
                    &d.name,
                    &d.owner,
                    &d.group,
                    &(d.mode as i32),
                    &d.time.0,
                    &t.storage_group,
                    &t.file_family,
                    &t.file_family_width.map(|w| w as i32),
                    &t.wrapper,
                    &t.library,
                ],
            )
            .await?
            .ok_or_else(|| CatalogError::AlreadyExists(d.name.clone()))?;
        tx.commit().await?;
        node_from_row(&row, 0)
    }

    async fn import_nodes(&self, entries: &[ImportNode]) -> Result<Vec<NodeId>> {
        rules::check_import(entries)?;
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // The ids, from the identity's sequence (never handed out again).
        let ids: Vec<NodeId> = tx
            .query(
                "SELECT nextval(pg_get_serial_sequence('nodes', 'id')) FROM generate_series(1, $1::bigint)",
                &[&(entries.len() as i64)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        lock_for_paths(&tx, false).await?;
        let mut checked = std::collections::HashMap::new();
        for e in entries {
            if let ImportParent::Node(p) = e.parent {
                if let std::collections::hash_map::Entry::Vacant(v) = checked.entry(p) {
                    dir_for_child(&tx, p).await?;
                    v.insert(dir_len(&tx, p).await?);
                }
            }
        }
        rules::check_import_lengths(entries, |p| Ok(checked[&p]))?;
        let parents: Vec<NodeId> = entries
            .iter()
            .map(|e| match e.parent {
                ImportParent::Node(p) => p,
                ImportParent::Entry(j) => ids[j],
            })
            .collect();
        let col = |f: &dyn Fn(&ImportNode) -> Option<String>| entries.iter().map(f).collect::<Vec<_>>();
        let names = col(&|e| Some(e.name.clone()));
        let owners = col(&|e| Some(e.owner.clone()));
        let groups = col(&|e| Some(e.group.clone()));
        let file_ids = col(&|e| e.file_id.map(|f| f.to_string()));
        let sgs = col(&|e| e.tags.storage_group.clone());
        let ffs = col(&|e| e.tags.file_family.clone());
        let wrappers = col(&|e| e.tags.wrapper.clone());
        let libraries = col(&|e| e.tags.library.clone());
        let kinds: Vec<i32> = entries
            .iter()
            .map(|e| if e.kind == NodeKind::Dir { 1 } else { 2 })
            .collect();
        let modes: Vec<i32> = entries.iter().map(|e| e.mode as i32).collect();
        let sizes: Vec<i64> = entries.iter().map(|e| e.size as i64).collect();
        let ctimes: Vec<i64> = entries.iter().map(|e| e.ctime.0).collect();
        let mtimes: Vec<i64> = entries.iter().map(|e| e.mtime.0).collect();
        let atimes: Vec<i64> = entries.iter().map(|e| e.atime.0).collect();
        let sums: Vec<Option<i64>> = entries.iter().map(|e| e.adler32.map(|a| a.0 as i64)).collect();
        let widths: Vec<Option<i32>> = entries
            .iter()
            .map(|e| e.tags.file_family_width.map(|w| w as i32))
            .collect();
        let cached: Vec<bool> = entries.iter().map(|e| e.cached).collect();
        tx.execute(
            "INSERT INTO nodes (id, parent, name, kind, owner, grp, mode, size, ctime, mtime, atime, file_id, adler32, \
             storage_group, file_family, file_family_width, wrapper, library, cached) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::int[], $5::text[], $6::text[], \
             $7::int[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], $13::bigint[], \
             $14::text[], $15::text[], $16::int[], $17::text[], $18::text[], $19::bool[])",
            &[
                &ids, &parents, &names, &kinds, &owners, &groups, &modes, &sizes, &ctimes, &mtimes, &atimes,
                &file_ids, &sums, &sgs, &ffs, &widths, &wrappers, &libraries, &cached,
            ],
        )
        .await
        .map_err(|e| match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => CatalogError::AlreadyExists(format!(
                "an imported entry ({})",
                e.as_db_error().and_then(|d| d.detail()).unwrap_or("a name or file id")
            )),
            _ => e.into(),
        })?;
        apply_usage(&tx, &rules::import_usage(entries)).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn commit_files(&self, node: &str, files: &[NewFile], settled: &[FileId]) -> Result<Vec<Result<Committed>>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        if files.iter().any(|f| f.replace != Replace::No) {
            crate::postgres_common::lock_for_deletes(&tx).await?;
        }
        lock_for_paths(&tx, false).await?;
        settle(&tx, settled).await?;
        let note = tx
            .prepare_cached(
                "INSERT INTO landing (file_id, node, data) VALUES ($1, $2, $3) \
                 ON CONFLICT (file_id) DO UPDATE SET node = EXCLUDED.node, data = EXCLUDED.data",
            )
            .await?;
        let mut out = Vec::with_capacity(files.len());
        let mut lens = rules::DirLengths::default();
        let mut tallies = rules::Tallies::new();
        let mut released = Vec::new();
        // Commits into storage groups with quotas run one at a time (over
        // every node): each reads the use the last one left. Taken before
        // anything else, in one order.
        tx.query(
            "SELECT pg_advisory_xact_lock(hashtext('bale quota ' || storage_group)) \
             FROM (SELECT storage_group FROM quotas ORDER BY storage_group) q",
            &[],
        )
        .await?;
        for f in files {
            match commit_one(&tx, f, &mut lens, &mut tallies, &mut released).await {
                // A failed database or a full disk fails the whole batch: the
                // transaction may hold part of a file's writes.
                Err(CatalogError::Backend { message, retryable }) => {
                    return Err(CatalogError::Backend { message, retryable })
                }
                Err(e @ CatalogError::Full(_)) => return Err(e),
                r => {
                    if r.is_ok() {
                        tx.execute(&note, &[&f.file_id.to_string(), &node, &f.inline.as_deref()])
                            .await?;
                    }
                    out.push(r)
                }
            }
        }
        apply_usage(&tx, &rules::commit_usage(&tallies, released)).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn landing_files(&self, node: &str) -> Result<Vec<LandingFile>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT l.file_id, l.data, {NODE_COLS} FROM landing l LEFT JOIN nodes n ON n.file_id = l.file_id \
                     WHERE l.node = $1 ORDER BY l.file_id"
                ),
                &[&node],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(id) = FileId::parse(r.get(0)) else { continue };
            let present: Option<i64> = r.get(2);
            out.push(LandingFile {
                id,
                node: present.map(|_| node_from_row(r, 2)).transpose()?,
                inline: r.get(1),
            });
        }
        Ok(out)
    }

    async fn settle_files(&self, ids: &[FileId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let c = self.pool.get().await?;
        settle(&*c, ids).await
    }

    async fn remove(&self, id: NodeId, recursive: bool, only_owner: Option<&str>) -> Result<Vec<Node>> {
        rules::not_root(id, "removed")?;
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        crate::postgres_common::lock_for_deletes(&tx).await?;
        let node = get_node(&tx, id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("node {id}")))?;
        let name = node.name.clone();
        let nodes = match rules::takes_subtree(&node, has_children(&tx, id).await?, recursive)? {
            true => subtree(&tx, id).await?,
            false => vec![node],
        };
        rules::owned_by(&nodes, only_owner)?;
        let ids: Vec<i64> = nodes.iter().map(|n| n.id).collect();
        crate::postgres_common::lock_nodes(&tx, &ids).await?;
        let nodes = match tx
            .query("DELETE FROM nodes WHERE id = ANY($1) RETURNING id", &[&ids])
            .await
        {
            Err(e) if is_code(&e, &SqlState::FOREIGN_KEY_VIOLATION) => {
                // Something was created inside the directory meanwhile.
                return Err(CatalogError::NotEmpty(name));
            }
            r => {
                // Only what this transaction deleted (a concurrent removal
                // may have taken some first) is released and counted.
                let gone: std::collections::HashSet<i64> = r?.iter().map(|r| r.get(0)).collect();
                nodes.into_iter().filter(|n| gone.contains(&n.id)).collect::<Vec<_>>()
            }
        };
        crate::postgres_common::release_files(&tx, &nodes).await?;
        apply_usage(&tx, &rules::usage_of(&nodes, -1)).await?;
        tx.commit().await?;
        Ok(nodes.into_iter().filter(|n| !n.is_dir()).collect())
    }

    async fn rename(&self, id: NodeId, new_parent: NodeId, new_name: &str, overwrite: bool) -> Result<Committed> {
        rules::not_root(id, "moved")?;
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        if overwrite {
            crate::postgres_common::lock_for_deletes(&tx).await?;
        }
        // Moving a directory may make paths below it longer: it takes the
        // path lock exclusively, and looks at what is below it after that.
        let is_dir: bool = tx
            .query_opt("SELECT kind = 1 FROM nodes WHERE id = $1", &[&id])
            .await?
            .is_some_and(|r| r.get(0));
        lock_for_paths(&tx, is_dir).await?;
        let node = get_node(&tx, id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("node {id}")))?;
        dir_for_child(&tx, new_parent).await?;
        if node.is_dir() {
            rules::not_beneath(&node, &ancestors(&tx, new_parent).await?)?;
        }
        let to_len = dir_len(&tx, new_parent).await?;
        rules::fits(to_len, new_name, 0)?;
        let from_len = match node.parent {
            Some(p) => dir_len(&tx, p).await?,
            None => 0,
        };
        // Paths below a directory grow only when its own path does.
        if node.is_dir() && to_len + new_name.len() > from_len + node.name.len() {
            let budget = bale_util::path::MAX_PATH_LEN.saturating_sub(to_len + 1 + new_name.len());
            rules::fits(to_len, new_name, longest_below(&tx, id, budget).await?)?;
        }
        let dest = get_child(&tx, new_parent, new_name).await?;
        let dest_full = match &dest {
            Some(d) if d.is_dir() => has_children(&tx, d.id).await?,
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
                // Only what this transaction deleted is released and counted.
                let gone = delete_nodes(&tx, std::slice::from_ref(&dest)).await?;
                crate::postgres_common::release_files(&tx, &gone).await?;
                replaced.extend(gone.into_iter().filter(|n| !n.is_dir()));
            }
        }
        match tx
            .execute(
                "UPDATE nodes SET parent = $1, name = $2 WHERE id = $3",
                &[&new_parent, &new_name, &id],
            )
            .await
        {
            Err(e) if is_code(&e, &SqlState::UNIQUE_VIOLATION) => {
                return Err(CatalogError::AlreadyExists(new_name.to_string()))
            }
            r => {
                r?;
            }
        }
        let node = get_node(&tx, id).await?.expect("moved node");
        apply_usage(&tx, &rules::usage_of(&replaced, -1)).await?;
        tx.commit().await?;
        Ok(Committed {
            node,
            replaced,
            job: None,
        })
    }

    async fn set_tags(&self, dir: NodeId, t: &Tags) -> Result<Node> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let n = get_node(&tx, dir)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("node {dir}")))?;
        if !n.is_dir() {
            return Err(CatalogError::NotADirectory(n.name));
        }
        tx.execute(
            "UPDATE nodes SET storage_group = $1, file_family = $2, file_family_width = $3, wrapper = $4, \
             library = $5, write_once = $7 WHERE id = $6",
            &[
                &t.storage_group,
                &t.file_family,
                &t.file_family_width.map(|w| w as i32),
                &t.wrapper,
                &t.library,
                &dir,
                &t.write_once.map(i32::from),
            ],
        )
        .await?;
        let n = get_node(&tx, dir).await?.expect("tagged node");
        tx.commit().await?;
        Ok(n)
    }

    async fn set_attrs(&self, id: NodeId, a: &AttrChange) -> Result<Node> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let n = get_node(&tx, id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("node {id}")))?;
        tx.execute(
            "UPDATE nodes SET owner = $1, grp = $2, mode = $3, mtime = $4 WHERE id = $5",
            &[
                &a.owner.clone().unwrap_or(n.owner),
                &a.group.clone().unwrap_or(n.group),
                &(a.mode.unwrap_or(n.mode) as i32),
                &a.mtime.unwrap_or(n.mtime).0,
                &id,
            ],
        )
        .await?;
        let n = get_node(&tx, id).await?.expect("changed node");
        tx.commit().await?;
        Ok(n)
    }

    async fn set_quota(&self, q: &Quota) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute("DELETE FROM quotas WHERE storage_group = $1", &[&q.storage_group])
            .await?;
        tx.execute(
            "DELETE FROM quota_volumes WHERE storage_group = $1",
            &[&q.storage_group],
        )
        .await?;
        if !q.is_empty() {
            tx.execute(
                "INSERT INTO quotas (storage_group, max_bytes, max_files) VALUES ($1, $2, $3)",
                &[&q.storage_group, &q.bytes.map(|b| b as i64), &q.files.map(|f| f as i64)],
            )
            .await?;
            for (lib, n) in &q.volumes {
                tx.execute(
                    "INSERT INTO quota_volumes (storage_group, library, max_volumes) VALUES ($1, $2, $3)",
                    &[&q.storage_group, lib, &(*n as i32)],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn quotas(&self) -> Result<Vec<Quota>> {
        let c = self.pool.get().await?;
        let mut out: Vec<Quota> = c
            .query(
                "SELECT storage_group, max_bytes, max_files FROM quotas ORDER BY storage_group",
                &[],
            )
            .await?
            .iter()
            .map(|r| Quota {
                storage_group: r.get(0),
                bytes: r.get::<_, Option<i64>>(1).map(|b| b as u64),
                files: r.get::<_, Option<i64>>(2).map(|f| f as u64),
                volumes: Default::default(),
            })
            .collect();
        for r in c
            .query("SELECT storage_group, library, max_volumes FROM quota_volumes", &[])
            .await?
        {
            let g: String = r.get(0);
            if let Some(q) = out.iter_mut().find(|q| q.storage_group == g) {
                q.volumes.insert(r.get(1), r.get::<_, i32>(2) as u32);
            }
        }
        Ok(out)
    }

    async fn group_usage(&self) -> Result<Vec<GroupUsage>> {
        let c = self.pool.get().await?;
        Ok(c.query(
            "SELECT storage_group, files, bytes FROM group_usage ORDER BY storage_group",
            &[],
        )
        .await?
        .iter()
        .map(|r| GroupUsage {
            storage_group: r.get(0),
            files: r.get::<_, i64>(1).max(0) as u64,
            bytes: r.get::<_, i64>(2).max(0) as u64,
        })
        .collect())
    }

    async fn dead_props(&self, ids: &[NodeId]) -> Result<Vec<(NodeId, DeadProp)>> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached("SELECT node, ns, name, xml FROM dead_props WHERE node = ANY($1) ORDER BY node, ns, name")
            .await?;
        let rows = c.query(&st, &[&ids]).await?;
        let mut out: Vec<(NodeId, DeadProp)> = rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    DeadProp {
                        ns: r.get(1),
                        name: r.get(2),
                        xml: r.get(3),
                    },
                )
            })
            .collect();
        // In the order of `ids`, as SQLite answers.
        let order: std::collections::HashMap<NodeId, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        out.sort_by_key(|(id, _)| order.get(id).copied().unwrap_or(usize::MAX));
        Ok(out)
    }

    async fn patch_props(&self, id: NodeId, changes: &[PropChange], mtime: Option<Timestamp>) -> Result<Node> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Locks the node: a concurrent remove waits or has won.
        tx.query_opt("SELECT id FROM nodes WHERE id = $1 FOR UPDATE", &[&id])
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("node {id}")))?;
        for ch in changes {
            match ch {
                PropChange::Set(p) => put_props(&tx, id, std::slice::from_ref(p)).await?,
                PropChange::Remove { ns, name } => {
                    tx.execute(
                        "DELETE FROM dead_props WHERE node = $1 AND ns = $2 AND name = $3",
                        &[&id, ns, name],
                    )
                    .await?;
                }
            }
        }
        let sums = tx
            .query_one(
                "SELECT COUNT(*), COALESCE(SUM(octet_length(xml)), 0)::BIGINT FROM dead_props WHERE node = $1",
                &[&id],
            )
            .await?;
        let (count, bytes): (i64, i64) = (sums.get(0), sums.get(1));
        rules::props_fit(count as usize, bytes as usize)?;
        if let Some(t) = mtime {
            tx.execute("UPDATE nodes SET mtime = $1 WHERE id = $2", &[&t.0, &id])
                .await?;
        }
        let n = get_node(&tx, id).await?.expect("patched node");
        tx.commit().await?;
        Ok(n)
    }

    async fn record_access(&self, touches: &[(NodeId, Timestamp)]) -> Result<()> {
        if touches.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = touches.iter().map(|t| t.0).collect();
        let times: Vec<i64> = touches.iter().map(|t| t.1 .0).collect();
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        crate::postgres_common::lock_nodes(&tx, &ids).await?;
        tx.execute(
            "UPDATE nodes SET atime = t.at FROM unnest($1::bigint[], $2::bigint[]) AS t(id, at) \
             WHERE nodes.id = t.id AND nodes.atime < t.at",
            &[&ids, &times],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
