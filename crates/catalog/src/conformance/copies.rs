//! Conformance: several tape copies, copies found bad, and their repair.

use super::tape::volume_write;
use super::*;

fn volume_in(label: &str, library: &str) -> NewVolume {
    NewVolume {
        library: library.into(),
        ..super::tape::new_volume(label)
    }
}

fn package(id: &str, seq: u32, file: &NewFile, job: Option<i64>) -> NewPackage {
    NewPackage {
        id: id.into(),
        seq,
        position: seq as u64 * 3072,
        size: 3072,
        adler32: Adler32(7),
        created: t(30 + seq as i64),
        members: vec![NewMember {
            file_id: file.file_id,
            offset: 1536,
            size: file.size,
            adler32: file.adler32,
        }],
        job,
    }
}

async fn purgeable(c: &dyn Catalog) -> Vec<FileId> {
    let mut ids: Vec<FileId> = c
        .purge_candidates(t(100), 100)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.file_id)
        .collect();
    ids.sort();
    ids
}

async fn volumes_of(c: &dyn Catalog, id: FileId) -> Vec<String> {
    let mut v: Vec<String> = c
        .copy_volumes(&[id])
        .await
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    v.sort();
    v
}

/// A family that asks for two copies: the commit of the first queues the
/// second in its transaction (files deleted meanwhile left out); the file
/// counts as archived (copy volumes, purge) only once both are written; a
/// copy marked bad is read last and not counted, and its file is rewritten
/// into the bad copy's library, re-checked in the transaction.
pub async fn copies_are_queued_counted_and_repaired(c: &dyn Catalog) {
    c.add_volumes(&[volume_in("VA0001", "lib1"), volume_in("VB0001", "libB")])
        .await
        .unwrap();
    let d = mkdir(c, ROOT_ID, "raw").await;
    let two = JobTarget {
        copies: vec!["libB".into()],
        ..target("ff1")
    };
    let mut files = Vec::new();
    for i in 0..3 {
        let mut f = new_file(d.id, &format!("f{i}"), 100 + i);
        f.archive = Some(ArchiveRoute::Direct(two.clone()));
        files.push(f);
    }
    let r = c.commit_files("n1", &files, &[]).await.unwrap();
    let job = |i: usize| r[i].as_ref().unwrap().job;
    let ids: Vec<FileId> = files.iter().map(|f| f.file_id).collect();
    c.settle_files(&ids).await.unwrap();
    let jobs = c.archive_jobs().await.unwrap();
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j.target.copies == ["libB"]), "{jobs:?}");

    // f2 is deleted before its first copy is recorded: no second copy.
    let f2 = c.lookup(&p("/raw/f2")).await.unwrap().unwrap();
    let lib1 = VolumeWrite {
        label: "VA0001".into(),
        ..volume_write("VA0001")
    };
    c.commit_tape_files(&lib1, &[package("a0", 0, &files[0], job(0))])
        .await
        .unwrap();
    c.remove(f2.id, false, None).await.unwrap();
    let done = c
        .commit_tape_files(
            &lib1,
            &[package("a1", 1, &files[1], job(1)), package("a2", 2, &files[2], job(2))],
        )
        .await
        .unwrap();
    assert_eq!(done.queued.len(), 1, "f1's second copy; none for the deleted f2");
    assert_eq!(done.queued[0].files, vec![ids[1]]);
    let second: Vec<ArchiveJob> = c.archive_jobs().await.unwrap();
    assert_eq!(second.len(), 2, "the second copies of f0 and f1: {second:?}");
    for j in &second {
        assert_eq!((j.target.library.as_str(), j.target.copies.len()), ("libB", 0));
        assert_eq!(j.target.family, family("ff1"));
    }
    // One copy of two: not archived, not purgeable; its copy says a job
    // holds the file (a stat needs no second look), also through the walk.
    assert!(volumes_of(c, ids[0]).await.is_empty());
    assert!(c.tape_copies(ids[0]).await.unwrap()[0].file_in_job);
    assert!(c.walk_with_copies(&p("/raw/f0")).await.unwrap().1[0].file_in_job);
    assert!(purgeable(c).await.is_empty());

    let libb = VolumeWrite {
        label: "VB0001".into(),
        ..volume_write("VB0001")
    };
    let j0 = second.iter().find(|j| j.files == [ids[0]]).unwrap().id;
    let j1 = second.iter().find(|j| j.files == [ids[1]]).unwrap().id;
    let done = c
        .commit_tape_files(
            &libb,
            &[
                package("b0", 0, &files[0], Some(j0)),
                package("b1", 1, &files[1], Some(j1)),
            ],
        )
        .await
        .unwrap();
    assert!(done.queued.is_empty(), "the last copy queues nothing");
    assert!(c.tape_copies(ids[0]).await.unwrap().iter().all(|x| !x.file_in_job));
    assert!(c.archive_jobs().await.unwrap().is_empty());
    assert_eq!(volumes_of(c, ids[0]).await, ["VA0001", "VB0001"]);
    assert_eq!(purgeable(c).await, sorted(&ids[..2]));

    // Reads try copies on readable volumes first.
    let first = |id| async move { c.tape_copies(id).await.unwrap()[0].package.id.clone() };
    assert_eq!(first(ids[0]).await, "a0");
    c.set_volume_state("VA0001", VolumeState::Noaccess).await.unwrap();
    assert_eq!(first(ids[0]).await, "b0");
    c.set_volume_state("VA0001", VolumeState::Full).await.unwrap();

    // b0 is found bad: read last, not counted, and f0 needs a new copy in
    // libB; until it has one it is not purgeable.
    assert!(c.mark_package_bad("nope", "x", t(50)).await.unwrap().is_none());
    let bad = c
        .mark_package_bad("b0", "adler32 mismatch", t(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bad.bad, Some(("adler32 mismatch".to_string(), t(50))));
    let again = c.mark_package_bad("b0", "later", t(60)).await.unwrap().unwrap();
    assert_eq!(again.bad, bad.bad, "the first reason stays");
    let copies = c.tape_copies(ids[0]).await.unwrap();
    assert_eq!(copies.last().unwrap().package.id, "b0");
    c.set_volume_state("VA0001", VolumeState::Noaccess).await.unwrap();
    assert_eq!(
        first(ids[0]).await,
        "a0",
        "a bad copy comes after a good one on a noaccess volume"
    );
    c.set_volume_state("VA0001", VolumeState::Full).await.unwrap();
    assert_eq!(volumes_of(c, ids[0]).await, ["VA0001"]);
    assert_eq!(purgeable(c).await, vec![ids[1]]);
    let work = c.repair_work(10).await.unwrap();
    assert_eq!(work.len(), 1, "{work:?}");
    let w = &work[0];
    assert_eq!((w.file_id, w.size, w.cached, w.has_good), (ids[0], 100, true, true));
    assert_eq!(
        (w.target.library.as_str(), &w.target.family, w.target.copies.len()),
        ("libB", &family("ff1"), 0)
    );

    // A file purged meanwhile is not queued (the job reads the cache).
    let rep = c
        .queue_repair(&w.target, &[(ids[0], 100), (ids[1], 101)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rep.files, vec![ids[0]], "f1 has a good copy in libB");
    assert!(
        c.queue_repair(&w.target, &[(ids[0], 100)]).await.unwrap().is_none(),
        "queued once"
    );
    assert!(c.repair_work(10).await.unwrap().is_empty());
    assert_eq!(purgeable(c).await, vec![ids[1]], "in a job: not purgeable");
    let done = c
        .commit_tape_files(&libb, &[package("b2", 2, &files[0], Some(rep.id))])
        .await
        .unwrap();
    assert!(done.queued.is_empty());
    assert!(c.archive_jobs().await.unwrap().is_empty());
    assert_eq!(volumes_of(c, ids[0]).await, ["VA0001", "VB0001"]);
    assert_eq!(purgeable(c).await, sorted(&ids[..2]));

    // The scrub's order: never verified first, then the longest ago; bad
    // copies never.
    let due = |before| async move {
        c.due_for_verify(before, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(due(t(1000)).await, ["a0", "a1", "a2", "b1", "b2"]);
    c.package_verified("a1", t(80)).await.unwrap();
    c.package_verified("a0", t(90)).await.unwrap();
    assert_eq!(due(t(1000)).await, ["a2", "b1", "b2", "a1", "a0"]);
    assert_eq!(due(t(85)).await, ["a2", "b1", "b2", "a1"]);

    // A bad copy of a deleted file needs nothing.
    c.mark_package_bad("a1", "bad", t(70)).await.unwrap().unwrap();
    assert_eq!(c.repair_work(10).await.unwrap().len(), 1);
    let f1 = c.lookup(&p("/raw/f1")).await.unwrap().unwrap();
    c.remove(f1.id, false, None).await.unwrap();
    assert!(c.repair_work(10).await.unwrap().is_empty());
}

fn sorted(ids: &[FileId]) -> Vec<FileId> {
    let mut v = ids.to_vec();
    v.sort();
    v
}
