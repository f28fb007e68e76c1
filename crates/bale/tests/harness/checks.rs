//! The checks behind the server's back: its catalog, its tape files, its
//! cache directory.

use super::Content;
use bale_util::Adler32;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub(super) async fn deep(spec: &str, data_dir: &Path, live: &BTreeMap<String, Content>) -> (usize, usize, Vec<String>) {
    let mut v = Vec::new();
    let cat = bale_catalog::open(spec).await.unwrap();
    // Live files: their nodes.
    let mut by_id: HashMap<bale_util::FileId, (String, Content, bool)> = HashMap::new();
    for (path, c) in live {
        let node = cat.lookup(&bale_util::NsPath::parse(path).unwrap()).await.unwrap();
        match node.and_then(|n| n.file_id.map(|id| (id, n))) {
            Some((id, n)) => {
                if n.size != c.size as u64 {
                    v.push(format!("{path}: catalog size {} for {} written", n.size, c.size));
                }
                by_id.insert(id, (path.clone(), *c, n.cached));
                // Two copies, one in each library (the policy's copy_to).
                let copies = cat.tape_copies(id).await.unwrap();
                let mut vols: Vec<&str> = copies.iter().map(|c| &c.package.volume[..2]).collect();
                vols.sort();
                if vols != ["VB", "VL"] {
                    v.push(format!(
                        "{path}: tape copies on {:?}, not one in each library (live member of {} packages)",
                        copies.iter().map(|c| c.package.volume.as_str()).collect::<Vec<_>>(),
                        copies.len()
                    ));
                }
            }
            None => v.push(format!("{path}: acknowledged, not in the catalog")),
        }
    }
    // Each storage group's use (kept by every commit and removal) is what
    // its files in the namespace hold.
    let mut held: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut dirs = vec![bale_catalog::ROOT_ID];
    while let Some(d) = dirs.pop() {
        let mut after: Option<String> = None;
        loop {
            let page = cat.list(d, after.as_deref(), 1000).await.unwrap();
            for n in &page {
                if n.is_dir() {
                    dirs.push(n.id);
                } else {
                    let e = held.entry(bale_catalog::group_of(&n.tags).to_string()).or_default();
                    e.0 += 1;
                    e.1 += n.size;
                }
            }
            match page.last() {
                Some(n) if page.len() == 1000 => after = Some(n.name.clone()),
                _ => break,
            }
        }
    }
    let kept: BTreeMap<String, (u64, u64)> = cat
        .group_usage()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.files > 0 || u.bytes > 0)
        .map(|u| (u.storage_group, (u.files, u.bytes)))
        .collect();
    if kept != held {
        v.push(format!("storage group use kept {kept:?}, the namespace holds {held:?}"));
    }
    // Packages: every member checksums in its tape file; a live member
    // holds its file's bytes; the dead counts are exact.
    let volumes = cat.volumes().await.unwrap();
    let vol_dir = |label: &str| -> Option<PathBuf> {
        ["library", "vault"]
            .into_iter()
            .flat_map(|lib| walkdir::WalkDir::new(data_dir.join(lib)))
            .filter_map(|e| e.ok())
            .find(|e| e.file_type().is_dir() && e.file_name() == label)
            .map(|e| e.path().to_path_buf())
    };
    let packages = cat.packages(None).await.unwrap();
    for p in &packages {
        let (_, members) = cat.package(&p.id).await.unwrap().unwrap();
        let Some(dir) = vol_dir(&p.volume) else {
            v.push(format!("package {}: volume {} has no directory", p.id, p.volume));
            continue;
        };
        let tape = match std::fs::read(dir.join(format!("f{:08}.tar", p.seq))) {
            Ok(t) => t,
            Err(e) => {
                v.push(format!("package {}: tape file {} {}: {e}", p.id, p.volume, p.seq));
                continue;
            }
        };
        if tape.len() as u64 != p.size || Adler32::of(&tape) != p.adler32 {
            v.push(format!(
                "package {}: tape file {} {} is {} bytes / {}, catalog says {} / {}",
                p.id,
                p.volume,
                p.seq,
                tape.len(),
                Adler32::of(&tape),
                p.size,
                p.adler32
            ));
        }
        let (mut dead, mut dead_bytes) = (0u32, 0u64);
        for m in &members {
            let Some(data) = tape.get(m.offset as usize..(m.offset + m.size) as usize) else {
                v.push(format!(
                    "package {}: member {} lies past the tape file's end",
                    p.id, m.file_id
                ));
                continue;
            };
            if Adler32::of(data) != m.adler32 {
                v.push(format!(
                    "package {}: member {} does not match its checksum",
                    p.id, m.file_id
                ));
            }
            match by_id.get(&m.file_id) {
                Some((path, c, _)) => {
                    if data != c.data().as_slice() {
                        v.push(format!("package {}: {path}'s bytes on tape are not the file's", p.id));
                    }
                }
                None => {
                    dead += 1;
                    dead_bytes += m.size;
                }
            }
        }
        if (dead, dead_bytes) != (p.dead_members, p.dead_bytes) {
            v.push(format!(
                "package {}: {dead} dead members / {dead_bytes} bytes, catalog says {} / {}",
                p.id, p.dead_members, p.dead_bytes
            ));
        }
    }
    // Volumes: the tape files present are the ones the catalog counts.
    for vol in &volumes {
        let present = vol_dir(&vol.label).map_or(0, |d| {
            std::fs::read_dir(d)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tar"))
                .count()
        });
        if present as u32 != vol.tape_files {
            v.push(format!(
                "volume {}: {present} tape files present, the catalog's end of data is {}",
                vol.label, vol.tape_files
            ));
        }
    }
    // The cache: the data of the cached live files, each right, nothing else.
    let cache = data_dir.join("cache");
    let mut on_disk: HashMap<String, PathBuf> = HashMap::new();
    for e in walkdir::WalkDir::new(cache.join("files"))
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if e.file_type().is_file() {
            on_disk.insert(e.file_name().to_string_lossy().to_string(), e.path().to_path_buf());
        }
    }
    for (id, (path, c, cached)) in &by_id {
        let data = on_disk.remove(&id.to_string());
        match (cached, data) {
            (true, None) => v.push(format!("{path}: cached, its data is missing")),
            (true, Some(f)) => {
                if std::fs::read(&f).unwrap() != c.data() {
                    v.push(format!("{path}: its cached data differs from what was written"));
                }
            }
            (false, Some(_)) => v.push(format!("{path}: purged, its data is still in the cache")),
            (false, None) => {}
        }
    }
    for (name, _) in on_disk {
        v.push(format!("cache data {name} belongs to no live file"));
    }
    for area in ["tmp", "stage"] {
        let n = std::fs::read_dir(cache.join(area)).map_or(0, |d| d.count());
        if n > 0 {
            v.push(format!("{n} entries left in cache/{area}"));
        }
    }
    // Nothing pending.
    let jobs = cat.archive_jobs().await.unwrap();
    if !jobs.is_empty() {
        v.push(format!("{} archive jobs left, e.g. {:?}", jobs.len(), jobs[0]));
    }
    for p in cat.pools().await.unwrap() {
        if p.files > 0 {
            v.push(format!("pool {} still holds {} files", p.key, p.files));
        }
    }
    let open = cat.open_stage_files().await.unwrap();
    if !open.is_empty() {
        v.push(format!("{} stage files still open", open.len()));
    }
    (by_id.len(), packages.len(), v)
}
