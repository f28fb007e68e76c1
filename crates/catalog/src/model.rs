//! The catalog's records.

pub use bale_util::FileId;
use bale_util::{Adler32, Timestamp};
use serde::{Deserialize, Serialize};

/// A namespace node's id (an inode number). The root is [`ROOT_ID`].
pub type NodeId = i64;
pub const ROOT_ID: NodeId = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Dir,
    File,
}

impl NodeKind {
    /// Decodes the catalog's `kind` column (1 directory, 2 file).
    pub(crate) fn from_code(c: i32) -> NodeKind {
        if c == 1 {
            NodeKind::Dir
        } else {
            NodeKind::File
        }
    }
}

/// The directory tags. On a directory: its own tags, copied to directories
/// created beneath it. On a file: the tags in force when it was created.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tags {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_family_width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapper: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// Files below the directory are immutable once written: in force
    /// when the directory or any above it says `true` (not copied to new
    /// directories, and never a file's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_once: Option<bool>,
}

/// The tag names bale knows, in display order.
pub const TAG_NAMES: [&str; 6] = [
    "storage_group",
    "file_family",
    "file_family_width",
    "wrapper",
    "library",
    "write_once",
];

/// Longest accepted tag value, in bytes.
pub const MAX_TAG_LEN: usize = 255;

impl Tags {
    /// Sets (`Some`) or clears (`None`) one tag by name, validating the value.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), String> {
        if let Some(v) = value {
            if v.is_empty() || v.len() > MAX_TAG_LEN || v.chars().any(|c| c.is_control() || c == '/') {
                return Err(format!(
                    "invalid value {v:?} for tag {key}: 1 to {MAX_TAG_LEN} bytes, no '/' or control characters"
                ));
            }
        }
        let text = value.map(str::to_string);
        match key {
            "storage_group" => self.storage_group = text,
            "file_family" => self.file_family = text,
            "wrapper" => self.wrapper = text,
            "library" => self.library = text,
            "write_once" => {
                self.write_once = match value {
                    None => None,
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    Some(v) => return Err(format!("write_once must be true or false, not {v:?}")),
                }
            }
            "file_family_width" => {
                self.file_family_width = match value {
                    None => None,
                    Some(v) => match v.parse::<u32>() {
                        Ok(n) if (1..=1000).contains(&n) => Some(n),
                        _ => {
                            return Err(format!(
                                "file_family_width must be a whole number from 1 to 1000, not {v:?}"
                            ))
                        }
                    },
                }
            }
            other => {
                return Err(format!(
                    "unknown tag {other:?}; known tags are {}",
                    TAG_NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// One tag's value as text.
    pub fn get(&self, key: &str) -> Option<String> {
        match key {
            "storage_group" => self.storage_group.clone(),
            "file_family" => self.file_family.clone(),
            "file_family_width" => self.file_family_width.map(|w| w.to_string()),
            "wrapper" => self.wrapper.clone(),
            "library" => self.library.clone(),
            "write_once" => self.write_once.map(|w| w.to_string()),
            _ => None,
        }
    }
}

/// One entry of the namespace: a directory or a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    pub id: NodeId,
    /// The parent directory; `None` only for the root.
    pub parent: Option<NodeId>,
    /// The entry's name in its parent; empty for the root.
    pub name: String,
    pub kind: NodeKind,
    pub owner: String,
    pub group: String,
    /// Unix permission bits (0o7777 at most).
    pub mode: u32,
    /// Bytes of file content; 0 for directories.
    pub size: u64,
    pub ctime: Timestamp,
    pub mtime: Timestamp,
    /// Last time any byte of the file's data was read (not stat, not listing).
    pub atime: Timestamp,
    pub file_id: Option<FileId>,
    pub adler32: Option<Adler32>,
    pub tags: Tags,
    /// A file's data is in the cache (always, until it is on tape and
    /// purged; staging brings it back). True for directories.
    pub cached: bool,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        self.kind == NodeKind::Dir
    }
}

/// A directory to create.
#[derive(Clone, Debug)]
pub struct NewDir {
    pub parent: NodeId,
    pub name: String,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    pub time: Timestamp,
}

/// A file whose data is durable in the cache, to be recorded.
#[derive(Clone, Debug)]
pub struct NewFile {
    pub parent: NodeId,
    pub name: String,
    pub file_id: FileId,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    pub size: u64,
    pub adler32: Adler32,
    pub time: Timestamp,
    /// The modification time the client gave (its local file's), else `time`.
    pub mtime: Option<Timestamp>,
    /// What may be in the way: an existing file of the same name is
    /// replaced as this says (a directory never is).
    pub replace: Replace,
    /// How the file goes to tape: its own archive job or a pool to join,
    /// either recorded in the same transaction as the file's row.
    pub archive: Option<crate::ArchiveRoute>,
    /// The file's data itself, kept with its landing note (small files):
    /// the transaction that records the file then makes its data durable
    /// too, and the cache copy may reach stable storage later. Recovery
    /// rewrites the cache copy from it; settling the note drops it.
    pub inline: Option<bytes::Bytes>,
}

/// Whether a commit replaces an existing file of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// Never: the name must be free.
    No,
    /// Whatever file holds the name.
    Any,
    /// Only this one: the file the writer checked (permissions, write-once
    /// areas, `If-Match`); another one in its place is
    /// [`crate::CatalogError::Changed`], and nothing is written.
    File(FileId),
}

/// A file noted as landing on a cache node: its namespace node (`None` if
/// removed since) and the data kept with the note, if any.
#[derive(Clone, Debug)]
pub struct LandingFile {
    pub id: FileId,
    pub node: Option<Node>,
    pub inline: Option<Vec<u8>>,
}

/// What a change committed: the node as it now is and the file nodes it
/// replaced (whose cached data the caller removes).
#[derive(Clone, Debug)]
pub struct Committed {
    pub node: Node,
    pub replaced: Vec<Node>,
    /// The archive job created for the file, if it asked for one.
    pub job: Option<i64>,
}

/// A change of ownership or permissions; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct AttrChange {
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<u32>,
    /// The modification time (a client's, e.g. PROPPATCH of getlastmodified).
    pub mtime: Option<Timestamp>,
}

