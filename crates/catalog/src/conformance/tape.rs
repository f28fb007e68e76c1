//! Conformance: volumes, drives, archive jobs, tape files, ids, alarms.

use super::*;

pub(super) fn new_volume(label: &str) -> NewVolume {
    NewVolume {
        label: label.into(),
        library: "lib1".into(),
        media: "LTO-9".into(),
        capacity: 1_000_000,
        mount_limit: 100,
        created: t(1),
    }
}

pub async fn volumes_and_drives(c: &dyn Catalog) {
    c.add_volumes(&[new_volume("VL0002"), new_volume("VL0001")])
        .await
        .unwrap();
    // A label taken fails the lot.
    let e = c
        .add_volumes(&[new_volume("VL0003"), new_volume("VL0001")])
        .await
        .unwrap_err();
    assert!(matches!(e, CatalogError::AlreadyExists(_)), "{e}");
    let vols = c.volumes().await.unwrap();
    assert_eq!(
        vols.iter().map(|v| v.label.as_str()).collect::<Vec<_>>(),
        ["VL0001", "VL0002"]
    );
    let v = &vols[0];
    assert_eq!(
        (v.state, v.used, v.tape_files, v.family.clone()),
        (VolumeState::Blank, 0, 0, None)
    );
    assert_eq!(v.remaining(), 1_000_000);
    let v = c.set_volume_state("VL0002", VolumeState::Shelf).await.unwrap();
    assert_eq!(v.state, VolumeState::Shelf);
    assert!(matches!(
        c.set_volume_state("NOPE", VolumeState::Full).await,
        Err(CatalogError::NotFound(_))
    ));
    let stats = TapeStats {
        mounts: 3,
        load_s: 45.0,
        bytes_written: 10,
        ..TapeStats::default()
    };
    c.save_volume_stats("VL0001", &stats).await.unwrap();
    assert_eq!(c.volume("VL0001").await.unwrap().unwrap().stats, stats);
    assert!(c.volume("VL0003").await.unwrap().is_none());

    let drives = [
        ("d2".to_string(), "lib1".to_string()),
        ("d1".to_string(), "lib1".to_string()),
    ];
    c.register_drives(&drives).await.unwrap();
    c.set_drive_state("d1", DriveState::Offline).await.unwrap();
    // Registering again keeps what is recorded.
    c.register_drives(&drives).await.unwrap();
    c.save_drive_stats("d2", &stats).await.unwrap();
    let d = c.drives().await.unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].name.as_str(), d[0].state), ("d1", DriveState::Offline));
    assert_eq!((d[1].name.as_str(), &d[1].stats), ("d2", &stats));
    assert!(matches!(
        c.set_drive_state("d9", DriveState::Online).await,
        Err(CatalogError::NotFound(_))
    ));
}

pub async fn archive_jobs_follow_their_files(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "raw").await;
    let mut big = new_file(d.id, "big", 5000);
    big.archive = Some(ArchiveRoute::Direct(target("ff1")));
    let mut other = new_file(d.id, "other", 7000);
    other.archive = Some(ArchiveRoute::Direct(target("ff2")));
    let r = c
        .commit_files("n1", &[big.clone(), other.clone(), new_file(d.id, "small", 1)], &[])
        .await
        .unwrap();
    let jobs: Vec<Option<i64>> = r.iter().map(|r| r.as_ref().unwrap().job).collect();
    assert!(jobs[0].is_some() && jobs[1].is_some() && jobs[2].is_none(), "{jobs:?}");
    let all = c.archive_jobs().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, jobs[0].unwrap());
    assert_eq!(all[0].files, vec![big.file_id]);
    assert_eq!(
        (all[0].bytes, all[0].state, &all[0].target),
        (5000, JobState::Queued, &target("ff1"))
    );
    assert_eq!(c.job_of(other.file_id).await.unwrap().unwrap().id, jobs[1].unwrap());

    c.job_attempt_failed(all[0].id, "drive fell over", false).await.unwrap();
    let j = c.job_of(big.file_id).await.unwrap().unwrap();
    assert_eq!(
        (j.attempts, j.state, j.error.as_deref()),
        (1, JobState::Queued, Some("drive fell over"))
    );
    c.job_attempt_failed(all[0].id, "again", true).await.unwrap();
    assert_eq!(c.job_of(big.file_id).await.unwrap().unwrap().state, JobState::Failed);

    // Removing a file takes it out of its job; an empty job goes.
    let node = c.lookup(&p("/raw/other")).await.unwrap().unwrap();
    c.remove(node.id, false, None).await.unwrap();
    assert!(c.job_of(other.file_id).await.unwrap().is_none());
    assert_eq!(c.archive_jobs().await.unwrap().len(), 1);
    // So does replacing it.
    let mut again = new_file(d.id, "big", 10);
    again.replace = Replace::Any;
    c.commit_files("n1", &[again], &[]).await.unwrap().remove(0).unwrap();
    assert!(c.archive_jobs().await.unwrap().is_empty());
}

