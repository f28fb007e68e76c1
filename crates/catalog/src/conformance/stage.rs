//! Conformance: stage requests.

use super::*;

fn sf(path: &str, id: Option<FileId>, state: StageState, error: Option<&str>) -> NewStageFile {
    NewStageFile {
        path: path.into(),
        file_id: id,
        state,
        error: error.map(str::to_string),
    }
}

/// A request's files move SUBMITTED → STARTED → COMPLETED/FAILED or
/// CANCELLED, the request completes when none is open, a file shared by
/// two requests finishes in both, ids are never reused.
pub async fn stage_requests_follow_their_files(c: &dyn Catalog) {
    let (a, b, x) = (FileId::generate(), FileId::generate(), FileId::generate());
    let r1 = c
        .create_stage_request(
            "alice",
            t(10),
            3600,
            vec![
                sf("/d/a", Some(a), StageState::Submitted, None),
                sf("//d/b", Some(b), StageState::Submitted, None),
                sf("/d/cached", Some(x), StageState::Completed, None),
                sf("/nope", None, StageState::Failed, Some("no such file")),
            ],
            u64::MAX,
        )
        .await
        .unwrap();
    let r2 = c
        .create_stage_request(
            "bob",
            t(11),
            60,
            vec![sf("/d/a", Some(a), StageState::Submitted, None)],
            u64::MAX,
        )
        .await
        .unwrap();
    assert!(r2 > r1);
    let req = c.stage_request(r1).await.unwrap().unwrap();
    assert_eq!(
        (req.owner.as_str(), req.created, req.lifetime_s),
        ("alice", t(10), 3600)
    );
    assert_eq!((req.started, req.completed), (None, None));
    let paths: Vec<&str> = req.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["/d/a", "//d/b", "/d/cached", "/nope"], "as sent, in order");
    assert_eq!(req.files[2].finished, Some(t(10)));
    assert_eq!(req.files[3].error.as_deref(), Some("no such file"));
    let mut open = c.open_stage_files().await.unwrap();
    open.sort();
    let mut want = vec![(r1, a), (r1, b), (r2, a)];
    want.sort();
    assert_eq!(open, want);

    c.stage_files_started(&[a], t(20)).await.unwrap();
    let req = c.stage_request(r1).await.unwrap().unwrap();
    assert_eq!(
        (req.files[0].state, req.files[0].started),
        (StageState::Started, Some(t(20)))
    );
    assert_eq!(req.started, Some(t(20)));
    assert_eq!(c.stage_request(r2).await.unwrap().unwrap().started, Some(t(20)));
    // `a` completes in both requests; r2 is done, r1 still waits for `b`.
    c.stage_files_finished(&[a], t(30), None).await.unwrap();
    let r2v = c.stage_request(r2).await.unwrap().unwrap();
    assert_eq!(
        (r2v.files[0].state, r2v.completed),
        (StageState::Completed, Some(t(30)))
    );
    assert_eq!(c.stage_request(r1).await.unwrap().unwrap().completed, None);
    c.stage_files_finished(&[b], t(40), Some("adler32 mismatch"))
        .await
        .unwrap();
    let req = c.stage_request(r1).await.unwrap().unwrap();
    assert_eq!(req.files[1].state, StageState::Failed);
    assert_eq!(req.files[1].error.as_deref(), Some("adler32 mismatch"));
    assert_eq!(req.files[1].started, Some(t(40)), "a file failed before it started");
    assert_eq!(req.completed, Some(t(40)));
    assert!(c.open_stage_files().await.unwrap().is_empty());
    // Finished files stay as they are.
    c.stage_files_finished(&[a, b], t(50), Some("late")).await.unwrap();
    assert_eq!(
        c.stage_request(r1).await.unwrap().unwrap().files[0].state,
        StageState::Completed
    );

    // Cancel some paths, then the rest.
    let r3 = c
        .create_stage_request(
            "alice",
            t(60),
            60,
            vec![
                sf("/d/a", Some(a), StageState::Submitted, None),
                sf("/d/b", Some(b), StageState::Submitted, None),
            ],
            u64::MAX,
        )
        .await
        .unwrap();
    assert_eq!(
        c.cancel_stage_files(r3, Some(&["/d/b".into()]), t(61)).await.unwrap(),
        1
    );
    assert_eq!(
        c.cancel_stage_files(r3, Some(&["/d/b".into()]), t(62)).await.unwrap(),
        0
    );
    let req = c.stage_request(r3).await.unwrap().unwrap();
    assert_eq!(
        (req.files[0].state, req.files[1].state, req.completed),
        (StageState::Submitted, StageState::Cancelled, None)
    );
    assert_eq!(c.cancel_stage_files(r3, None, t(63)).await.unwrap(), 1);
    assert_eq!(c.stage_request(r3).await.unwrap().unwrap().completed, Some(t(63)));
    // Deleted, and its id not handed out again.
    assert!(c.delete_stage_request(r3).await.unwrap());
    assert!(!c.delete_stage_request(r3).await.unwrap());
    assert!(c.stage_request(r3).await.unwrap().is_none());
    let r4 = c
        .create_stage_request("alice", t(70), 60, vec![], u64::MAX)
        .await
        .unwrap();
    assert!(r4 > r3);
    assert_eq!(
        c.stage_request(r4).await.unwrap().unwrap().completed,
        Some(t(70)),
        "nothing to do"
    );
}

