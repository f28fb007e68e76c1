//! `bale recover`: catalog entries rebuilt from the tapes alone.
//!
//! Every package begins with a manifest naming each member's file id,
//! path, size, adler32, owner, group, mode and times, and its offset in the
//! tape file (and, for packages written since schema v13, the file
//! family). `recover --all` reads every volume of every configured library
//! through (each member checked against its adler32 as it streams by) and
//! rebuilds a whole catalog into an empty one: volumes, packages and
//! members at their positions, and the namespace with every file recorded
//! as on tape only (a read stages it). `recover --volume L` does the same
//! for one volume into an existing catalog that does not know it (a volume
//! from another site, a catalog that lost it); a file whose id the catalog
//! has already, or whose path is taken, is skipped with its reason.
//!
//! What a rebuild cannot know, and how it decides:
//!
//! - Several packages name the same path: the newest manifest (by its
//!   creation time) wins; an overwrite packed later replaces the earlier
//!   file. Copies of one file (the same id in several libraries) are one
//!   file with several tape copies.
//! - A delete or rename made AFTER a file was packed is not on tape: the
//!   rebuilt catalog has the file again, at the path it had when it was
//!   packed (the limit, shown by a test). Its dead members are what the
//!   live catalog counted; a rebuild counts none.
//! - Directories get the owner and group of the first file found under
//!   them and mode 0755, no tags; a volume is bound to the family its
//!   packages name ("default.default.tar" for packages from before the
//!   family was recorded).
//! - A tape file that does not read as a package (a damaged manifest or
//!   member) is recorded as a bad package without members, so that the
//!   volume's end of data stays where the media says.
//!
//! It runs offline, against the data directory and catalog a stopped
//! server would use: it refuses while the running marker is there, and
//! claims the catalog as a node for its duration.

use crate::config::Config;
use crate::{Error, Result};
use bale_catalog::{
    CatalogClaim, DeadProp, DynCatalog, Family, ImportNode, ImportParent, NewMember, NewPackage, NewVolume, NodeId,
    NodeKind, PropChange, Tags, TapeStats, VolumeState, VolumeWrite, ROOT_ID,
};
use bale_pack::MemberMeta;
use bale_tape::scan::{self, ScannedVolume};
use bale_util::dirlock::{DirLock, LockError};
use bale_util::{NsPath, Timestamp};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// What `bale recover` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoverTarget {
    /// Every volume of every configured library, into an empty catalog.
    All,
    /// One volume, into a catalog that does not know it.
    Volume(String),
}

/// A file found on tape and not recorded, with why.
#[derive(Clone, Debug, Serialize)]
pub struct SkippedFile {
    pub path: String,
    pub file_id: String,
    pub why: String,
}

/// What a rebuild did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecoverReport {
    pub volumes: Vec<String>,
    pub tape_files: u64,
    /// Tape files recorded as packages with members.
    pub packages: u64,
    /// Files recorded in the namespace.
    pub files: u64,
    pub directories: u64,
    pub bytes: u64,
    /// Files not recorded because of a problem (a bad path, a path or id
    /// the catalog has already).
    pub skipped: Vec<SkippedFile>,
    /// Earlier versions of a path that a later package holds (an
    /// overwrite): not recorded, as in the catalog that wrote them.
    pub superseded: Vec<SkippedFile>,
    /// Tape files that do not read as packages: "VOLUME tape file N: why".
    pub unreadable: Vec<String>,
}

/// The newest file found for a path.
struct Found {
    meta: MemberMeta,
    created: Timestamp,
}