pub async fn tape_files_commit_in_sequence(c: &dyn Catalog) {
    c.add_volumes(&[new_volume("VL0001")]).await.unwrap();
    let d = mkdir(c, ROOT_ID, "raw").await;
    let mut files = Vec::new();
    for i in 0..3 {
        let mut f = new_file(d.id, &format!("f{i}"), 1000 + i);
        f.archive = Some(ArchiveRoute::Direct(target("ff1")));
        files.push(f);
    }
    let committed = c.commit_files("n1", &files, &[]).await.unwrap();
    let job = |i: usize| committed[i].as_ref().unwrap().job;
    let pkg = |i: usize, seq: u32, position: u64| NewPackage {
        id: format!("pkg-{i}"),
        seq,
        position,
        size: 3072,
        adler32: Adler32(99),
        created: t(30),
        members: vec![NewMember {
            file_id: files[i].file_id,
            offset: 1536,
            size: files[i].size,
            adler32: files[i].adler32,
        }],
        job: job(i),
    };
    let vw = |state| VolumeWrite {
        label: "VL0001".into(),
        family: family("ff1"),
        state,
        stats: TapeStats {
            bytes_written: 3072,
            ..TapeStats::default()
        },
    };
    let v = c
        .commit_tape_files(&vw(VolumeState::Appendable), &[pkg(0, 0, 0), pkg(1, 1, 3072)])
        .await
        .unwrap()
        .volume;
    assert_eq!((v.tape_files, v.used, v.state), (2, 6144, VolumeState::Appendable));
    assert_eq!(v.family, Some(family("ff1")));
    assert_eq!(v.stats.bytes_written, 3072);
    // A write that does not continue the volume records nothing.
    for bad in [pkg(2, 1, 6144), pkg(2, 3, 6144), pkg(2, 2, 100)] {
        let e = c.commit_tape_files(&vw(VolumeState::Full), &[bad]).await.unwrap_err();
        assert!(matches!(e, CatalogError::Invalid(_)), "{e}");
    }
    let v = c.volume("VL0001").await.unwrap().unwrap();
    assert_eq!((v.tape_files, v.state), (2, VolumeState::Appendable));
    assert_eq!(c.archive_jobs().await.unwrap().len(), 1, "only the third job is left");
    c.commit_tape_files(&vw(VolumeState::Full), &[pkg(2, 2, 6144)])
        .await
        .unwrap();
    assert!(c.archive_jobs().await.unwrap().is_empty());
    let pkgs = c.packages(Some("VL0001")).await.unwrap();
    assert_eq!(pkgs.iter().map(|p| p.seq).collect::<Vec<_>>(), [0, 1, 2]);
    // Each member's history has its tape copy, from the same transaction.
    let h = c.file_history(files[1].file_id, 10).await.unwrap();
    let packed: Vec<_> = h.iter().filter(|e| e.kind == EventKind::Packed).collect();
    assert_eq!(packed.len(), 1, "{h:?}");
    assert_eq!(
        (
            packed[0].package.as_deref(),
            packed[0].offset,
            packed[0].volume.as_deref()
        ),
        (Some("pkg-1"), Some(1536), Some("VL0001"))
    );
    assert_eq!(
        (pkgs[1].position, pkgs[1].members, pkgs[1].volume.as_str()),
        (3072, 1, "VL0001")
    );
    let copies = c.tape_copies(files[1].file_id).await.unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!((copies[0].package.id.as_str(), copies[0].offset), ("pkg-1", 1536));
    // A stat reads the walk and the file's copies together.
    let (chain, with) = c.walk_with_copies(&p("/raw/f1")).await.unwrap();
    assert_eq!(chain.last().unwrap().file_id, Some(files[1].file_id));
    assert_eq!(with.len(), 1);
    assert_eq!((with[0].package.id.as_str(), with[0].offset), ("pkg-1", 1536));
    for (path, walked) in [("/raw", 2), ("/raw/nope", 2), ("/raw/f1/below", 3), ("/", 1)] {
        let (chain, with) = c.walk_with_copies(&p(path)).await.unwrap();
        assert_eq!(chain.len(), walked, "{path}");
        assert!(with.is_empty(), "{path}: no file there, no copies");
    }
    // A file deleted after archiving keeps its tape copy (dead bytes).
    let n = c.lookup(&p("/raw/f1")).await.unwrap().unwrap();
    c.remove(n.id, false, None).await.unwrap();
    assert_eq!(c.tape_copies(files[1].file_id).await.unwrap().len(), 1);
    // A new file at its path has none of them.
    let again = put(c, n.parent.unwrap(), "f1", 5).await;
    let (chain, with) = c.walk_with_copies(&p("/raw/f1")).await.unwrap();
    assert_eq!(chain.last().unwrap().file_id, again.file_id);
    assert!(with.is_empty(), "the copies of the deleted f1 are not the new f1's");
    c.remove(again.id, false, None).await.unwrap();
    let (pkg1, members) = c.package("pkg-1").await.unwrap().unwrap();
    assert_eq!((pkg1.dead_members, pkg1.dead_bytes), (1, files[1].size));
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].file_id, members[0].offset), (files[1].file_id, 1536));
    assert_eq!(c.packages(Some("VL0001")).await.unwrap()[0].dead_bytes, 0);
    assert_eq!(c.packages(None).await.unwrap().len(), 3);
    assert!(c.packages(Some("VL0002")).await.unwrap().is_empty());
    assert!(c.package("pkg-9").await.unwrap().is_none());
    assert_eq!(c.volume("VL0001").await.unwrap().unwrap().state, VolumeState::Full);
}

