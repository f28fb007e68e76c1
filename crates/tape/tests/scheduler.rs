//! The scheduler against a real SQLite catalog, member data in a plain
//! directory (the tape crate knows no cache: it opens what its member
//! source opens) and the
//! emulated library: width, full volumes, read batches, faults, wear.

use bale_catalog::{
    ArchiveRoute, DynCatalog, JobState, JobTarget, NewDir, NewFile, Node, PoolLimits, PoolTarget, SqliteCatalog, Tags,
    VolumeState, ROOT_ID,
};
use bale_tape::{
    CatalogMembers, Event, Fault, FileMarks, LibraryConfig, MemberSource, ReadRequest, TapeConfig, TapeSystem,
};
use bale_util::background::Background;
use bale_util::{Adler32, FileId, Timestamp};
use bytesize::ByteSize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

struct Rig {
    dir: tempfile::TempDir,
    bg: Background,
    catalog: DynCatalog,
    /// Member data, one file per file id.
    data: std::path::PathBuf,
    sys: TapeSystem,
    cfg: TapeConfig,
}

fn config(drives: u32, volumes: u32, capacity: u64) -> TapeConfig {
    TapeConfig {
        time_scale: 0.0,
        idle_unload_s: 60.0,
        libraries: vec![LibraryConfig {
            drives,
            initial_volumes: volumes,
            volume_capacity: Some(ByteSize(capacity)),
            ..LibraryConfig::default()
        }],
        ..TapeConfig::default()
    }
}

fn members(catalog: &DynCatalog, data: &std::path::Path) -> Arc<dyn MemberSource> {
    let data = data.to_path_buf();
    Arc::new(CatalogMembers {
        catalog: catalog.clone(),
        open: move |id: FileId| std::fs::File::open(data.join(id.to_string())),
    })
}

async fn rig(cfg: TapeConfig) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let catalog: DynCatalog = Arc::new(SqliteCatalog::open(&dir.path().join("c.sqlite")).await.unwrap());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let bg = Background::new();
    let sys = TapeSystem::start(
        catalog.clone(),
        members(&catalog, &data),
        cfg.clone(),
        dir.path(),
        bg.spawner(0),
    )
    .await
    .unwrap();
    Rig {
        dir,
        bg,
        catalog,
        data,
        sys,
        cfg,
    }
}

impl Rig {
    async fn restart(&mut self) {
        assert!(self.bg.shutdown(Duration::from_secs(30)).await.is_empty());
        self.bg = Background::new();
        self.sys = TapeSystem::start(
            self.catalog.clone(),
            members(&self.catalog, &self.data),
            self.cfg.clone(),
            self.dir.path(),
            self.bg.spawner(0),
        )
        .await
        .unwrap();
    }

    async fn family_dir(&self, name: &str, width: u32) -> Node {
        let d = self
            .catalog
            .create_dir(NewDir {
                parent: ROOT_ID,
                name: name.into(),
                owner: "alice".into(),
                group: "mu2e".into(),
                mode: 0o755,
                time: Timestamp::now(),
            })
            .await
            .unwrap();
        let tags = Tags {
            storage_group: Some("mu2e".into()),
            file_family: Some(name.into()),
            file_family_width: Some(width),
            ..Tags::default()
        };
        self.catalog.set_tags(d.id, &tags).await.unwrap()
    }

