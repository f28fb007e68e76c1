//! What operators look at: queue depths and file histories.

use super::*;
use bale_util::FileId;

/// Depths count open pools, jobs by state, open stage files by state,
/// open stage requests and open alarms by severity; acknowledged alarms
/// and finished stage files are not counted.
pub async fn depths_count_the_queues(c: &dyn Catalog) {
    let d = c.depths().await.unwrap();
    assert_eq!(
        (d.pools_open, d.pool_files, d.pool_bytes, d.pool_oldest),
        (0, 0, 0, None)
    );
    assert!(d.jobs.iter().all(|j| j.1 == 0 && j.2 == 0), "{:?}", d.jobs);
    assert_eq!(d.jobs.len(), JobState::ALL.len(), "every state is listed");
    assert_eq!(
        d.stage_files,
        vec![(StageState::Submitted, 0), (StageState::Started, 0)]
    );
    assert!(d.alarms.is_empty());

    let dir = mkdir(c, ROOT_ID, "q").await;
    let mut files = Vec::new();
    for i in 0..3 {
        let mut f = new_file(dir.id, &format!("f{i}"), 100 + i);
        f.archive = Some(ArchiveRoute::Direct(target("ff1")));
        files.push(f);
    }
    c.commit_files("n1", &files, &[]).await.unwrap();
    let ids: Vec<FileId> = files.iter().map(|f| f.file_id).collect();
    let stage = |id: FileId, state| NewStageFile {
        path: format!("/q/{id}"),
        file_id: Some(id),
        state,
        error: None,
    };
    let r = c
        .create_stage_request(
            "alice",
            t(20),
            3600,
            vec![
                stage(ids[0], StageState::Submitted),
                stage(ids[1], StageState::Submitted),
            ],
            100,
        )
        .await
        .unwrap();
    c.stage_files_started(&ids[..1], t(21)).await.unwrap();
    c.raise_alarm("warning", "cache", "one").await.unwrap();
    c.raise_alarm("warning", "cache", "two").await.unwrap();
    let e = c.raise_alarm("error", "drive x", "three").await.unwrap();
    c.raise_alarm("error", "drive y", "four").await.unwrap();
    c.ack_alarm(e.id, "root", t(22)).await.unwrap();

    let d = c.depths().await.unwrap();
    let queued = d.jobs.iter().find(|j| j.0 == JobState::Queued).unwrap();
    assert_eq!(
        (queued.1, queued.2),
        (3, 303),
        "three direct jobs of 100, 101 and 102 bytes"
    );
    assert_eq!(
        d.stage_files,
        vec![(StageState::Submitted, 1), (StageState::Started, 1)]
    );
    assert_eq!(d.stage_requests, 1);
    assert_eq!(d.alarms, vec![("error".to_string(), 1), ("warning".to_string(), 2)]);

    c.stage_files_finished(&ids[..2], t(23), None).await.unwrap();
    let d = c.depths().await.unwrap();
    assert_eq!(
        d.stage_files,
        vec![(StageState::Submitted, 0), (StageState::Started, 0)]
    );
    assert_eq!(d.stage_requests, 0, "request {r} completed with its last file");
}

/// Events come back per file in the order they were recorded, with every
/// field; pruning takes the old ones only.
pub async fn file_events_are_kept_in_order_and_pruned_by_age(c: &dyn Catalog) {
    let a = FileId::generate();
    let b = FileId::generate();
    let mut w = FileEvent::new(a, EventKind::Written, t(1));
    w.path = Some("/x/a".into());
    w.who = Some("alice".into());
    w.request = Some("0190aa".into());
    w.detail = Some("from 10.0.0.1".into());
    let mut r = FileEvent::new(a, EventKind::Read, t(3));
    r.count = 7;
    let mut p = FileEvent::new(a, EventKind::Purged, t(2));
    p.volume = Some("VL1".into());
    p.package = Some("pkg".into());
    p.offset = Some(1536);
    c.record_events(&[r.clone(), w.clone(), FileEvent::new(b, EventKind::Written, t(1))])
        .await
        .unwrap();
    c.record_events(&[p.clone()]).await.unwrap();
    let h = c.file_history(a, 100).await.unwrap();
    assert_eq!(h.len(), 3);
    assert!(
        h[0].time <= h[1].time && h[1].time <= h[2].time,
        "in time order, whatever the order recorded"
    );
    let strip = |mut e: FileEvent| {
        e.seq = 0;
        e
    };
    assert_eq!(h.into_iter().map(strip).collect::<Vec<_>>(), vec![w, p, r]);
    let newest = c.file_history(a, 2).await.unwrap();
    assert_eq!(
        newest.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Purged, EventKind::Read],
        "the newest, in time order"
    );
    assert_eq!(c.prune_events(t(2), 100).await.unwrap(), 2, "the two at t=1");
    let h = c.file_history(a, 100).await.unwrap();
    assert_eq!(
        h.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Purged, EventKind::Read]
    );
    assert!(c.file_history(b, 100).await.unwrap().is_empty());
}

