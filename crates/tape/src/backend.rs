//! Volume backends: where tape files really go.
//!
//! [`VolumeBackend`] is what a drive does to a cartridge: load it (reading
//! its label), locate to a tape file, write a tape file at the head (which
//! discards everything after it, as on tape), read the tape file at the
//! head, flush (the synchronous file mark), unload.
//!
//! [`FsBackend`] implements it on a filesystem, in two flavours with the
//! same layout (`<root>/<label>/LABEL` plus one file per tape file,
//! `<root>/<label>/f00000000.tar`, `f00000001.tar`, ...):
//! - **emulated**: volumes are directories bale creates under the library
//!   directory; the timing model charges modelled seconds;
//! - **directory**: each volume is an existing directory (an LTFS-mounted
//!   cartridge); bale writes the same layout there and its timing is real.

use bale_util::durable::{create_dir_all_durable, fsync_dir, write_file_durable};
use bale_util::Timestamp;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The filesystem under an emulated or directory library is full (not
/// the tape: "end of tape" is `StorageFull` from the volume itself). Work
/// pauses and retries; no volume or drive is blamed.
#[derive(Debug, thiserror::Error)]
#[error("no space left on the library's filesystem: {0}")]
pub struct HostFull(pub String);

/// Whether `e` is a full filesystem: the host's under a library
/// ([`HostFull`]) or a local one (ENOSPC, EDQUOT), e.g. the cache a stage
/// writes into.
pub fn is_host_full(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<HostFull>())
        || matches!(e.raw_os_error(), Some(code) if code == 28 || code == 122)
}

/// Marks a host filesystem's ENOSPC or EDQUOT as [`HostFull`], so that it
/// is not taken for the end of the tape.
fn host(e: io::Error) -> io::Error {
    if matches!(e.raw_os_error(), Some(code) if code == 28 || code == 122) {
        io::Error::other(HostFull(e.to_string()))
    } else {
        e
    }
}

/// The label file at the start of every volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub label: String,
    pub media: String,
    /// Who labelled it: "bale library <name>".
    pub owner: String,
    pub created: Timestamp,
}

pub const LABEL_FILE: &str = "LABEL";

/// A drive's view of a volume backend.
pub trait VolumeBackend: Send + Sync {
    /// "emulated" or "directory".
    fn kind(&self) -> &'static str;

    /// True when operations take real time (real media): the timing model
    /// then charges measured seconds instead of modelled ones.
    fn real_timing(&self) -> bool;

    /// Writes the label of a new, blank volume.
    fn format(&self, label: &Label) -> io::Result<()>;

    /// Loads a volume: reads its label and leaves the head at the start.
    /// `capacity` is the byte limit the volume enforces.
    fn load(&self, label: &str, capacity: u64) -> io::Result<Box<dyn Mounted>>;

    /// Tape files present on a volume (for reconciling with the catalog).
    fn end_of_data(&self, label: &str) -> io::Result<u32>;

    /// Discards tape files from `seq` on: what the next write at `seq`
    /// would do anyway, done eagerly at start so that the media matches
    /// the catalog.
    fn truncate(&self, label: &str, seq: u32) -> io::Result<u32>;

    /// The labels of every volume the library holds, by label (what a
    /// catalog rebuilt from tape starts from).
    fn labels(&self) -> io::Result<Vec<Label>>;
}

/// A loaded volume.
pub trait Mounted: Send + Sync {
    fn label(&self) -> &Label;

    /// The tape file the head is at.
    fn position(&self) -> u32;

    /// Moves the head to the start of tape file `seq` (at most end of data).
    fn locate(&mut self, seq: u32) -> io::Result<()>;

    /// Writes a new tape file at the head, discarding every tape file from
    /// there on. `fill` writes the data and returns; the head then stands
    /// after the new tape file. Writing past the capacity fails with
    /// [`io::ErrorKind::StorageFull`] ("end of tape").
    fn write_file(&mut self, fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<u64>;

    /// Reads the tape file at the head into `sink`; the head then stands
    /// after it. Returns the bytes read.
    fn read_file(&mut self, sink: &mut dyn FnMut(&mut dyn Read) -> io::Result<()>) -> io::Result<u64>;

    /// Makes every tape file written so far durable (the synchronous file
    /// mark): fsync of the files and of the volume's directory.
    fn flush(&mut self) -> io::Result<()>;

    /// Rewinds and ejects. Unflushed tape files are not made durable.
    fn unload(self: Box<Self>) -> io::Result<()>;
}

/// Volumes as directories of tape files.
pub struct FsBackend {
    root: PathBuf,
    emulated: bool,
}

impl FsBackend {
    /// The emulated backend: volumes are created under `root`.
    pub fn emulated(root: &Path) -> io::Result<FsBackend> {
        create_dir_all_durable(root)?;
        Ok(FsBackend {
            root: root.to_path_buf(),
            emulated: true,
        })
    }

