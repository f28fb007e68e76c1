//! The PostgreSQL catalog's namespace steps, shared by the `Catalog`
//! methods: reading nodes, checking a parent, walking subtrees and
//! ancestors, deleting, settling, and recording one file.

use crate::model::*;
use crate::postgres_common::*;
use crate::rules;
use crate::{ArchiveRoute, CatalogError, Result};
use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;

pub(crate) fn is_code(e: &tokio_postgres::Error, code: &SqlState) -> bool {
    e.code() == Some(code)
}

pub(crate) async fn get_node(c: &impl GenericClient, id: NodeId) -> Result<Option<Node>> {
    let st = c
        .prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes n WHERE n.id = $1"))
        .await?;
    c.query_opt(&st, &[&id])
        .await?
        .map(|r| node_from_row(&r, 0))
        .transpose()
}

pub(crate) async fn get_child(c: &impl GenericClient, parent: NodeId, name: &str) -> Result<Option<Node>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {NODE_COLS} FROM nodes n WHERE n.parent = $1 AND n.name = $2"
        ))
        .await?;
    c.query_opt(&st, &[&parent, &name])
        .await?
        .map(|r| node_from_row(&r, 0))
        .transpose()
}

pub(crate) async fn has_children(c: &impl GenericClient, id: NodeId) -> Result<bool> {
    let st = c
        .prepare_cached("SELECT 1 FROM nodes WHERE parent = $1 LIMIT 1")
        .await?;
    Ok(c.query_opt(&st, &[&id]).await?.is_some())
}

pub(crate) async fn dir_for_child(c: &impl GenericClient, parent: NodeId) -> Result<Node> {
    let p = get_node(c, parent)
        .await?
        .ok_or_else(|| CatalogError::NotFound("parent directory".into()))?;
    if !p.is_dir() {
        return Err(CatalogError::NotADirectory(format!("parent {:?}", p.name)));
    }
    Ok(p)
}

pub(crate) async fn subtree(c: &impl GenericClient, id: NodeId) -> Result<Vec<Node>> {
    let st = c
        .prepare_cached(&format!(
            "WITH RECURSIVE sub(id, depth) AS (SELECT $1::bigint, 0 UNION ALL \
             SELECT n.id, sub.depth + 1 FROM nodes n JOIN sub ON n.parent = sub.id) \
             SELECT {NODE_COLS} FROM nodes n JOIN sub ON n.id = sub.id ORDER BY sub.depth"
        ))
        .await?;
    c.query(&st, &[&id])
        .await?
        .iter()
        .map(|r| node_from_row(r, 0))
        .collect()
}

/// The length of a directory's path (`rules::fits`), read in the caller's
/// transaction: one index probe per level above it.
pub(crate) async fn dir_len(c: &impl GenericClient, dir: NodeId) -> Result<usize> {
    let st = c
        .prepare_cached(
            "WITH RECURSIVE up(id, parent, name) AS (SELECT id, parent, name FROM nodes WHERE id = $1 \
             UNION ALL SELECT n.id, n.parent, n.name FROM nodes n JOIN up ON n.id = up.parent) \
             SELECT COALESCE(SUM(1 + octet_length(name)), 0)::bigint FROM up WHERE parent IS NOT NULL",
        )
        .await?;
    let len: i64 = c.query_one(&st, &[&dir]).await?.get(0);
    Ok(len as usize)
}

/// [`dir_len`] through a batch's memory of it.
pub(crate) async fn dir_len_cached(c: &impl GenericClient, lens: &mut rules::DirLengths, dir: NodeId) -> Result<usize> {
    if let Some(l) = lens.get(dir) {
        return Ok(l);
    }
    let l = dir_len(c, dir).await?;
    lens.insert(dir, l);
    Ok(l)
}

/// The longest path below directory `dir`, relative to it (`rules::fits`).
/// The walk visits directories only (the partial index `nodes_dirs`);
/// files are looked at only in directories deep enough that a file name
/// could take a path there over `budget`, so a wide tree costs its
/// directories, not its files.
pub(crate) async fn longest_below(c: &impl GenericClient, dir: NodeId, budget: usize) -> Result<usize> {
    let st = c
        .prepare_cached(
            "WITH RECURSIVE d(id, len) AS (SELECT $1::bigint, 0 \
             UNION ALL SELECT n.id, d.len + 1 + octet_length(n.name) FROM nodes n JOIN d ON n.parent = d.id \
             WHERE n.kind = 1) \
             SELECT GREATEST((SELECT MAX(len) FROM d), \
             (SELECT MAX(d.len + 1 + octet_length(f.name)) FROM d JOIN nodes f ON f.parent = d.id \
             WHERE f.kind = 2 AND d.len + 1 + 255 > $2::bigint), 0)::bigint",
        )
        .await?;
    let len: i64 = c.query_one(&st, &[&dir, &(budget as i64)]).await?.get(0);
    Ok(len as usize)
}