/// The status page's lists: stage requests newest first, an owner's or
/// everyone's, paged by id, their files counted by state; an owner's live
/// pins counted with their bytes, the first by expiry with their paths,
/// expired pins and other owners' left out.
pub async fn requests_and_pins_are_listed_per_owner(c: &dyn Catalog) {
    let dir = mkdir(c, ROOT_ID, "p").await;
    let files: Vec<NewFile> = (0..3).map(|i| new_file(dir.id, &format!("f{i}"), 10 + i)).collect();
    c.commit_files("n1", &files, &[]).await.unwrap();
    let ids: Vec<FileId> = files.iter().map(|f| f.file_id).collect();
    let stage = |id: FileId, state| NewStageFile {
        path: format!("/p/{id}"),
        file_id: Some(id),
        state,
        error: None,
    };
    let (none, _) = c.stage_requests_page(Some("alice"), None, 10).await.unwrap();
    assert_eq!(none, 0);
    let a1 = c
        .create_stage_request(
            "alice",
            t(1),
            60,
            vec![
                stage(ids[0], StageState::Submitted),
                stage(ids[1], StageState::Completed),
            ],
            u64::MAX,
        )
        .await
        .unwrap();
    let b1 = c
        .create_stage_request("bob", t(2), 60, vec![stage(ids[2], StageState::Submitted)], u64::MAX)
        .await
        .unwrap();
    let a2 = c
        .create_stage_request("alice", t(3), 60, vec![stage(ids[2], StageState::Submitted)], u64::MAX)
        .await
        .unwrap();
    c.stage_files_finished(&ids[2..], t(4), None).await.unwrap();

    let (total, page) = c.stage_requests_page(Some("alice"), None, 10).await.unwrap();
    assert_eq!(total, 2);
    let got: Vec<i64> = page.iter().map(|r| r.id).collect();
    assert_eq!(got, vec![a2, a1], "newest first, alice's only");
    assert_eq!(
        page[1].counts,
        vec![(StageState::Completed, 1), (StageState::Submitted, 1)]
    );
    assert_eq!((page[1].created, page[1].completed), (t(1), None));
    assert_eq!(page[0].completed, Some(t(4)), "its one file finished");
    let (total, page) = c.stage_requests_page(None, Some(a2), 1).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        page.iter().map(|r| (r.id, r.owner.as_str())).collect::<Vec<_>>(),
        vec![(b1, "bob")],
        "the page below a2, one row"
    );

    c.pin(&ids[..2], "alice", t(10), t(100)).await.unwrap();
    c.pin(&ids[2..], "alice", t(10), t(50)).await.unwrap();
    c.pin(&ids[..1], "bob", t(10), t(100)).await.unwrap();
    let p = c.owned_pins("alice", t(20), 2).await.unwrap();
    assert_eq!((p.count, p.bytes), (3, 10 + 11 + 12));
    let first: Vec<(String, Timestamp)> = p.first.iter().map(|(p, e)| (p.to_string(), *e)).collect();
    assert_eq!(first[0], ("/p/f2".to_string(), t(50)), "the soonest expiry first");
    assert_eq!(first.len(), 2);
    let p = c.owned_pins("alice", t(60), 10).await.unwrap();
    assert_eq!((p.count, p.first.len()), (2, 2), "the expired pin is not counted");
    let p = c.owned_pins("carol", t(20), 10).await.unwrap();
    assert_eq!(p, OwnedPins::default());
}
