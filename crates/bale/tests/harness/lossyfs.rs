//! A lossy filesystem layer for power-cut tests (LazyFS-style), served by
//! FUSE from the test process over a backing directory.
//!
//! The backing directory plays the disk. Metadata operations (create,
//! mkdir, link, unlink, rename, chmod) reach it at once; file data does
//! not: every write and truncate is kept in memory, per inode, until an
//! fsync or fdatasync of that file applies it to the backing file. Reads
//! see the backing file with the pending operations laid over it, so the
//! layer behaves like a page cache. [`LossyFs::cut`] is the power cut:
//! from that instant every operation fails with EIO, the pending data is
//! dropped, and the mount goes; what the backing directory holds is what a
//! disk would hold after the cut: every synced byte, no unsynced one.
//!
//! Limits: metadata is durable at once (a real filesystem may lose a
//! create or rename not followed by an fsync of its directory, so this
//! layer is kinder there); syncfs(2) reaches no FUSE filesystem, so data
//! "synced" only by syncfs is lost (bale's `ingest.sync = "syncfs"` mode
//! cannot be tested here; the default fsync mode is).

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::ZERO;
const EIO: i32 = 5;

/// A data operation not yet synced.
enum Op {
    Write(u64, Vec<u8>),
    Truncate(u64),
}

#[derive(Default)]
struct State {
    /// After the cut: everything fails.
    dead: bool,
    /// Backing paths of each inode (several for hard links).
    paths: HashMap<u64, HashSet<PathBuf>>,
    /// Unsynced data operations per inode, in order.
    pending: HashMap<u64, Vec<Op>>,
    handles: HashMap<u64, (u64, File)>,
    next_fh: u64,
    root_ino: u64,
    /// Bytes written and later lost at the cut, for the report.
    unsynced_bytes: u64,
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(EIO)
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

impl State {
    /// FUSE inode number of a backing inode (the root is 1).
    fn fuse_ino(&self, backing: u64) -> u64 {
        if backing == self.root_ino {
            1
        } else {
            backing
        }
    }

    fn path(&self, ino: u64) -> Option<PathBuf> {
        self.paths.get(&ino).and_then(|s| s.iter().next().cloned())
    }

    /// The size the file has with its pending operations.
    fn logical_size(&self, ino: u64, backing: u64) -> u64 {
        let mut size = backing;
        for op in self.pending.get(&ino).into_iter().flatten() {
            match op {
                Op::Write(off, d) => size = size.max(off + d.len() as u64),
                Op::Truncate(len) => size = *len,
            }
        }
        size
    }

