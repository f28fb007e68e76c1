//! What is where: a file's way to tape, the policy's verdict for a path,
//! recorded packages and their members (paths only where the user may see them).

use crate::auth::Principal;
use crate::perms::{self, check, may_stat, Op, Resolved};
use crate::service::Service;
use crate::{Error, Result};
use bale_catalog::{JobState, Node, Package, PackageMember, TapeCopy};
use bale_policy::FileFacts;
use bale_util::{FileId, NsPath};

/// Where a file stands on its way to tape.
#[derive(Clone, Debug)]
pub struct ArchiveStatus {
    /// "cached" (not on its way to tape), "pooled" (waiting in a pool),
    /// "queued" (in an archive job), "failed", "copying" (a copy is on
    /// tape, another copy or the rewrite of a bad one is queued),
    /// "archived" (every copy written, one good at least) or "bad" (every
    /// tape copy found bad).
    pub state: &'static str,
    /// The open pool the file waits in.
    pub pool: Option<String>,
    /// The archive job while there is one.
    pub job: Option<i64>,
    /// The last error of the job, if an attempt failed.
    pub error: Option<String>,
    /// Its tape copies: volume, tape file, offset.
    pub copies: Vec<TapeCopy>,
}

/// A recorded package with its members' paths (`bale package show`).
#[derive(Clone, Debug)]
pub struct PackageView {
    pub package: Package,
    pub members: Vec<MemberView>,
}

#[derive(Clone, Debug)]
pub struct MemberView {
    pub member: PackageMember,
    /// The file's path now; `None` once deleted (its bytes are dead), or
    /// when the user may not see it (then `hidden`, and only the file id shows).
    pub path: Option<String>,
    /// The member is a live file whose path the user may not see.
    pub hidden: bool,
}

impl Service {
    /// The entry at `path` if `who` may stat it, and where it stands on
    /// its way to tape when it is a file: the walk and the copies are one
    /// catalog read.
    pub async fn stat_archive(&self, who: &Principal, path: &NsPath) -> Result<(Node, Option<ArchiveStatus>)> {
        let (chain, copies) = self.catalog.walk_with_copies(path).await?;
        let r = Resolved::new(path.clone(), chain);
        check(who, Op::Stat, &r)?;
        let node = r.into_node().expect("checked");
        let status = self.archive_status_with(&node, copies).await?;
        Ok((node, status))
    }

    /// Where a file stands on its way to tape, given its tape copies.
    async fn archive_status_with(&self, node: &Node, copies: Vec<TapeCopy>) -> Result<Option<ArchiveStatus>> {
        let Some(id) = node.file_id else { return Ok(None) };
        // A file with a copy may still have one to write (several tape
        // copies) or one to rewrite (a bad copy): its job says so. The
        // copies say whether there is one, so an archived file needs no
        // second look.
        let job = if copies.is_empty() || copies.iter().any(|c| c.file_in_job) {
            self.catalog.job_of(id).await?
        } else {
            None
        };
        let good = copies.iter().any(|c| c.package.bad.is_none());
        let pool = if copies.is_empty() && job.is_none() {
            self.catalog.pool_of(id).await?
        } else {
            None
        };
        let state = match (&copies[..], &job, &pool) {
            ([_, ..], None, _) if good => "archived",
            ([_, ..], None, _) => "bad",
            ([_, ..], Some(j), _) if j.state == JobState::Failed => "failed",
            ([_, ..], Some(_), _) => "copying",
            ([], Some(j), _) if j.state == JobState::Failed => "failed",
            ([], Some(_), _) => "queued",
            ([], None, Some(_)) => "pooled",
            ([], None, None) => "cached",
        };
        Ok(Some(ArchiveStatus {
            state,
            pool,
            job: job.as_ref().map(|j| j.id),
            error: job.and_then(|j| j.error),
            copies,
        }))
    }

    /// How the policy would route a file at `path` of `size` bytes owned by
    /// `owner`: the file need not exist; the tags are those of the nearest
    /// existing directory on the path (what a new file there would get).
    pub async fn policy_check(
        &self,
        who: &Principal,
        path: &NsPath,
        size: u64,
        owner: &str,
        group: &str,
    ) -> Result<crate::archive::Explanation> {
        // The nearest existing directory above the (maybe imaginary) file,
        // if `who` may see it.
        let chain = self.catalog.walk(path).await?;
        let known = chain.len().min(path.depth().max(1));
        let prefix = |i: usize| format!("/{}", path.components().take(i).collect::<Vec<_>>().join("/"));
        if let Some(i) = chain[..known].iter().position(|n| !n.is_dir()) {
            return Err(Error::Conflict(format!("{} is a file, not a directory", prefix(i))));
        }
        let nearest = known - 1;
        check(
            who,
            Op::Stat,
            &Resolved::new(NsPath::parse(&prefix(nearest))?, chain[..=nearest].to_vec()),
        )?;
        let tags = chain[nearest].tags.clone();
        self.archiver.explain(&FileFacts {
            path: path.as_str(),
            size,
            owner,
            group,
            tags: &tags,
        })
    }

