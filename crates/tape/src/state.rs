//! What the drives of a tape system share: the libraries, the scheduler's
//! state under one mutex, the event log, the armed faults and the wake
//! channel; and the reads waiting for a drive.

use crate::backend::VolumeBackend;
use crate::config::{FileMarks, TapeConfig};
use crate::events::EventLog;
use crate::fault::Faults;
use crate::media::MediaProfile;
use crate::members::MemberSource;
use crate::schedule::{Schedule, TapeRead, Waiting};
use crate::Result;
use bale_catalog::{ArchiveJob, DynCatalog};
use bale_util::Adler32;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{oneshot, watch};

/// A library: its media, timing model, backend and robot.
pub(crate) struct Lib {
    pub name: String,
    pub media: String,
    pub profile: MediaProfile,
    pub scale: f64,
    /// The library's backend (paced when the time scale asks for it).
    pub backend: Arc<dyn VolumeBackend>,
    /// One robot per library: mounts and unloads wait for it.
    pub robot: tokio::sync::Mutex<()>,
    pub marks: FileMarks,
    pub flush_bytes: u64,
    pub flush_files: u32,
    pub volume_capacity: u64,
    pub volume_prefix: String,
    pub mount_limit: u64,
}

/// What the drives share.
pub(crate) struct Inner {
    pub catalog: DynCatalog,
    pub source: Arc<dyn MemberSource>,
    pub cfg: TapeConfig,
    pub libs: BTreeMap<String, Arc<Lib>>,
    pub sched: Mutex<Schedule<PendingRead>>,
    pub events: Mutex<EventLog>,
    pub faults: Faults,
    pub wake: watch::Sender<u64>,
}

impl Inner {
    pub fn enqueue(&self, job: ArchiveJob) -> bool {
        let id = job.id;
        if !self.sched.lock().unwrap().enqueue(job, Instant::now()) {
            tracing::debug!("archive job {id} is already queued");
            return false;
        }
        self.wake();
        true
    }

    /// Tells every drive to look at the queues again.
    pub fn wake(&self) {
        self.wake.send_modify(|n| *n += 1);
    }
}

/// A tape file to read into a local file.
#[derive(Clone, Debug)]
pub struct ReadRequest {
    pub volume: String,
    pub seq: u32,
    pub dest: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadDone {
    pub bytes: u64,
    pub adler32: Adler32,
}

/// A read waiting for a drive, with the channel its answer goes to.
pub(crate) struct PendingRead {
    pub req: ReadRequest,
    /// Unpack the package into this sink instead of copying the tape file
    /// to `req.dest`.
    pub unpack: Option<Arc<dyn crate::members::MemberSink>>,
    pub since: Instant,
    pub attempts: u32,
    pub reply: oneshot::Sender<Result<ReadDone>>,
}

impl PendingRead {
    pub fn new(req: ReadRequest, since: Instant, reply: oneshot::Sender<Result<ReadDone>>) -> PendingRead {
        PendingRead {
            req,
            unpack: None,
            since,
            attempts: 0,
            reply,
        }
    }
}

impl Waiting for PendingRead {
    fn since(&self) -> Instant {
        self.since
    }
}

impl TapeRead for PendingRead {
    fn seq(&self) -> u32 {
        self.req.seq
    }

    /// Its receiver is gone: the caller stopped waiting (a cancelled stage).
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}