    /// The directory backend: `root/<label>` must exist for each volume
    /// (an LTFS mount point, or a symlink to one).
    pub fn directory(root: &Path) -> io::Result<FsBackend> {
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("library directory {} does not exist", root.display()),
            ));
        }
        Ok(FsBackend {
            root: root.to_path_buf(),
            emulated: false,
        })
    }

    fn dir(&self, label: &str) -> PathBuf {
        self.root.join(label)
    }
}

fn file_name(seq: u32) -> String {
    format!("f{seq:08}.tar")
}

/// The tape files of a volume directory: their count, checking that they
/// run 0, 1, 2 ... without a gap.
fn tape_files(dir: &Path) -> io::Result<Vec<(u32, u64)>> {
    let mut files = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_prefix('f').and_then(|s| s.strip_suffix(".tar")) {
            if let Ok(seq) = n.parse::<u32>() {
                files.push((seq, e.metadata()?.len()));
            }
        }
    }
    files.sort_unstable();
    if let Some((i, _)) = files.iter().enumerate().find(|(i, f)| f.0 != *i as u32) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: tape file {i} is missing but later ones exist", dir.display()),
        ));
    }
    Ok(files)
}

impl VolumeBackend for FsBackend {
    fn kind(&self) -> &'static str {
        if self.emulated {
            "emulated"
        } else {
            "directory"
        }
    }

    fn real_timing(&self) -> bool {
        !self.emulated
    }

    fn format(&self, label: &Label) -> io::Result<()> {
        let dir = self.dir(&label.label);
        if self.emulated {
            create_dir_all_durable(&dir)?;
        } else if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "volume directory {} does not exist (mount the cartridge there)",
                    dir.display()
                ),
            ));
        }
        if !tape_files(&dir)?.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already holds tape files; it is not blank", dir.display()),
            ));
        }
        let json = serde_json::to_vec_pretty(label).map_err(io::Error::other)?;
        write_file_durable(&dir.join(LABEL_FILE), &json, 0o644)
    }

    fn labels(&self) -> io::Result<Vec<Label>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root)? {
            let e = e?;
            let path = e.path().join(LABEL_FILE);
            let text = match fs::read(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let l: Label = serde_json::from_slice(&text).map_err(|err| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the label at {} is damaged: {err}", path.display()),
                )
            })?;
            out.push(l);
        }
        out.sort_by(|a, b| a.label.cmp(&b.label));
        Ok(out)
    }

    fn load(&self, label: &str, capacity: u64) -> io::Result<Box<dyn Mounted>> {
        let dir = self.dir(label);
        let text = fs::read(dir.join(LABEL_FILE)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read the label of volume {label} at {}: {e}", dir.display()),
            )
        })?;
        let found: Label = serde_json::from_slice(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("label of {label} is damaged: {e}")))?;
        if found.label != label {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("volume {label} carries the label {:?}", found.label),
            ));
        }
        let sizes = tape_files(&dir)?.into_iter().map(|f| f.1).collect();
        Ok(Box::new(FsVolume {
            dir,
            label: found,
            capacity,
            head: 0,
            sizes,
            unsynced: Vec::new(),
        }))
    }

    fn end_of_data(&self, label: &str) -> io::Result<u32> {
        Ok(tape_files(&self.dir(label))?.len() as u32)
    }

    fn truncate(&self, label: &str, seq: u32) -> io::Result<u32> {
        let dir = self.dir(label);
        let files = tape_files(&dir)?;
        let mut removed = 0;
        for (s, _) in files.iter().rev().filter(|f| f.0 >= seq) {
            fs::remove_file(dir.join(file_name(*s)))?;
            removed += 1;
        }
        if removed > 0 {
            fsync_dir(&dir)?;
        }
        Ok(removed)
    }
}

struct FsVolume {
    dir: PathBuf,
    label: Label,
    capacity: u64,
    head: u32,
    /// Sizes of the tape files present, by sequence number.
    sizes: Vec<u64>,
    /// Tape files written since the last flush.
    unsynced: Vec<u32>,
}

