//! POSIX permissions: one check for every namespace operation.
//!
//! Every operation on a path declares an [`Op`]; [`check`] is the one place
//! that decides, on the nodes a lookup walked anyway ([`Resolved`]). The
//! rule, for everyone but an administrator:
//!
//! | operation | on every directory above the path | on the parent | on the entry |
//! | --- | --- | --- | --- |
//! | stat, PROPFIND depth 0, archive state, policy check | `x` | | |
//! | read data (GET) | `x` | | `r` |
//! | stage, pin (the data is read from tape) | `x` | | `r` |
//! | list (PROPFIND depth 1, `ls`) | `x` | | `r` and `x` (names and attributes, as `ls -l`) |
//! | create a file or directory | `x` | `w` and `x` | |
//! | overwrite a file (PUT with Overwrite) | `x` | | `w`; owner, group and mode are kept |
//! | delete, move away (MOVE source) | `x` | `w` and `x` | owner (as in a sticky directory) |
//! | move onto an existing entry (MOVE destination) | `x` | `w` and `x` | owner of the replaced entry |
//! | set tags, change the mode | `x` | | owner |
//! | change owner or group | administrators only | | |
//!
//! The bits that apply are the owner's if the user owns the node, else the
//! group's if the user's group is the node's, else the others'. A path
//! below a directory the user may not search is refused with 403 naming
//! that directory, whether or not the path exists (nothing is disclosed).
//!
//! A WLCG capability token is judged on its scopes instead of the mode
//! bits (Common JWT Profile; see `auth::scope`): the operation needs the
//! scope [`Op::scopes`] names, covering the path; nothing else is read.

use crate::auth::scope::{Authz, Capabilities};
use crate::auth::Principal;
use crate::{Error, Result};
use bale_catalog::Node;
use bale_util::NsPath;

pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

/// An operation on a path, as far as permissions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Stat,
    Read,
    List,
    Create,
    /// Creating an entry owned by someone else (`mkdir --owner`): an
    /// administrator's.
    CreateAs,
    Overwrite,
    Remove,
    /// Replacing an existing entry as a MOVE destination.
    Replace,
    Tag,
    Chmod,
    Chown,
    /// Staging or pinning a file: its data is brought to (or kept in) the
    /// cache, not read.
    Stage,
}

impl Op {
    pub const ALL: [Op; 12] = [
        Op::Stat,
        Op::Read,
        Op::List,
        Op::Create,
        Op::CreateAs,
        Op::Overwrite,
        Op::Remove,
        Op::Replace,
        Op::Tag,
        Op::Chmod,
        Op::Chown,
        Op::Stage,
    ];

    /// The capability scopes that allow the operation (any one of them,
    /// covering the path); none for what only an administrator may do.
    pub fn scopes(self) -> &'static [Authz] {
        const ANY: &[Authz] = &[Authz::Read, Authz::Create, Authz::Modify, Authz::Stage, Authz::Poll];
        match self {
            Op::Stat => ANY,
            Op::Read | Op::List => &[Authz::Read],
            Op::Create => &[Authz::Create, Authz::Modify],
            Op::Overwrite | Op::Remove | Op::Replace | Op::Tag | Op::Chmod => &[Authz::Modify],
            Op::Stage => &[Authz::Stage],
            Op::CreateAs | Op::Chown => &[],
        }
    }

    /// The verb of an error message: "user bob may not {verb} /a/b".
    fn verb(self) -> &'static str {
        match self {
            Op::Stat => "look up",
            Op::Read => "read",
            Op::List => "list",
            Op::Create | Op::CreateAs => "create",
            Op::Overwrite => "overwrite",
            Op::Remove => "remove",
            Op::Replace => "replace",
            Op::Tag => "tag",
            Op::Chmod => "change the mode of",
            Op::Chown => "change the owner of",
            Op::Stage => "stage",
        }
    }

    /// Whether the operation acts on an existing entry (else it creates one).
    fn needs_entry(self) -> bool {
        !matches!(self, Op::Create | Op::CreateAs)
    }
}

/// The nodes along a path, as the catalog's walk found them: the root, then
/// each existing component in order.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub path: NsPath,
    chain: Vec<Node>,
}

