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
            &[
                sf("/d/a", Some(a), StageState::Submitted, None),
                sf("//d/b", Some(b), StageState::Submitted, None),
                sf("/d/cached", Some(x), StageState::Completed, None),
                sf("/nope", None, StageState::Failed, Some("no such file")),
            ],
        )
        .await
        .unwrap();
    let r2 = c
        .create_stage_request("bob", t(11), 60, &[sf("/d/a", Some(a), StageState::Submitted, None)])
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
            &[
                sf("/d/a", Some(a), StageState::Submitted, None),
                sf("/d/b", Some(b), StageState::Submitted, None),
            ],
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
    let r4 = c.create_stage_request("alice", t(70), 60, &[]).await.unwrap();
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
        let r = c.create_stage_request("alice", t(10), 60, &files).await.unwrap();
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
            &[
                sf("/raw/f0", Some(ids[0]), StageState::Submitted, None),
                sf("/raw/f1", Some(ids[1]), StageState::Submitted, None),
                sf("/raw/f2", Some(ids[2]), StageState::Submitted, None),
                sf("/raw/nope", None, StageState::Failed, Some("no such file")),
            ],
        )
        .await
        .unwrap();
    c.stage_files_finished(&[ids[1]], t(20), None).await.unwrap();
    let mut copies = c.stage_request_copies(r).await.unwrap();
    copies.sort_by_key(|c| c.size);
    let got: Vec<(FileId, StageState, u64, &str, u32)> = copies
        .iter()
        .map(|c| (c.file_id, c.state, c.size, c.package.volume.as_str(), c.package.seq))
        .collect();
    assert_eq!(
        got,
        [
            (ids[0], StageState::Submitted, 100, "VL0001", 0),
            (ids[1], StageState::Completed, 200, "VL0001", 1),
        ]
    );
    assert_eq!(copies[0].package.id, format!("pkg-{}", ids[0]), "the first copy");
    assert!(c.stage_request_copies(r + 1000).await.unwrap().is_empty());
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

    // The stage worker's view of the open files: f0 with its first copy,
    // f2 with none, f1 finished and gone from it; f2 deleted: not live.
    let f2 = c.lookup(&p("/raw/f2")).await.unwrap().unwrap();
    c.mark_purged(&[ids[0]], t(30)).await.unwrap();
    let mut open = c.open_stage_work().await.unwrap();
    open.sort_by_key(|f| f.file_id);
    let mut want = vec![
        OpenStageFile {
            file_id: ids[0],
            live: true,
            cached: true,
            package: Some(copies[0].package.clone()),
        },
        OpenStageFile {
            file_id: ids[2],
            live: true,
            cached: true,
            package: None,
        },
    ];
    want.sort_by_key(|f| f.file_id);
    let cached_f0 = open.iter().find(|f| f.file_id == ids[0]).unwrap().cached;
    // (f0 is purged only if it was settled; either way its row is right.)
    want.iter_mut()
        .filter(|f| f.file_id == ids[0])
        .for_each(|f| f.cached = cached_f0);
    assert_eq!(open, want);
    c.remove(f2.id, false, None).await.unwrap();
    let open = c.open_stage_work().await.unwrap();
    let f2 = open.iter().find(|f| f.file_id == ids[2]).unwrap();
    assert!(!f2.live && !f2.cached && f2.package.is_none(), "{f2:?}");
}
