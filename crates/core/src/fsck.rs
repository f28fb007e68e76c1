//! `bale fsck`: the catalog and the cache checked against each other, on
//! demand, while the server runs. Without `repair` it only reports (the
//! plan: each problem with what a repair would do); with it, it does that:
//!
//! - a cached file whose data is missing, of the wrong size or (with
//!   `checksums`) damaged, and which has a tape copy: recorded as not
//!   cached (a read stages it back from tape) and the bad data removed;
//!   without a tape copy it is lost: an alarm, and nothing is touched;
//! - data under `files/` that no file claims (an orphan): set aside in
//!   `cache/lost+found/`, never deleted;
//! - data of a file the catalog says was purged (a purge cut short after
//!   its catalog commit): removed, the file is on tape.
//!
//! Work in flight is not mistaken for damage: files still landing are
//! skipped, data younger than a minute (by ctime, which a rename into
//! `files/` sets) is not judged, and every problem is looked at again in
//! the catalog before it is reported or repaired.
//!
//! After a start that followed a crash (no clean stop recorded), the same
//! check runs once with repair in the background
//! ([`crate::workers::CrashCheck`]), judging all data changed before the
//! start: what a crash cut short between a catalog commit and the cache (a
//! purge, a stage, the removal of a deleted or overwritten file's data) is
//! finished there.

use crate::auth::Principal;
use crate::error::io_err;
use crate::service::Service;
use crate::{Error, Result};
use bale_catalog::Node;
use bale_util::{FileId, Timestamp};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Clone, Debug, Default, Serialize)]
pub struct FsckReport {
    /// Cached files checked against their data.
    pub files_checked: u64,
    /// Of them, whose data was read and checksummed.
    pub files_checksummed: u64,
    /// Of them, not judged: their data changed within `settle_s` (a write
    /// or a stage may still be under way).
    pub files_too_young: u64,
    /// `cache.fsck_settle_s`: how old data must be to be judged.
    pub settle_s: u64,
    /// Data files found in the cache.
    pub data_files: u64,
    /// Volumes whose media were checked against the catalog.
    pub volumes_checked: u64,
    /// Whether repairs were made.
    pub repair: bool,
    pub problems: Vec<FsckProblem>,
}