impl Resolved {
    pub fn new(path: NsPath, chain: Vec<Node>) -> Resolved {
        Resolved { path, chain }
    }

    fn depth(&self) -> usize {
        self.path.components().count()
    }

    /// The entry at the path, if it exists.
    pub fn node(&self) -> Option<&Node> {
        (self.chain.len() == self.depth() + 1).then(|| self.chain.last().expect("root"))
    }

    /// The entry at the path, if it exists, without a copy.
    pub fn into_node(mut self) -> Option<Node> {
        (self.chain.len() == self.depth() + 1).then(|| self.chain.pop().expect("root"))
    }

    /// The directory that holds (or would hold) the entry, if it exists.
    pub fn parent(&self) -> Option<&Node> {
        let d = self.depth();
        (d > 0 && self.chain.len() >= d)
            .then(|| &self.chain[d - 1])
            .filter(|n| n.is_dir())
    }

    /// The directory whose `write_once=true` tag is in force at the path
    /// (the path's parent or any directory above it), as a path.
    pub fn write_once(&self) -> Option<String> {
        let d = self.depth().min(self.chain.len());
        (0..d)
            .rev()
            .find(|&i| self.chain[i].is_dir() && self.chain[i].tags.write_once == Some(true))
            .map(|i| self.path_at(i))
    }

    /// The path of the `i`-th node of the chain.
    fn path_at(&self, i: usize) -> String {
        let comps: Vec<&str> = self.path.components().take(i).collect();
        format!("/{}", comps.join("/"))
    }
}

/// Whether `who` has all of `bits` on `node`.
pub fn allowed(who: &Principal, node: &Node, bits: u32) -> bool {
    if who.admin {
        return true;
    }
    let shift = if who.user == node.owner {
        6
    } else if who.group == node.group {
        3
    } else {
        0
    };
    (node.mode >> shift) & bits == bits
}

/// Whether `who` may read the entry `node` at `path` (its bits, or a
/// capability token's read scope), the search above it granted.
pub fn may_read(who: &Principal, node: &Node, path: &NsPath) -> bool {
    match &who.caps {
        Some(caps) => caps.grants(Op::Read.scopes(), path),
        None => allowed(who, node, R),
    }
}

fn denied(who: &Principal, what: &str, path: &str, node: &Node) -> Error {
    Error::Forbidden(format!(
        "permission denied: user {} may not {what} {path} (owner {}, group {}, mode {:04o})",
        who.user, node.owner, node.group, node.mode
    ))
}

fn require(who: &Principal, node: &Node, bits: u32, what: &str, path: &str) -> Result<()> {
    if allowed(who, node, bits) {
        Ok(())
    } else {
        Err(denied(who, what, path, node))
    }
}

fn require_owner(who: &Principal, node: &Node, what: &str, path: &str) -> Result<()> {
    if who.admin || who.user == node.owner {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "permission denied: user {} may not {what} {path}, which belongs to {}",
            who.user, node.owner
        )))
    }
}