    /// A file with its data and its catalog row on its way to tape by `route`.
    async fn commit(&self, dir: &Node, name: &str, size: usize, route: ArchiveRoute) -> (FileId, Vec<u8>, Option<i64>) {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 + name.len() * 7) as u8).collect();
        let id = FileId::generate();
        std::fs::write(self.data.join(id.to_string()), &data).unwrap();
        let f = NewFile {
            parent: dir.id,
            name: name.into(),
            file_id: id,
            owner: "alice".into(),
            group: "mu2e".into(),
            mode: 0o644,
            size: size as u64,
            adler32: Adler32::of(&data),
            time: Timestamp::now(),
            mtime: None,
            replace: bale_catalog::Replace::No,
            archive: Some(route),
            inline: None,
        };
        let c = self
            .catalog
            .commit_files("n1", &[f], &[])
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        (id, data, c.job)
    }

    /// A file with its data and its catalog row, queued for tape.
    async fn put(&self, dir: &Node, name: &str, size: usize) -> (FileId, Vec<u8>) {
        let target: JobTarget = bale_policy::target_for(&dir.tags, &self.sys.library_names()).unwrap();
        let (id, data, job) = self.commit(dir, name, size, ArchiveRoute::Direct(target)).await;
        assert!(job.is_some());
        let job = self.catalog.job_of(id).await.unwrap().unwrap();
        self.sys.enqueue(job);
        (id, data)
    }

    /// Files with their data and catalog rows, members of one pool, closed into
    /// one archive job and queued for tape.
    async fn put_pooled(&self, dir: &Node, names: &[&str], size: usize) -> (Vec<(FileId, Vec<u8>)>, i64) {
        let target: JobTarget = bale_policy::target_for(&dir.tags, &self.sys.library_names()).unwrap();
        let pool = PoolTarget {
            key: format!("small/{}", target.family),
            rule: "small".into(),
            target,
            limits: PoolLimits {
                target_size: 1 << 40,
                max_files: 1000,
                max_wait_ms: 3_600_000,
            },
        };
        let mut out = Vec::new();
        for name in names {
            let (id, data, _) = self.commit(dir, name, size, ArchiveRoute::Pool(pool.clone())).await;
            out.push((id, data));
        }
        let job = self
            .catalog
            .close_pool(&pool.key, Timestamp::now(), true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.files.len(), names.len());
        let id = job.id;
        self.sys.enqueue(job);
        (out, id)
    }

    async fn wait_archived(&self, ids: &[FileId]) {
        // Up to 2 minutes: a bound for a disk that stalls, not a timing.
        for _ in 0..12_000 {
            let mut done = 0;
            for id in ids {
                if !self.catalog.tape_copies(*id).await.unwrap().is_empty() {
                    done += 1;
                }
            }
            if done == ids.len() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "files not archived in time; events: {:#?}; alarms: {:#?}",
            self.sys.events(0).iter().rev().take(20).collect::<Vec<_>>(),
            self.catalog.alarms(true).await.unwrap()
        );
    }

    async fn wait_unloaded(&self) {
        for _ in 0..1000 {
            if self.sys.drives().iter().all(|d| d.volume.is_none()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("drives did not unload: {:?}", self.sys.drives());
    }
}

fn count(events: &[Event], kind: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind == kind) {
        *m.entry(e.volume.clone()).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_family_of_width_two_never_writes_more_than_two_volumes_and_fills_them() {
    // 3 drives, volumes of 3.2 MB, 20 files of 1 MB: three fit per volume.
    let mut cfg = config(3, 12, 3_200_000);
    // Slow enough (3 s mark = 6 ms) that the three drives compete.
    cfg.time_scale = 0.002;
    let r = rig(cfg).await;
    let dir = r.family_dir("raw", 2).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(r.put(&dir, &format!("f{i:02}"), 1_000_000).await.0);
    }
    r.wait_archived(&ids).await;

    // Replay the event log: a drive writes a family volume from its first
    // write until it unloads.
    let events = r.sys.events(0);
    let mut writing: BTreeMap<String, String> = BTreeMap::new();
    let mut most = 0;
    let mut drives_used = BTreeSet::new();
    for e in &events {
        match e.kind.as_str() {
            "write" => {
                writing.insert(e.drive.clone(), e.volume.clone());
                drives_used.insert(e.drive.clone());
            }
            "unload" | "offline" => {
                writing.remove(&e.drive);
            }
            _ => {}
        }
        let vols: BTreeSet<&String> = writing.values().collect();
        most = most.max(vols.len());
    }
    assert_eq!(most, 2, "at most (and here exactly) 2 volumes written at once");

    let vols = r.catalog.volumes().await.unwrap();
    let used: Vec<_> = vols.iter().filter(|v| v.tape_files > 0).collect();
    assert!(used.len() >= 7, "20 files at 3 per volume need 7 volumes: {used:#?}");
    let full = used.iter().filter(|v| v.state == VolumeState::Full).count();
    assert!(full >= 5, "volumes that filled are marked full: {used:#?}");
    for v in &used {
        assert!(v.used <= v.capacity, "{v:?}");
        assert_eq!(v.family.as_ref().unwrap().file_family, "raw");
        // Every recorded tape file is on the volume, whole.
        let pkgs = r.catalog.packages(Some(&v.label)).await.unwrap();
        assert_eq!(pkgs.len() as u32, v.tape_files);
        for p in pkgs {
            let path = r.dir.path().join(format!("library/{}/f{:08}.tar", v.label, p.seq));
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!((bytes.len() as u64, Adler32::of(&bytes)), (p.size, p.adler32));
            let m = bale_pack::read(&bytes[..], |_, _| Ok(())).unwrap();
            assert_eq!(m.members.len(), 1);
        }
    }
    // Every drive and volume was charged; the library reports efficiency.
    let lib = &r.sys.libraries()[0];
    assert_eq!(lib.stats.file_marks, 20);
    assert_eq!(lib.stats.bytes_written, used.iter().map(|v| v.used).sum::<u64>());
    assert!(lib.stats.mark_s >= 60.0 && lib.stats.load_s > 0.0 && lib.stats.robot_s > 0.0);
    let eff = lib.efficiency.unwrap();
    assert!(eff > 0.0 && eff < 0.2, "1 MB files at 400 MB/s with 3 s marks: {eff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_batch_mounts_each_volume_once_and_reads_in_tape_order() {
    let mut cfg = config(2, 4, 1 << 30);
    cfg.idle_unload_s = 0.05;
    let r = rig(cfg).await;
    // Three families of width 1: three volumes.
    let mut files = Vec::new();
    for (fam, n) in [("a", 17), ("b", 17), ("c", 16)] {
        let dir = r.family_dir(fam, 1).await;
        for i in 0..n {
            let (id, data) = r.put(&dir, &format!("{fam}{i:02}"), 1000 + i * 100).await;
            files.push((id, data));
        }
    }
    let ids: Vec<FileId> = files.iter().map(|f| f.0).collect();
    r.wait_archived(&ids).await;
    r.wait_unloaded().await;
    let mark = r.sys.events(0).last().unwrap().seq;

    // 50 requests in a scrambled order.
    let out = r.dir.path().join("restore");
    std::fs::create_dir(&out).unwrap();
    let mut reqs = Vec::new();
    for (i, (id, _)) in files.iter().enumerate() {
        let copy = r.catalog.tape_copies(*id).await.unwrap().remove(0);
        reqs.push((
            (i * 37) % 50,
            ReadRequest {
                volume: copy.package.volume,
                seq: copy.package.seq,
                dest: out.join(format!("{i}.tar")),
            },
            *id,
        ));
    }
    reqs.sort_by_key(|r| r.0);
    let results = r.sys.read(reqs.iter().map(|r| r.1.clone()).collect()).await;
    for ((_, req, id), res) in reqs.iter().zip(results) {
        let done = res.unwrap();
        let bytes = std::fs::read(&req.dest).unwrap();
        assert_eq!((done.bytes, done.adler32), (bytes.len() as u64, Adler32::of(&bytes)));
        let data = &files.iter().find(|f| f.0 == *id).unwrap().1;
        let mut got = Vec::new();
        bale_pack::read(&bytes[..], |_, rd| rd.read_to_end(&mut got).map(|_| ())).unwrap();
        assert_eq!(&got, data);
    }

    let events = r.sys.events(mark);
    let mounts = count(&events, "mount");
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    assert!(mounts.values().all(|&n| n == 1), "one mount per volume: {mounts:?}");
    for vol in mounts.keys() {
        let seqs: Vec<u32> = events
            .iter()
            .filter(|e| e.kind == "read" && &e.volume == vol)
            .map(|e| e.tape_file.unwrap())
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, sorted, "tape order on {vol}");
        assert!(seqs.len() >= 16);
    }
    // The counters agree: each volume was mounted twice in all (write, read).
    for v in r.sys.volumes().iter().filter(|v| v.volume.tape_files > 0) {
        assert_eq!(v.volume.stats.mounts, 2, "{}", v.volume.label);
        assert!(v.volume.stats.bytes_read > 0 && v.volume.stats.read_s > 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_error_moves_the_file_to_another_volume_and_raises_an_alarm() {
    let r = rig(config(1, 3, 1 << 30)).await;
    let dir = r.family_dir("raw", 1).await;
    // Blank volumes are taken in label order: the first write goes to VL0001.
    r.sys
        .inject(Fault::WriteError {
            volume: "VL0001".into(),
        })
        .unwrap();
    let (id, data) = r.put(&dir, "big", 300_000).await;
    r.wait_archived(&[id]).await;
    let copies = r.catalog.tape_copies(id).await.unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].package.volume, "VL0002");
    let vol = r.catalog.volume("VL0001").await.unwrap().unwrap();
    assert_eq!((vol.state, vol.tape_files), (VolumeState::Noaccess, 0));
    let alarms = r.catalog.alarms(true).await.unwrap();
    assert!(
        alarms
            .iter()
            .any(|a| a.source == "volume VL0001" && a.message.contains("write error")),
        "{alarms:?}"
    );
    // Nothing lost: the file reads back from its tape copy.
    let dest = r.dir.path().join("back.tar");
    let res = r
        .sys
        .read(vec![ReadRequest {
            volume: "VL0002".into(),
            seq: 0,
            dest: dest.clone(),
        }])
        .await;
    res[0].as_ref().unwrap();
    let mut got = Vec::new();
    bale_pack::read(std::fs::File::open(&dest).unwrap(), |_, rd| {
        rd.read_to_end(&mut got).map(|_| ())
    })
    .unwrap();
    assert_eq!(got, data);
    // Bad fault targets are refused.
    assert!(r.sys.inject(Fault::WriteError { volume: "NOPE".into() }).is_err());
    assert!(r.sys.inject(Fault::DriveFailure { drive: "NOPE".into() }).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_drive_goes_offline_and_its_work_moves_to_another_drive() {
    let r = rig(config(2, 3, 1 << 30)).await;
    r.sys.set_drive_online("lib1-d2", false).await.unwrap();
    r.sys
        .inject(Fault::DriveFailure {
            drive: "lib1-d1".into(),
        })
        .unwrap();
    let dir = r.family_dir("raw", 1).await;
    let (id, _) = r.put(&dir, "f", 10_000).await;
    for _ in 0..500 {
        if r.sys.drives().iter().all(|d| d.activity == "offline") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(r.catalog.tape_copies(id).await.unwrap().is_empty());
    assert!(r
        .catalog
        .alarms(true)
        .await
        .unwrap()
        .iter()
        .any(|a| a.source == "drive lib1-d1"));
    r.sys.set_drive_online("lib1-d2", true).await.unwrap();
    r.wait_archived(&[id]).await;
    let writes: Vec<String> = r
        .sys
        .events(0)
        .into_iter()
        .filter(|e| e.kind == "write")
        .map(|e| e.drive)
        .collect();
    assert_eq!(writes, ["lib1-d2"]);
    let d1 = r
        .catalog
        .drives()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.name == "lib1-d1")
        .unwrap();
    assert_eq!(d1.state, bale_catalog::DriveState::Offline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_error_is_alarmed_and_retried() {
    let r = rig(config(1, 2, 1 << 30)).await;
    let dir = r.family_dir("raw", 1).await;
    let (id, _) = r.put(&dir, "f", 5000).await;
    r.wait_archived(&[id]).await;
    let copy = r.catalog.tape_copies(id).await.unwrap().remove(0);
    r.sys
        .inject(Fault::ReadError {
            volume: copy.package.volume.clone(),
        })
        .unwrap();
    let req = ReadRequest {
        volume: copy.package.volume.clone(),
        seq: copy.package.seq,
        dest: r.dir.path().join("x.tar"),
    };
    let res = r.sys.read(vec![req.clone()]).await;
    assert_eq!(res[0].as_ref().unwrap().adler32, copy.package.adler32);
    assert!(r
        .catalog
        .alarms(true)
        .await
        .unwrap()
        .iter()
        .any(|a| a.message.contains("reading tape file 0 failed")));
    // Reading a tape file the catalog does not have is a clear error.
    let res = r
        .sys
        .read(vec![
            ReadRequest { seq: 9, ..req.clone() },
            ReadRequest {
                volume: "XX".into(),
                ..req
            },
        ])
        .await;
    assert!(res[0].as_ref().unwrap_err().to_string().contains("no tape file 9"));
    assert!(res[1].as_ref().unwrap_err().to_string().contains("no volume XX"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buffered_marks_flush_every_n_files_and_volumes_wear_out() {
    let mut cfg = config(1, 2, 1 << 30);
    cfg.libraries[0].file_marks = FileMarks::Buffered;
    cfg.libraries[0].flush_files = 5;
    cfg.libraries[0].mount_limit = 2;
    cfg.idle_unload_s = 0.02;
    let r = rig(cfg).await;
    let dir = r.family_dir("raw", 1).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(r.put(&dir, &format!("f{i}"), 2000).await.0);
    }
    r.wait_archived(&ids).await;
    let events = r.sys.events(0);
    let flushes = events.iter().filter(|e| e.kind == "flush").count();
    assert!((3..12).contains(&flushes), "{flushes} flushes for 12 files");
    let lib = &r.sys.libraries()[0];
    assert_eq!(lib.stats.file_marks, 12);
    assert!((lib.stats.mark_s - 3.0 * flushes as f64).abs() < 1e-6);

    // Second mount (read) reaches the limit of 2: readonly, alarm.
    r.wait_unloaded().await;
    let copy = r.catalog.tape_copies(ids[0]).await.unwrap().remove(0);
    let res = r
        .sys
        .read(vec![ReadRequest {
            volume: copy.package.volume.clone(),
            seq: 0,
            dest: r.dir.path().join("x"),
        }])
        .await;
    res[0].as_ref().unwrap();
    let v = r.catalog.volume(&copy.package.volume).await.unwrap().unwrap();
    assert_eq!(v.state, VolumeState::Readonly);
    assert!(r
        .catalog
        .alarms(true)
        .await
        .unwrap()
        .iter()
        .any(|a| a.message.contains("mounts")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_cuts_unrecorded_tape_files_and_resumes_queued_jobs() {
    let mut r = rig(config(1, 2, 1 << 30)).await;
    let dir = r.family_dir("raw", 1).await;
    let (a, _) = r.put(&dir, "a", 1000).await;
    r.wait_archived(&[a]).await;
    // An interrupted write: a tape file on the media the catalog never recorded.
    let vol = r.catalog.tape_copies(a).await.unwrap().remove(0).package.volume;
    let stray = r.dir.path().join(format!("library/{vol}/f00000001.tar"));
    std::fs::write(&stray, b"half a package").unwrap();
    r.sys.set_drive_online("lib1-d1", false).await.unwrap();
    let (b, _) = r.put(&dir, "b", 1000).await;
    r.restart().await;
    assert!(!stray.exists(), "cut back to the catalog's end of data");
    assert!(r.catalog.tape_copies(b).await.unwrap().is_empty());
    assert_eq!(r.sys.queued_jobs().len(), 1, "the queued job is back after the restart");
    r.sys.set_drive_online("lib1-d1", true).await.unwrap();
    r.wait_archived(&[b]).await;
    let v = r.catalog.volume(&vol).await.unwrap().unwrap();
    assert_eq!(v.tape_files, 2);
    let bytes = std::fs::read(&stray).unwrap();
    assert_eq!(
        Adler32::of(&bytes),
        r.catalog.packages(Some(&vol)).await.unwrap()[1].adler32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_operations_check_their_input() {
    let r = rig(config(1, 2, 1 << 30)).await;
    let added = r.sys.add_volumes("lib1", 2, Some(5 << 20), Some("TT")).await.unwrap();
    assert_eq!(
        added.iter().map(|v| v.label.as_str()).collect::<Vec<_>>(),
        ["TT0001", "TT0002"]
    );
    assert_eq!(added[0].capacity, 5 << 20);
    let more = r.sys.add_volumes("lib1", 1, None, None).await.unwrap();
    assert_eq!(more[0].label, "VL0003");
    assert!(r.sys.add_volumes("nope", 1, None, None).await.is_err());
    assert!(r.sys.add_volumes("lib1", 0, None, None).await.is_err());
    assert!(r.sys.add_volumes("lib1", 1, None, Some("a/b")).await.is_err());
    assert!(r.sys.set_volume_state("TT0001", VolumeState::Appendable).await.is_err());
    r.sys.set_volume_state("TT0001", VolumeState::Shelf).await.unwrap();
    assert!(r.sys.set_volume_state("XX", VolumeState::Shelf).await.is_err());
    assert!(r.sys.set_drive_online("lib1-d9", true).await.is_err());
    let t = bale_policy::target_for(
        &Tags {
            library: Some("elsewhere".into()),
            ..Tags::default()
        },
        &r.sys.library_names(),
    )
    .unwrap_err();
    assert!(t.contains("elsewhere"), "{t}");
}

/// A member whose cached data no longer matches its checksum is held back
/// (a failed job of its own, an alarm); the rest of the package is written,
/// and the aborted tape file is not recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_with_a_bad_checksum_is_held_back_and_the_rest_is_written() {
    let r = rig(config(1, 2, 100_000_000)).await;
    let dir = r.family_dir("raw", 1).await;
    // Hold the drive so that the damage is done before the package is written.
    r.sys.set_drive_online("lib1-d1", false).await.unwrap();
    let names: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (files, job) = r.put_pooled(&dir, &names, 50_000).await;
    let bad = files[4].0;
    let mut damaged = files[4].1.clone();
    damaged[1000] ^= 0x55;
    std::fs::write(r.data.join(bad.to_string()), &damaged).unwrap();
    r.sys.set_drive_online("lib1-d1", true).await.unwrap();

    let good: Vec<FileId> = files.iter().map(|f| f.0).filter(|id| *id != bad).collect();
    r.wait_archived(&good).await;
    assert!(r.catalog.tape_copies(bad).await.unwrap().is_empty());
    let held = r.catalog.job_of(bad).await.unwrap().unwrap();
    assert_ne!(held.id, job);
    assert_eq!((held.state, held.files.as_slice()), (JobState::Failed, &[bad][..]));
    assert!(held.error.as_deref().unwrap().contains("adler32"), "{held:?}");
    let alarms = r.catalog.alarms(true).await.unwrap();
    assert!(
        alarms
            .iter()
            .any(|a| a.message.contains("held back") && a.message.contains("/raw/m4")),
        "{alarms:?}"
    );
    // One package of the nine good members; the aborted write left nothing.
    let copies = r.catalog.tape_copies(good[0]).await.unwrap();
    let pkg = &copies[0].package;
    assert_eq!((pkg.members, pkg.seq), (9, 0));
    let vol = r.catalog.volume(&pkg.volume).await.unwrap().unwrap();
    assert_eq!(vol.tape_files, 1);
    let on_media = std::fs::read_dir(r.dir.path().join("library").join(&pkg.volume))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tar"))
        .count();
    assert_eq!(on_media, 1);
    // The other members' data on tape is intact.
    let tf = std::fs::read(r.dir.path().join(format!("library/{}/f00000000.tar", pkg.volume))).unwrap();
    for (id, data) in files.iter().filter(|f| f.0 != bad) {
        let c = &r.catalog.tape_copies(*id).await.unwrap()[0];
        let off = c.offset as usize;
        assert_eq!(&tf[off..off + data.len()], &data[..]);
    }
}
