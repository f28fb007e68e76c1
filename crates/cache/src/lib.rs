//! The disk cache: where file data lives on this node.
//!
//! Layout under the cache root:
//! - `tmp/<file-id>`: data being received, or received and waiting for its
//!   catalog row. Nothing here is visible in the namespace until promoted.
//! - `files/<xx>/<file-id>`: committed data, fanned out over 256
//!   directories by the last two hex digits of the file id (random bits).
//!
//! Data reaches stable storage through [`Cache::sync_batch`], once per group
//! of files, at the same time as their catalog rows are committed; see
//! `bale-core`'s committer for the whole recipe. Small files may instead be
//! *inline* ([`Cache::with_inline`]): their data travels in the catalog
//! transaction itself, and their cache copies become durable later, many
//! at once ([`Cache::promote_landed`], [`Cache::sync_landed`]). After a
//! crash, [`Cache::pending`] lists what was in flight so that the caller
//! can finish or discard it.

mod ingest;

pub use ingest::{IngestError, InlineShare, StagedFile, GATHER_LIMIT as INLINE_MAX};

use bale_util::durable::{create_dir_all_durable, fsync_dir, syncfs, write_file_durable};
use bale_util::FileId;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How a batch of received files is made durable.
///
/// `fsync`: each file is fsynced by its writer (in parallel), and the batch
/// fsyncs the directory once. `syncfs`: nothing per file; the batch calls
/// syncfs(2) once for the whole filesystem, cheapest on a filesystem
/// dedicated to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncMode {
    #[default]
    Fsync,
    Syncfs,
}

/// Most threads that fsync a settler round's files, and the fewest files
/// worth a thread of their own.
const SYNC_THREADS: usize = 8;
const SYNC_PER_THREAD: usize = 32;

/// Handle on the cache directory. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cache {
    tmp: PathBuf,
    files: PathBuf,
    /// Members read back from tape, until their package is verified.
    stage: PathBuf,
    sync: SyncMode,
    inline: Inline,
}

/// Which files are received *inline*: bodies of at most `max` bytes, while
/// the inline files whose cache copies are not yet durable hold at most
/// `pending_max` bytes together (past that, small files take the ordinary
/// path until the settler catches up).
#[derive(Clone, Debug, Default)]
struct Inline {
    max: u64,
    pending_max: u64,
    pending: Arc<AtomicU64>,
}

impl Inline {
    /// Takes `size` bytes of the budget, if the file qualifies and they fit.
    fn reserve(&self, size: u64) -> Option<InlineShare> {
        if size > self.max {
            return None;
        }
        let before = self.pending.fetch_add(size, Ordering::AcqRel);
        if before + size > self.pending_max {
            self.pending.fetch_sub(size, Ordering::AcqRel);
            return None;
        }
        Some(InlineShare::new(self.pending.clone(), size))
    }
}

impl Cache {
    /// Opens the cache at `root`, creating its areas if needed.
    pub fn open(root: &Path, sync: SyncMode) -> io::Result<Cache> {
        let tmp = root.join("tmp");
        let files = root.join("files");
        let stage = root.join("stage");
        create_dir_all_durable(&tmp)?;
        create_dir_all_durable(&files)?;
        create_dir_all_durable(&stage)?;
        let mut created = false;
        for i in 0..=255u8 {
            let d = files.join(format!("{i:02x}"));
            if !d.is_dir() {
                std::fs::create_dir(&d)?;
                created = true;
            }
        }
        if created {
            fsync_dir(&files)?;
        }
        Ok(Cache {
            tmp,
            files,
            stage,
            sync,
            inline: Inline::default(),
        })
    }

    /// Receives bodies of at most `max` bytes inline (see the module
    /// documentation), as long as the inline files not yet settled hold at
    /// most `pending_max` bytes. `max` 0 turns inline files off.
    pub fn with_inline(mut self, max: u64, pending_max: u64) -> Cache {
        self.inline = Inline {
            max: if pending_max == 0 {
                0
            } else {
                max.min(INLINE_MAX as u64)
            },
            pending_max,
            pending: Arc::new(AtomicU64::new(0)),
        };
        self
    }

    /// Bytes of inline files whose cache copies are not yet settled.
    pub fn inline_pending(&self) -> u64 {
        self.inline.pending.load(Ordering::Acquire)
    }

