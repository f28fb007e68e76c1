//! bale's package format: the self-describing tape file.
//!
//! Every tape file bale writes is a POSIX tar (ustar headers, with pax
//! extended headers where a path, a name or a size does not fit ustar).
//! Its first member is a JSON [`Manifest`] named
//! `bale-manifest-<package id>.json` that lists every member that follows:
//! file id, namespace path, size, adler32, owner, group, mode, times and the
//! byte offset of its data in the tar. The members follow in manifest order,
//! stored under their namespace paths without the leading `/`, so
//! `tar -tvf` lists a package and `tar -xf` recovers its files under their
//! names. A large file written straight to tape is a package of one.
//!
//! The layout is planned before the first byte is written ([`Plan`]): the
//! exact size is known up front (the tape scheduler checks it against the
//! volume's remaining capacity) and the manifest can carry every member's
//! offset. [`Plan::write`] streams the members, checking each one's size
//! and adler32 on the way, and returns the adler32 of the whole tape file.

use bale_util::checksum::Adler32Hasher;
use bale_util::{Adler32, FileId, Timestamp};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

mod prefetch;
pub use prefetch::{Prefetch, ReadAhead};

/// The manifest's `format` value.
pub const FORMAT: &str = "bale-package-1";
const BLOCK: u64 = 512;
/// ustar's size field holds at most 11 octal digits.
const USTAR_MAX_SIZE: u64 = 0o77777777777;
/// ustar's uname/gname fields hold 31 bytes and a NUL.
const USTAR_MAX_NAME: usize = 31;

/// What the packer knows about a member before writing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberMeta {
    pub file_id: FileId,
    /// The namespace path, absolute (`/exp/run1/f.dat`).
    pub path: String,
    pub size: u64,
    pub adler32: Adler32,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    /// Nanoseconds since the Unix epoch.
    pub ctime: Timestamp,
    /// The data's modification time: the client's, when it gave one.
    pub mtime: Timestamp,
    /// The file's dead properties (WebDAV PROPPATCH) when it was packed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub props: Vec<MemberProp>,
}

/// A dead property of a member: namespace, name, and the property element
/// as XML that declares its namespaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberProp {
    pub ns: String,
    pub name: String,
    pub xml: String,
}

/// One member as the manifest lists it: what the packer knew of it and
/// where its data starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestMember {
    #[serde(flatten)]
    pub meta: MemberMeta,
    /// Byte offset of the member's data from the start of the tape file.
    pub offset: u64,
}

/// The first member of every package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// The package id (a UUID), also in the manifest's own name.
    pub package: String,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created: Timestamp,
    /// The file family the package was written for (packages written
    /// before it was recorded have none): a catalog rebuilt from tape binds
    /// the volume to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<PackageFamily>,
    pub members: Vec<ManifestMember>,
}

/// A package's file family, as its manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFamily {
    pub storage_group: String,
    pub file_family: String,
    pub wrapper: String,
}

impl Manifest {
    /// The tar name of the manifest of package `id`.
    pub fn name_for(id: &str) -> String {
        format!("bale-manifest-{id}.json")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("member {path} is short: {got} of {expected} bytes")]
    Short {
        index: usize,
        path: String,
        expected: u64,
        got: u64,
    },
    #[error("member {path} has adler32 {actual}, the catalog says {expected}")]
    Checksum {
        index: usize,
        path: String,
        expected: Adler32,
        actual: Adler32,
    },
    #[error("not a bale package: {0}")]
    Invalid(String),
}

impl PackError {
    /// The member whose data is at fault (short or wrong checksum).
    pub fn member(&self) -> Option<usize> {
        match self {
            PackError::Short { index, .. } | PackError::Checksum { index, .. } => Some(*index),
            _ => None,
        }
    }
}

/// A package laid out before it is written.
pub struct Plan {
    manifest: Manifest,
    /// The manifest's header(s), its JSON and padding.
    head: Vec<u8>,
    /// Each member's header(s).
    member_heads: Vec<Vec<u8>>,
    size: u64,
}

/// What [`Plan::write`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    pub adler32: Adler32,
}

fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    // "<len> <key>=<value>\n" where len counts the whole record, itself included.
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = len.to_string().len() + body;
    }
    format!("{len} {key}={value}\n").into_bytes()
}

