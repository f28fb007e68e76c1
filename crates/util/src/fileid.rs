//! The stable id of a file's content.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The stable id of a file's content (Enstore's bfid). A UUIDv7: unique
/// across nodes, time-ordered for index locality, unchanged by renames.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FileId(pub uuid::Uuid);

impl FileId {
    pub fn generate() -> FileId {
        FileId(uuid::Uuid::now_v7())
    }
    pub fn parse(s: &str) -> Option<FileId> {
        uuid::Uuid::parse_str(s).ok().map(FileId)
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileId({self})")
    }
}
