//! The JSON shapes of the API, shared with the CLI.

use bale_catalog::{Node, NodeKind, Tags};
use bale_util::{NsPath, Timestamp};
use serde::{Deserialize, Serialize};

/// A file or directory as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub path: String,
    pub name: String,
    /// "file" or "dir".
    pub kind: String,
    pub size: u64,
    pub owner: String,
    pub group: String,
    /// Permission bits in octal, e.g. "0644".
    pub mode: String,
    /// RFC 3339 UTC times with nanoseconds.
    pub ctime: String,
    pub mtime: String,
    /// Last read of the file's data.
    pub atime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adler32: Option<String>,
    #[serde(default)]
    pub tags: Tags,
}

pub fn rfc3339(t: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(t.0 as i128)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// A time as a person reads it in a table: UTC to the second,
/// "2026-12-07 15:39:07Z".
pub fn utc_seconds(t: Timestamp) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(t.0.div_euclid(1_000_000_000))
        .ok()
        .and_then(|d| d.format(&f).ok())
        .unwrap_or_default()
}

impl Entry {
    pub fn from_node(path: &NsPath, n: &Node) -> Entry {
        Entry {
            path: path.to_string(),
            name: n.name.clone(),
            kind: match n.kind {
                NodeKind::Dir => "dir",
                NodeKind::File => "file",
            }
            .to_string(),
            size: n.size,
            owner: n.owner.clone(),
            group: n.group.clone(),
            mode: format!("{:04o}", n.mode),
            ctime: rfc3339(n.ctime),
            mtime: rfc3339(n.mtime),
            atime: rfc3339(n.atime),
            file_id: n.file_id.map(|f| f.to_string()),
            adler32: n.adler32.map(|a| a.to_string()),
            tags: n.tags.clone(),
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == "dir"
    }
}

/// One page of a listing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListPage {
    pub path: String,
    pub entries: Vec<Entry>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MkdirRequest {
    pub path: String,
    #[serde(default)]
    pub parents: bool,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    /// Octal permission bits, e.g. "0750".
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttrsRequest {
    pub path: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
}

/// Tag changes: a value sets a tag, `null` clears it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsRequest {
    pub path: String,
    pub set: std::collections::BTreeMap<String, Option<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub user: String,
    pub group: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub comment: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenCreated {
    /// The secret: shown once, never stored by the server.
    pub token: String,
    pub id: String,
    pub user: String,
    pub group: String,
    pub admin: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub user: String,
    pub group: String,
    pub admin: bool,
    pub created: String,
    #[serde(default)]
    pub revoked: Option<String>,
    #[serde(default)]
    pub comment: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WhoAmI {
    pub user: String,
    pub group: String,
    pub admin: bool,
    pub token_id: String,
}

/// Parses octal permission bits ("644", "0644", "0o644").
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim_start_matches("0o");
    match u32::from_str_radix(t, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!("invalid mode {s:?}: octal permission bits such as 0755")),
    }
}

/// `GET /api/v1/stat`: the entry and, for files, where it stands on its
/// way to tape.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatEntry {
    #[serde(flatten)]
    pub entry: Entry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ArchiveView {
    /// "cached" (not on its way to tape), "pooled" (waiting in a pool),
    /// "queued" (in an archive job), "failed", "copying" (a copy on tape,
    /// another queued), "archived" or "bad" (every tape copy found bad).
    pub state: String,
    /// The open pool the file waits in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub copies: Vec<CopyView>,
}

/// One tape copy of a file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CopyView {
    pub volume: String,
    /// The tape file's sequence number on the volume (0 is the first).
    pub tape_file: u32,
    pub package: String,
    /// Byte position of the tape file on the volume.
    pub position: u64,
    /// Byte offset of the file's data within the tape file.
    pub offset: u64,
    /// Size and adler32 of the whole tape file.
    pub package_size: u64,
    pub package_adler32: String,
    pub members: u32,
    /// Why a verify found the copy bad; absent for a good copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad: Option<String>,
}

impl ArchiveView {
    pub fn from_status(s: &bale_core::ArchiveStatus) -> ArchiveView {
        ArchiveView {
            state: s.state.to_string(),
            pool: s.pool.clone(),
            job: s.job,
            error: s.error.clone(),
            copies: s
                .copies
                .iter()
                .map(|c| CopyView {
                    volume: c.package.volume.clone(),
                    tape_file: c.package.seq,
                    package: c.package.id.clone(),
                    position: c.package.position,
                    offset: c.offset,
                    package_size: c.package.size,
                    package_adler32: c.package.adler32.to_string(),
                    members: c.package.members,
                    bad: c.package.bad.as_ref().map(|b| b.0.clone()),
                })
                .collect(),
        }
    }
}

/// `POST /api/v1/volumes`: blank volumes to add.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddVolumes {
    pub library: String,
    /// Must be the library's media, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    pub count: u32,
    /// Bytes (an integer: sizes travel as exact byte counts, never as
    /// rounded text); the library's default if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetState {
    pub state: String,
}
