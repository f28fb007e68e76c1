//! The rules both backends apply, written once: what a commit does to an
//! existing entry, what a remove and a rename may do, which members a
//! closing pool takes, whether tape files continue their volume. The
//! backends read what the rules need in their own SQL, ask the rule, and
//! write its answer back in their own SQL.

use crate::model::{NewFile, Node, NodeId, Replace, ROOT_ID};
use crate::tape::{JobTarget, NewPackage};
use crate::{CatalogError, Result};
use bale_util::path::MAX_PATH_LEN;
use bale_util::FileId;

/// What committing `f` does to the entry already holding its name: none
/// in the way (`None`), or the file it replaces. A directory is never
/// replaced; a file only by an overwrite.
pub(crate) fn commit_over(existing: Option<Node>, f: &NewFile) -> Result<Option<Node>> {
    match (existing, f.replace) {
        (None, _) => Ok(None),
        (Some(e), _) if e.is_dir() => Err(CatalogError::IsADirectory(f.name.clone())),
        (Some(_), Replace::No) => Err(CatalogError::AlreadyExists(f.name.clone())),
        (Some(e), Replace::File(id)) if e.file_id != Some(id) => Err(CatalogError::Changed(f.name.clone())),
        (Some(e), _) => Ok(Some(e)),
    }
}

/// Whether a node may keep `count` dead properties of `bytes` of XML.
pub(crate) fn props_fit(count: usize, bytes: usize) -> Result<()> {
    use crate::model::{MAX_DEAD_PROPS, MAX_DEAD_PROP_BYTES};
    if count > MAX_DEAD_PROPS || bytes > MAX_DEAD_PROP_BYTES {
        return Err(CatalogError::Limit(format!(
            "an entry keeps at most {MAX_DEAD_PROPS} dead properties of {} KiB together \
             ({count} of {bytes} bytes asked for); nothing was changed",
            MAX_DEAD_PROP_BYTES / 1024
        )));
    }
    Ok(())
}

/// Owner, group and mode of a committed file. An overwrite is a write into
/// the existing file: it keeps the file's owner, group and mode, as on Unix.
pub(crate) fn committed_attrs<'a>(f: &'a NewFile, replaced: Option<&'a Node>) -> (&'a str, &'a str, u32) {
    match replaced {
        Some(old) => (&old.owner, &old.group, old.mode),
        None => (&f.owner, &f.group, f.mode),
    }
}

/// The root is neither removed nor moved (`what`: "removed", "moved").
pub(crate) fn not_root(id: NodeId, what: &str) -> Result<()> {
    match id == ROOT_ID {
        true => Err(CatalogError::Invalid(format!("the root directory cannot be {what}"))),
        false => Ok(()),
    }
}

/// Whether removing `node` takes its whole subtree: a directory with
/// entries goes only with `recursive`.
pub(crate) fn takes_subtree(node: &Node, has_children: bool, recursive: bool) -> Result<bool> {
    match node.is_dir() && has_children {
        true if !recursive => Err(CatalogError::NotEmpty(node.name.clone())),
        t => Ok(t),
    }
}

/// With `only_owner`, every node a remove takes must belong to that user.
pub(crate) fn owned_by(nodes: &[Node], only_owner: Option<&str>) -> Result<()> {
    let Some(owner) = only_owner else { return Ok(()) };
    match nodes.iter().find(|n| n.owner != owner) {
        Some(n) => Err(CatalogError::PermissionDenied(format!(
            "{:?} belongs to {}",
            n.name, n.owner
        ))),
        None => Ok(()),
    }
}

/// A directory is not moved beneath itself: `ancestors` are the new
/// parent and every directory above it.
pub(crate) fn not_beneath(node: &Node, ancestors: &[NodeId]) -> Result<()> {
    match node.is_dir() && ancestors.contains(&node.id) {
        true => Err(CatalogError::Invalid("cannot move a directory beneath itself".into())),
        false => Ok(()),
    }
}

/// What a rename finds at its destination.
pub(crate) enum Onto {
    /// Nothing: the name is free.
    Free,
    /// The node itself: nothing to do.
    Itself,
    /// An entry the rename replaces (a file, or an empty directory).
    Replace(Box<Node>),
}

/// What renaming node `id` onto `dest` (the entry holding the new name,
/// if any) does; a directory in the way must be empty.
pub(crate) fn rename_onto(id: NodeId, dest: Option<Node>, dest_has_children: bool, overwrite: bool) -> Result<Onto> {
    match dest {
        None => Ok(Onto::Free),
        Some(d) if d.id == id => Ok(Onto::Itself),
        Some(d) if !overwrite => Err(CatalogError::AlreadyExists(d.name)),
        Some(d) if d.is_dir() && dest_has_children => Err(CatalogError::NotEmpty(d.name)),
        Some(d) => Ok(Onto::Replace(Box::new(d))),
    }
}