/// A one-member package for `file` completing `job`, at tape file `seq`.
pub(super) fn one_member_package(file: &NewFile, job: Option<i64>, seq: u32) -> NewPackage {
    NewPackage {
        id: format!("pkg-{}", file.file_id),
        seq,
        position: seq as u64 * 3072,
        size: 3072,
        adler32: Adler32(7),
        created: t(30),
        members: vec![NewMember {
            file_id: file.file_id,
            offset: 1536,
            size: file.size,
            adler32: file.adler32,
        }],
        job,
    }
}

pub(super) fn volume_write(label: &str) -> VolumeWrite {
    VolumeWrite {
        label: label.into(),
        family: family("ff1"),
        state: VolumeState::Appendable,
        stats: TapeStats::default(),
    }
}

/// Ids of durable work only grow: the id of a job that is gone is never
/// handed out again (an SQLite `INTEGER PRIMARY KEY` would reuse the
/// newest one), and neither is an alarm's.
pub async fn ids_are_never_reused(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "raw").await;
    let mut last = 0;
    for i in 0..5 {
        let f = direct(new_file(d.id, &format!("f{i}"), 100));
        let job = c
            .commit_files("n1", &[f], &[])
            .await
            .unwrap()
            .remove(0)
            .unwrap()
            .job
            .unwrap();
        assert!(job > last, "job id {job} after {last}");
        last = job;
        // The newest job goes with its file.
        let n = c.lookup(&p(&format!("/raw/f{i}"))).await.unwrap().unwrap();
        c.remove(n.id, false, None).await.unwrap();
        assert!(c.archive_jobs().await.unwrap().is_empty());
    }
    // Pools closing and members held back draw from the same sequence.
    let mut a = new_file(d.id, "a", 10);
    a.archive = Some(ArchiveRoute::Pool(pool_target("P", "ff1", 1000, 100)));
    c.commit_files("n1", &[a.clone()], &[]).await.unwrap();
    let job = c.close_pool("P", t(100), true).await.unwrap().unwrap();
    assert!(job.id > last);
    let held = c.hold_member(job.id, a.file_id, "bad").await.unwrap();
    assert!(held.id > job.id);
    // Nor is a node's: the access-time log and landing notes name nodes.
    let a = c.lookup(&p("/raw/a")).await.unwrap().unwrap();
    c.remove(a.id, false, None).await.unwrap();
    let b = put(c, d.id, "b", 1).await;
    assert!(b.id > a.id, "node {} after {}", b.id, a.id);
    let x = c.raise_alarm("error", "x", "one").await.unwrap();
    let y = c.raise_alarm("error", "x", "two").await.unwrap();
    assert!(y.id > x.id);
}