/// The one permission check: may `who` do `op` on the resolved path?
/// Also turns a missing entry or parent into the right error, after the
/// search check (so a hidden path's existence is never disclosed).
pub fn check(who: &Principal, op: Op, r: &Resolved) -> Result<()> {
    if let Some(caps) = &who.caps {
        return check_scopes(caps, op, r);
    }
    let path = r.path.as_str();
    let depth = r.depth();
    // Search on every directory above the entry, top down: the first one
    // refused is named (its own parent was searchable, so it is visible).
    for (i, n) in r.chain.iter().enumerate().take(depth) {
        if !n.is_dir() {
            let at = r.path_at(i);
            return Err(if op.needs_entry() {
                Error::NotFound(format!("{path} does not exist: {at} is a file"))
            } else {
                Error::Conflict(format!("{at} is not a directory"))
            });
        }
        require(who, n, X, "search", &r.path_at(i))?;
    }
    if op == Op::Chown && !who.admin {
        return Err(Error::Forbidden(
            "only an administrator may change the owner or group".into(),
        ));
    }
    if op == Op::CreateAs && !who.admin {
        return Err(Error::Forbidden(
            "only an administrator may create directories for another owner".into(),
        ));
    }
    if matches!(op, Op::Create | Op::CreateAs) {
        let parent_path = r.path.parent().unwrap_or_else(NsPath::root);
        let parent = r
            .parent()
            .ok_or_else(|| Error::Conflict(format!("parent directory {parent_path} does not exist")))?;
        return require(who, parent, W | X, "create entries in", parent_path.as_str());
    }
    let node = r
        .node()
        .ok_or_else(|| Error::NotFound(format!("{path} does not exist")))?;
    match op {
        Op::Stat | Op::Chown => Ok(()),
        Op::Read | Op::Stage => require(who, node, R, op.verb(), path),
        Op::List if node.is_dir() => require(who, node, R | X, op.verb(), path),
        Op::List => Ok(()),
        Op::Overwrite => require(who, node, W, op.verb(), path),
        Op::Remove | Op::Replace => {
            let parent_path = r.path.parent().unwrap_or_else(NsPath::root);
            let parent = r.parent().expect("an entry's parent exists");
            require(who, parent, W | X, "remove entries from", parent_path.as_str())?;
            require_owner(who, node, op.verb(), path)
        }
        Op::Tag | Op::Chmod => require_owner(who, node, op.verb(), path),
        Op::Create | Op::CreateAs => unreachable!("handled above"),
    }
}

/// What the mode bits must allow for `op`, in words (the docs' table).
pub fn describe(op: Op) -> &'static str {
    match op {
        Op::Stat => "x on every directory above",
        Op::Read | Op::Stage => "x above; r on the file",
        Op::List => "x above; r and x on the directory",
        Op::Create => "x above; w and x on the parent",
        Op::CreateAs | Op::Chown => "an administrator",
        Op::Overwrite => "x above; w on the file",
        Op::Remove => "x above; w and x on the parent; the entry's owner",
        Op::Replace => "x above; w and x on the parent; the replaced entry's owner",
        Op::Tag | Op::Chmod => "x above; the entry's owner",
    }
}

