//! Streaming a request body into the cache.
//!
//! Small bodies are gathered in memory and written with one blocking call;
//! larger ones switch to a writer thread fed through a bounded channel, which
//! computes the adler32 and writes while the network side keeps receiving,
//! so that both cores work and memory stays bounded.

use crate::{Cache, SyncMode};
use bale_util::checksum::Adler32Hasher;
use bale_util::durable::RemoveOnDrop;
use bale_util::{Adler32, FileId};
use bytes::Bytes;
use futures::StreamExt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Bodies up to this size are written with a single blocking call; the
/// largest inline file.
pub const GATHER_LIMIT: usize = 1 << 20;
/// Size of the writes of a large body.
const WRITE_SIZE: usize = 1 << 20;
/// Chunks in flight between the receiver and the writer thread.
const CHANNEL_DEPTH: usize = 64;

/// Data received into `tmp/`, durable once the batch is synced, removed if
/// dropped before being promoted.
pub struct StagedFile {
    pub id: FileId,
    pub size: u64,
    pub adler32: Adler32,
    guard: RemoveOnDrop,
    /// The file's own fsync, started when its data was written and still
    /// running (`fsync` mode, small files): the committer waits for it
    /// while the catalog records the file.
    fsync: Option<tokio::task::JoinHandle<io::Result<()>>>,
    /// An inline file's whole data, for the catalog transaction that
    /// records it (nothing was synced here), with its share of the budget.
    inline: Option<(Bytes, InlineShare)>,
    sync: SyncMode,
}

/// An inline file's share of the cache's budget of unsettled inline bytes;
/// given back when dropped (the file was settled, or never committed).
#[derive(Debug)]
pub struct InlineShare {
    pending: Arc<AtomicU64>,
    bytes: u64,
}

impl InlineShare {
    pub(crate) fn new(pending: Arc<AtomicU64>, bytes: u64) -> Self {
        InlineShare { pending, bytes }
    }
}