/// Counts bytes against the capacity left: past it, "end of tape".
struct Bounded<'a> {
    inner: &'a mut File,
    left: u64,
    written: u64,
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "end of tape: the volume is full",
            ));
        }
        let n = self.inner.write(buf).map_err(host)?;
        self.left -= n as u64;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Mounted for FsVolume {
    fn label(&self) -> &Label {
        &self.label
    }

    fn position(&self) -> u32 {
        self.head
    }

    fn locate(&mut self, seq: u32) -> io::Result<()> {
        if seq as usize > self.sizes.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "volume {} has {} tape files; cannot locate to {seq}",
                    self.label.label,
                    self.sizes.len()
                ),
            ));
        }
        self.head = seq;
        Ok(())
    }

    fn write_file(&mut self, fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<u64> {
        let seq = self.head;
        // Tape semantics: writing here ends the tape here.
        for s in (seq as usize..self.sizes.len()).rev() {
            fs::remove_file(self.dir.join(file_name(s as u32)))?;
        }
        self.sizes.truncate(seq as usize);
        self.unsynced.retain(|&s| s < seq);
        let used: u64 = self.sizes.iter().sum();
        let mut f = File::create(self.dir.join(file_name(seq))).map_err(host)?;
        // The file exists from here on, complete or not, as on tape.
        self.sizes.push(0);
        self.unsynced.push(seq);
        let mut out = Bounded {
            inner: &mut f,
            left: self.capacity.saturating_sub(used),
            written: 0,
        };
        let r = fill(&mut out);
        let written = out.written;
        self.sizes[seq as usize] = written;
        self.head = seq + 1;
        r.map(|()| written)
    }

    fn read_file(&mut self, sink: &mut dyn FnMut(&mut dyn Read) -> io::Result<()>) -> io::Result<u64> {
        let seq = self.head;
        if seq as usize >= self.sizes.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("volume {}: no tape file {seq} (end of data)", self.label.label),
            ));
        }
        // Read in large blocks, as a drive streams: the package reader
        // asks for 512-byte headers and member data in small pieces.
        let f = std::io::BufReader::with_capacity(1 << 20, File::open(self.dir.join(file_name(seq)))?);
        let mut counted = CountingReader { inner: f, read: 0 };
        sink(&mut counted)?;
        self.head = seq + 1;
        Ok(counted.read)
    }

    fn unload(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        for s in std::mem::take(&mut self.unsynced) {
            File::open(self.dir.join(file_name(s)))?.sync_all().map_err(host)?;
        }
        fsync_dir(&self.dir).map_err(host)
    }
}

struct CountingReader<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(l: &str) -> Label {
        Label {
            label: l.into(),
            media: "LTO-9".into(),
            owner: "bale library test".into(),
            created: Timestamp(0),
        }
    }

    fn write(v: &mut dyn Mounted, data: &[u8]) -> io::Result<u64> {
        v.write_file(&mut |w| w.write_all(data))
    }

    fn read(v: &mut dyn Mounted) -> Vec<u8> {
        let mut out = Vec::new();
        v.read_file(&mut |r| r.read_to_end(&mut out).map(|_| ())).unwrap();
        out
    }

    #[test]
    fn tape_semantics_on_the_emulated_backend() {
        let dir = tempfile::tempdir().unwrap();
        let b = FsBackend::emulated(dir.path()).unwrap();
        b.format(&label("VL0001")).unwrap();
        let mut v = b.load("VL0001", 100).unwrap();
        assert_eq!(v.label().media, "LTO-9");
        assert_eq!(write(&mut *v, b"aaaa").unwrap(), 4);
        assert_eq!(write(&mut *v, b"bbbb").unwrap(), 4);
        assert_eq!(write(&mut *v, b"cccc").unwrap(), 4);
        v.flush().unwrap();
        assert_eq!(b.end_of_data("VL0001").unwrap(), 3);
        v.locate(1).unwrap();
        assert_eq!(read(&mut *v), b"bbbb");
        assert_eq!(v.position(), 2);
        // Writing at tape file 1 discards 1 and 2.
        v.locate(1).unwrap();
        write(&mut *v, b"dd").unwrap();
        assert_eq!(b.end_of_data("VL0001").unwrap(), 2);
        v.locate(1).unwrap();
        assert_eq!(read(&mut *v), b"dd");
        assert!(v.read_file(&mut |_| Ok(())).is_err(), "nothing after end of data");
        assert!(v.locate(5).is_err());
        // Capacity is enforced: 6 bytes used of 100.
        let e = write(&mut *v, &[0u8; 95]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        // A relabel of a volume with data is refused; the label must match.
        assert!(b.format(&label("VL0001")).is_err());
        assert!(b.load("VL0002", 100).is_err());
        assert_eq!(b.truncate("VL0001", 1).unwrap(), 2);
        assert_eq!(b.end_of_data("VL0001").unwrap(), 1);
    }

    #[test]
    fn the_directory_backend_needs_existing_volume_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(FsBackend::directory(&dir.path().join("nope")).is_err());
        let b = FsBackend::directory(dir.path()).unwrap();
        assert!(b.format(&label("LT0001")).is_err(), "no mount point yet");
        fs::create_dir(dir.path().join("LT0001")).unwrap();
        b.format(&label("LT0001")).unwrap();
        let mut v = b.load("LT0001", 1 << 20).unwrap();
        write(&mut *v, b"x").unwrap();
        assert!(b.real_timing());
        assert_eq!(b.kind(), "directory");
    }
}