/// Files of one request finished concurrently (two packages' stages ending
/// at the same instant, a cancel racing a finish): the request completes.
/// Under READ COMMITTED two transactions could each see the other's file
/// still open and neither complete the request.
pub async fn stage_requests_complete_under_concurrency(c: std::sync::Arc<dyn Catalog>) {
    for round in 0..20 {
        let ids: Vec<FileId> = (0..8).map(|_| FileId::generate()).collect();
        let files: Vec<NewStageFile> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| sf(&format!("/r{round}/f{i}"), Some(*id), StageState::Submitted, None))
            .collect();
        let r = c
            .create_stage_request("alice", t(10), 60, files.clone(), u64::MAX)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for (i, id) in ids.into_iter().enumerate() {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                match i % 3 {
                    0 => c.stage_files_finished(&[id], t(20), None).await.unwrap(),
                    1 => c.stage_files_finished(&[id], t(20), Some("bad tape")).await.unwrap(),
                    _ => {
                        c.cancel_stage_files(r, Some(&[format!("/r{round}/f{i}")]), t(20))
                            .await
                            .unwrap();
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let req = c.stage_request(r).await.unwrap().unwrap();
        assert!(req.files.iter().all(|f| !f.state.is_open()), "round {round}");
        assert_eq!(
            req.completed,
            Some(t(20)),
            "round {round}: every file ended, the request too"
        );
    }
}

/// A request's files with their first tape copy's package, in one query:
/// a file with two copies counts once (the older), one with none is left
/// out; states and sizes come along.
pub async fn stage_requests_know_their_packages(c: &dyn Catalog) {
    c.add_volumes(&[super::tape::new_volume("VL0001")]).await.unwrap();
    let d = mkdir(c, ROOT_ID, "raw").await;
    let files: Vec<NewFile> = (0..3)
        .map(|i| new_file(d.id, &format!("f{i}"), 100 * (i + 1)))
        .collect();
    c.commit_files("n1", &files, &[]).await.unwrap();
    let mut second = super::tape::one_member_package(&files[0], None, 2);
    second.id = "pkg-second-copy".into();
    second.created = t(40);
    c.commit_tape_files(
        &super::tape::volume_write("VL0001"),
        &[
            super::tape::one_member_package(&files[0], None, 0),
            super::tape::one_member_package(&files[1], None, 1),
            second,
        ],
    )
    .await
    .unwrap();
    let ids: Vec<FileId> = files.iter().map(|f| f.file_id).collect();
    let r = c
        .create_stage_request(
            "alice",
            t(10),
            60,
            vec![
                sf("/raw/f0", Some(ids[0]), StageState::Submitted, None),
                sf("/raw/f1", Some(ids[1]), StageState::Submitted, None),
                sf("/raw/f2", Some(ids[2]), StageState::Submitted, None),
                sf("/raw/nope", None, StageState::Failed, Some("no such file")),
            ],
            u64::MAX,
        )
        .await
        .unwrap();
    c.stage_files_finished(&[ids[1]], t(20), None).await.unwrap();
    let packages = c.stage_request_packages(r).await.unwrap();
    let got: Vec<(&str, u32, u64, u64, bool)> = packages
        .iter()
        .map(|p| (p.package.volume.as_str(), p.package.seq, p.bytes, p.bytes_done, p.open))
        .collect();
    assert_eq!(
        got,
        [("VL0001", 0, 100, 0, true), ("VL0001", 1, 200, 200, false)],
        "f0's first copy only, f1's done, f2 (no copy) left out"
    );
    assert_eq!(packages[0].package.id, format!("pkg-{}", ids[0]), "the first copy");
    assert!(c.stage_request_packages(r + 1000).await.unwrap().is_empty());
    let (owner, mut counts) = c.stage_request_counts(r).await.unwrap().unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(owner, "alice");
    assert_eq!(
        counts,
        [
            (StageState::Completed, 1),
            (StageState::Failed, 1),
            (StageState::Submitted, 2)
        ]
    );
    assert!(c.stage_request_counts(r + 1000).await.unwrap().is_none());
    let copies = packages;

    // Every copy's volume, in bulk: f0 has two, f1 one, f2 none.
    let mut vols = c.copy_volumes(&ids).await.unwrap();
    vols.sort();
    let mut want = vec![
        (ids[0], "VL0001".to_string()),
        (ids[0], "VL0001".to_string()),
        (ids[1], "VL0001".to_string()),
    ];
    want.sort();
    assert_eq!(vols, want);

    // What the stage worker takes: f0's first copy (f1 is finished). The
    // settling finishes f2, which is cached.
    let f0_first = copies[0].package.clone();
    c.settle_files(&ids).await.unwrap();
    // After the request's holds ran out (60 s from t(10)).
    c.mark_purged(&[ids[0]], t(80)).await.unwrap();
    assert_eq!(
        c.open_stage_packages(10).await.unwrap(),
        vec![f0_first.clone()],
        "each package once, the first copy"
    );
    assert_eq!(c.settle_open_stage_files(t(81)).await.unwrap(), 1);
    let req = c.stage_request(r).await.unwrap().unwrap();
    assert_eq!(
        (req.files[2].state, req.files[0].state),
        (StageState::Completed, StageState::Submitted)
    );
    assert_eq!(c.settle_open_stage_files(t(82)).await.unwrap(), 0, "nothing more");
    // f0's copies found bad: nothing to stage it from, it fails.
    c.mark_package_bad(&f0_first.id, "bad", t(83)).await.unwrap();
    c.mark_package_bad("pkg-second-copy", "bad", t(83)).await.unwrap();
    assert!(c.open_stage_packages(10).await.unwrap().is_empty());
    assert_eq!(c.settle_open_stage_files(t(84)).await.unwrap(), 1);
    let req = c.stage_request(r).await.unwrap().unwrap();
    assert_eq!(
        (req.files[0].state, req.files[0].error.as_deref()),
        (
            StageState::Failed,
            Some("the file is not cached and has no good tape copy")
        )
    );
    assert!(req.completed.is_some(), "no open file left: the request is complete");
    // A file deleted while open fails.
    let r2 = c
        .create_stage_request(
            "bob",
            t(85),
            60,
            vec![sf("/raw/f1", Some(ids[1]), StageState::Submitted, None)],
            u64::MAX,
        )
        .await
        .unwrap();
    let f1 = c.lookup(&p("/raw/f1")).await.unwrap().unwrap();
    c.remove(f1.id, false, None).await.unwrap();
    assert_eq!(c.settle_open_stage_files(t(86)).await.unwrap(), 1);
    let req = c.stage_request(r2).await.unwrap().unwrap();
    assert_eq!(req.files[0].error.as_deref(), Some("the file was deleted"));
    assert_eq!(req.completed, Some(t(86)));
}

/// The stage worker's window: the packages of the open files each once,
/// the volumes in turn and each volume's packages in tape order, at most
/// the limit; which in-flight packages an open file still needs.
pub async fn stage_packages_come_in_windows(c: &dyn Catalog) {
    c.add_volumes(&[super::tape::new_volume("VL0001"), super::tape::new_volume("VL0002")])
        .await
        .unwrap();
    let d = mkdir(c, ROOT_ID, "raw").await;
    let files: Vec<NewFile> = (0..6).map(|i| new_file(d.id, &format!("f{i}"), 10)).collect();
    c.commit_files("n1", &files, &[]).await.unwrap();
    // f0..f3 on VL0001 at 0..3, f4 and f5 on VL0002 at 0, 1.
    let on = |range: std::ops::Range<usize>| -> Vec<NewPackage> {
        range
            .enumerate()
            .map(|(seq, i)| super::tape::one_member_package(&files[i], None, seq as u32))
            .collect()
    };
    c.commit_tape_files(&super::tape::volume_write("VL0001"), &on(0..4))
        .await
        .unwrap();
    c.commit_tape_files(&super::tape::volume_write("VL0002"), &on(4..6))
        .await
        .unwrap();
    let ids: Vec<FileId> = files.iter().map(|f| f.file_id).collect();
    c.settle_files(&ids).await.unwrap();
    c.mark_purged(&ids, t(30)).await.unwrap();
    // Two requests share f1: its package comes once.
    let sf_of = |i: usize| sf(&format!("/raw/f{i}"), Some(ids[i]), StageState::Submitted, None);
    c.create_stage_request("alice", t(40), 60, (0..6).map(sf_of).collect(), u64::MAX)
        .await
        .unwrap();
    c.create_stage_request("bob", t(40), 60, vec![sf_of(1)], u64::MAX)
        .await
        .unwrap();
    let order: Vec<(String, u32)> = c
        .open_stage_packages(10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.volume, p.seq))
        .collect();
    let want: Vec<(String, u32)> = [
        ("VL0001", 0),
        ("VL0002", 0),
        ("VL0001", 1),
        ("VL0002", 1),
        ("VL0001", 2),
        ("VL0001", 3),
    ]
    .into_iter()
    .map(|(v, s)| (v.to_string(), s))
    .collect();
    assert_eq!(order, want, "volumes in turn, each in tape order");
    assert_eq!(c.open_stage_packages(3).await.unwrap().len(), 3, "the limit");
    // f0's and f5's requests are finished: only f1..f4 are wanted.
    c.stage_files_finished(&[ids[0], ids[5]], t(50), None).await.unwrap();
    let all: Vec<String> = ids.iter().map(|i| format!("pkg-{i}")).collect();
    let mut wanted = c.stage_packages_wanted(&all).await.unwrap();
    wanted.sort();
    let mut want: Vec<String> = all[1..5].to_vec();
    want.sort();
    assert_eq!(wanted, want);
    assert!(c.stage_packages_wanted(&[]).await.unwrap().is_empty());
}

/// A user's open stage files are bounded: a request that would pass the
/// limit is refused whole (`Limit`, nothing recorded); files completed or
/// failed at intake do not count; finished files make room again.
pub async fn open_stage_files_are_bounded_per_user(c: &dyn Catalog) {
    let ids: Vec<FileId> = (0..5).map(|_| FileId::generate()).collect();
    let open = |i: usize| sf(&format!("/f{i}"), Some(ids[i]), StageState::Submitted, None);
    let r1 = c
        .create_stage_request("alice", t(10), 60, vec![open(0), open(1), open(2)], 4)
        .await
        .unwrap();
    let e = c
        .create_stage_request("alice", t(11), 60, vec![open(3), open(4)], 4)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CatalogError::Limit(m) if m.contains("3") && m.contains("4")),
        "{e}"
    );
    assert!(c.stage_request(r1 + 1).await.unwrap().is_none(), "nothing recorded");
    // Another user has a limit of their own; failed and completed files
    // do not count.
    c.create_stage_request("bob", t(11), 60, vec![open(3), open(4)], 4)
        .await
        .unwrap();
    c.create_stage_request(
        "alice",
        t(12),
        60,
        vec![
            open(3),
            sf("/x", None, StageState::Failed, Some("no such file")),
            sf("/y", Some(ids[0]), StageState::Completed, None),
        ],
        4,
    )
    .await
    .unwrap();
    assert!(c
        .create_stage_request("alice", t(13), 60, vec![open(4)], 4)
        .await
        .is_err());
    c.stage_files_finished(&[ids[0]], t(14), None).await.unwrap();
    c.create_stage_request("alice", t(15), 60, vec![open(4)], 4)
        .await
        .unwrap();
}