impl Drop for InlineShare {
    fn drop(&mut self) {
        self.pending.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl StagedFile {
    /// Hands the file over to the catalog commit: it will no longer be
    /// removed on drop. An inline file's share of the budget comes back
    /// with it, to be dropped once its cache copy is settled.
    pub fn keep(self) -> (FileId, Option<InlineShare>) {
        self.guard.disarm();
        (self.id, self.inline.map(|(_, share)| share))
    }

    /// The whole data of an inline file, to be committed with its row;
    /// `None` for a file synced the ordinary way.
    pub fn inline(&self) -> Option<&Bytes> {
        self.inline.as_ref().map(|(data, _)| data)
    }

    /// Turns an inline file into an ordinary one (an overwrite, which must
    /// not be recorded before its data is durable in the cache): starts its
    /// fsync in `fsync` mode; in `syncfs` mode the batch's syncfs covers it.
    pub fn uninline(&mut self) {
        if self.inline.take().is_some() && self.sync == SyncMode::Fsync {
            let path = self.guard.path().to_path_buf();
            self.fsync = Some(tokio::task::spawn_blocking(move || {
                OpenOptions::new().write(true).open(path)?.sync_all()
            }));
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.guard.path()
    }

    /// Waits until the file's own data is on stable storage (its directory
    /// entry needs [`Cache::sync_batch`] too).
    pub async fn wait_synced(&mut self) -> io::Result<()> {
        match self.fsync.take() {
            Some(h) => h.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body ended in an error (client disconnect, framing error).
    #[error("request body incomplete: {0}")]
    Body(String),
    #[error("body is larger than the declared {declared} bytes")]
    TooLong { declared: u64 },
    #[error("cache I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Creates the staged file, with the guard that removes it again. Called on
/// the blocking thread that writes it, which returns the guard: should the
/// request be dropped meanwhile, the runtime drops the thread's result, and
/// with it the file, so that a cancelled write never leaves data behind.
fn create(path: &PathBuf) -> io::Result<(File, RemoveOnDrop)> {
    let f = OpenOptions::new().write(true).create_new(true).open(path)?;
    Ok((f, RemoveOnDrop::new(path.clone())))
}

/// Starts writeback of a large file every [`WRITEBACK_EVERY`] bytes, so that
/// dirty pages do not pile up until the final fsync: the disk works while
/// the data still arrives, and the fsync finds little left to do.
struct Writeback {
    started: u64,
    written: u64,
}

const WRITEBACK_EVERY: u64 = 8 << 20;

impl Writeback {
    fn new(written: u64) -> Self {
        Writeback { started: 0, written }
    }

    fn advance(&mut self, f: &File, n: u64) {
        self.written += n;
        if self.written - self.started >= WRITEBACK_EVERY {
            start_writeback(f, self.started, self.written - self.started);
            self.started = self.written;
        }
    }
}

/// Starts writing `len` bytes of `f` from `offset` to the disk without
/// waiting for them (nor making them durable: a later fsync or syncfs does).
fn start_writeback(f: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads its integer arguments; the
    // descriptor comes from a File that is alive for the whole call, so it
    // is open and refers to the file being written. The call cannot touch
    // our memory. Failure is harmless (the final fsync or syncfs still makes
    // the data durable), so its result is ignored.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

fn finish(f: File, sync: SyncMode) -> io::Result<()> {
    if sync == SyncMode::Fsync {
        f.sync_all()?;
    }
    Ok(())
}

impl Cache {
    /// Receives a body into `tmp/<id>`, computing its adler32. In `fsync`
    /// mode the file's fsync is started here ([`StagedFile::wait_synced`]);
    /// the directory entry (and in `syncfs` mode the data) become durable
    /// with the next [`Cache::sync_batch`].
    /// `declared` (a Content-Length) bounds the body: more bytes is an error.
    pub async fn ingest<S, E>(&self, id: FileId, mut body: S, declared: Option<u64>) -> Result<StagedFile, IngestError>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self.tmp_path(id);
        let sync = self.sync;
        let mut hasher = Adler32Hasher::new();
        let mut size: u64 = 0;
        let mut gathered: Vec<Bytes> = Vec::new();
        let mut gathered_len = 0usize;
        let check = |size: u64| match declared {
            Some(d) if size > d => Err(IngestError::TooLong { declared: d }),
            _ => Ok(()),
        };

        // Phase 1: gather up to GATHER_LIMIT in memory.
        let mut overflow = false;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| IngestError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            check(size)?;
            hasher.update(&chunk);
            gathered_len += chunk.len();
            gathered.push(chunk);
            if gathered_len > GATHER_LIMIT {
                overflow = true;
                break;
            }
        }

        if !overflow {
            // Small body: one blocking call creates and writes it. Inline, its
            // data goes to the catalog and nothing is synced here; otherwise
            // the fsync (fsync mode) starts right after, not waited for here.
            let inline = self.inline.reserve(size).map(|share| {
                let data = match gathered.as_slice() {
                    [one] => one.clone(),
                    chunks => Bytes::from(chunks.concat()),
                };
                (data, share)
            });
            let (file, guard) = tokio::task::spawn_blocking(move || -> io::Result<(File, RemoveOnDrop)> {
                let (mut f, guard) = create(&path)?;
                for c in &gathered {
                    f.write_all(c)?;
                }
                Ok((f, guard))
            })
            .await
            .map_err(io::Error::other)??;
            let fsync = (inline.is_none() && sync == SyncMode::Fsync)
                .then(|| tokio::task::spawn_blocking(move || file.sync_all()));
            return Ok(StagedFile {
                id,
                size,
                adler32: hasher.finish(),
                guard,
                fsync,
                inline,
                sync,
            });
        }

        // Phase 2: large body. A writer thread writes what was gathered (already
        // hashed), then hashes and writes the rest while we keep receiving.
        let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
        let writer = tokio::task::spawn_blocking(move || -> io::Result<(Adler32, RemoveOnDrop)> {
            let (mut f, guard) = create(&path)?;
            for c in &gathered {
                f.write_all(c)?;
            }
            drop(gathered);
            let mut h = hasher;
            // Network chunks are small; gather them into large writes.
            let mut buf: Vec<u8> = Vec::with_capacity(WRITE_SIZE);
            let mut written = Writeback::new(gathered_len as u64);
            while let Some(c) = rx.blocking_recv() {
                h.update(&c);
                if buf.len() + c.len() > WRITE_SIZE && !buf.is_empty() {
                    f.write_all(&buf)?;
                    written.advance(&f, buf.len() as u64);
                    buf.clear();
                }
                if c.len() >= WRITE_SIZE {
                    f.write_all(&c)?;
                    written.advance(&f, c.len() as u64);
                } else {
                    buf.extend_from_slice(&c);
                }
            }
            f.write_all(&buf)?;
            finish(f, sync)?;
            Ok((h.finish(), guard))
        });
        let received: Result<(), IngestError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| IngestError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                check(size)?;
                if tx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Ok(())
        }
        .await;
        drop(tx);
        let written = writer.await.map_err(io::Error::other)?;
        received?;
        let (adler32, guard) = written?;
        Ok(StagedFile {
            id,
            size,
            adler32,
            guard,
            fsync: None,
            inline: None,
            sync,
        })
    }
}
