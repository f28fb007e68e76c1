//! Stage requests: bulk staging as durable catalog rows. A request names
//! any number of files; each is resolved (a missing file, a directory or
//! one the user may not stage fails at once with its reason; a cached one
//! completes at once; a request whose every file is refused to its caller
//! is refused whole, and nothing is recorded), the request holds its files
//! in the cache for its lifetime (its own rows do: shown as pins of owner
//! `stage-request-ID`), and the stage worker turns the open files of
//! every request into the set of packages behind them and queues them to
//! the tape system in one step (each volume mounted once, its packages
//! read in position order).
//! A restart resumes every open file: nothing stays STARTED.

use crate::auth::Principal;
use crate::authz::Action;
use crate::service::Service;
use crate::{Error, Result};
use bale_catalog::{NewStageFile, StageFile, StageRequest, StageState};
use bale_util::{FileId, NsPath, Timestamp};
use std::collections::HashSet;
use std::time::Duration;

/// The default lifetime of a request's holds on its files.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Paths resolved at a time at a stage request's intake.
const INTAKE_SLICE: usize = 10_000;

/// The longest path kept of a file that failed at intake because its path
/// is not valid: the request shows the start of it with its error.
const KEPT_PATH: usize = bale_util::path::MAX_PATH_LEN;

/// A file of a new request from its path as sent and what it resolved to:
/// cached (completed at once), to stage (submitted), or failed with its
/// reason (a path that is not valid, missing, not readable).
fn new_stage_file(path: String, resolved: Result<bale_catalog::Node>) -> NewStageFile {
    match resolved {
        Ok(node) => NewStageFile {
            path,
            file_id: node.file_id,
            state: if node.cached {
                StageState::Completed
            } else {
                StageState::Submitted
            },
            error: None,
        },
        Err(e) => {
            // The row has the path: the reason need not say it again (a
            // million missing files, a million copies of their paths).
            let msg = e.to_string();
            let error = match msg.strip_prefix(path.as_str()) {
                Some(rest) if !path.is_empty() => rest.trim_start().to_string(),
                _ => msg,
            };
            let mut path = path;
            if path.len() > KEPT_PATH {
                let mut end = KEPT_PATH;
                while !path.is_char_boundary(end) {
                    end -= 1;
                }
                path.truncate(end);
                path.push_str("...");
                path.shrink_to_fit();
            }
            NewStageFile {
                path,
                file_id: None,
                state: StageState::Failed,
                error: Some(error),
            }
        }
    }
}

/// The refusal of a stage request none of whose `n` files its caller may
/// stage: the first file's reason.
fn all_refused(e: Error, n: usize) -> Error {
    if n == 1 {
        return e;
    }
    let say = |m: &str| format!("none of the {n} files of the request may be staged by its caller; the first: {m}");
    match e {
        Error::Forbidden(m) => Error::Forbidden(say(&m)),
        Error::InsufficientScope { scope, detail } => Error::InsufficientScope {
            scope,
            detail: say(&detail),
        },
        e => e,
    }
}