    /// Recorded packages, all or on one volume.
    pub async fn packages(&self, who: &Principal, volume: Option<&str>) -> Result<Vec<Package>> {
        crate::authz::allow(who, crate::authz::Action::Packages)?;
        if let Some(v) = volume {
            if self.catalog.volume(v).await?.is_none() {
                return Err(Error::NotFound(format!("no volume {v:?}")));
            }
        }
        Ok(self.catalog.packages(volume).await?)
    }

    /// A package with its members and their paths.
    pub async fn package(&self, who: &Principal, id: &str) -> Result<PackageView> {
        crate::authz::allow(who, crate::authz::Action::Packages)?;
        let (package, members) = self
            .catalog
            .package(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no package {id:?}; bale packages lists them")))?;
        // Every live member's path in one catalog read; a user who is not
        // an administrator sees only the paths they may stat (a walk each,
        // the directories' answers remembered).
        let ids: Vec<FileId> = members.iter().map(|m| m.file_id).collect();
        let mut paths: std::collections::HashMap<FileId, String> = self
            .catalog
            .files_with_paths(&ids)
            .await?
            .into_iter()
            .filter_map(|(n, p)| Some((n.file_id?, p)))
            .collect();
        let mut dir_visible: std::collections::HashMap<NsPath, bool> = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let (path, hidden) = match paths.remove(&m.file_id) {
                None => (None, false),
                Some(path) if perms::sees_everything(who) => (Some(path), false),
                // A path not valid (an older catalog's) cannot be walked:
                // hidden from all but administrators.
                Some(path) => match NsPath::parse(&path) {
                    Err(_) => (None, true),
                    Ok(path) => {
                        let dir = path.parent().unwrap_or_else(NsPath::root);
                        let visible = match dir_visible.get(&dir) {
                            Some(v) => *v,
                            None => {
                                let v = may_stat(who, &Resolved::new(path.clone(), self.catalog.walk(&path).await?));
                                dir_visible.insert(dir, v);
                                v
                            }
                        };
                        if visible {
                            (Some(path.to_string()), false)
                        } else {
                            (None, true)
                        }
                    }
                },
            };
            out.push(MemberView {
                member: m,
                path,
                hidden,
            });
        }
        Ok(PackageView { package, members: out })
    }
}

/// Where a file's data is (the WLCG Tape REST API's `locality`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locality {
    /// In the cache only (not on tape yet).
    Disk,
    /// On tape only (purged from the cache).
    Tape,
    DiskAndTape,
    /// An empty file: no data anywhere.
    None,
    /// Neither cached nor on tape (should never be).
    Lost,
    /// On tape only, and no tape copy is readable now.
    Unavailable,
}

impl Locality {
    pub fn as_str(self) -> &'static str {
        match self {
            Locality::Disk => "DISK",
            Locality::Tape => "TAPE",
            Locality::DiskAndTape => "DISK_AND_TAPE",
            Locality::None => "NONE",
            Locality::Lost => "LOST",
            Locality::Unavailable => "UNAVAILABLE",
        }
    }
}

impl Service {
    /// The locality of each path, in order; a path that is not a file
    /// `who` may stat gets its error instead. Never refuses a long list.
    pub async fn archive_info(&self, who: &Principal, paths: &[String]) -> Result<Vec<(String, Result<Locality>)>> {
        let readable: std::collections::HashMap<String, bool> = self
            .tape
            .volumes()
            .into_iter()
            .map(|v| (v.volume.label.clone(), v.volume.state.readable()))
            .collect();
        // Every path parsed, walked (in bulk) and checked on its own.
        let nodes: Vec<Result<Node>> = self
            .resolve_many(paths)
            .await?
            .into_iter()
            .map(|r| {
                let r = r?;
                check(who, Op::Stat, &r)?;
                let node = r.node().expect("checked").clone();
                match node.file_id {
                    Some(_) => Ok(node),
                    None => Err(Error::IsADirectory(format!("{} is a directory", r.path))),
                }
            })
            .collect();
        // The volumes of every copy, in one round trip.
        let ids: Vec<FileId> = nodes.iter().filter_map(|n| n.as_ref().ok()?.file_id).collect();
        let mut copies: std::collections::HashMap<FileId, Vec<String>> = std::collections::HashMap::new();
        for chunk in ids.chunks(10_000) {
            for (id, volume) in self.catalog.copy_volumes(chunk).await? {
                copies.entry(id).or_default().push(volume);
            }
        }
        Ok(paths
            .iter()
            .zip(nodes)
            .map(|(p, n)| {
                let l = n.map(|node| {
                    let vols = node.file_id.and_then(|id| copies.get(&id));
                    match (node.size, node.cached, vols) {
                        (0, _, _) => Locality::None,
                        (_, true, None) => Locality::Disk,
                        (_, true, Some(_)) => Locality::DiskAndTape,
                        (_, false, None) => Locality::Lost,
                        (_, false, Some(v)) if v.iter().any(|v| readable.get(v) == Some(&true)) => Locality::Tape,
                        (_, false, Some(_)) => Locality::Unavailable,
                    }
                });
                (p.clone(), l)
            })
            .collect())
    }
}