/// `id` and every directory above it.
pub(crate) async fn ancestors(c: &impl GenericClient, id: NodeId) -> Result<Vec<NodeId>> {
    let st = c
        .prepare_cached(
            "WITH RECURSIVE up(id, parent) AS (SELECT id, parent FROM nodes WHERE id = $1 \
             UNION ALL SELECT n.id, n.parent FROM nodes n JOIN up ON n.id = up.parent) SELECT id FROM up",
        )
        .await?;
    Ok(c.query(&st, &[&id]).await?.iter().map(|r| r.get(0)).collect())
}

/// Deletes nodes; returns those it deleted (a concurrent removal may have
/// taken some first: they are neither released nor counted twice).
pub(crate) async fn delete_nodes(c: &impl GenericClient, nodes: &[Node]) -> Result<Vec<Node>> {
    let ids: Vec<i64> = nodes.iter().map(|n| n.id).collect();
    crate::postgres_common::lock_nodes(c, &ids).await?;
    // One statement: the parent references are checked at its end.
    let st = c
        .prepare_cached("DELETE FROM nodes WHERE id = ANY($1) RETURNING id")
        .await?;
    let gone: std::collections::HashSet<i64> = c.query(&st, &[&ids]).await?.iter().map(|r| r.get(0)).collect();
    Ok(nodes.iter().filter(|n| gone.contains(&n.id)).cloned().collect())
}

pub(crate) async fn settle(c: &impl GenericClient, ids: &[FileId]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    c.execute("DELETE FROM landing WHERE file_id = ANY($1)", &[&ids])
        .await?;
    Ok(())
}

pub(crate) async fn commit_one(
    tx: &impl GenericClient,
    f: &NewFile,
    lens: &mut rules::DirLengths,
    tallies: &mut rules::Tallies,
    released: &mut Vec<(String, i64, i64)>,
) -> Result<Committed> {
    let parent = dir_for_child(tx, f.parent).await?;
    rules::fits(dir_len_cached(tx, lens, f.parent).await?, &f.name, 0)?;
    let mut existing = get_child(tx, f.parent, &f.name).await?;
    if let (Some(e), false) = (&existing, f.replace == Replace::No) {
        // The file to replace, locked, and read again: a concurrent removal
        // has won (it is gone) or waits for this commit; a PROPPATCH of it
        // waits too (both lock the node before its properties).
        crate::postgres_common::lock_nodes(tx, &[e.id]).await?;
        existing = get_child(tx, f.parent, &f.name).await?;
    }
    let replaced: Vec<Node> = rules::commit_over(existing, f)?.into_iter().collect();
    // The storage group's quota, checked before anything is written.
    let sg = group_of(&parent.tags).to_string();
    if !tallies.contains_key(&sg) {
        let t = load_tally(tx, &sg).await?;
        tallies.insert(sg.clone(), t);
    }
    let tally = tallies.get_mut(&sg).expect("loaded");
    let same_group = replaced.first().filter(|o| group_of(&o.tags) == sg).map(|o| o.size);
    tally.admit(&sg, &f.name, f.size, same_group)?;
    // An overwrite keeps the dead properties of the file it replaces.
    let props = match replaced.first() {
        Some(old) => take_props(tx, old.id).await?,
        None => Vec::new(),
    };
    if !replaced.is_empty() {
        delete_nodes(tx, &replaced).await?;
    }
    let (owner, group, mode) = rules::committed_attrs(f, replaced.first());
    let t = &parent.tags;
    let st = tx
        .prepare_cached(&format!(
            "INSERT INTO nodes AS n (parent, name, kind, owner, grp, mode, size, ctime, mtime, atime, file_id, \
             adler32, storage_group, file_family, file_family_width, wrapper, library) \
             VALUES ($1, $2, 2, $3, $4, $5, $6, $7, $15, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (parent, name) DO NOTHING RETURNING {NODE_COLS}"
        ))
        .await?;
    let row = tx
        .query_opt(
            &st,
            &[
                &f.parent,
                &f.name,
                &owner,
                &group,
                &(mode as i32),
                &(f.size as i64),
                &f.time.0,
                &f.file_id.to_string(),
                &(f.adler32.0 as i64),
                &t.storage_group,
                &t.file_family,
                &t.file_family_width.map(|w| w as i32),
                &t.wrapper,
                &t.library,
                &f.mtime.unwrap_or(f.time).0,
            ],
        )
        .await?;
    if let Some(r) = &row {
        put_props(tx, r.get(0), &props).await?;
    }
    if !replaced.is_empty() {
        crate::postgres_common::release_files(tx, &replaced).await?;
        released.extend(rules::usage_of(&replaced, -1));
    }
    match row {
        Some(r) => Ok(Committed {
            node: node_from_row(&r, 0)?,
            job: match &f.archive {
                Some(ArchiveRoute::Direct(t)) => {
                    Some(crate::postgres_common::create_job(tx, t, &[(f.file_id, f.size)], f.time, None).await?)
                }
                Some(ArchiveRoute::Pool(p)) => {
                    crate::postgres_common::join_pool(tx, p, f.file_id, f.size, f.time).await?;
                    None
                }
                None => None,
            },
            replaced,
        }),
        // Another node committed the same name since our check.
        None => {
            if let Some(t) = tallies.get_mut(&sg) {
                t.forget(f.size);
            }
            Err(CatalogError::AlreadyExists(f.name.clone()))
        }
    }
}