/// The members a closing pool takes, from its members oldest first (at
/// most `max_files` of them, as the backend selected): up to and
/// including the one that reaches `target_size`.
pub(crate) fn take_up_to_target(
    oldest_first: impl IntoIterator<Item = (FileId, u64)>,
    target_size: u64,
) -> Vec<(FileId, u64)> {
    let mut taken = Vec::new();
    let mut bytes = 0u64;
    for (id, size) in oldest_first {
        taken.push((id, size));
        bytes += size;
        if bytes >= target_size {
            break;
        }
    }
    taken
}

/// Checks that tape file `p` continues a volume that ends at tape file
/// `seq`, byte `used`; returns where the volume ends after it.
pub(crate) fn continues(label: &str, (seq, used): (u32, u64), p: &NewPackage) -> Result<(u32, u64)> {
    if p.seq != seq || p.position < used {
        return Err(CatalogError::Invalid(format!(
            "volume {label} ends at tape file {seq} (byte {used}); a write at tape file {} (byte {}) \
             does not continue it",
            p.seq, p.position
        )));
    }
    Ok((seq + 1, p.position + p.size))
}

/// The archive jobs whose files a commit of `packages` wrote, once each.
pub(crate) fn jobs_of(packages: &[NewPackage]) -> Vec<i64> {
    let mut jobs: Vec<i64> = packages.iter().filter_map(|p| p.job).collect();
    jobs.sort_unstable();
    jobs.dedup();
    jobs
}

/// The next copies a commit of `packages` queues: for each job written
/// whose target has copies after it (`target_of` gives a job's target),
/// the next copy's target and the files the packages wrote for the job,
/// in member order. The backend drops files deleted meanwhile.
pub(crate) fn next_copies(
    packages: &[NewPackage],
    target_of: &std::collections::HashMap<i64, JobTarget>,
) -> Vec<CopyJob> {
    let mut out: Vec<(i64, CopyJob)> = Vec::new();
    for p in packages {
        let Some(j) = p.job else { continue };
        let Some(next) = target_of.get(&j).and_then(JobTarget::next_copy) else {
            continue;
        };
        let files = p.members.iter().map(|m| (m.file_id, m.size));
        match out.iter_mut().find(|o| o.0 == j) {
            Some(o) => o.1 .1.extend(files),
            None => out.push((j, (next, files.collect()))),
        }
    }
    out.into_iter().map(|(_, c)| c).collect()
}

/// A next copy's job: its target and its files with their sizes.
pub(crate) type CopyJob = (JobTarget, Vec<(FileId, u64)>);

/// The checks of an import made before anything is written: names that
/// are path components, a parent named by index is an earlier directory of
/// the import, a file has an id and a checksum and a directory neither.
/// Parents already in the catalog and unique names are the backend's (its
/// transaction fails as a whole).
pub(crate) fn check_import(entries: &[crate::model::ImportNode]) -> Result<()> {
    use crate::model::{ImportParent, NodeKind};
    for (i, e) in entries.iter().enumerate() {
        let bad = |why: &str| Err(CatalogError::Invalid(format!("import entry {i} ({:?}): {why}", e.name)));
        if e.name.is_empty() || e.name == "." || e.name == ".." || e.name.contains('/') || e.name.contains('\0') {
            return bad("not a valid name");
        }
        if e.mode > 0o7777 {
            return bad("mode above 7777");
        }
        if let ImportParent::Entry(p) = e.parent {
            if p >= i || entries[p].kind != NodeKind::Dir {
                return bad("its parent is not an earlier directory of the import");
            }
        }
        match (e.kind, e.file_id.is_some(), e.adler32.is_some()) {
            (NodeKind::File, true, true) => {}
            (NodeKind::Dir, false, false) if e.size == 0 && e.cached => {}
            (NodeKind::File, _, _) => return bad("a file needs a file id and a checksum"),
            (NodeKind::Dir, _, _) => return bad("a directory has no file id, checksum or size and is cached"),
        }
    }
    Ok(())
}

/// Only a failed job is retried by hand (a queued one is on its way).
pub(crate) fn retryable(job: &crate::tape::ArchiveJob) -> Result<()> {
    match job.state {
        crate::tape::JobState::Failed => Ok(()),
        s => Err(CatalogError::Invalid(format!(
            "archive job {} is {}, not failed: it is on its way to tape already",
            job.id,
            s.as_str()
        ))),
    }
}