/// A tape commit removes exactly the job files it wrote: a job whose files
/// were not all in its packages stays queued with the rest, and is named.
pub async fn tape_commit_removes_exactly_its_files(c: &dyn Catalog) {
    c.add_volumes(&[new_volume("VL0001")]).await.unwrap();
    let d = mkdir(c, ROOT_ID, "raw").await;
    let files: Vec<NewFile> = (0..3).map(|i| new_file(d.id, &format!("f{i}"), 100 + i)).collect();
    let mut pooled = files.clone();
    for f in &mut pooled {
        f.archive = Some(ArchiveRoute::Pool(pool_target("P", "ff1", 1_000_000, 100)));
    }
    c.commit_files("n1", &pooled, &[]).await.unwrap();
    let job = c.close_pool("P", t(100), true).await.unwrap().unwrap();
    assert_eq!(job.files.len(), 3);
    // A package holding only f0, said to complete the job: f1 and f2 stay.
    let done = c
        .commit_tape_files(
            &volume_write("VL0001"),
            &[one_member_package(&files[0], Some(job.id), 0)],
        )
        .await
        .unwrap();
    assert_eq!(done.unfinished.len(), 1, "{:?}", done.unfinished);
    let mut left = vec![files[1].file_id, files[2].file_id];
    left.sort();
    assert_eq!(done.unfinished[0].files, left);
    let jobs = c.archive_jobs().await.unwrap();
    assert_eq!((jobs.len(), jobs[0].id, &jobs[0].files), (1, job.id, &left));
    // A package naming a job that holds none of its members leaves that job alone.
    // (The race this guards against: a job emptied by a delete, its id
    // handed out again, and the old write's commit taking the new file.)
    let other = direct(new_file(d.id, "other", 5));
    let stray = new_file(d.id, "stray", 6);
    let other_job = c
        .commit_files("n1", &[other, stray.clone()], &[])
        .await
        .unwrap()
        .remove(0)
        .unwrap()
        .job;
    let done = c
        .commit_tape_files(&volume_write("VL0001"), &[one_member_package(&stray, other_job, 1)])
        .await
        .unwrap();
    assert_eq!(
        done.unfinished.iter().map(|j| j.id).collect::<Vec<_>>(),
        [other_job.unwrap()]
    );
    assert_eq!(c.archive_jobs().await.unwrap().len(), 2);
    // The commit that completes a job removes it.
    let done = c
        .commit_tape_files(
            &volume_write("VL0001"),
            &[
                one_member_package(&files[1], Some(job.id), 2),
                one_member_package(&files[2], Some(job.id), 3),
            ],
        )
        .await
        .unwrap();
    assert!(done.unfinished.is_empty());
    let ids: Vec<i64> = c.archive_jobs().await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(ids, [other_job.unwrap()]);
}