    /// The cache filesystem's bytes an unprivileged writer may still use
    /// (statvfs `f_bavail`) and its size.
    pub fn space(&self) -> io::Result<(u64, u64)> {
        let s = rustix::fs::statvfs(&self.tmp).map_err(io::Error::from)?;
        Ok((
            s.f_bavail.saturating_mul(s.f_frsize),
            s.f_blocks.saturating_mul(s.f_frsize),
        ))
    }

    /// Whether the cache takes writes: a probe file created, written and
    /// removed in `tmp/`. Blocking.
    pub fn writable(&self) -> io::Result<()> {
        let p = self.tmp.join(format!(".ready-probe-{}", std::process::id()));
        std::fs::write(&p, b"ready")?;
        std::fs::remove_file(&p)
    }

    pub fn tmp_path(&self, id: FileId) -> PathBuf {
        self.tmp.join(id.to_string())
    }

    /// Where a member read back from tape is written until its package has
    /// been verified whole (never read from there).
    pub fn stage_path(&self, id: FileId) -> PathBuf {
        self.stage.join(id.to_string())
    }

    /// Writes a member read back from tape into the stage area; returns
    /// the bytes written. Blocking.
    pub fn write_staged(&self, id: FileId, data: &mut dyn std::io::Read) -> io::Result<u64> {
        // Made durable all at once by `promote_staged` (one syncfs for a
        // whole package, as `tar -xf && sync` does), not one fsync each.
        let mut f = std::fs::File::create(self.stage_path(id))?;
        copy_large(data, &mut f)
    }