impl Service {
    /// Records a stage request for `paths` (as sent) by `who`; returns its id.
    pub async fn stage(&self, who: &Principal, paths: Vec<String>, lifetime: Option<Duration>) -> Result<i64> {
        if paths.is_empty() {
            return Err(Error::BadRequest("a stage request names at least one file".into()));
        }
        let lifetime = lifetime.unwrap_or(DEFAULT_LIFETIME);
        if lifetime.is_zero() || lifetime > Duration::from_secs(10 * 365 * 86_400) {
            return Err(Error::BadRequest(
                "a stage request's lifetime is more than 0 s and at most 10 years".into(),
            ));
        }
        let t = std::time::Instant::now();
        // Resolved a slice at a time, each path moved into its file: what
        // the intake holds beyond the request's own rows is one slice's
        // walks, whatever the request's size.
        let mut files = Vec::with_capacity(paths.len());
        let mut paths = paths.into_iter();
        // The first path refused to the caller, and whether any was not.
        let mut refusal: Option<Error> = None;
        let mut any_allowed = false;
        loop {
            let chunk: Vec<String> = paths.by_ref().take(INTAKE_SLICE).collect();
            if chunk.is_empty() {
                break;
            }
            let resolved = self.files_for(who, &chunk, crate::perms::Op::Stage).await?;
            for (p, r) in chunk.into_iter().zip(resolved) {
                match &r {
                    Err(e @ (Error::Forbidden(_) | Error::InsufficientScope { .. })) => {
                        refusal.get_or_insert_with(|| e.clone());
                    }
                    _ => any_allowed = true,
                }
                files.push(new_stage_file(p, r));
            }
        }
        // A request every file of which is refused to its caller is refused
        // whole (403, nothing recorded): authorization comes before the
        // operation, and a refusal changes nothing.
        if let (false, Some(e)) = (any_allowed, refusal) {
            return Err(all_refused(e, files.len()));
        }
        let resolved = t.elapsed();
        let now = Timestamp::now();
        let n = files.len();
        let wanted: Vec<FileId> = files
            .iter()
            .filter(|f| f.state == StageState::Submitted)
            .filter_map(|f| f.file_id)
            .collect();
        let id = self
            .catalog()
            .create_stage_request(
                &who.user,
                now,
                lifetime.as_secs(),
                files,
                self.config.server.max_stage_files_per_user,
            )
            .await?;
        bale_util::crash::point("stage.accepted");
        let now = Timestamp::now();
        for f in wanted {
            let mut e = bale_catalog::FileEvent::new(f, bale_catalog::EventKind::Requested, now);
            e.who = Some(who.user.clone());
            e.request = Some(format!("stage {id}"));
            self.events.add(e);
        }
        if n >= INTAKE_SLICE {
            // What the intake held is free now: given back, not kept.
            self.catalog().release_memory().await;
            bale_util::mem::trim_later().await;
        }
        tracing::debug!(
            "stage request {id}: {n} files resolved in {:.3} s, recorded in {:.3} s",
            resolved.as_secs_f64(),
            (t.elapsed() - resolved).as_secs_f64()
        );
        self.stager.wake.notify_one();
        Ok(id)
    }