/// Removes and returns a node's dead properties.
pub(crate) async fn take_props(tx: &impl GenericClient, id: NodeId) -> Result<Vec<DeadProp>> {
    let st = tx
        .prepare_cached("DELETE FROM dead_props WHERE node = $1 RETURNING ns, name, xml")
        .await?;
    Ok(tx
        .query(&st, &[&id])
        .await?
        .iter()
        .map(|r| DeadProp {
            ns: r.get(0),
            name: r.get(1),
            xml: r.get(2),
        })
        .collect())
}

/// Sets dead properties of a node (replacing those of the same name).
pub(crate) async fn put_props(tx: &impl GenericClient, id: NodeId, props: &[DeadProp]) -> Result<()> {
    if props.is_empty() {
        return Ok(());
    }
    let st = tx
        .prepare_cached(
            "INSERT INTO dead_props (node, ns, name, xml) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (node, ns, name) DO UPDATE SET xml = excluded.xml",
        )
        .await?;
    for p in props {
        tx.execute(&st, &[&id, &p.ns, &p.name, &p.xml]).await?;
    }
    Ok(())
}

/// A storage group's quota and use, for a commit's checks. Commits into
/// groups with quotas hold their advisory locks (see `commit_files`), so
/// the use read here is the last such commit's; a removal not yet
/// committed only makes the check stricter. The use row is never locked
/// here: transactions change it last, in one order, and never deadlock.
pub(crate) async fn load_tally(tx: &impl GenericClient, group: &str) -> Result<rules::Tally> {
    let st = tx
        .prepare_cached("SELECT max_bytes, max_files FROM quotas WHERE storage_group = $1")
        .await?;
    let Some(limits) = tx.query_opt(&st, &[&group]).await? else {
        return Ok(rules::Tally::default());
    };
    let (max_bytes, max_files): (Option<i64>, Option<i64>) = (limits.get(0), limits.get(1));
    let st = tx
        .prepare_cached("SELECT files, bytes FROM group_usage WHERE storage_group = $1")
        .await?;
    let (files, bytes) = match tx.query_opt(&st, &[&group]).await? {
        Some(r) => (r.get(0), r.get(1)),
        None => (0, 0),
    };
    Ok(rules::Tally::limited(max_bytes, max_files, files, bytes))
}

/// Adds files and bytes to storage groups' use.
pub(crate) async fn apply_usage(tx: &impl GenericClient, deltas: &[(String, i64, i64)]) -> Result<()> {
    let st = tx
        .prepare_cached(
            "INSERT INTO group_usage (storage_group, files, bytes) VALUES ($1, $2, $3) \
             ON CONFLICT (storage_group) DO UPDATE SET files = group_usage.files + excluded.files, \
             bytes = group_usage.bytes + excluded.bytes",
        )
        .await?;
    for (g, files, bytes) in deltas.iter().filter(|d| d.1 != 0 || d.2 != 0) {
        tx.execute(&st, &[g, files, bytes]).await?;
    }
    Ok(())
}