/// A dead property (RFC 4918): a client's name and value kept with a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadProp {
    /// The namespace URI; empty for a property in no namespace.
    pub ns: String,
    pub name: String,
    /// The whole property element as XML that declares every namespace it
    /// uses, so that it is returned as it was set.
    pub xml: String,
}

/// One change of a PROPPATCH; a patch is applied in order, all or nothing.
#[derive(Clone, Debug)]
pub enum PropChange {
    Set(DeadProp),
    Remove { ns: String, name: String },
}

/// A storage group's quota; `None` (and a library not named) is no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub storage_group: String,
    /// Logical bytes of its files in the namespace (one count whatever the
    /// number of tape copies).
    pub bytes: Option<u64>,
    pub files: Option<u64>,
    /// Volumes it may take per library.
    #[serde(default)]
    pub volumes: std::collections::BTreeMap<String, u32>,
}

impl Quota {
    pub fn is_empty(&self) -> bool {
        self.bytes.is_none() && self.files.is_none() && self.volumes.is_empty()
    }
}

/// What a storage group holds in the namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupUsage {
    pub storage_group: String,
    pub files: u64,
    pub bytes: u64,
}

/// The storage group files with these tags count against.
pub fn group_of(tags: &Tags) -> &str {
    tags.storage_group.as_deref().unwrap_or("default")
}

/// Most dead properties one node keeps.
pub const MAX_DEAD_PROPS: usize = 1000;

/// Most bytes of XML one node's dead properties hold together.
pub const MAX_DEAD_PROP_BYTES: usize = 64 * 1024;

/// A token to store. The secret itself is never stored, only its hash.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub id: String,
    pub hash: String,
    pub user: String,
    pub group: String,
    pub admin: bool,
    pub created: Timestamp,
    pub comment: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub group: String,
    pub admin: bool,
    pub created: Timestamp,
    pub revoked: Option<Timestamp>,
    pub comment: String,
}

/// An entry loaded in bulk by [`crate::Catalog::import_nodes`]: recorded
/// exactly as given (its own tags and times, nothing inherited), with no
/// landing note, pool or job. What a catalog rebuilt from elsewhere needs
/// (the catalog benchmark loads ten million files this way). A file
/// imported as not `cached` must get its tape copy recorded by the caller.
#[derive(Clone, Debug)]
pub struct ImportNode {
    pub parent: ImportParent,
    pub name: String,
    pub kind: NodeKind,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    pub size: u64,
    pub ctime: Timestamp,
    pub mtime: Timestamp,
    pub atime: Timestamp,
    /// A file's id and checksum (both required for a file, none for a
    /// directory).
    pub file_id: Option<FileId>,
    pub adler32: Option<Adler32>,
    pub tags: Tags,
    pub cached: bool,
}

/// The directory an imported entry goes into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportParent {
    /// A directory already in the catalog.
    Node(NodeId),
    /// An earlier directory of the same import, by its index.
    Entry(usize),
}