/// Paths stay within [`MAX_PATH_LEN`] bytes, whatever creates them. A
/// path's length is the sum over its components of 1 + the name's bytes
/// (the root's own path counts 0, so "/a" is 2); `dir_len` is a
/// directory's, `below` the longest relative path beneath an entry (0 for
/// a file or an empty directory).
pub(crate) fn fits(dir_len: usize, name: &str, below: usize) -> Result<()> {
    let len = dir_len + 1 + name.len() + below;
    if len > MAX_PATH_LEN {
        return Err(CatalogError::TooLong(match below {
            0 => format!("the path would be {len} bytes long, over the limit of {MAX_PATH_LEN}"),
            _ => format!("the longest path below it would be {len} bytes long, over the limit of {MAX_PATH_LEN}"),
        }));
    }
    Ok(())
}

/// What a transaction that creates entries learns once per directory: the
/// length of its path (read in the transaction, so that a move of a
/// directory above it committed meanwhile counts).
#[derive(Default)]
pub(crate) struct DirLengths(std::collections::HashMap<NodeId, usize>);

impl DirLengths {
    pub(crate) fn get(&self, dir: NodeId) -> Option<usize> {
        self.0.get(&dir).copied()
    }
    pub(crate) fn insert(&mut self, dir: NodeId, len: usize) {
        self.0.insert(dir, len);
    }
}

/// The lengths of an import's paths: each entry's, from the lengths of the
/// catalog's directories it goes into (`dir_len`) and of its earlier
/// entries. The first entry that does not fit refuses the import.
pub(crate) fn check_import_lengths(
    entries: &[crate::model::ImportNode],
    mut dir_len: impl FnMut(NodeId) -> Result<usize>,
) -> Result<()> {
    use crate::model::ImportParent;
    let mut lens = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let parent = match e.parent {
            ImportParent::Node(p) => dir_len(p)?,
            ImportParent::Entry(j) => lens[j],
        };
        fits(parent, &e.name, 0)
            .map_err(|err| CatalogError::TooLong(format!("import entry {i} ({:?}): {err}", e.name)))?;
        lens.push(parent + 1 + e.name.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> FileId {
        FileId::parse(&format!("00000000-0000-7000-8000-0000000000{n:02x}")).unwrap()
    }

    #[test]
    fn paths_fit_within_the_limit() {
        let name = "x".repeat(250);
        assert!(fits(4096 - 251, &name, 0).is_ok(), "exactly 4096");
        assert!(matches!(fits(4096 - 250, &name, 0), Err(CatalogError::TooLong(_))));
        assert!(fits(0, "a", 4094).is_ok());
        let e = fits(0, "a", 4095).unwrap_err();
        assert!(e.to_string().contains("4097"), "{e}");
    }

    #[test]
    fn a_pool_takes_members_until_the_target_is_reached() {
        let m = vec![(id(1), 40), (id(2), 40), (id(3), 40), (id(4), 40)];
        assert_eq!(take_up_to_target(m.clone(), 100).len(), 3, "the third reaches it");
        assert_eq!(take_up_to_target(m.clone(), 80).len(), 2, "exactly at the target");
        assert_eq!(take_up_to_target(m.clone(), 1000).len(), 4, "all there are");
        assert_eq!(take_up_to_target(m, 1).len(), 1);
        assert!(take_up_to_target(Vec::new(), 1).is_empty());
    }
}

/// A storage group's quota and use as one commit sees them: its limits,
/// what the catalog held when the commit first looked, the net change the
/// commit made since (for the checks), and what it adds (written at its
/// end; a replaced file's removal is written when it is released).
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    pub max_bytes: Option<u64>,
    pub max_files: Option<u64>,
    pub files: i64,
    pub bytes: i64,
    pub net_files: i64,
    pub net_bytes: i64,
    pub added_files: i64,
    pub added_bytes: i64,
}

/// The storage groups one commit touches.
pub(crate) type Tallies = std::collections::HashMap<String, Tally>;

impl Tally {
    /// A group's tally from its quota row (limits as the catalog stores
    /// them) and its use.
    pub fn limited(max_bytes: Option<i64>, max_files: Option<i64>, files: i64, bytes: i64) -> Tally {
        Tally {
            max_bytes: max_bytes.map(|b| b as u64),
            max_files: max_files.map(|f| f as u64),
            files,
            bytes,
            ..Tally::default()
        }
    }

