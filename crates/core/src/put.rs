//! The PUT path: checks, the body streamed into the cache (while the
//! namespace checks run, for small bodies), the group commit, the route to tape.

use crate::auth::Principal;
use crate::conditions::Conditions;
use crate::perms::{check, Op, Resolved};
use crate::quota::Room;
use crate::reserved::check_reserved;
use crate::service::Service;
use crate::{Error, Result};
use bale_cache::IngestError;
use bale_catalog::{ArchiveJob, ArchiveRoute, EventKind, FileEvent, JobState, NewFile, Node, Replace};
use bale_policy::FileFacts;
use bale_util::human::Bytes as Size;
use bale_util::{Adler32, FileId, NsPath, Timestamp};
use bytes::Bytes;
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

/// Bodies up to this size are written to the cache while the namespace
/// checks of their PUT run.
const SMALL_BODY: u64 = 1 << 20;

/// Options of a write.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Replace an existing file (never a directory), as RFC 9110 says a
    /// PUT does; `false` creates only (`Overwrite: F`): an existing file
    /// is a failed precondition.
    pub overwrite: bool,
    /// The request's preconditions (`If-Match`, `If-None-Match: *`, ...),
    /// evaluated on the entry the checks find; the commit replaces only
    /// that one.
    pub conditions: Conditions,
    /// The client's modification time of the data (its local file's).
    pub mtime: Option<Timestamp>,
    /// The Content-Length the client declared; a different byte count is refused.
    pub declared_len: Option<u64>,
    /// The adler32 the client declared (`Digest: adler32=...`).
    pub digest: Option<Adler32>,
    /// The client waits for `100 Continue` before it sends the body: no
    /// byte of it is read before every check passed (a small body is
    /// otherwise written while the checks run).
    pub expects_continue: bool,
    /// The path this is a copy of (COPY), for the file's history.
    pub copy_of: Option<String>,
}

impl Service {
    /// Whether `who` may create the file at `path`, or write into the
    /// existing one (not in a write-once tree); the request's
    /// preconditions. Returns the parent directory and what the commit
    /// may replace: the file checked here, and no other. One walk of the
    /// path finds all (one catalog round trip).
    async fn put_checks(&self, who: &Principal, path: &NsPath, opts: &PutOptions) -> Result<(Node, Replace, Room)> {
        let r = Resolved::new(path.clone(), self.catalog.walk(path).await?);
        let replace = match r.node() {
            Some(existing) if existing.is_dir() => {
                check(who, Op::Stat, &r)?;
                return Err(Error::IsADirectory(format!("{path} is a directory")));
            }
            Some(existing) => {
                check(who, Op::Stat, &r)?;
                opts.conditions.evaluate(path.as_str(), Some(existing), false)?;
                if !opts.overwrite {
                    return Err(Error::PreconditionFailed(format!(
                        "{path} already exists and the request asks to create it only (Overwrite: F); \
                         nothing was done (bale put --overwrite replaces it)"
                    )));
                }
                if let Some(dir) = r.write_once() {
                    return Err(Error::Conflict(format!(
                        "{path} exists in a write-once area ({dir} has the tag write_once=true): \
                         its files are never replaced; nothing was done"
                    )));
                }
                // An overwrite is a write into the existing file.
                check(who, Op::Overwrite, &r)?;
                Replace::File(existing.file_id.expect("a file has an id"))
            }
            None => {
                check(who, Op::Create, &r)?;
                opts.conditions.evaluate(path.as_str(), None, false)?;
                Replace::No
            }
        };
        let parent = r.parent().expect("checked").clone();
        // The storage group's quota, before a byte of the body is read.
        let replaced = r.node().map(|n| n.size).filter(|_| replace != Replace::No);
        let room = self.quota_room(&parent.tags, opts.declared_len, replaced).await?;
        Ok((parent, replace, room))
    }

    /// Whether a body of `len` bytes fits on the cache's filesystem now
    /// (507 otherwise, naming both; 413 for a body larger than the whole
    /// filesystem, which no retry helps). The cache-full alarm is raised
    /// only when the filesystem is nearly full (less than a tenth free): a
    /// user cannot raise it by announcing a large body.
    pub async fn room_for(&self, len: u64) -> Result<()> {
        let (free, total) = self
            .cache
            .space()
            .map_err(|e| Error::Internal(format!("cannot read the cache filesystem's free space: {e}")))?;
        if len <= free {
            return Ok(());
        }
        let (free, len_h, total_h) = (Size(free), Size(len), Size(total));
        if len > total {
            return Err(Error::TooLarge(format!(
                "this body is {len_h}, more than the whole cache filesystem ({total_h}) holds: nothing was received"
            )));
        }
        if free.0 < total / 10 {
            self.cache_full_alarm().await;
            return Err(Error::InsufficientStorage(format!(
                "the cache is full: it has {free} free and this body is {len_h}; nothing was received; \
                 retry once space is freed"
            )));
        }
        Err(Error::InsufficientStorage(format!(
            "the cache has {free} free and this body is {len_h}: nothing was received; retry once space is freed"
        )))
    }