/// The header bytes of one regular file: a pax extended header first when
/// something does not fit ustar.
fn file_header(path: &str, size: u64, mode: u32, mtime: Timestamp, owner: &str, group: &str) -> io::Result<Vec<u8>> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode & 0o7777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime.0.max(0) as u64 / 1_000_000_000);
    let mut pax = Vec::new();
    if h.set_path(path).is_err() {
        pax.extend(pax_record("path", path));
        // A placeholder that fits; readers take the pax path.
        let short: String = path
            .chars()
            .rev()
            .take(90)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let short = short.trim_start_matches('/');
        h.set_path(if short.is_empty() { "long-name" } else { short })
            .or_else(|_| h.set_path("long-name"))?;
    }
    if size > USTAR_MAX_SIZE {
        pax.extend(pax_record("size", &size.to_string()));
    }
    h.set_size(size);
    for (key, value, set) in [("uname", owner, 0), ("gname", group, 1)] {
        if value.len() > USTAR_MAX_NAME {
            pax.extend(pax_record(key, value));
        } else if set == 0 {
            h.set_username(value)?;
        } else {
            h.set_groupname(value)?;
        }
    }
    h.set_cksum();
    let mut out = Vec::with_capacity(BLOCK as usize * 3);
    if !pax.is_empty() {
        let mut x = tar::Header::new_ustar();
        x.set_entry_type(tar::EntryType::XHeader);
        x.set_mode(0o644);
        x.set_size(pax.len() as u64);
        x.set_mtime(mtime.0.max(0) as u64 / 1_000_000_000);
        x.set_path("PaxHeader/member")?;
        x.set_cksum();
        out.extend_from_slice(x.as_bytes());
        let len = pax.len() as u64;
        out.extend(pax);
        out.resize(out.len() + (padded(len) - len) as usize, 0);
    }
    out.extend_from_slice(h.as_bytes());
    Ok(out)
}

fn tar_path(ns_path: &str) -> String {
    ns_path.trim_start_matches('/').to_string()
}

impl Plan {
    /// Lays out package `id` holding `members` in the given order.
    pub fn new(id: &str, created: Timestamp, members: Vec<MemberMeta>) -> Result<Plan, PackError> {
        Plan::new_for(id, created, None, members)
    }

    /// Whether `m` can be a member of a package (a tar entry can carry its
    /// path, owner and group): a job's member that cannot is held back
    /// alone instead of failing its whole package.
    pub fn check_member(m: &MemberMeta) -> Result<(), PackError> {
        let p = tar_path(&m.path);
        if p.is_empty() {
            return Err(PackError::Invalid(format!("member path {:?} names no file", m.path)));
        }
        file_header(&p, m.size, m.mode, m.mtime, &m.owner, &m.group)?;
        Ok(())
    }