    fn attr(&self, meta: &std::fs::Metadata) -> FileAttr {
        let ino = self.fuse_ino(meta.ino());
        let kind = if meta.is_dir() {
            FileType::Directory
        } else if meta.file_type().is_symlink() {
            FileType::Symlink
        } else {
            FileType::RegularFile
        };
        let size = if kind == FileType::RegularFile {
            self.logical_size(ino, meta.len())
        } else {
            meta.len()
        };
        FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: time(meta.ctime(), meta.ctime_nsec()),
            kind,
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// Registers `path` for its inode; returns the inode's attributes.
    fn remember(&mut self, path: PathBuf) -> io::Result<FileAttr> {
        let meta = std::fs::symlink_metadata(&path)?;
        let ino = self.fuse_ino(meta.ino());
        self.paths.entry(ino).or_default().insert(path);
        Ok(self.attr(&meta))
    }

    fn stat(&self, ino: u64) -> io::Result<std::fs::Metadata> {
        if let Some(p) = self.paths.get(&ino).into_iter().flatten().find(|p| p.exists()) {
            return std::fs::symlink_metadata(p);
        }
        match self.handles.values().find(|(i, _)| *i == ino) {
            Some((_, f)) => f.metadata(),
            None => Err(io::Error::from_raw_os_error(2)),
        }
    }

    fn child(&self, parent: u64, name: &OsStr) -> io::Result<PathBuf> {
        self.path(parent)
            .map(|p| p.join(name))
            .ok_or_else(|| io::Error::from_raw_os_error(2))
    }

    fn forget_path(&mut self, path: &Path) {
        for set in self.paths.values_mut() {
            set.remove(path);
        }
        self.drop_orphans();
    }

    /// Pending data of inodes with no name and no open handle goes.
    fn drop_orphans(&mut self) {
        let open: HashSet<u64> = self.handles.values().map(|(i, _)| *i).collect();
        self.paths.retain(|_, s| !s.is_empty());
        let paths = &self.paths;
        self.pending
            .retain(|ino, _| paths.contains_key(ino) || open.contains(ino));
    }

    /// Applies an inode's pending operations to the backing file.
    fn sync(&mut self, ino: u64, file: &File) -> io::Result<()> {
        for op in self.pending.remove(&ino).unwrap_or_default() {
            match op {
                Op::Write(off, d) => file.write_all_at(&d, off)?,
                Op::Truncate(len) => file.set_len(len)?,
            }
        }
        Ok(())
    }

    fn open_backing(&mut self, ino: u64, path: &Path, flags: i32) -> io::Result<u64> {
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let file = OpenOptions::new().read(true).write(write).open(path)?;
        if flags & libc::O_TRUNC != 0 {
            self.pending.entry(ino).or_default().push(Op::Truncate(0));
        }
        self.next_fh += 1;
        self.handles.insert(self.next_fh, (ino, file));
        Ok(self.next_fh)
    }
}

/// The filesystem served to the kernel.
struct Layer(Arc<Mutex<State>>);

macro_rules! live {
    ($self:ident, $reply:ident) => {{
        let st = $self.0.lock().unwrap();
        if st.dead {
            $reply.error(EIO);
            return;
        }
        st
    }};
}

impl Filesystem for Layer {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let mut st = live!(self, reply);
        match st.child(parent, name).and_then(|p| st.remember(p)) {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let st = live!(self, reply);
        match st.stat(ino) {
            Ok(m) => reply.attr(&TTL, &st.attr(&m)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let mut st = live!(self, reply);
        let Some(path) = st.path(ino) else {
            reply.error(2);
            return;
        };
        let r = (|| -> io::Result<()> {
            if let Some(m) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m & 0o7777))?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::chown(&path, uid, gid)?;
            }
            if let Some(t) = mtime {
                let t = match t {
                    TimeOrNow::SpecificTime(t) => t,
                    TimeOrNow::Now => SystemTime::now(),
                };
                File::open(&path)?.set_modified(t)?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            reply.error(errno(&e));
            return;
        }
        if let Some(len) = size {
            st.pending.entry(ino).or_default().push(Op::Truncate(len));
        }
        match st.stat(ino) {
            Ok(m) => reply.attr(&TTL, &st.attr(&m)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mkdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mut st = live!(self, reply);
        let r = st.child(parent, name).and_then(|p| {
            std::fs::create_dir(&p)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & !umask & 0o7777))?;
            st.remember(p)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let mut st = live!(self, reply);
        match st.child(parent, name).and_then(|p| std::fs::remove_file(&p).map(|_| p)) {
            Ok(p) => {
                st.forget_path(&p);
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let mut st = live!(self, reply);
        match st.child(parent, name).and_then(|p| std::fs::remove_dir(&p).map(|_| p)) {
            Ok(p) => {
                st.forget_path(&p);
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let mut st = live!(self, reply);
        let (from, to) = match (st.child(parent, name), st.child(newparent, newname)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => {
                reply.error(errno(&e));
                return;
            }
        };
        if flags & libc::RENAME_NOREPLACE != 0 && to.symlink_metadata().is_ok() {
            reply.error(libc::EEXIST);
            return;
        }
        if let Err(e) = std::fs::rename(&from, &to) {
            reply.error(errno(&e));
            return;
        }
        // The replaced name and every name under a moved directory.
        st.forget_path(&to);
        for set in st.paths.values_mut() {
            let moved: Vec<PathBuf> = set.iter().filter(|p| p.starts_with(&from)).cloned().collect();
            for p in moved {
                set.remove(&p);
                let rest = p.strip_prefix(&from).unwrap();
                set.insert(if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                });
            }
        }
        st.drop_orphans();
        reply.ok()
    }

    fn link(&mut self, _req: &Request<'_>, ino: u64, newparent: u64, newname: &OsStr, reply: ReplyEntry) {
        let mut st = live!(self, reply);
        let r = match (st.path(ino), st.child(newparent, newname)) {
            (Some(from), Ok(to)) => std::fs::hard_link(&from, &to).and_then(|_| st.remember(to)),
            (None, _) => Err(io::Error::from_raw_os_error(2)),
            (_, Err(e)) => Err(e),
        };
        match r {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let mut st = live!(self, reply);
        let Some(path) = st.path(ino) else {
            reply.error(2);
            return;
        };
        match st.open_backing(ino, &path, flags) {
            Ok(fh) => reply.opened(fh, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = live!(self, reply);
        let r = st.child(parent, name).and_then(|p| {
            OpenOptions::new()
                .write(true)
                .create(true)
                .create_new(flags & libc::O_EXCL != 0)
                .mode(mode & !umask & 0o7777)
                .open(&p)?;
            let a = st.remember(p.clone())?;
            let fh = st.open_backing(a.ino, &p, flags)?;
            Ok((a, fh))
        });
        match r {
            Ok((a, fh)) => {
                let a = st.stat(a.ino).map(|m| st.attr(&m)).unwrap_or(a);
                reply.created(&TTL, &a, 0, fh, 0)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let st = live!(self, reply);
        let Some((_, file)) = st.handles.get(&fh) else {
            reply.error(libc::EBADF);
            return;
        };
        let backing = match file.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                reply.error(errno(&e));
                return;
            }
        };
        let (start, end) = (offset as u64, offset as u64 + size as u64);
        let end = end.min(st.logical_size(ino, backing));
        if end <= start {
            reply.data(&[]);
            return;
        }
        let mut buf = vec![0u8; (end - start) as usize];
        let have = backing.saturating_sub(start).min(end - start) as usize;
        if have > 0 {
            if let Err(e) = file.read_exact_at(&mut buf[..have], start) {
                reply.error(errno(&e));
                return;
            }
        }
        for op in st.pending.get(&ino).into_iter().flatten() {
            match op {
                Op::Write(off, d) => {
                    let (ws, we) = (*off, off + d.len() as u64);
                    let (s, e) = (ws.max(start), we.min(end));
                    if s < e {
                        buf[(s - start) as usize..(e - start) as usize]
                            .copy_from_slice(&d[(s - ws) as usize..(e - ws) as usize]);
                    }
                }
                Op::Truncate(len) => {
                    if *len < end {
                        let from = len.saturating_sub(start) as usize;
                        buf[from..].fill(0);
                    }
                }
            }
        }
        reply.data(&buf)
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let mut st = live!(self, reply);
        st.unsynced_bytes += data.len() as u64;
        st.pending
            .entry(ino)
            .or_default()
            .push(Op::Write(offset as u64, data.to_vec()));
        reply.written(data.len() as u32)
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock_owner: u64, reply: ReplyEmpty) {
        let _st = live!(self, reply);
        reply.ok()
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.0.lock().unwrap();
        st.handles.remove(&fh);
        st.drop_orphans();
        reply.ok()
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, fh: u64, _datasync: bool, reply: ReplyEmpty) {
        let mut st = live!(self, reply);
        // fsync through a read-only descriptor syncs the file too: the
        // backing file is opened for writing by name when it has one.
        let file = match st.path(ino) {
            Some(p) => OpenOptions::new().write(true).open(p),
            None => match st.handles.get(&fh) {
                Some((_, f)) => f.try_clone(),
                None => Err(io::Error::from_raw_os_error(libc::EBADF)),
            },
        };
        match file.and_then(|f| st.sync(ino, &f)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let st = live!(self, reply);
        let Some(path) = st.path(ino) else {
            reply.error(2);
            return;
        };
        let entries = match std::fs::read_dir(&path) {
            Ok(d) => d,
            Err(e) => {
                reply.error(errno(&e));
                return;
            }
        };
        let mut all = vec![
            (ino, FileType::Directory, ".".into()),
            (1, FileType::Directory, "..".into()),
        ];
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            let kind = if m.is_dir() {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            all.push((st.fuse_ino(m.ino()), kind, e.file_name()));
        }
        for (i, (ino, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(ino, i as i64 + 1, kind, name) {
                break;
            }
        }
        reply.ok()
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        let _st = live!(self, reply);
        reply.ok()
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let st = live!(self, reply);
        let Some(root) = st.path(1) else {
            reply.error(EIO);
            return;
        };
        match rustix::fs::statvfs(&root) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                255,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e.raw_os_error()),
        }
    }

    fn access(&mut self, _req: &Request<'_>, _ino: u64, _mask: i32, reply: ReplyEmpty) {
        let _st = live!(self, reply);
        reply.ok()
    }
}

/// A mounted lossy layer.
pub struct LossyFs {
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
    backing: PathBuf,
}

fn mount(backing: &Path, mountpoint: &Path) -> (Arc<Mutex<State>>, fuser::BackgroundSession) {
    let root = std::fs::metadata(backing).unwrap();
    let mut st = State {
        root_ino: root.ino(),
        ..State::default()
    };
    st.paths.entry(1).or_default().insert(backing.to_path_buf());
    let state = Arc::new(Mutex::new(st));
    let session = fuser::spawn_mount2(
        Layer(state.clone()),
        mountpoint,
        &[
            MountOption::FSName("bale-lossyfs".into()),
            MountOption::AllowOther,
            MountOption::DefaultPermissions,
        ],
    )
    .expect("mount the lossy layer (needs /dev/fuse and root)");
    (state, session)
}

impl LossyFs {
    /// Mounts a layer at `mountpoint` over `backing` (both exist).
    pub fn mount(backing: &Path, mountpoint: &Path) -> LossyFs {
        let (state, session) = mount(backing, mountpoint);
        LossyFs {
            state,
            session: Some(session),
            mountpoint: mountpoint.to_path_buf(),
            backing: backing.to_path_buf(),
        }
    }

    /// The power cut: every unsynced write is lost, and the layer goes.
    /// Returns the bytes of data lost.
    pub fn cut(&mut self) -> u64 {
        let lost = {
            let mut st = self.state.lock().unwrap();
            st.dead = true;
            let lost: u64 = st
                .pending
                .values()
                .flatten()
                .map(|op| match op {
                    Op::Write(_, d) => d.len() as u64,
                    Op::Truncate(_) => 0,
                })
                .sum();
            st.pending.clear();
            st.handles.clear();
            lost
        };
        self.unmount();
        lost
    }

    /// A fresh layer over the same backing directory: the machine back up.
    pub fn remount(&mut self) {
        self.unmount();
        let (state, session) = mount(&self.backing, &self.mountpoint);
        self.state = state;
        self.session = Some(session);
    }

    fn unmount(&mut self) {
        // Lazily: a killed server may still hold files open.
        if let Some(s) = self.session.take() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
            drop(s);
        }
    }
}

impl Drop for LossyFs {
    fn drop(&mut self) {
        self.state.lock().unwrap().dead = true;
        self.unmount();
    }
}