/// Files on no way to tape are found, and put back on their way once.
pub async fn stranded_files_are_rerouted(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "raw").await;
    // Routed files are not stranded; files recorded without a route are.
    let routed = direct(new_file(d.id, "routed", 10));
    let lost_a = new_file(d.id, "lost-a", 20);
    let lost_b = new_file(d.id, "lost-b", 30);
    c.commit_files("n1", &[routed, lost_a.clone(), lost_b.clone()], &[])
        .await
        .unwrap();
    mkdir(c, d.id, "sub").await;
    let mut found: Vec<FileId> = c
        .stranded_files(100)
        .await
        .unwrap()
        .iter()
        .map(|n| n.file_id.unwrap())
        .collect();
    found.sort();
    let mut want = vec![lost_a.file_id, lost_b.file_id];
    want.sort();
    assert_eq!(found, want);
    assert_eq!(c.stranded_files(1).await.unwrap().len(), 1);
    let reroute = |f: &NewFile, route| Reroute {
        file_id: f.file_id,
        size: f.size,
        route,
        at: t(50),
    };
    let pool = ArchiveRoute::Pool(pool_target("P", "ff1", 1000, 100));
    let jobs = c
        .reroute_files(&[
            reroute(&lost_a, pool.clone()),
            reroute(&lost_b, ArchiveRoute::Direct(target("ff1"))),
        ])
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].files.as_slice(), jobs[0].bytes), (&[lost_b.file_id][..], 30));
    assert_eq!(c.pool_of(lost_a.file_id).await.unwrap().as_deref(), Some("P"));
    assert!(c.stranded_files(100).await.unwrap().is_empty());
    // Again: nothing is stranded any more, nothing changes.
    let again = c
        .reroute_files(&[
            reroute(&lost_a, pool),
            reroute(&lost_b, ArchiveRoute::Direct(target("ff1"))),
        ])
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(c.archive_jobs().await.unwrap().len(), 2);
    assert_eq!(c.pools().await.unwrap()[0].files, 1);
}

/// Files past their deadline on the way to tape are found, oldest first:
/// a pooled file its pool's maximum wait (2 s) plus the grace after it
/// joined, a file in a job the grace after the job was made.
pub async fn stuck_files_are_found(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "raw").await;
    let mut pooled = new_file(d.id, "pooled", 10);
    pooled.archive = Some(ArchiveRoute::Pool(pool_target("P", "ff1", 1_000_000, 100)));
    let mut queued = direct(new_file(d.id, "queued", 20));
    queued.time = t(25);
    let committed = c
        .commit_files("n1", &[pooled.clone(), queued.clone()], &[])
        .await
        .unwrap();
    assert!(committed.iter().all(|r| r.is_ok()));
    let job = c.job_of(queued.file_id).await.unwrap().unwrap();
    let grace = 10_000_000_000; // 10 s
    let at = |now: Timestamp| async move { c.stuck_files(now, grace, 100).await.unwrap() };
    // The pooled file joined at 20 s (due at 22 s, stuck after 32 s); the
    // job was made when its file was recorded (stuck after made + 10 s).
    assert!(at(t(30)).await.is_empty());
    let mut want = vec![(pooled.file_id, t(20))];
    if job.created.0 + grace < t(33).0 {
        want.push((queued.file_id, job.created));
    }
    assert_eq!(at(t(33)).await, want, "job made at {:?}", job.created);
    let late = Timestamp(job.created.0.max(t(20).0) + grace + t(3).0);
    let both = at(late).await;
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both[0].1 <= both[1].1, "oldest first: {both:?}");
    assert_eq!(c.stuck_files(late, grace, 1).await.unwrap().len(), 1);
    // On tape: no longer stuck.
    c.add_volumes(&[new_volume("VL0001")]).await.unwrap();
    let pkg = one_member_package(&queued, Some(job.id), 0);
    c.commit_tape_files(&volume_write("VL0001"), &[pkg]).await.unwrap();
    assert_eq!(at(late).await, vec![(pooled.file_id, t(20))]);
}