    /// Makes verified members durable (one syncfs of the cache's
    /// filesystem), then moves them from the stage area to their place
    /// under `files/` (replacing any stale copy) and makes the moves
    /// durable. Until the catalog marks them cached nobody reads them.
    /// Blocking.
    pub fn promote_staged(&self, ids: &[FileId]) -> io::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        syncfs(&self.stage)?;
        let mut dirs = std::collections::BTreeSet::new();
        for &id in ids {
            let dest = self.file_path(id);
            std::fs::rename(self.stage_path(id), &dest)?;
            dirs.insert(dest.parent().expect("fan-out directory").to_path_buf());
        }
        for d in &dirs {
            fsync_dir(d)?;
        }
        fsync_dir(&self.stage)
    }

    /// Removes members of the stage area (a failed or abandoned stage).
    pub fn discard_staged(&self, ids: &[FileId]) -> io::Result<()> {
        for &id in ids {
            remove_if_exists(&self.stage_path(id))?;
        }
        Ok(())
    }

    /// Empties the stage area (at start: what a crash interrupted is staged
    /// again). Returns how many files it held. Blocking.
    pub fn clear_stage(&self) -> io::Result<usize> {
        let mut n = 0;
        for e in std::fs::read_dir(&self.stage)? {
            let e = e?;
            std::fs::remove_file(e.path())?;
            n += 1;
        }
        if n > 0 {
            fsync_dir(&self.stage)?;
        }
        Ok(n)
    }

    pub fn file_path(&self, id: FileId) -> PathBuf {
        let s = id.0.simple().to_string();
        self.files.join(&s[s.len() - 2..]).join(id.to_string())
    }

    /// Makes every file staged since the last call durable: data, size and
    /// directory entry. Blocking; call from a blocking context.
    pub fn sync_batch(&self) -> io::Result<()> {
        match self.sync {
            SyncMode::Fsync => fsync_dir(&self.tmp),
            SyncMode::Syncfs => syncfs(&self.tmp),
        }
    }

    /// Moves committed files from `tmp/` to their place under `files/`, in an
    /// order that keeps every file reachable through a durable name at every
    /// instant, on any filesystem (journaled or not): hard-link into
    /// `files/xx/`, fsync the directories linked into, then unlink from
    /// `tmp/`. A crash at any point leaves the file in `files/`, in `tmp/`
    /// or in both; [`Cache::pending`] and recovery sort that out. Blocking.
    pub fn promote(&self, ids: &[FileId]) -> io::Result<()> {
        let mut dirs = std::collections::BTreeSet::new();
        for &id in ids {
            let dest = self.file_path(id);
            match std::fs::hard_link(self.tmp_path(id), &dest) {
                Ok(()) => {}
                // Linked before a crash, or promoted twice: the data is there.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                // Deleted between its commit and now: nothing to promote,
                // and the rest of the batch goes on.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            dirs.insert(dest.parent().expect("fan-out directory").to_path_buf());
        }
        for d in &dirs {
            fsync_dir(d)?;
        }
        for &id in ids {
            remove_if_exists(&self.tmp_path(id))?;
        }
        Ok(())
    }

    /// Moves committed *inline* files from `tmp/` to `files/` by rename,
    /// without syncing anything: their data is durable in the catalog, and
    /// [`Cache::sync_landed`] makes these copies durable later. A crash
    /// before that leaves each in `tmp/`, in `files/`, or lost, and recovery
    /// rewrites the lost ones from the catalog. Blocking.
    pub fn promote_landed(&self, ids: &[FileId]) -> io::Result<()> {
        for &id in ids {
            match std::fs::rename(self.tmp_path(id), self.file_path(id)) {
                Ok(()) => {}
                // Removed meanwhile (deleted before promotion): nothing to move.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Makes the landed files `ids` (written, renamed or promoted before
    /// this call) durable. In `syncfs` mode with one syncfs(2) of the
    /// cache's filesystem: the one way to make thousands of small files
    /// durable with a single flush. In `fsync` mode (the default) each file
    /// and each directory it was renamed into is synced: syncfs(2) does not
    /// reach every filesystem (FUSE ones ignore it). After it, the catalog
    /// may drop the inline copies of these files. Blocking.
    pub fn sync_landed(&self, ids: &[FileId]) -> io::Result<()> {
        match self.sync {
            SyncMode::Syncfs => syncfs(&self.files),
            SyncMode::Fsync => {
                // The files' fsyncs run on several threads at once: one
                // after the other, a round of a few thousand files took
                // seconds on a disk of millisecond flushes, and the settler
                // fell behind the writes it follows (issue 21).
                let sync_one = |id: FileId| -> io::Result<Option<PathBuf>> {
                    let path = self.file_path(id);
                    match std::fs::File::open(&path) {
                        Ok(f) => f.sync_data()?,
                        // Deleted or overwritten meanwhile: nothing to keep.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                        Err(e) => return Err(e),
                    }
                    Ok(Some(path.parent().expect("fan-out directory").to_path_buf()))
                };
                let threads = SYNC_THREADS.min(ids.len().div_ceil(SYNC_PER_THREAD)).max(1);
                let chunk = ids.len().div_ceil(threads).max(1);
                let synced: Vec<io::Result<Vec<PathBuf>>> = std::thread::scope(|s| {
                    let handles: Vec<_> = ids
                        .chunks(chunk)
                        .map(|part| s.spawn(move || part.iter().filter_map(|&id| sync_one(id).transpose()).collect()))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join()
                                .unwrap_or_else(|_| Err(io::Error::other("an fsync thread panicked")))
                        })
                        .collect()
                });
                let mut dirs = std::collections::BTreeSet::new();
                for part in synced {
                    dirs.extend(part?);
                }
                dirs.iter().try_for_each(|d| fsync_dir(d))?;
                fsync_dir(&self.tmp)
            }
        }
    }

    /// Opens a committed file's data for reading.
    pub async fn open_read(&self, id: FileId) -> io::Result<tokio::fs::File> {
        let c = self.clone();
        tokio::task::spawn_blocking(move || c.open_data(id))
            .await
            .map_err(io::Error::other)?
            .map(tokio::fs::File::from_std)
    }

    /// Opens a committed file's data for reading; blocking.
    pub fn open_data(&self, id: FileId) -> io::Result<std::fs::File> {
        // Between its catalog commit and its promotion a file is in tmp/; a
        // promotion running meanwhile moves it, so look in files/ once more.
        let mut last = None;
        for p in [self.file_path(id), self.tmp_path(id), self.file_path(id)] {
            match std::fs::File::open(&p) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => last = Some(e),
                r => return r,
            }
        }
        Err(last.expect("tried"))
    }

    /// Whether the cached data of `id` is complete: `size` bytes with this
    /// adler32. Reads the whole file; blocking. Missing data is `false`.
    pub fn data_matches(&self, id: FileId, size: u64, adler32: bale_util::Adler32) -> io::Result<bool> {
        use std::io::Read;
        for p in [self.file_path(id), self.tmp_path(id)] {
            let mut f = match std::fs::File::open(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut h = bale_util::checksum::Adler32Hasher::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            loop {
                let k = f.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                h.update(&buf[..k]);
                n += k as u64;
            }
            return Ok(n == size && h.finish() == adler32);
        }
        Ok(false)
    }

    /// Writes a committed file's data anew, durably, at its place under
    /// `files/`, replacing whatever partial copy is there (recovery of an
    /// inline file from the catalog; a partial copy left in `tmp/` loses to
    /// it when [`Cache::pending`]'s entries are promoted). Blocking.
    pub fn restore(&self, id: FileId, data: &[u8]) -> io::Result<()> {
        write_file_durable(&self.file_path(id), data, 0o644)
    }

    /// Removes a file's cached data (wherever it is). Missing data is not an error.
    pub fn remove(&self, id: FileId) -> io::Result<()> {
        for p in [self.file_path(id), self.tmp_path(id)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Everything in `files/`: the ids of committed data files, and the
    /// paths of anything else found there (never written by bale). For
    /// `bale fsck`; blocking.
    pub fn stored(&self) -> io::Result<(Vec<FileId>, Vec<PathBuf>)> {
        let mut ids = Vec::new();
        let mut junk = Vec::new();
        for d in std::fs::read_dir(&self.files)? {
            let d = d?;
            if !d.file_type()?.is_dir() {
                junk.push(d.path());
                continue;
            }
            for e in std::fs::read_dir(d.path())? {
                let e = e?;
                match e.file_name().to_str().and_then(FileId::parse) {
                    // Only in the directory its id belongs in.
                    Some(id) if self.file_path(id) == e.path() => ids.push(id),
                    _ => junk.push(e.path()),
                }
            }
        }
        Ok((ids, junk))
    }

    /// Moves `path` (a file under `files/` that no catalog row claims) into
    /// `lost+found/` beside `files/`, durably: `bale fsck --repair` sets
    /// such data aside, it never deletes it. Returns the new path.
    pub fn set_aside(&self, path: &Path) -> io::Result<PathBuf> {
        let root = self.files.parent().expect("files/ has a parent");
        let lost = root.join("lost+found");
        create_dir_all_durable(&lost)?;
        let name = path.file_name().ok_or_else(|| io::Error::other("no file name"))?;
        let to = lost.join(name);
        std::fs::rename(path, &to)?;
        fsync_dir(&lost)?;
        if let Some(from) = path.parent() {
            fsync_dir(from)?;
        }
        Ok(to)
    }

    /// What `tmp/` holds after a restart: ids of staged files, and paths of
    /// anything else (always garbage). The caller promotes the ids that have
    /// a catalog row and discards the rest with [`Cache::discard_pending`].
    pub fn pending(&self) -> io::Result<(Vec<FileId>, Vec<PathBuf>)> {
        let mut ids = Vec::new();
        let mut junk = Vec::new();
        for e in std::fs::read_dir(&self.tmp)? {
            let e = e?;
            match e.file_name().to_str().and_then(FileId::parse) {
                Some(id) => ids.push(id),
                None => junk.push(e.path()),
            }
        }
        Ok((ids, junk))
    }

    /// Removes staged files that will never be committed, durably.
    pub fn discard_pending(&self, ids: &[FileId], junk: &[PathBuf]) -> io::Result<()> {
        for &id in ids {
            remove_if_exists(&self.tmp_path(id))?;
        }
        for p in junk {
            if p.is_dir() {
                std::fs::remove_dir_all(p)?;
            } else {
                remove_if_exists(p)?;
            }
        }
        fsync_dir(&self.tmp)
    }
}

fn remove_if_exists(p: &Path) -> io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;

/// `io::copy` in 1 MiB blocks (its own buffer is 8 KiB: a syscall each).
fn copy_large(src: &mut dyn std::io::Read, dst: &mut std::fs::File) -> io::Result<u64> {
    use std::io::Write;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 1 << 20]);
    }
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        let mut n = 0u64;
        loop {
            let got = match src.read(&mut buf) {
                Ok(0) => return Ok(n),
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            dst.write_all(&buf[..got])?;
            n += got as u64;
        }
    })
}