/// The check of a capability token: a scope that covers the path (for a
/// stat, also a directory on the way to one), then what the namespace
/// itself requires (an entry, a parent).
fn check_scopes(caps: &Capabilities, op: Op, r: &Resolved) -> Result<()> {
    let path = &r.path;
    let kinds = op.scopes();
    let granted = caps.grants(kinds, path) || (op == Op::Stat && caps.leads_to(kinds, path));
    if !granted {
        let Some(first) = kinds.first() else {
            return Err(Error::Forbidden(format!(
                "only an administrator may {} {path}; a WLCG token never may",
                op.verb()
            )));
        };
        let held: Vec<String> = caps.scopes.iter().map(|s| s.to_string()).collect();
        let held = if held.is_empty() {
            "none".to_string()
        } else {
            held.join(" ")
        };
        let (scope, detail) = match path.as_str().strip_prefix(caps.prefix.as_str().trim_end_matches('/')) {
            Some(rel) if crate::auth::scope::covers(&caps.prefix, path) => {
                let rel = if rel.is_empty() { "/" } else { rel };
                let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                let scope = format!("{}:{rel}", first.name());
                let detail = format!(
                    "the token may not {} {path}: that needs {} (its storage scopes: {held})",
                    op.verb(),
                    names
                        .iter()
                        .map(|n| format!("{n}:{rel}"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                );
                (scope, detail)
            }
            // Outside the issuer's prefix no scope of this issuer grants
            // anything: a plain 403, not a scope to ask for.
            _ => {
                return Err(Error::Forbidden(format!(
                    "the token may not {} {path}: its issuer's scopes grant only under {} (its storage scopes: {held})",
                    op.verb(),
                    caps.prefix
                )))
            }
        };
        return Err(Error::InsufficientScope { scope, detail });
    }
    let p = path.as_str();
    for (i, n) in r.chain.iter().enumerate().take(r.depth()) {
        if !n.is_dir() {
            let at = r.path_at(i);
            return Err(if op.needs_entry() {
                Error::NotFound(format!("{p} does not exist: {at} is a file"))
            } else {
                Error::Conflict(format!("{at} is not a directory"))
            });
        }
    }
    if op == Op::Create {
        let parent_path = path.parent().unwrap_or_else(NsPath::root);
        r.parent()
            .ok_or_else(|| Error::Conflict(format!("parent directory {parent_path} does not exist")))?;
        return Ok(());
    }
    r.node().ok_or_else(|| Error::NotFound(format!("{p} does not exist")))?;
    Ok(())
}

/// Whether `who` may see the path at all (search on every directory above
/// it): views that name paths show them only then.
pub fn may_stat(who: &Principal, r: &Resolved) -> bool {
    check(who, Op::Stat, r).is_ok()
}

/// Whether `who` passes every check without the mode bits being read
/// (administrators): views may then skip the walks a check needs.
pub fn sees_everything(who: &Principal) -> bool {
    who.admin
}

/// The owner every node a recursive delete takes must have: the user's own
/// name (sticky-directory semantics, checked by the catalog inside its
/// transaction for the whole subtree); none for administrators.
pub fn owner_bound(who: &Principal) -> Option<&str> {
    // A capability token's modify scope replaces the sticky rule: what
    // the scope covers, it may remove, whoever owns it.
    (!who.admin && who.caps.is_none()).then_some(who.user.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bale_catalog::{NodeKind, Tags};
    use bale_util::Timestamp;

    fn node(id: i64, name: &str, kind: NodeKind, owner: &str, group: &str, mode: u32) -> Node {
        Node {
            id,
            parent: (id > 1).then_some(id - 1),
            name: name.into(),
            kind,
            owner: owner.into(),
            group: group.into(),
            mode,
            size: 0,
            ctime: Timestamp(0),
            mtime: Timestamp(0),
            atime: Timestamp(0),
            file_id: None,
            adler32: None,
            tags: Tags::default(),
            cached: true,
        }
    }

    fn who(user: &str, group: &str, admin: bool) -> Principal {
        Principal::with_token(user, group, admin, "t")
    }

    /// /alice (0755) /alice/priv (0700) /alice/priv/open (0777) /alice/priv/open/f (0666)
    fn chain(upto: usize) -> Resolved {
        let nodes = vec![
            node(1, "", NodeKind::Dir, "admin", "admin", 0o755),
            node(2, "alice", NodeKind::Dir, "alice", "phys", 0o755),
            node(3, "priv", NodeKind::Dir, "alice", "phys", 0o700),
            node(4, "open", NodeKind::Dir, "alice", "phys", 0o777),
            node(5, "f", NodeKind::File, "alice", "phys", 0o666),
        ];
        Resolved::new(
            NsPath::parse("/alice/priv/open/f").unwrap(),
            nodes.into_iter().take(upto).collect(),
        )
    }

    #[test]
    fn search_is_needed_on_every_ancestor() {
        let bob = who("bob", "other", false);
        for op in Op::ALL {
            let e = check(&bob, op, &chain(5)).unwrap_err();
            assert!(
                matches!(&e, Error::Forbidden(m) if m.contains("may not search /alice/priv ")),
                "{op:?}: {e}"
            );
        }
        // The same for a path that does not exist: nothing is disclosed.
        let e = check(&bob, Op::Stat, &chain(4)).unwrap_err();
        assert!(matches!(e, Error::Forbidden(_)), "{e}");
        let alice = who("alice", "phys", false);
        assert!(check(&alice, Op::Read, &chain(5)).is_ok());
        assert!(matches!(check(&alice, Op::Stat, &chain(4)), Err(Error::NotFound(_))));
        assert!(check(&alice, Op::Create, &chain(4)).is_ok());
        assert!(check(&who("root", "root", true), Op::Read, &chain(5)).is_ok());
    }

    #[test]
    fn owner_group_other_bits() {
        let n = node(2, "x", NodeKind::Dir, "alice", "phys", 0o750);
        assert!(allowed(&who("alice", "x", false), &n, W | X));
        assert!(allowed(&who("bob", "phys", false), &n, R | X));
        assert!(!allowed(&who("bob", "phys", false), &n, W));
        assert!(!allowed(&who("eve", "other", false), &n, R));
        assert!(allowed(&who("root", "root", true), &n, R | W | X));
    }
}