/// A file named twice in one request counts once against the cap; requests
/// finished long enough ago whose holds have ended are forgotten, the rest
/// kept.
pub async fn stage_requests_are_counted_once_and_forgotten(c: &dyn Catalog) {
    let a = FileId::generate();
    let open = || sf("/a", Some(a), StageState::Submitted, None);
    // Three times the same file: one open file against a limit of one.
    let r1 = c
        .create_stage_request("alice", t(10), 60, vec![open(), open(), open()], 1)
        .await
        .unwrap();
    assert!(c
        .create_stage_request(
            "alice",
            t(11),
            60,
            vec![sf("/b", Some(FileId::generate()), StageState::Submitted, None)],
            1
        )
        .await
        .is_err());
    // Finished at t(20), held until t(70).
    c.stage_files_finished(&[a], t(20), None).await.unwrap();
    let r2 = c
        .create_stage_request(
            "bob",
            t(30),
            600,
            vec![sf("/c", None, StageState::Failed, Some("no such file"))],
            u64::MAX,
        )
        .await
        .unwrap();
    let r3 = c
        .create_stage_request("bob", t(40), 60, vec![open()], u64::MAX)
        .await
        .unwrap();
    // Before t(50), at t(60): r1 is still held (until t(70)); r2 (failed
    // at once, nothing held) is forgotten; r3 is open.
    assert_eq!(c.forget_finished_stage_requests(t(50), t(60)).await.unwrap(), 1);
    assert!(c.stage_request(r2).await.unwrap().is_none());
    assert!(c.stage_request(r1).await.unwrap().is_some());
    assert!(c.stage_request(r3).await.unwrap().is_some());
    // Its holds ended, r1 goes too; r3 stays while open.
    assert_eq!(c.forget_finished_stage_requests(t(50), t(80)).await.unwrap(), 1);
    assert!(c.stage_request(r1).await.unwrap().is_none());
    assert!(c.stage_request(r3).await.unwrap().is_some());
    assert_eq!(c.forget_finished_stage_requests(t(100), t(100)).await.unwrap(), 0);
    // Ids are not handed out again.
    let r4 = c
        .create_stage_request("bob", t(90), 60, vec![open()], u64::MAX)
        .await
        .unwrap();
    assert!(r4 > r3);
}