    /// [`Plan::new`], the manifest naming the package's file family.
    pub fn new_for(
        id: &str,
        created: Timestamp,
        family: Option<PackageFamily>,
        members: Vec<MemberMeta>,
    ) -> Result<Plan, PackError> {
        if members.is_empty() {
            return Err(PackError::Invalid("a package needs at least one member".into()));
        }
        let mut member_heads = Vec::with_capacity(members.len());
        for m in &members {
            let p = tar_path(&m.path);
            if p.is_empty() {
                return Err(PackError::Invalid(format!("member path {:?} names no file", m.path)));
            }
            member_heads.push(file_header(&p, m.size, m.mode, m.mtime, &m.owner, &m.group)?);
        }
        let mut manifest = Manifest {
            format: FORMAT.into(),
            package: id.to_string(),
            created,
            family,
            members: members
                .into_iter()
                .map(|meta| ManifestMember { meta, offset: 0 })
                .collect(),
        };
        // The offsets depend on the manifest's length, which depends on the
        // offsets' digits: iterate to the fixed point (two or three rounds).
        let name = Manifest::name_for(id);
        let mut head_len = 0u64;
        for _ in 0..16 {
            let mut pos = head_len;
            for (m, h) in manifest.members.iter_mut().zip(&member_heads) {
                m.offset = pos + h.len() as u64;
                pos = m.offset + padded(m.meta.size);
            }
            let json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
            let header = file_header(&name, json.len() as u64, 0o444, created, "bale", "bale")?;
            let len = header.len() as u64 + padded(json.len() as u64);
            if len == head_len {
                let mut head = header;
                head.extend_from_slice(&json);
                head.resize(len as usize, 0);
                let size = pos + 2 * BLOCK;
                return Ok(Plan {
                    manifest,
                    head,
                    member_heads,
                    size,
                });
            }
            head_len = len;
        }
        Err(PackError::Invalid("manifest layout did not settle".into()))
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The exact size of the tape file in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes the package to `out`. `open(i, member)` gives member `i`'s
    /// data; exactly `member.size` bytes are read from it and their adler32
    /// must match the manifest. Returns the size and adler32 of the whole
    /// tape file. `out` is not flushed or synced.
    pub fn write<W, R, F>(&self, out: &mut W, mut open: F) -> Result<Written, PackError>
    where
        W: Write,
        R: Read,
        F: FnMut(usize, &ManifestMember) -> io::Result<R>,
    {
        let mut out = HashingWriter {
            inner: out,
            hash: Adler32Hasher::new(),
            written: 0,
        };
        out.write_all(&self.head)?;
        let mut buf = vec![0u8; 1 << 20];
        for (i, (m, h)) in self.manifest.members.iter().zip(&self.member_heads).enumerate() {
            out.write_all(h)?;
            let mut src = open(i, m)?;
            let mut hash = Adler32Hasher::new();
            let mut left = m.meta.size;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = match src.read(&mut buf[..want]) {
                    Ok(0) => {
                        return Err(PackError::Short {
                            index: i,
                            path: m.meta.path.clone(),
                            expected: m.meta.size,
                            got: m.meta.size - left,
                        })
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                hash.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                left -= n as u64;
            }
            let actual = hash.finish();
            if actual != m.meta.adler32 {
                return Err(PackError::Checksum {
                    index: i,
                    path: m.meta.path.clone(),
                    expected: m.meta.adler32,
                    actual,
                });
            }
            let pad = (padded(m.meta.size) - m.meta.size) as usize;
            out.write_all(&[0u8; BLOCK as usize][..pad])?;
        }
        out.write_all(&[0u8; 2 * BLOCK as usize])?;
        debug_assert_eq!(out.written, self.size);
        Ok(Written {
            size: out.written,
            adler32: out.hash.finish(),
        })
    }
}

struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hash: Adler32Hasher,
    written: u64,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a package: the manifest, then every member, checking each
/// member's path, size and adler32 against the manifest. `each(member,
/// data)` receives every member's data as a reader it must consume (what
/// it leaves unread is read and checked anyway). Returns the manifest.
pub fn read<R, F>(src: R, mut each: F) -> Result<Manifest, PackError>
where
    R: Read,
    F: FnMut(&ManifestMember, &mut dyn Read) -> io::Result<()>,
{
    let mut archive = tar::Archive::new(src);
    let mut entries = archive.entries()?;
    let mut first = entries.next().ok_or_else(|| PackError::Invalid("empty tar".into()))??;
    let name = first.path()?.to_string_lossy().into_owned();
    if !name.starts_with("bale-manifest-") {
        return Err(PackError::Invalid(format!("first member is {name:?}, not a manifest")));
    }
    let mut json = Vec::new();
    first.read_to_end(&mut json)?;
    drop(first);
    let manifest: Manifest =
        serde_json::from_slice(&json).map_err(|e| PackError::Invalid(format!("manifest does not parse: {e}")))?;
    if manifest.format != FORMAT {
        return Err(PackError::Invalid(format!("unknown format {:?}", manifest.format)));
    }
    let mut members = manifest.members.iter().enumerate();
    for entry in entries {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let (i, m) = members
            .next()
            .ok_or_else(|| PackError::Invalid(format!("member {path:?} is not in the manifest")))?;
        if path != tar_path(&m.meta.path) {
            return Err(PackError::Invalid(format!(
                "member {i} is {path:?}, the manifest says {:?}",
                m.meta.path
            )));
        }
        if entry.raw_file_position() != m.offset {
            return Err(PackError::Invalid(format!(
                "member {path:?} starts at byte {}, the manifest says {}",
                entry.raw_file_position(),
                m.offset
            )));
        }
        let mut hashing = HashingReader {
            inner: &mut entry,
            hash: Adler32Hasher::new(),
            read: 0,
        };
        each(m, &mut hashing)?;
        io::copy(&mut hashing, &mut io::sink())?;
        let (got, actual) = (hashing.read, hashing.hash.finish());
        if got != m.meta.size {
            return Err(PackError::Short {
                index: i,
                path: m.meta.path.clone(),
                expected: m.meta.size,
                got,
            });
        }
        if actual != m.meta.adler32 {
            return Err(PackError::Checksum {
                index: i,
                path: m.meta.path.clone(),
                expected: m.meta.adler32,
                actual,
            });
        }
    }
    if let Some((_, m)) = members.next() {
        return Err(PackError::Invalid(format!("member {:?} is missing", m.meta.path)));
    }
    Ok(manifest)
}

struct HashingReader<'a, R: Read> {
    inner: &'a mut R,
    hash: Adler32Hasher,
    read: u64,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