    /// A request, for its requester or an administrator.
    pub async fn stage_status(&self, who: &Principal, id: i64) -> Result<StageRequest> {
        let req = self
            .catalog()
            .stage_request(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no stage request {id}")))?;
        crate::authz::allow_request(who, Action::StageStatus, id, &req.owner)?;
        Ok(req)
    }

    /// `paths` of request `id`, each required to be in it (else nothing
    /// changes); the request's files for that check (none without paths:
    /// then only the owner is checked, not a million rows read).
    async fn request_paths(
        &self,
        who: &Principal,
        action: Action,
        id: i64,
        paths: Option<&[String]>,
    ) -> Result<Vec<StageFile>> {
        let Some(paths) = paths else {
            self.request_owner_allows(who, action, id).await?;
            return Ok(Vec::new());
        };
        let req = self
            .catalog()
            .stage_request(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no stage request {id}")))?;
        crate::authz::allow_request(who, action, id, &req.owner)?;
        let known: HashSet<&str> = req.files.iter().map(|f| f.path.as_str()).collect();
        if let Some(p) = paths.iter().find(|p| !known.contains(p.as_str())) {
            return Err(Error::BadRequest(format!("{p} is not in stage request {id}")));
        }
        Ok(req.files)
    }

    /// Cancels the open files of a request (`paths` of it, or all). The
    /// package stages no other request (and no waiting reader) needs any
    /// more stop: a queued tape read is dropped before its mount, one under
    /// way stops at its next member.
    pub async fn cancel_stage(&self, who: &Principal, id: i64, paths: Option<&[String]>) -> Result<usize> {
        self.request_paths(who, Action::StageCancel, id, paths).await?;
        let n = self.catalog().cancel_stage_files(id, paths, Timestamp::now()).await?;
        if n > 0 {
            let stopped = self.stager.cancel_unneeded().await?;
            if stopped > 0 {
                tracing::info!("stage request {id} cancelled: {stopped} package stage(s) no longer needed stop");
            }
        }
        Ok(n)
    }

    /// Releases the request's holds (on `paths`, or all): those files may
    /// be purged again. Pins and other requests' holds stay.
    pub async fn release_stage(&self, who: &Principal, id: i64, paths: Option<&[String]>) -> Result<usize> {
        let files = self.request_paths(who, Action::StageRelease, id, paths).await?;
        let Some(paths) = paths else {
            return Ok(self.catalog().release_request(id).await?);
        };
        let ids: Vec<FileId> = files
            .iter()
            .filter(|f| paths.contains(&f.path))
            .filter_map(|f| f.file_id)
            .collect();
        Ok(self.catalog().release_holds(Some(id), &ids).await?)
    }

    /// Whether `who` may do `action` on request `id` (its owner read
    /// without its files).
    async fn request_owner_allows(&self, who: &Principal, action: Action, id: i64) -> Result<()> {
        let owner = self
            .catalog()
            .stage_request_owner(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no stage request {id}")))?;
        crate::authz::allow_request(who, action, id, &owner)
    }

    /// Cancels what is open, releases the holds and forgets the request.
    pub async fn delete_stage(&self, who: &Principal, id: i64) -> Result<()> {
        self.request_owner_allows(who, Action::StageDelete, id).await?;
        self.cancel_stage(who, id, None).await?;
        self.release_stage(who, id, None).await?;
        self.catalog().delete_stage_request(id).await?;
        // A large request's rows leave memory behind in the catalog's
        // caches and the allocator: given back now.
        self.catalog().release_memory().await;
        bale_util::mem::trim_later().await;
        Ok(())
    }
}

/// Where a request stands: files, bytes, packages and volumes done, and
/// the time left from the tape system's timing model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageProgress {
    pub files: u64,
    pub files_done: u64,
    pub files_failed: u64,
    pub files_cancelled: u64,
    /// Bytes of the files with a tape copy, and of those COMPLETED.
    pub bytes: u64,
    pub bytes_done: u64,
    /// Packages (and their volumes) behind the files; done when none of
    /// the request's files in them is open.
    pub packages: u64,
    pub packages_done: u64,
    pub volumes: u64,
    pub volumes_done: u64,
    /// Volumes still to mount, the modelled seconds left and the seconds
    /// this library takes for them (modelled × time scale).
    pub mounts_left: u64,
    pub modelled_s_left: f64,
    pub wall_s_left: f64,
}

impl Service {
    /// A request's progress (for its requester or an administrator).
    pub async fn stage_progress(&self, who: &Principal, id: i64) -> Result<StageProgress> {
        // Counted and summed in the catalog: a poll of a request of a
        // million files costs its packages, not its files.
        let (owner, counts) = self
            .catalog()
            .stage_request_counts(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no stage request {id}")))?;
        crate::authz::allow_request(who, Action::StageStatus, id, &owner)?;
        let mut p = StageProgress::default();
        for (state, n) in counts {
            p.files += n;
            match state {
                StageState::Completed => p.files_done += n,
                StageState::Failed => p.files_failed += n,
                StageState::Cancelled => p.files_cancelled += n,
                _ => {}
            }
        }
        let packages = self.catalog().stage_request_packages(id).await?;
        for sp in &packages {
            p.bytes += sp.bytes;
            p.bytes_done += sp.bytes_done;
        }
        let mut volumes: std::collections::HashMap<&str, bool> = Default::default();
        for sp in &packages {
            *volumes.entry(sp.package.volume.as_str()).or_default() |= sp.open;
            p.packages_done += u64::from(!sp.open);
        }
        let left = pending(&packages);
        p.packages = packages.len() as u64;
        p.volumes = volumes.len() as u64;
        p.volumes_done = volumes.values().filter(|open| !**open).count() as u64;
        if !left.is_empty() {
            let e = self.tape().estimate_reads(&left);
            p.mounts_left = e.mounts as u64;
            p.modelled_s_left = e.modelled_s;
            p.wall_s_left = e.wall_s;
        }
        Ok(p)
    }
}

/// The packages a request still waits for, as the tape model takes them.
fn pending(packages: &[bale_catalog::StagePackage]) -> Vec<bale_tape::PendingPackage> {
    packages
        .iter()
        .filter(|sp| sp.open)
        .map(|sp| bale_tape::PendingPackage {
            volume: sp.package.volume.clone(),
            position: sp.package.position,
            size: sp.package.size,
        })
        .collect()
}

impl Service {
    /// The seconds request `id` has left by the tape model (its packages
    /// only: for a caller who listed it, so may see it).
    pub(crate) async fn stage_time_left(&self, id: i64) -> Result<f64> {
        let left = pending(&self.catalog().stage_request_packages(id).await?);
        Ok(match left.is_empty() {
            true => 0.0,
            false => self.tape().estimate_reads(&left).wall_s,
        })
    }
}

impl Service {
    /// Releases the stage requests' holds on `paths`, whichever requests
    /// took them (clients that lost a request id release by path).
    pub async fn release_paths(&self, who: &Principal, paths: &[String]) -> Result<usize> {
        let mut ids = Vec::with_capacity(paths.len());
        for p in paths {
            let node = self.stageable(who, &NsPath::parse(p)?).await?;
            ids.push(node.file_id.expect("a file"));
        }
        Ok(self.catalog().release_holds(None, &ids).await?)
    }
}