/// Dead member counts stay exact when members are deleted while their
/// package's commit is in flight: 50 rounds of a package commit racing
/// deletes of some of its members.
pub async fn dead_counts_exact_under_concurrency(c: std::sync::Arc<dyn Catalog>) {
    const ROUNDS: u32 = 50;
    const MEMBERS: usize = 6;
    c.add_volumes(&[new_volume("VL0001")]).await.unwrap();
    let d = mkdir(&*c, ROOT_ID, "raw").await;
    let mut position = 0;
    for round in 0..ROUNDS {
        let files: Vec<NewFile> = (0..MEMBERS)
            .map(|i| direct(new_file(d.id, &format!("r{round}-{i}"), 100 + i as u64)))
            .collect();
        let committed = c.commit_files("n1", &files, &[]).await.unwrap();
        let nodes: Vec<Node> = committed.into_iter().map(|r| r.unwrap().node).collect();
        let package = NewPackage {
            id: format!("pkg-{round}"),
            seq: round,
            position,
            size: 10_000,
            adler32: Adler32(7),
            created: t(30),
            members: files
                .iter()
                .enumerate()
                .map(|(i, f)| NewMember {
                    file_id: f.file_id,
                    offset: 512 * (i as u64 + 1),
                    size: f.size,
                    adler32: f.adler32,
                })
                .collect(),
            job: None,
        };
        position += 10_000;
        // Every other member is deleted while the package is recorded.
        let doomed: Vec<Node> = nodes.iter().step_by(2).cloned().collect();
        let deletes = doomed.iter().map(|n| {
            let (c, id) = (c.clone(), n.id);
            tokio::spawn(async move { c.remove(id, false, None).await.unwrap() })
        });
        let deletes: Vec<_> = deletes.collect();
        c.commit_tape_files(&volume_write("VL0001"), &[package]).await.unwrap();
        for t in deletes {
            t.await.unwrap();
        }
        let (pkg, _) = c.package(&format!("pkg-{round}")).await.unwrap().unwrap();
        let bytes: u64 = doomed.iter().map(|n| n.size).sum();
        assert_eq!(
            (pkg.dead_members, pkg.dead_bytes),
            (doomed.len() as u32, bytes),
            "round {round}"
        );
    }
}

fn claim(node: &str, instance: &str, predecessor: &str, host: &str, now: Timestamp) -> CatalogClaim {
    CatalogClaim {
        node: node.into(),
        instance: instance.into(),
        predecessor: predecessor.into(),
        host: host.into(),
        now,
        stale_ns: 60_000_000_000,
    }
}

/// One node at a time uses a catalog: another is refused while the first
/// one's heartbeat is fresh, and admitted once it is stale or released.
pub async fn catalog_is_claimed_by_one_node(c: &dyn Catalog) {
    c.claim_catalog(&claim("n1", "i1", "", "host-a", t(100))).await.unwrap();
    // The same node restarted after a crash on its data directory names the
    // instance it follows and takes over at once.
    c.claim_catalog(&claim("n1", "i2", "i1", "host-a", t(105)))
        .await
        .unwrap();
    let e = c
        .claim_catalog(&claim("n2", "j1", "", "host-b", t(110)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CatalogError::AlreadyExists(m) if m.contains("n1") && m.contains("host-a")),
        "{e}"
    );
    assert!(c.heartbeat("n1", "i2", t(150)).await.unwrap());
    assert!(c.claim_catalog(&claim("n2", "j1", "", "host-b", t(200))).await.is_err());
    // Silent for more than a minute: the next node takes over.
    c.claim_catalog(&claim("n2", "j1", "", "host-b", t(211))).await.unwrap();
    assert!(c
        .claim_catalog(&claim("n1", "i3", "i2", "host-a", t(212)))
        .await
        .is_err());
    // The old instance's heartbeat finds its claim gone.
    assert!(!c.heartbeat("n1", "i2", t(212)).await.unwrap());
    // A release names the instance: another instance's release leaves the claim.
    c.release_catalog("n2", "j0").await.unwrap();
    assert!(c
        .claim_catalog(&claim("n1", "i3", "i2", "host-a", t(213)))
        .await
        .is_err());
    c.release_catalog("n2", "j1").await.unwrap();
    c.claim_catalog(&claim("n1", "i3", "i2", "host-a", t(213)))
        .await
        .unwrap();
}