/// Rebuilds catalog entries from tape (see the module).
pub async fn recover(config: &Config, target: RecoverTarget) -> Result<RecoverReport> {
    config.validate().map_err(|e| Error::BadRequest(e.to_string()))?;
    bale_util::durable::create_dir_all_durable(&config.data_dir)
        .map_err(|e| Error::Internal(format!("cannot create {}: {e}", config.data_dir.display())))?;
    // Offline: no server may run on the directory meanwhile (held for the
    // whole rebuild).
    let _lock = DirLock::acquire(&config.data_dir, &format!("bale recover, pid {}", std::process::id())).map_err(
        |e| match e {
            LockError::Held { dir, holder } => Error::Conflict(format!(
                "{} is in use by a running process ({holder}); recover works on a stopped server",
                dir.display()
            )),
            e => Error::Internal(e.to_string()),
        },
    )?;
    let marker = config.data_dir.join("RUNNING");
    if marker.exists() {
        return Err(Error::Conflict(format!(
            "{} exists: the server on {} did not stop cleanly; start it and stop it first \
             (recover works on a cleanly stopped server)",
            marker.display(),
            config.data_dir.display()
        )));
    }
    // What is on the media, before anything is written.
    let (tape, dir) = (config.tape.clone(), config.data_dir.clone());
    let labels = tokio::task::spawn_blocking(move || scan::labels(&tape, &dir))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| {
            Error::BadRequest(format!(
                "cannot read the libraries: {e} (recover reads the tapes of every configured library: \
                 an emulated library is the directory `library` under the data directory unless its \
                 path says otherwise; copy or mount it there first)"
            ))
        })?;
    let chosen: Vec<_> = match &target {
        RecoverTarget::All => labels,
        RecoverTarget::Volume(l) => {
            let found: Vec<_> = labels.into_iter().filter(|(_, x)| &x.label == l).collect();
            if found.is_empty() {
                return Err(Error::NotFound(format!(
                    "no volume {l:?} in any configured library's media"
                )));
            }
            found
        }
    };
    let catalog = bale_catalog::open(&config.catalog_spec()).await?;
    let claim = CatalogClaim {
        node: format!("recover-{}", uuid::Uuid::now_v7()),
        instance: uuid::Uuid::now_v7().to_string(),
        predecessor: String::new(),
        host: format!("bale recover, pid {}", std::process::id()),
        now: Timestamp::now(),
        stale_ns: 60_000_000_000,
    };
    catalog
        .claim_catalog(&claim)
        .await
        .map_err(|e| Error::Conflict(format!("the catalog is in use: {e}")))?;
    let r = rebuild(&catalog, config, &target, chosen).await;
    let _ = catalog.release_catalog(&claim.node, &claim.instance).await;
    r
}