/// Stages begin in one call: each package's members and whether a read is
/// needed (a live member not cached); the open files of the members of
/// those that need one start, the others' stay submitted; a request's
/// owner reads alone.
pub async fn stages_begin_in_one_call(c: &dyn Catalog) {
    c.add_volumes(&[super::tape::new_volume("VL0001")]).await.unwrap();
    let d = mkdir(c, ROOT_ID, "b").await;
    let files: Vec<NewFile> = (0..2).map(|i| new_file(d.id, &format!("f{i}"), 10)).collect();
    c.commit_files("n1", &files, &[]).await.unwrap();
    let ids: Vec<FileId> = files.iter().map(|f| f.file_id).collect();
    c.commit_tape_files(
        &super::tape::volume_write("VL0001"),
        &[
            super::tape::one_member_package(&files[0], None, 0),
            super::tape::one_member_package(&files[1], None, 1),
        ],
    )
    .await
    .unwrap();
    // f0 purged (needs a read); f1 still cached (its stage needs none).
    c.settle_files(&ids).await.unwrap();
    assert_eq!(c.mark_purged(&ids[..1], t(5)).await.unwrap(), vec![ids[0]]);
    let r = c
        .create_stage_request(
            "alice",
            t(10),
            60,
            vec![
                sf("/b/f0", Some(ids[0]), StageState::Submitted, None),
                sf("/b/f1", Some(ids[1]), StageState::Submitted, None),
            ],
            u64::MAX,
        )
        .await
        .unwrap();
    let packages = vec![
        format!("pkg-{}", ids[0]),
        format!("pkg-{}", ids[1]),
        "pkg-none".to_string(),
    ];
    let begun = c.begin_stages(&packages, t(20)).await.unwrap();
    assert_eq!(
        begun,
        vec![
            BegunStage {
                members: vec![ids[0]],
                needs_read: true
            },
            BegunStage {
                members: vec![ids[1]],
                needs_read: false
            },
            BegunStage {
                members: vec![],
                needs_read: false
            },
        ]
    );
    let req = c.stage_request(r).await.unwrap().unwrap();
    assert_eq!(req.started, Some(t(20)));
    assert_eq!(
        req.files.iter().map(|f| f.state).collect::<Vec<_>>(),
        vec![StageState::Started, StageState::Submitted]
    );
    assert_eq!(req.files[0].started, Some(t(20)));
    assert!(c.begin_stages(&[], t(21)).await.unwrap().is_empty());
    assert_eq!(c.stage_request_owner(r).await.unwrap().as_deref(), Some("alice"));
    assert_eq!(c.stage_request_owner(r + 1000).await.unwrap(), None);
}
