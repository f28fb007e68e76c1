//! Unix-style permission checks for non-admin principals.
//!
//! The rules bale enforces (administrators bypass them):
//! - read a file's data: `r` on the file; list a directory: `r` on it;
//! - create in a directory: `w` and `x` on it;
//! - delete or move an entry: `w` on its directory and owning the entry
//!   (like a sticky directory); a recursive delete needs every entry owned;
//! - set tags or change the mode: own the entry; change owner/group: admin.
//!
//! Stat needs no permission: every file is listed and stat-able.

use crate::auth::Principal;
use crate::{Error, Result};
use bale_catalog::Node;

pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

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

pub fn require(who: &Principal, node: &Node, bits: u32, what: &str, path: &str) -> Result<()> {
    if allowed(who, node, bits) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "permission denied: user {} may not {what} {path} (owner {}, group {}, mode {:04o})",
            who.user, node.owner, node.group, node.mode
        )))
    }
}

pub fn require_owner(who: &Principal, node: &Node, what: &str, path: &str) -> Result<()> {
    if who.admin || who.user == node.owner {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "permission denied: user {} may not {what} {path}, which belongs to {}",
            who.user, node.owner
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bale_catalog::{NodeKind, Tags};
    use bale_util::Timestamp;

    fn node(owner: &str, group: &str, mode: u32) -> Node {
        Node {
            id: 2,
            parent: Some(1),
            name: "x".into(),
            kind: NodeKind::Dir,
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
        }
    }

    fn who(user: &str, group: &str, admin: bool) -> Principal {
        Principal {
            user: user.into(),
            group: group.into(),
            admin,
            token_id: "t".into(),
        }
    }

    #[test]
    fn owner_group_other_bits() {
        let n = node("alice", "phys", 0o750);
        assert!(allowed(&who("alice", "x", false), &n, W | X));
        assert!(allowed(&who("bob", "phys", false), &n, R | X));
        assert!(!allowed(&who("bob", "phys", false), &n, W));
        assert!(!allowed(&who("eve", "other", false), &n, R));
        assert!(allowed(&who("root", "root", true), &n, R | W | X));
        let shared = node("alice", "phys", 0o775);
        assert!(allowed(&who("bob", "phys", false), &shared, W | X));
    }

    #[test]
    fn ownership() {
        let n = node("alice", "phys", 0o777);
        assert!(require_owner(&who("alice", "phys", false), &n, "delete", "/x").is_ok());
        assert!(require_owner(&who("bob", "phys", false), &n, "delete", "/x").is_err());
        assert!(require_owner(&who("admin", "admin", true), &n, "delete", "/x").is_ok());
    }
}