async fn rebuild(
    catalog: &DynCatalog,
    config: &Config,
    target: &RecoverTarget,
    chosen: Vec<(String, bale_tape::backend::Label)>,
) -> Result<RecoverReport> {
    let known = catalog.volumes().await?;
    match target {
        RecoverTarget::All => {
            let entries = catalog.list(ROOT_ID, None, 1).await?;
            if !known.is_empty() || !entries.is_empty() {
                return Err(Error::Conflict(format!(
                    "recover --all rebuilds into an empty catalog; this one has {} and {} \
                     (use an empty data directory or database, or recover --volume)",
                    bale_util::human::plural(known.len() as u64, "volume"),
                    if entries.is_empty() { "no entries" } else { "entries" }
                )));
            }
        }
        RecoverTarget::Volume(l) => {
            if let Some(v) = known.iter().find(|v| &v.label == l) {
                if v.tape_files > 0 {
                    return Err(Error::Conflict(format!(
                        "volume {l} has {} in the catalog already; recover reads volumes the \
                         catalog does not know",
                        bale_util::human::plural(v.tape_files as u64, "tape file")
                    )));
                }
            }
        }
    }
    let mut report = RecoverReport::default();
    let mut scanned: Vec<ScannedVolume> = Vec::new();
    for (library, label) in chosen {
        let (tape, dir) = (config.tape.clone(), config.data_dir.clone());
        let v = tokio::task::spawn_blocking(move || scan::scan_volume(&tape, &dir, &library, &label))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(format!("reading a volume failed: {e}")))?;
        tracing::info!("recover: read volume {}: {} tape file(s)", v.label.label, v.files.len());
        scanned.push(v);
    }

    // The newest file for each path; copies of one file are one file.
    let mut by_path: BTreeMap<String, Found> = BTreeMap::new();
    let mut losers: Vec<(MemberMeta, String)> = Vec::new();
    for v in &scanned {
        for f in &v.files {
            let Ok(m) = &f.manifest else { continue };
            for member in &m.members {
                let meta = &member.meta;
                match by_path.get(&meta.path) {
                    Some(old) if old.meta.file_id == meta.file_id => {}
                    Some(old) if old.created >= m.created => losers.push((
                        meta.clone(),
                        format!("a later package (created at {} ns) holds {}", old.created.0, meta.path),
                    )),
                    _ => {
                        if let Some(old) = by_path.insert(
                            meta.path.clone(),
                            Found {
                                meta: meta.clone(),
                                created: m.created,
                            },
                        ) {
                            losers.push((
                                old.meta.clone(),
                                format!(
                                    "a later package (created at {} ns) holds {}",
                                    m.created.0, old.meta.path
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    let skipped_file = |meta: &MemberMeta, why: String| SkippedFile {
        path: meta.path.clone(),
        file_id: meta.file_id.to_string(),
        why,
    };
    let mut seen = std::collections::HashSet::new();
    for (meta, why) in losers {
        if seen.insert(meta.file_id) {
            report.superseded.push(skipped_file(&meta, why));
        }
    }
    let mut skipped: Vec<SkippedFile> = Vec::new();
    let mut skip = |meta: &MemberMeta, why: String| skipped.push(skipped_file(meta, why));

    // The namespace: directories first (existing ones looked up), then
    // the files, each import one transaction.
    // A path that is a file in one manifest and a directory of files in
    // another: the directory wins (it holds more), the file is skipped.
    let dir_paths: std::collections::HashSet<&str> = by_path
        .keys()
        .flat_map(|p| p.match_indices('/').skip(1).map(move |(i, _)| &p[..i]))
        .collect();
    let mut dirs: HashMap<String, Parent> = HashMap::new();
    dirs.insert("/".into(), Parent::Node(ROOT_ID));
    let mut dir_entries: Vec<ImportNode> = Vec::new();
    let mut files: Vec<(String, String, MemberMeta)> = Vec::new(); // (parent path, name, meta)
    for (path, f) in &by_path {
        let p = match NsPath::parse(path) {
            // Only paths as bale writes them (normalized): another spelling
            // of a path could meet its twin in the import.
            Ok(p) if p.depth() > 0 && p.as_str() == path => p,
            Ok(_) | Err(_) => {
                skip(&f.meta, format!("{path:?} is not a valid file path"));
                continue;
            }
        };
        if dir_paths.contains(path.as_str()) {
            skip(&f.meta, format!("{path} is also a directory of other files on tape"));
            continue;
        }
        if crate::reserved::check_reserved(&p).is_err() {
            skip(&f.meta, format!("{path} is under a name the server keeps"));
            continue;
        }
        if matches!(target, RecoverTarget::Volume(_)) {
            if catalog.node_by_file_id(f.meta.file_id).await?.is_some() {
                skip(&f.meta, "the catalog has this file already".into());
                continue;
            }
            if catalog.lookup(&p).await?.is_some() {
                skip(&f.meta, format!("{path} is taken in the catalog"));
                continue;
            }
        }
        // Every directory above, created where missing.
        let comps: Vec<&str> = p.components().collect();
        let mut cur = String::from("/");
        let mut ok = true;
        for c in &comps[..comps.len() - 1] {
            let next = if cur == "/" {
                format!("/{c}")
            } else {
                format!("{cur}/{c}")
            };
            if !dirs.contains_key(&next) {
                let parent = dirs[&cur];
                let existing = match parent {
                    Parent::Node(id) => catalog.children_named(id, &[c.to_string()]).await?.pop(),
                    Parent::Entry(_) => None,
                };
                match existing {
                    Some(n) if n.is_dir() => {
                        dirs.insert(next.clone(), Parent::Node(n.id));
                    }
                    Some(_) => {
                        ok = false;
                        break;
                    }
                    None => {
                        dir_entries.push(ImportNode {
                            parent: parent.import(),
                            name: c.to_string(),
                            kind: NodeKind::Dir,
                            owner: f.meta.owner.clone(),
                            group: f.meta.group.clone(),
                            mode: 0o755,
                            size: 0,
                            ctime: f.meta.ctime,
                            mtime: f.meta.mtime,
                            atime: f.meta.mtime,
                            file_id: None,
                            adler32: None,
                            tags: Tags::default(),
                            cached: true,
                        });
                        dirs.insert(next.clone(), Parent::Entry(dir_entries.len() - 1));
                    }
                }
            }
            cur = next;
        }
        if !ok {
            skip(
                &f.meta,
                format!("a file in the catalog stands where a directory of {path} would go"),
            );
            continue;
        }
        files.push((cur, comps[comps.len() - 1].to_string(), f.meta.clone()));
    }
    report.skipped = skipped;
    let dir_ids = if dir_entries.is_empty() {
        Vec::new()
    } else {
        catalog.import_nodes(&dir_entries).await?
    };
    report.directories = dir_ids.len() as u64;
    let parent_id = |path: &str| match dirs[path] {
        Parent::Node(id) => id,
        Parent::Entry(i) => dir_ids[i],
    };
    for chunk in files.chunks(20_000) {
        let entries: Vec<ImportNode> = chunk
            .iter()
            .map(|(parent, name, m)| ImportNode {
                parent: ImportParent::Node(parent_id(parent)),
                name: name.clone(),
                kind: NodeKind::File,
                owner: m.owner.clone(),
                group: m.group.clone(),
                mode: m.mode & 0o7777,
                size: m.size,
                ctime: m.ctime,
                mtime: m.mtime,
                atime: m.mtime,
                file_id: Some(m.file_id),
                adler32: Some(m.adler32),
                tags: Tags::default(),
                cached: false,
            })
            .collect();
        let ids = catalog.import_nodes(&entries).await?;
        // Dead properties the manifests carry.
        for ((_, _, m), id) in chunk.iter().zip(&ids) {
            if m.props.is_empty() {
                continue;
            }
            let set: Vec<PropChange> = m
                .props
                .iter()
                .map(|p| {
                    PropChange::Set(DeadProp {
                        ns: p.ns.clone(),
                        name: p.name.clone(),
                        xml: p.xml.clone(),
                    })
                })
                .collect();
            catalog.patch_props(*id, &set, None).await?;
        }
        report.files += entries.len() as u64;
        report.bytes += chunk.iter().map(|c| c.2.size).sum::<u64>();
    }

    // The volumes and their tape files, in order.
    let now = Timestamp::now();
    for v in &scanned {
        let label = &v.label.label;
        report.volumes.push(label.clone());
        if !known.iter().any(|k| &k.label == label) {
            catalog
                .add_volumes(&[NewVolume {
                    label: label.clone(),
                    library: v.library.clone(),
                    media: v.label.media.clone(),
                    capacity: v.capacity,
                    mount_limit: v.mount_limit,
                    created: v.label.created,
                }])
                .await?;
        }
        if v.files.is_empty() {
            continue;
        }
        let family = v
            .files
            .iter()
            .find_map(|f| f.manifest.as_ref().ok()?.family.clone())
            .map(|f| Family {
                storage_group: f.storage_group,
                file_family: f.file_family,
                wrapper: f.wrapper,
            })
            .unwrap_or_else(|| Family {
                storage_group: "default".into(),
                file_family: "default".into(),
                wrapper: "tar".into(),
            });
        let mut packages = Vec::with_capacity(v.files.len());
        let mut bad = Vec::new();
        for f in &v.files {
            report.tape_files += 1;
            let (id, created, members) = match &f.manifest {
                Ok(m) => {
                    report.packages += 1;
                    let members = m
                        .members
                        .iter()
                        .map(|x| NewMember {
                            file_id: x.meta.file_id,
                            offset: x.offset,
                            size: x.meta.size,
                            adler32: x.meta.adler32,
                        })
                        .collect();
                    (m.package.clone(), m.created, members)
                }
                Err(why) => {
                    let id = format!("unreadable-{label}-{}", f.seq);
                    report.unreadable.push(format!("{label} tape file {}: {why}", f.seq));
                    bad.push((id.clone(), why.clone()));
                    (id, now, Vec::new())
                }
            };
            packages.push(NewPackage {
                id,
                seq: f.seq,
                position: f.position,
                size: f.size,
                adler32: f.adler32,
                created,
                members,
                job: None,
            });
        }
        let used: u64 = v.files.iter().map(|f| f.size).sum();
        catalog
            .commit_tape_files(
                &VolumeWrite {
                    label: label.clone(),
                    family,
                    state: VolumeState::Appendable,
                    stats: TapeStats {
                        bytes_read: used,
                        ..TapeStats::default()
                    },
                },
                &packages,
            )
            .await?;
        for (id, why) in bad {
            catalog
                .mark_package_bad(&id, &format!("recover: not a readable package: {why}"), now)
                .await?;
        }
    }
    Ok(report)
}

/// Where a directory of the rebuild is: in the catalog, or an entry of the
/// import.
#[derive(Clone, Copy, Debug)]
enum Parent {
    Node(NodeId),
    Entry(usize),
}

impl Parent {
    fn import(self) -> ImportParent {
        match self {
            Parent::Node(id) => ImportParent::Node(id),
            Parent::Entry(i) => ImportParent::Entry(i),
        }
    }
}