/// Two processes with one node id (a copied data directory) are told
/// apart by their instances: the second is refused while the first lives,
/// and neither heartbeat nor release of the refused one touches the
/// first one's claim.
pub async fn one_node_id_two_processes(c: &dyn Catalog) {
    c.claim_catalog(&claim("n1", "a", "", "host-a", t(100))).await.unwrap();
    // A second process with the same node id and no knowledge of "a".
    let e = c
        .claim_catalog(&claim("n1", "b", "", "host-b", t(101)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CatalogError::AlreadyExists(m) if m.contains("instance a") && m.contains("host-a")),
        "{e}"
    );
    // One that follows an older instance is refused too.
    assert!(c.claim_catalog(&claim("n1", "b", "z", "host-b", t(101))).await.is_err());
    assert!(!c.heartbeat("n1", "b", t(102)).await.unwrap());
    c.release_catalog("n1", "b").await.unwrap();
    assert!(c.heartbeat("n1", "a", t(103)).await.unwrap());
    // Once "a" is silent for a minute, another process may take over.
    c.claim_catalog(&claim("n1", "b", "", "host-b", t(164))).await.unwrap();
    assert!(!c.heartbeat("n1", "a", t(165)).await.unwrap());
}

/// Forty raises of one alarm at once, from eight tasks: one alarm, counted
/// forty times (without the lock, PostgreSQL inserts several).
pub async fn alarm_repeats_fold_under_concurrency(c: std::sync::Arc<dyn Catalog>) {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (c, start) = (c.clone(), start.clone());
            tokio::spawn(async move {
                // Connected first (each task its own connection), then all at once.
                c.alarms(false).await.unwrap();
                start.wait().await;
                for _ in 0..5 {
                    c.raise_alarm("error", "drive d1", "load failed").await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let open = c.alarms(false).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].count, 40);
}

pub async fn alarms_are_kept(c: &dyn Catalog) {
    let a = c.raise_alarm("error", "volume VL0001", "write error").await.unwrap();
    let b = c.raise_alarm("warning", "drive d1", "offline").await.unwrap();
    assert_eq!((a.count, a.last, a.acked.as_ref()), (1, a.time, None));
    let all = c.alarms(false).await.unwrap();
    assert_eq!(all, vec![b.clone(), a.clone()]);

    // A repeat folds into the open alarm: one row, counted, last time moved.
    let a2 = c.raise_alarm("error", "volume VL0001", "write error").await.unwrap();
    assert_eq!((a2.id, a2.count, a2.time), (a.id, 2, a.time));
    assert!(a2.last >= a.last);
    // Another severity, source or message is another alarm.
    let other = [
        c.raise_alarm("warning", "volume VL0001", "write error").await.unwrap(),
        c.raise_alarm("error", "volume VL0002", "write error").await.unwrap(),
        c.raise_alarm("error", "volume VL0001", "read error").await.unwrap(),
    ];
    assert!(other.iter().all(|o| o.id != a.id && o.count == 1));
    assert_eq!(c.alarms(false).await.unwrap().len(), 5);
    // The one raised last comes first.
    assert_eq!(c.alarms(false).await.unwrap()[0].id, other[2].id);

    // Acknowledged: off the open list, kept in the full one; a repeat
    // raises a new alarm, with an id never used before.
    let acked = c.ack_alarm(a.id, "admin", t(500)).await.unwrap().unwrap();
    assert_eq!(acked.acked, Some((t(500), "admin".to_string())));
    assert_eq!(acked.count, 2);
    let again = c.ack_alarm(a.id, "carol", t(600)).await.unwrap().unwrap();
    assert_eq!(
        again.acked,
        Some((t(500), "admin".to_string())),
        "the first acknowledgement stays"
    );
    assert!(c.alarms(false).await.unwrap().iter().all(|x| x.id != a.id));
    assert!(c.alarms(true).await.unwrap().iter().any(|x| x.id == a.id));
    let a3 = c.raise_alarm("error", "volume VL0001", "write error").await.unwrap();
    assert!(a3.id > other[2].id, "a new alarm after the acknowledgement");
    assert_eq!(a3.count, 1);
    assert_eq!(c.alarms(true).await.unwrap().len(), 6);
    // No such alarm: nothing changes.
    assert!(c.ack_alarm(9_999, "admin", t(700)).await.unwrap().is_none());
    assert_eq!(c.alarms(false).await.unwrap().len(), 5);
}