    async fn cache_full_alarm(&self) {
        let msg = "the cache filesystem is full: writes are refused (507) until space is freed";
        if let Err(e) = self.catalog.raise_alarm("error", "cache", msg).await {
            tracing::error!("{msg}; raising the alarm failed too: {e}");
        }
    }

    /// Receives a file. Returns only once its data and catalog row are
    /// durable, with whether it replaced a file. A full cache filesystem
    /// refuses it (507, nothing kept) and raises one alarm, its repeats
    /// counted.
    pub async fn put<S, E>(&self, who: &Principal, path: &NsPath, opts: &PutOptions, body: S) -> Result<(Node, bool)>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        // A body that cannot fit is refused before a byte of it is read
        // (with `Expect: 100-continue` the client never sends it); the
        // cache is not full for that, so no alarm.
        if let Some(n) = opts.declared_len {
            self.room_for(n).await?;
        }
        let r = self.put_file(who, path, opts, body).await;
        if let Err(Error::InsufficientStorage(_)) = &r {
            self.cache_full_alarm().await;
        }
        r
    }

    async fn put_file<S, E>(&self, who: &Principal, path: &NsPath, opts: &PutOptions, body: S) -> Result<(Node, bool)>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        // Counted as arriving from here: the committer waits briefly for
        // writes that will reach it within a fraction of a batch time.
        let arriving = self.committer.arriving();
        check_reserved(path)?;
        let id = FileId::generate();
        // A body of undeclared length is cut at its storage group's quota
        // (set once the checks know the room).
        let limit = Arc::new(AtomicU64::new(u64::MAX));
        let cut = Arc::new(AtomicBool::new(false));
        let body = {
            let (limit, cut) = (limit.clone(), cut.clone());
            let mut seen = 0u64;
            body.map(move |chunk| {
                let chunk = chunk.map_err(|e| e.to_string())?;
                seen += chunk.len() as u64;
                if seen > limit.load(Ordering::Relaxed) {
                    cut.store(true, Ordering::Relaxed);
                    return Err("the storage group's quota is reached".to_string());
                }
                Ok(chunk)
            })
        };
        let ingest = async {
            self.cache
                .ingest(id, body, opts.declared_len)
                .await
                .map_err(|e| match e {
                    IngestError::Io(e) if crate::error::is_out_of_space(&e) => Error::InsufficientStorage(format!(
                        "the cache is full ({e}): nothing of this file was kept; retry once space is freed"
                    )),
                    IngestError::Io(e) => Error::Internal(format!("cache write failed: {e}")),
                    e => Error::BadRequest(e.to_string()),
                })
        };
        // A small body (declared, and received whole with the headers as a
        // rule) is written to tmp/ on a blocking thread WHILE the namespace
        // checks run: they cost as much as the write, and a refused file's
        // staged data is removed again when dropped. A large body is
        // received only after the checks passed.
        let small = opts.declared_len.is_some_and(|n| n <= SMALL_BODY) && !opts.expects_continue;
        let mut ingest = std::pin::pin!(ingest);
        let early = if small {
            futures::poll!(ingest.as_mut())
        } else {
            Poll::Pending
        };
        let (parent, replace, room) = match self.put_checks(who, path, opts).await {
            Ok(checked) => checked,
            Err(e) => {
                // Let a write already under way finish, so that dropping it
                // removes its data.
                if small && early.is_pending() {
                    drop(ingest.await);
                }
                return Err(e);
            }
        };
        if let Some(room) = room.bytes {
            limit.store(room, Ordering::Relaxed);
        }
        let staged = match early {
            Poll::Ready(staged) => staged,
            Poll::Pending => ingest.await,
        };
        let staged = match staged {
            Err(_) if cut.load(Ordering::Relaxed) => {
                return Err(Error::InsufficientStorage(format!(
                    "storage group {} has {} left of its quota of {}, and the body went past it: nothing was \
                     kept; delete files or ask for a larger quota (bale quota set {} --bytes N)",
                    room.group,
                    Size(room.bytes.unwrap_or(0)),
                    Size(room.quota.unwrap_or(0)),
                    room.group
                )))
            }
            r => r?,
        };
        let name = path.name().expect("not root");
        if let Some(declared) = opts.declared_len {
            if staged.size != declared {
                return Err(Error::BadRequest(format!(
                    "short body: received {} of the {declared} bytes declared by Content-Length",
                    staged.size
                )));
            }
        }
        if let Some(expected) = opts.digest {
            if expected != staged.adler32 {
                return Err(Error::ChecksumMismatch(format!(
                    "checksum mismatch for {path}: the client sent adler32={expected}, the data received has adler32={}; nothing was stored",
                    staged.adler32
                )));
            }
        }
        // Large files go to tape on their own as soon as they are durable;
        // the policy sends the rest direct or into a pool.
        let archive = self.archiver.route(&FileFacts {
            path: path.as_str(),
            size: staged.size,
            owner: &who.user,
            group: &who.group,
            tags: &parent.tags,
        })?;
        let file = NewFile {
            parent: parent.id,
            name: name.to_string(),
            file_id: id,
            owner: who.user.clone(),
            group: who.group.clone(),
            mode: self.config.namespace.file_mode,
            size: staged.size,
            adler32: staged.adler32,
            time: Timestamp::now(),
            mtime: opts.mtime,
            replace,
            archive: Some(archive.clone()),
            // Filled in by the committer for inline files.
            inline: None,
        };
        let (file_id, size, time) = (file.file_id, file.size, file.time);
        let committed = self
            .committer
            .commit(file, staged, arriving)
            .await
            .map_err(|e| match e {
                // Another request made the file meanwhile.
                Error::Exists(_) if !opts.overwrite || opts.conditions.create_only() => {
                    Error::PreconditionFailed(format!(
                        "{path} was created by another request meanwhile and this one asks to create it only; \
                         nothing was done"
                    ))
                }
                Error::Exists(_) | Error::Conflict(_) if !opts.conditions.is_empty() => {
                    Error::PreconditionFailed(format!(
                        "{path} was changed by another request meanwhile, so this one's preconditions no longer \
                     hold; nothing was done"
                    ))
                }
                Error::Exists(_) | Error::Conflict(_) => Error::Conflict(format!(
                    "{path} was written by another request while this one was received; nothing was done: retry"
                )),
                // The catalog names the entry; the client named a path.
                Error::IsADirectory(_) => Error::IsADirectory(format!("{path} is a directory")),
                e => e,
            })?;
        bale_util::crash::point("put.committed");
        self.wrote(who, path, &committed, &archive, opts);
        if let (Some(id), ArchiveRoute::Direct(target)) = (committed.job, archive) {
            self.tape.enqueue(ArchiveJob {
                id,
                state: JobState::Queued,
                target,
                bytes: size,
                created: time,
                attempts: 0,
                error: None,
                pool: None,
                files: vec![file_id],
            });
        }
        Ok((committed.node, !committed.replaced.is_empty()))
    }

    /// A new file's history starts: written (by whom, from where, in which
    /// request), and where it goes next; a file it replaced ends.
    fn wrote(
        &self,
        who: &Principal,
        path: &NsPath,
        c: &bale_catalog::Committed,
        route: &ArchiveRoute,
        opts: &PutOptions,
    ) {
        let Some(id) = c.node.file_id else { return };
        let now = Timestamp::now();
        let mut e = FileEvent::new(id, EventKind::Written, now);
        e.path = Some(path.to_string());
        e.who = Some(who.user.clone());
        let via = if opts.copy_of.is_some() { "copied" } else { "written" };
        let from = who.from.map(|a| format!(" from {a}")).unwrap_or_default();
        let source = opts
            .copy_of
            .as_ref()
            .map(|s| format!(" (a copy of {s})"))
            .unwrap_or_default();
        e.detail = Some(format!(
            "{via}{from}{source}: {} bytes, adler32 {}",
            c.node.size,
            c.node.adler32.map(|a| a.to_string()).unwrap_or_default()
        ));
        self.events.add(e);
        let mut next = FileEvent::new(id, EventKind::Pooled, now);
        next.detail = Some(match route {
            ArchiveRoute::Pool(p) => format!("joined pool {}", p.key),
            ArchiveRoute::Direct(t) => format!(
                "to tape on its own: archive job {} to library {}, family {}",
                c.job.map(|j| j.to_string()).unwrap_or_else(|| "-".into()),
                t.library,
                t.family
            ),
        });
        self.events.add(next);
        for old in &c.replaced {
            if let Some(old_id) = old.file_id {
                let mut e = FileEvent::new(old_id, EventKind::Overwritten, now);
                e.path = Some(path.to_string());
                e.who = Some(who.user.clone());
                e.detail = Some(format!("replaced by file {id}"));
                self.events.add(e);
            }
        }
    }
}
