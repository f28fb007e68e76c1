//! One process per data directory: an exclusive `flock(2)` on a lock file
//! inside it, held for the life of the process and released by the kernel
//! when the process ends, however it ends (a SIGKILL or a power cut leaves
//! no stale lock behind). The file names its holder (pid, address, what it
//! is) so that a refused second process can say who holds the directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the directory.
pub const LOCK_FILE: &str = "LOCK";

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it; `holder` is what that process wrote.
    #[error("{} is in use by another process ({holder}); stop it first", dir.display())]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// A held lock on a directory; dropping it (or the process ending)
/// releases it.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir` without waiting, and records `holder` (a
    /// line such as "bale serve, pid 123, http://127.0.0.1:8742") in the
    /// lock file.
    pub fn acquire(dir: &Path, holder: &str) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "a process that is starting".to_string(),
                    t => t.to_string(),
                };
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(e) => return Err(io_err(e.into())),
        }
        // Informational only: the lock is the flock, not the text, so the
        // text needs no fsync.
        file.set_len(0).map_err(io_err)?;
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        file.write_all(format!("{holder}\n").as_bytes()).map_err(io_err)?;
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "bale serve, pid 1, http://h:1").unwrap();
        let e = DirLock::acquire(dir.path(), "bale serve, pid 2").unwrap_err();
        match &e {
            LockError::Held { holder, .. } => assert_eq!(holder, "bale serve, pid 1, http://h:1"),
            e => panic!("{e}"),
        }
        assert!(e.to_string().contains("pid 1"), "{e}");
        drop(first);
        // Released: the next one takes it and its own name replaces the old one.
        let _second = DirLock::acquire(dir.path(), "pid 3").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(), "pid 3\n");
    }
}
