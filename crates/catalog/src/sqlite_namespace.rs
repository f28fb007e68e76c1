//! The SQLite catalog's namespace steps, shared by the `Catalog` methods:
//! reading nodes, checking a parent, walking subtrees and ancestors,
//! deleting, settling, and recording one file.

use crate::model::*;
use crate::rules;
use crate::sqlite_common::*;
use crate::{ArchiveRoute, CatalogError, Result};
use bale_util::NsPath;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

pub(crate) fn get_node(c: &Connection, id: NodeId) -> Result<Option<Node>> {
    let mut st = c.prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE id = ?1"))?;
    Ok(st.query_row([id], node_from_row).optional()?)
}

pub(crate) fn get_child(c: &Connection, parent: NodeId, name: &str) -> Result<Option<Node>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {NODE_COLS} FROM nodes WHERE parent = ?1 AND name = ?2"
    ))?;
    Ok(st.query_row(params![parent, name], node_from_row).optional()?)
}

pub(crate) fn has_children(c: &Connection, id: NodeId) -> Result<bool> {
    let mut st = c.prepare_cached("SELECT 1 FROM nodes WHERE parent = ?1 LIMIT 1")?;
    Ok(st.exists([id])?)
}

/// `id` and every directory above it.
pub(crate) fn ancestors(c: &Connection, id: NodeId) -> Result<Vec<NodeId>> {
    let mut st = c.prepare_cached(
        "WITH RECURSIVE up(id, parent) AS (SELECT id, parent FROM nodes WHERE id = ?1 \
         UNION ALL SELECT n.id, n.parent FROM nodes n JOIN up ON n.id = up.parent) SELECT id FROM up",
    )?;
    let ids = st.query_map([id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// The length of a directory's path (`rules::fits`), read in the caller's
/// transaction: one index probe per level above it.
pub(crate) fn dir_len(c: &Connection, dir: NodeId) -> Result<usize> {
    let mut st = c.prepare_cached(
        "WITH RECURSIVE up(id, parent, name) AS (SELECT id, parent, name FROM nodes WHERE id = ?1 \
         UNION ALL SELECT n.id, n.parent, n.name FROM nodes n JOIN up ON n.id = up.parent) \
         SELECT COALESCE(SUM(1 + length(CAST(name AS BLOB))), 0) FROM up WHERE parent IS NOT NULL",
    )?;
    let len: i64 = st.query_row([dir], |r| r.get(0))?;
    Ok(len as usize)
}

/// [`dir_len`] through a batch's memory of it.
pub(crate) fn dir_len_cached(c: &Connection, lens: &mut rules::DirLengths, dir: NodeId) -> Result<usize> {
    if let Some(l) = lens.get(dir) {
        return Ok(l);
    }
    let l = dir_len(c, dir)?;
    lens.insert(dir, l);
    Ok(l)
}

/// The longest path below directory `dir`, relative to it (`rules::fits`).
/// The walk visits directories only (the partial index `nodes_dirs`);
/// files are looked at only in directories deep enough that a file name
/// could take a path there over `budget`, so a wide tree costs its
/// directories, not its files.
pub(crate) fn longest_below(c: &Connection, dir: NodeId, budget: usize) -> Result<usize> {
    let mut st = c.prepare_cached(
        "WITH RECURSIVE d(id, len) AS (SELECT ?1, 0 \
         UNION ALL SELECT n.id, d.len + 1 + length(CAST(n.name AS BLOB)) FROM nodes n JOIN d ON n.parent = d.id \
         WHERE n.kind = 1) \
         SELECT MAX(COALESCE((SELECT MAX(len) FROM d), 0), \
         COALESCE((SELECT MAX(d.len + 1 + length(CAST(f.name AS BLOB))) FROM d JOIN nodes f ON f.parent = d.id \
         WHERE f.kind = 2 AND d.len + 1 + 255 > ?2), 0))",
    )?;
    let len: i64 = st.query_row(params![dir, budget as i64], |r| r.get(0))?;
    Ok(len as usize)
}

pub(crate) fn path_of(c: &Connection, id: NodeId) -> Result<NsPath> {
    NsPath::parse(&path_string(c, id)?).map_err(|e| CatalogError::backend(e, false))
}

/// A node's path as the catalog holds it, not validated.
pub(crate) fn path_string(c: &Connection, id: NodeId) -> Result<String> {
    let mut names = Vec::new();
    let mut cur = id;
    loop {
        let n = get_node(c, cur)?.ok_or_else(|| CatalogError::NotFound(format!("node {cur}")))?;
        match n.parent {
            None => break,
            Some(p) => {
                names.push(n.name);
                cur = p;
            }
        }
        if names.len() > 4096 {
            return Err(CatalogError::backend("cycle in namespace", false));
        }
    }
    names.reverse();
    Ok(format!("/{}", names.join("/")))
}

pub(crate) fn dir_for_child(c: &Connection, parent: NodeId) -> Result<Node> {
    let p = get_node(c, parent)?.ok_or_else(|| CatalogError::NotFound("parent directory".into()))?;
    if !p.is_dir() {
        return Err(CatalogError::NotADirectory(format!("parent {:?}", p.name)));
    }
    Ok(p)
}

/// The subtree rooted at `id`, the root included.
pub(crate) fn subtree(c: &Connection, id: NodeId) -> Result<Vec<Node>> {
    let cols = NODE_COLS
        .split(", ")
        .map(|col| format!("n.{col}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut st = c.prepare_cached(&format!(
        "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION ALL SELECT n.id FROM nodes n JOIN sub ON n.parent = sub.id) \
         SELECT {cols} FROM nodes n JOIN sub ON n.id = sub.id"
    ))?;
    let rows = st.query_map([id], node_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn delete_nodes(c: &Connection, nodes: &[Node]) -> Result<()> {
    // Children before parents, so that the parent reference holds at every step.
    let mut st = c.prepare_cached("DELETE FROM nodes WHERE id = ?1")?;
    for n in nodes.iter().rev() {
        st.execute([n.id])?;
    }
    Ok(())
}

pub(crate) fn settle(tx: &Transaction<'_>, ids: &[FileId]) -> Result<()> {
    let mut st = tx.prepare_cached("DELETE FROM landing WHERE file_id = ?1")?;
    for id in ids {
        st.execute([id.to_string()])?;
    }
    Ok(())
}

pub(crate) fn commit_one(
    tx: &Transaction<'_>,
    f: &NewFile,
    lens: &mut rules::DirLengths,
    tallies: &mut rules::Tallies,
) -> Result<Committed> {
    let parent = dir_for_child(tx, f.parent)?;
    rules::fits(dir_len_cached(tx, lens, f.parent)?, &f.name, 0)?;
    let replaced: Vec<Node> = rules::commit_over(get_child(tx, f.parent, &f.name)?, f)?
        .into_iter()
        .collect();
    // The storage group's quota, checked before anything is written.
    let sg = group_of(&parent.tags);
    let tally = match tallies.entry(sg.to_string()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(load_tally(tx, sg)?),
    };
    let same_group = replaced.first().filter(|o| group_of(&o.tags) == sg).map(|o| o.size);
    tally.admit(sg, &f.name, f.size, same_group)?;
    // An overwrite keeps the dead properties of the file it replaces.
    let props = match replaced.first() {
        Some(old) => take_props(tx, old.id)?,
        None => Vec::new(),
    };
    delete_nodes(tx, &replaced)?;
    let (owner, group, mode) = rules::committed_attrs(f, replaced.first());
    let t = &parent.tags;
    let id = next_id(tx, "nodes")?;
    let mut st = tx.prepare_cached(&format!(
        "INSERT INTO nodes (id, parent, name, kind, owner, grp, mode, size, ctime, mtime, atime, file_id, adler32, \
         storage_group, file_family, file_family_width, wrapper, library) \
         VALUES (?15, ?1, ?2, 2, ?3, ?4, ?5, ?6, ?7, ?16, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) RETURNING {NODE_COLS}"
    ))?;
    let node = st.query_row(
        params![
            f.parent,
            f.name,
            owner,
            group,
            mode as i64,
            f.size as i64,
            f.time.0,
            f.file_id.to_string(),
            f.adler32.0 as i64,
            t.storage_group,
            t.file_family,
            t.file_family_width.map(|w| w as i64),
            t.wrapper,
            t.library,
            id,
            f.mtime.unwrap_or(f.time).0
        ],
        node_from_row,
    )?;
    put_props(tx, id, &props)?;
    let job = match &f.archive {
        Some(ArchiveRoute::Direct(target)) => Some(crate::sqlite_common::create_job(
            tx,
            target,
            &[(f.file_id, f.size)],
            f.time,
            None,
        )?),
        Some(ArchiveRoute::Pool(pool)) => {
            crate::sqlite_common::join_pool(tx, pool, f.file_id, f.size, f.time)?;
            None
        }
        None => None,
    };
    if !replaced.is_empty() {
        crate::sqlite_common::release_files(tx, &replaced)?;
    }
    Ok(Committed { node, replaced, job })
}

/// Removes and returns a node's dead properties.
pub(crate) fn take_props(tx: &Transaction<'_>, id: NodeId) -> Result<Vec<DeadProp>> {
    let mut st = tx.prepare_cached("DELETE FROM dead_props WHERE node = ?1 RETURNING ns, name, xml")?;
    let rows = st.query_map([id], |r| {
        Ok(DeadProp {
            ns: r.get(0)?,
            name: r.get(1)?,
            xml: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Sets dead properties of a node (replacing those of the same name).
pub(crate) fn put_props(tx: &Transaction<'_>, id: NodeId, props: &[DeadProp]) -> Result<()> {
    if props.is_empty() {
        return Ok(());
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO dead_props (node, ns, name, xml) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (node, ns, name) DO UPDATE SET xml = excluded.xml",
    )?;
    for p in props {
        st.execute(params![id, p.ns, p.name, p.xml])?;
    }
    Ok(())
}

/// A storage group's quota and use, for a commit's checks.
pub(crate) fn load_tally(tx: &Transaction<'_>, group: &str) -> Result<rules::Tally> {
    let limits: Option<(Option<i64>, Option<i64>)> = tx
        .prepare_cached("SELECT max_bytes, max_files FROM quotas WHERE storage_group = ?1")?
        .query_row([group], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((max_bytes, max_files)) = limits else {
        return Ok(rules::Tally::default());
    };
    let (files, bytes): (i64, i64) = tx
        .prepare_cached("SELECT files, bytes FROM group_usage WHERE storage_group = ?1")?
        .query_row([group], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0));
    Ok(rules::Tally::limited(max_bytes, max_files, files, bytes))
}