impl FsckReport {
    /// Problems left: all of them without `repair`, the unrepaired ones with it.
    pub fn unresolved(&self) -> usize {
        self.problems.iter().filter(|p| !p.repaired).count()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FsckProblem {
    /// "missing", "wrong size", "bad checksum", "orphan", "stale copy",
    /// "tape files missing".
    pub kind: &'static str,
    /// The file's path, when a file is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    pub detail: String,
    /// What a repair does (or did).
    pub repair: String,
    pub repaired: bool,
}

/// The data of a cached file, as found.
enum Data {
    Good,
    Missing,
    WrongSize(u64),
    BadChecksum,
    /// Too young to judge.
    InFlight,
}

/// When a cache file last changed (its ctime), in nanoseconds.
fn changed_ns(meta: &std::fs::Metadata) -> i64 {
    meta.ctime() * 1_000_000_000 + meta.ctime_nsec()
}

impl Service {
    pub async fn fsck(&self, who: &Principal, repair: bool, checksums: bool) -> Result<FsckReport> {
        crate::authz::allow(who, crate::authz::Action::Fsck)?;
        let target = format!(
            "{}{}",
            if repair { "repair" } else { "check" },
            if checksums { ", checksums" } else { "" }
        );
        let run = async {
            let settle = self.config.cache.fsck_settle_s as i64 * 1_000_000_000;
            let mut report = self.check_cache(repair, checksums, Timestamp::now().0 - settle).await?;
            report.settle_s = self.config.cache.fsck_settle_s;
            self.check_volumes(repair, &mut report).await?;
            Ok(report)
        };
        self.audited(who, crate::authz::Action::Fsck, &target, run, |r| {
            format!("{} problem(s)", r.problems.len())
        })
        .await
    }

    /// Every volume's media against the catalog: tape files the catalog
    /// records that the media no longer holds are lost copies. A repair
    /// marks their packages bad (with an error alarm); the repair worker
    /// then rewrites their files from good copies or the cache. (Tape
    /// files past the catalog's end of data are writes not yet recorded,
    /// or interrupted ones the next start cuts off: not judged here.)
    async fn check_volumes(&self, repair: bool, report: &mut FsckReport) -> Result<()> {
        for v in self.catalog.volumes().await? {
            let tape = self.tape.clone();
            let label = v.label.clone();
            let media = tokio::task::spawn_blocking(move || tape.media_end_of_data(&label))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            let Some(media) = media else { continue };
            report.volumes_checked += 1;
            if media >= v.tape_files {
                continue;
            }
            let lost: Vec<bale_catalog::Package> = self
                .catalog
                .packages(Some(&v.label))
                .await?
                .into_iter()
                .filter(|p| p.seq >= media && p.bad.is_none())
                .collect();
            let mut p = FsckProblem {
                kind: "tape files missing",
                path: None,
                file_id: None,
                detail: format!(
                    "volume {} holds {}; the catalog records {}",
                    v.label,
                    bale_util::human::plural(media as u64, "tape file"),
                    v.tape_files
                ),
                repair: format!(
                    "mark the packages of the missing tape files bad ({}): their files are rewritten from good copies",
                    lost.len()
                ),
                repaired: false,
            };
            if repair {
                let why = format!("tape file missing from volume {} (fsck)", v.label);
                for pkg in &lost {
                    crate::stager::copy_found_bad(&self.catalog, pkg, &why).await?;
                }
                self.stager.repair_wake.notify_one();
                p.repaired = true;
            }
            report.problems.push(p);
        }
        Ok(())
    }

    /// The check itself: data changed at or after `settled_before` (ns) is
    /// in flight and not judged.
    pub(crate) async fn check_cache(&self, repair: bool, checksums: bool, settled_before: i64) -> Result<FsckReport> {
        self.check_cache_at_rate(repair, checksums, settled_before, None).await
    }

    /// [`Self::check_cache`], the checksums' reads held to `rate` bytes a
    /// second (`bale verify --cache --rate`).
    pub(crate) async fn check_cache_at_rate(
        &self,
        repair: bool,
        checksums: bool,
        settled_before: i64,
        rate: Option<u64>,
    ) -> Result<FsckReport> {
        let throttle = std::sync::Arc::new(std::sync::Mutex::new(bale_util::throttle::Throttle::new(rate)));
        let mut report = FsckReport {
            repair,
            ..FsckReport::default()
        };
        let landing = self.landing_ids().await?;
        let settle = settled_before;

        // 1. Every cached file against its data.
        let mut bad: Vec<(Node, Data)> = Vec::new();
        let mut after = 0;
        loop {
            let page = self.catalog.cached_files(after, 10_000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            let (cache, sum, throttle) = (self.cache.clone(), checksums, throttle.clone());
            let judged = tokio::task::spawn_blocking(move || {
                page.into_iter()
                    .filter(|n| n.file_id.is_some())
                    .map(|n| {
                        let d = judge(&cache, &n, sum, settle);
                        if sum {
                            throttle.lock().unwrap().take(n.size);
                        }
                        (n, d)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
            for (n, d) in judged {
                report.files_checked += 1;
                if checksums && !matches!(d, Data::Missing | Data::InFlight) {
                    report.files_checksummed += 1;
                }
                if matches!(d, Data::InFlight) {
                    report.files_too_young += 1;
                }
                if !matches!(d, Data::Good | Data::InFlight) && !landing.contains(&n.file_id.expect("a file")) {
                    bad.push((n, d));
                }
            }
        }
        for (n, d) in bad {
            let id = n.file_id.expect("a file");
            // Looked at again: deleted, purged or rewritten meanwhile is no problem.
            let Some(now) = self.catalog.node_by_file_id(id).await? else {
                continue;
            };
            let (c, n2) = (self.cache.clone(), now.clone());
            let again = tokio::task::spawn_blocking(move || judge(&c, &n2, checksums, settle))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
            if !now.cached || matches!(again, Data::Good | Data::InFlight) {
                continue;
            }
            let (kind, detail) = match d {
                Data::Missing => ("missing", "the catalog says cached; the cache has no data".to_string()),
                Data::WrongSize(got) => (
                    "wrong size",
                    format!("{got} bytes in the cache, {} in the catalog", n.size),
                ),
                _ => (
                    "bad checksum",
                    "the cache's data does not match the catalog's adler32".to_string(),
                ),
            };
            let on_tape = self
                .catalog
                .tape_copies(id)
                .await?
                .iter()
                .any(|c| c.package.bad.is_none());
            let path = self.catalog.path_of(now.id).await.ok().map(|p| p.to_string());
            let mut p = FsckProblem {
                kind,
                path: path.clone(),
                file_id: Some(id.to_string()),
                detail,
                repair: if on_tape {
                    "record it as not cached (a read stages it back from tape) and remove the bad data".into()
                } else {
                    "none: no tape copy, the file is lost (alarm raised on repair)".into()
                },
                repaired: false,
            };
            if repair {
                if on_tape && self.catalog.mark_copies_lost(&[id]).await? == [id] {
                    self.cache.remove(id).map_err(io_err("cannot remove bad cache data"))?;
                    p.repaired = true;
                } else if !on_tape {
                    let msg = format!(
                        "{} (file id {id}): {kind}: no good cache copy and no tape copy; the file is lost",
                        path.as_deref().unwrap_or("a deleted file")
                    );
                    self.catalog.raise_alarm("error", "cache", &msg).await?;
                }
            }
            report.problems.push(p);
        }

        // 2. Every data file against the catalog.
        let cache = self.cache.clone();
        let (ids, junk) = tokio::task::spawn_blocking(move || cache.stored())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(io_err("cannot list the cache"))?;
        report.data_files = (ids.len() + junk.len()) as u64;
        let settled = |path: &Path| {
            std::fs::symlink_metadata(path)
                .map(|m| changed_ns(&m) < settle)
                .unwrap_or(false)
        };
        for path in junk.iter().filter(|p| settled(p)) {
            self.set_aside(&mut report, path, None, "not a file bale wrote").await?;
        }
        for chunk in ids.chunks(10_000) {
            let live: HashMap<FileId, (Node, String)> = self
                .catalog
                .files_with_paths(chunk)
                .await?
                .into_iter()
                .filter_map(|(n, p)| n.file_id.map(|id| (id, (n, p))))
                .collect();
            for &id in chunk {
                // Data of a cached file is what step 1 checked; only the
                // rest is looked at (and stat-ed) here.
                if live.get(&id).is_some_and(|(n, _)| n.cached) {
                    continue;
                }
                let path = self.cache.file_path(id);
                if !settled(&path) {
                    continue;
                }
                match live.get(&id) {
                    Some((_, file)) => {
                        // Purged in the catalog, data still here: a purge cut short.
                        let Some(now) = self.catalog.node_by_file_id(id).await? else {
                            continue;
                        };
                        if now.cached || self.catalog.tape_copies(id).await?.is_empty() {
                            continue;
                        }
                        let mut p = FsckProblem {
                            kind: "stale copy",
                            path: Some(file.clone()),
                            file_id: Some(id.to_string()),
                            detail: "data of a file the catalog says was purged".into(),
                            repair: "remove it: the file is on tape".into(),
                            repaired: false,
                        };
                        if repair {
                            self.cache
                                .remove(id)
                                .map_err(io_err("cannot remove stale cache data"))?;
                            p.repaired = true;
                        }
                        report.problems.push(p);
                    }
                    None => {
                        if self.catalog.node_by_file_id(id).await?.is_none() {
                            self.set_aside(&mut report, &path, Some(id), "no file has this id")
                                .await?;
                        }
                    }
                }
            }
        }
        Ok(report)
    }

    /// Reports an orphan and, when repairing, sets it aside.
    async fn set_aside(&self, report: &mut FsckReport, path: &Path, id: Option<FileId>, why: &str) -> Result<()> {
        let mut p = FsckProblem {
            kind: "orphan",
            path: None,
            file_id: id.map(|i| i.to_string()),
            detail: format!("{}: {why}", path.display()),
            repair: "set it aside in the cache's lost+found/ (never deleted)".into(),
            repaired: false,
        };
        if report.repair {
            let to = self
                .cache
                .set_aside(path)
                .map_err(io_err("cannot set cache data aside"))?;
            p.detail = format!("{} (now {})", p.detail, to.display());
            p.repaired = true;
        }
        report.problems.push(p);
        Ok(())
    }

    /// Files still landing on this node: their cache copies may not be in
    /// place yet.
    async fn landing_ids(&self) -> Result<HashSet<FileId>> {
        let node = crate::service::node_id(&self.config)?;
        Ok(self
            .catalog
            .landing_files(&node)
            .await?
            .into_iter()
            .map(|l| l.id)
            .collect())
    }
}

/// The data of cached file `n` as found in `cache` (not judged when changed
/// at or after `settle`, ns).
fn judge(cache: &bale_cache::Cache, n: &Node, checksums: bool, settle: i64) -> Data {
    let id = n.file_id.expect("a file");
    let path = cache.file_path(id);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(_) => return Data::Missing,
    };
    if changed_ns(&meta) >= settle {
        return Data::InFlight;
    }
    if meta.len() != n.size {
        return Data::WrongSize(meta.len());
    }
    if checksums {
        let sum = n.adler32.unwrap_or(bale_util::Adler32(1));
        if !cache.data_matches(id, n.size, sum).unwrap_or(false) {
            return Data::BadChecksum;
        }
    }
    Data::Good
}

#[async_trait::async_trait]
impl crate::workers::CacheCheck for Service {
    async fn check_after_crash(&self, settled_before: i64) -> Result<(u64, u64)> {
        let report = self.check_cache(true, false, settled_before).await?;
        for p in &report.problems {
            tracing::info!(
                "crash check: {} {}: {}; {}{}",
                p.kind,
                p.path.as_deref().or(p.file_id.as_deref()).unwrap_or(""),
                p.detail,
                p.repair,
                if p.repaired { " (done)" } else { " (NOT done)" }
            );
        }
        let repaired = report.problems.iter().filter(|p| p.repaired).count() as u64;
        Ok((report.problems.len() as u64, repaired))
    }
}