    /// Admits a file of `size` bytes that replaces one of `replaced` bytes
    /// of the same group (if any), or says which quota it would pass.
    pub fn admit(&mut self, group: &str, name: &str, size: u64, replaced: Option<u64>) -> Result<()> {
        let (files, bytes) = match replaced {
            Some(old) => (0i64, size as i64 - old as i64),
            None => (1, size as i64),
        };
        let (in_files, in_bytes) = (self.files + self.net_files, self.bytes + self.net_bytes);
        if let Some(max) = self.max_files {
            if files > 0 && in_files + files > max as i64 {
                return Err(CatalogError::Quota(format!(
                    "storage group {group} is at its quota of {max} files ({in_files} in use): {name} was not \
                     stored; delete files or ask for a larger quota (bale quota set {group} --files N)"
                )));
            }
        }
        if let Some(max) = self.max_bytes {
            if bytes > 0 && in_bytes + bytes > max as i64 {
                return Err(CatalogError::Quota(format!(
                    "storage group {group} would pass its quota of {} with {name} ({} in use, {} more): \
                     nothing was stored; delete files or ask for a larger quota (bale quota set {group} --bytes N)",
                    bale_util::human::Bytes(max),
                    bale_util::human::Bytes(in_bytes.max(0) as u64),
                    bale_util::human::Bytes(bytes as u64)
                )));
            }
        }
        self.net_files += files;
        self.net_bytes += bytes;
        self.added_files += 1;
        self.added_bytes += size as i64;
        Ok(())
    }
}

impl Tally {
    /// Takes back a new file admitted but not recorded after all.
    pub fn forget(&mut self, size: u64) {
        self.net_files -= 1;
        self.net_bytes -= size as i64;
        self.added_files -= 1;
        self.added_bytes -= size as i64;
    }
}

/// Files and bytes by storage group, summed and sorted (the order in
/// which a transaction changes the use rows).
pub(crate) fn by_group(deltas: impl IntoIterator<Item = (String, i64, i64)>) -> Vec<(String, i64, i64)> {
    let mut by: std::collections::BTreeMap<String, (i64, i64)> = std::collections::BTreeMap::new();
    for (g, files, bytes) in deltas {
        let e = by.entry(g).or_default();
        e.0 += files;
        e.1 += bytes;
    }
    by.into_iter().map(|(g, (f, b))| (g, f, b)).collect()
}

/// Files and bytes by storage group of file nodes leaving the namespace
/// (negative) or entering it.
pub(crate) fn usage_of<'a>(nodes: impl IntoIterator<Item = &'a Node>, sign: i64) -> Vec<(String, i64, i64)> {
    by_group(
        nodes
            .into_iter()
            .filter(|n| !n.is_dir())
            .map(|n| (crate::model::group_of(&n.tags).to_string(), sign, sign * n.size as i64)),
    )
}

/// The use imported file entries add, by storage group.
pub(crate) fn import_usage(entries: &[crate::model::ImportNode]) -> Vec<(String, i64, i64)> {
    by_group(
        entries
            .iter()
            .filter(|e| e.kind == crate::model::NodeKind::File)
            .map(|e| (crate::model::group_of(&e.tags).to_string(), 1, e.size as i64)),
    )
}

/// The use a commit adds (its tallies) and takes (files it replaced), by
/// storage group.
pub(crate) fn commit_usage(
    tallies: &Tallies,
    released: impl IntoIterator<Item = (String, i64, i64)>,
) -> Vec<(String, i64, i64)> {
    by_group(
        tallies
            .iter()
            .map(|(g, t)| (g.clone(), t.added_files, t.added_bytes))
            .chain(released),
    )
}

#[cfg(test)]
mod tally_tests {
    use super::*;

    #[test]
    fn quotas_admit_up_to_the_limit() {
        let mut t = Tally {
            max_bytes: Some(100),
            max_files: Some(3),
            files: 1,
            bytes: 40,
            ..Tally::default()
        };
        t.admit("g", "a", 30, None).unwrap();
        assert!(matches!(t.admit("g", "b", 31, None), Err(CatalogError::Quota(_))));
        // Replacing a file takes no new file and only the difference in bytes.
        t.admit("g", "a", 60, Some(30)).unwrap();
        t.admit("g", "c", 0, None).unwrap();
        let e = t.admit("g", "d", 0, None).unwrap_err().to_string();
        assert!(e.contains("quota of 3 files"), "{e}");
        assert_eq!((t.net_files, t.net_bytes), (2, 60));
        // What the commit writes: every file it added (the replaced one's
        // removal is written when it is released).
        assert_eq!((t.added_files, t.added_bytes), (3, 90));
        // A smaller replacement always fits.
        t.admit("g", "a", 1, Some(60)).unwrap();
    }
}
