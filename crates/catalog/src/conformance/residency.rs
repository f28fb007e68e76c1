//! Conformance: cache residency and pins.

use super::tape::{new_volume, one_member_package, volume_write};
use super::*;

async fn node(c: &dyn Catalog, i: usize) -> Node {
    c.lookup(&p(&format!("/raw/f{i}"))).await.unwrap().unwrap()
}

/// Files /raw/f0.. of 100, 200, ... bytes, committed (still landing), the
/// first `on_tape` of them written to tape, one package each: their ids.
async fn raw_files(c: &dyn Catalog, count: u64, on_tape: usize) -> Vec<FileId> {
    c.add_volumes(&[new_volume("VL0001")]).await.unwrap();
    let d = mkdir(c, ROOT_ID, "raw").await;
    let files: Vec<NewFile> = (0..count)
        .map(|i| new_file(d.id, &format!("f{i}"), 100 * (i + 1)))
        .collect();
    c.commit_files("n1", &files, &[]).await.unwrap();
    let packages: Vec<_> = files[..on_tape]
        .iter()
        .enumerate()
        .map(|(i, f)| one_member_package(f, None, i as u32))
        .collect();
    c.commit_tape_files(&volume_write("VL0001"), &packages).await.unwrap();
    files.iter().map(|f| f.file_id).collect()
}

/// The owners of a file's live pins at `now`, in order.
async fn pin_owners(c: &dyn Catalog, id: FileId, now: Timestamp) -> Vec<String> {
    c.pins(id, now).await.unwrap().into_iter().map(|p| p.owner).collect()
}

/// Only a settled file on tape without a live pin is marked purged, in least
/// recently read order; pins have owners and expiries and go with their
/// file; staging marks a file cached again; usage adds up.
pub async fn residency_and_pins(c: &dyn Catalog) {
    // f0, f1, f2 go to tape; f3 does not.
    let ids = raw_files(c, 4, 3).await;
    // A file still landing is never purged (recovery would judge it by
    // its missing cache copy and drop it), even on tape.
    assert!(c.purge_candidates(t(100), 10).await.unwrap().is_empty());
    assert!(c.mark_purged(&ids, t(100)).await.unwrap().is_empty());
    assert_eq!(c.cache_usage(t(100)).await.unwrap().purgeable_files, 0);
    c.settle_files(&ids).await.unwrap();
    // Reads make f0 the most recently read.
    let n0 = node(c, 0).await;
    assert!(n0.cached);
    c.record_access(&[(n0.id, t(500))]).await.unwrap();
    let usage = c.cache_usage(t(100)).await.unwrap();
    assert_eq!((usage.cached_files, usage.cached_bytes), (4, 1000));
    assert_eq!((usage.purgeable_files, usage.purgeable_bytes), (3, 600));
    assert_eq!(usage.pinned_files, 0);

    // Pins: two owners on f1, one of them extended, not shortened.
    assert_eq!(c.pin(&[ids[1]], "alice", t(100), t(200)).await.unwrap(), 1);
    assert_eq!(c.pin(&[ids[1]], "sam", t(100), t(300)).await.unwrap(), 1);
    assert_eq!(c.pin(&[ids[1]], "alice", t(101), t(150)).await.unwrap(), 1);
    let pins = c.pins(ids[1], t(100)).await.unwrap();
    let got: Vec<(&str, Timestamp)> = pins.iter().map(|p| (p.owner.as_str(), p.expires)).collect();
    assert_eq!(got, [("alice", t(200)), ("sam", t(300))]);
    assert_eq!(
        c.pin(&[FileId::generate()], "alice", t(100), t(200)).await.unwrap(),
        0,
        "no such file"
    );
    let usage = c.cache_usage(t(100)).await.unwrap();
    assert_eq!((usage.pinned_files, usage.pinned_bytes), (1, 200));
    assert_eq!((usage.purgeable_files, usage.purgeable_bytes), (2, 400));

    // Candidates: on tape, no live pin, least recently read first.
    let cands: Vec<String> = c
        .purge_candidates(t(100), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(cands, ["f2", "f0"]);
    assert_eq!(c.purge_candidates(t(100), 1).await.unwrap().len(), 1);

    // Marking purged re-checks every rule: f1 is pinned, f3 not on tape.
    let mut purged = c.mark_purged(&ids, t(100)).await.unwrap();
    purged.sort();
    let mut want = vec![ids[0], ids[2]];
    want.sort();
    assert_eq!(purged, want);
    assert!(!node(c, 0).await.cached);
    assert!(node(c, 1).await.cached);
    assert!(node(c, 3).await.cached);
    // What a stage of each package is for.
    let pkg = |i: usize| format!("pkg-{}", ids[i]);
    assert_eq!(c.uncached_members(&pkg(0)).await.unwrap(), [ids[0]]);
    assert!(c.uncached_members(&pkg(1)).await.unwrap().is_empty(), "cached");
    assert!(c.uncached_members("no-such-package").await.unwrap().is_empty());
    assert!(
        c.mark_purged(&[ids[0]], t(100)).await.unwrap().is_empty(),
        "already purged"
    );
    // One owner's release leaves the other's pin; once it expires, f1 may go.
    assert_eq!(c.unpin(&[ids[1]], "alice").await.unwrap(), 1);
    assert_eq!(c.unpin(&[ids[1]], "alice").await.unwrap(), 0);
    assert!(
        c.mark_purged(&[ids[1]], t(299)).await.unwrap().is_empty(),
        "sam's pin holds"
    );
    assert_eq!(
        c.mark_purged(&[ids[1]], t(300)).await.unwrap(),
        [ids[1]],
        "expired at 300"
    );
    let usage = c.cache_usage(t(300)).await.unwrap();
    assert_eq!((usage.cached_files, usage.cached_bytes), (1, 400));
    assert_eq!(usage.purgeable_files, 0);

    // Staging brings them back.
    let mut staged = c.mark_staged(&[ids[0], ids[1], FileId::generate()]).await.unwrap();
    staged.sort();
    let mut want = vec![ids[0], ids[1]];
    want.sort();
    assert_eq!(staged, want);
    assert!(node(c, 0).await.cached);

    // Expired pins are swept; a deleted file's pins go with it.
    assert_eq!(c.expire_pins(t(300)).await.unwrap(), 1, "sam's");
    c.pin(&[ids[2]], "alice", t(300), t(900)).await.unwrap();
    let n2 = node(c, 2).await;
    c.remove(n2.id, false, None).await.unwrap();
    assert!(c.pins(ids[2], t(300)).await.unwrap().is_empty());
    assert_eq!(c.expire_pins(t(10_000)).await.unwrap(), 0, "nothing left to expire");
}

/// A stage request holds the files it names against purging, through its
/// own rows: until its lifetime ends or it is released (all, some files,
/// by path whichever request, or as the pin owner `stage-request-ID`); the
/// holds show as pins and count as pinned; a file found cached but purged
/// before the request was recorded is recorded SUBMITTED, not on disk.
pub async fn stage_requests_hold_their_files(c: &dyn Catalog) {
    let ids = raw_files(c, 3, 3).await;
    c.settle_files(&ids).await.unwrap();
    let sf = |i: usize, state| NewStageFile {
        path: format!("/raw/f{i}"),
        file_id: Some(ids[i]),
        state,
        error: None,
    };
    let missing = NewStageFile {
        path: "/raw/nope".into(),
        file_id: None,
        state: StageState::Failed,
        error: Some("no such file".into()),
    };
    // Held from t(100) for 100 s: f0 and f1 (cached, so COMPLETED).
    let r1 = c
        .create_stage_request(
            "alice",
            t(100),
            100,
            vec![sf(0, StageState::Completed), sf(1, StageState::Completed), missing],
            u64::MAX,
        )
        .await
        .unwrap();
    let names = |v: Vec<Node>| v.into_iter().map(|n| n.name).collect::<Vec<_>>();
    assert_eq!(names(c.purge_candidates(t(150), 10).await.unwrap()), ["f2"]);
    let usage = c.cache_usage(t(150)).await.unwrap();
    assert_eq!((usage.pinned_files, usage.pinned_bytes), (2, 300));
    assert_eq!((usage.purgeable_files, usage.purgeable_bytes), (1, 300));
    let owner = format!("{STAGE_PIN_OWNER}{r1}");
    let pins = c.pins(ids[0], t(150)).await.unwrap();
    assert_eq!(
        pins,
        [Pin {
            file_id: ids[0],
            owner: owner.clone(),
            created: t(100),
            expires: t(200)
        }]
    );
    assert_eq!(
        c.mark_purged(&ids, t(150)).await.unwrap(),
        [ids[2]],
        "f0 and f1 are held"
    );
    // Expired at t(200): held no more.
    assert_eq!(names(c.purge_candidates(t(200), 10).await.unwrap()), ["f0", "f1"]);
    assert!(c.pins(ids[0], t(200)).await.unwrap().is_empty());

    // Released: one file of the request, then the other as a pin owner.
    assert_eq!(c.release_holds(Some(r1), &[ids[0]]).await.unwrap(), 1);
    assert_eq!(
        c.release_holds(Some(r1), &[ids[0]]).await.unwrap(),
        0,
        "already released"
    );
    assert_eq!(names(c.purge_candidates(t(150), 10).await.unwrap()), ["f0"]);
    assert_eq!(c.unpin(&[ids[1]], &owner).await.unwrap(), 1);
    assert_eq!(names(c.purge_candidates(t(150), 10).await.unwrap()), ["f0", "f1"]);

    // Two requests hold f0; a release by file (whichever request) ends both;
    // a user's pin is not a request's hold and stays.
    let r2 = c
        .create_stage_request("bob", t(150), 3600, vec![sf(0, StageState::Completed)], u64::MAX)
        .await
        .unwrap();
    let r3 = c
        .create_stage_request("carol", t(150), 3600, vec![sf(0, StageState::Completed)], u64::MAX)
        .await
        .unwrap();
    c.pin(&[ids[0]], "sam", t(150), t(9_000)).await.unwrap();
    let owners = pin_owners(c, ids[0], t(160)).await;
    assert_eq!(
        owners,
        [
            "sam".to_string(),
            format!("{STAGE_PIN_OWNER}{r2}"),
            format!("{STAGE_PIN_OWNER}{r3}")
        ]
    );
    assert_eq!(c.release_holds(None, &[ids[0]]).await.unwrap(), 2);
    let owners = pin_owners(c, ids[0], t(160)).await;
    assert_eq!(owners, ["sam"]);
    // Deleting a request ends its holds.
    let r4 = c
        .create_stage_request("dave", t(150), 3600, vec![sf(1, StageState::Completed)], u64::MAX)
        .await
        .unwrap();
    assert!(
        c.purge_candidates(t(160), 10).await.unwrap().is_empty(),
        "f0 pinned, f1 held"
    );
    // A whole request's holds end at once; a second release finds none.
    assert_eq!(c.release_request(r4).await.unwrap(), 1);
    assert_eq!(c.release_request(r4).await.unwrap(), 0);
    assert_eq!(names(c.purge_candidates(t(160), 10).await.unwrap()), ["f1"]);
    assert!(c.delete_stage_request(r4).await.unwrap());
    assert_eq!(names(c.purge_candidates(t(160), 10).await.unwrap()), ["f1"]);

    // f2 was purged after a resolver saw it cached: the request records it
    // SUBMITTED (to be staged), not on disk, and stays open.
    let r5 = c
        .create_stage_request(
            "erin",
            t(170),
            3600,
            vec![sf(2, StageState::Completed), sf(1, StageState::Completed)],
            u64::MAX,
        )
        .await
        .unwrap();
    let req = c.stage_request(r5).await.unwrap().unwrap();
    let states: Vec<StageState> = req.files.iter().map(|f| f.state).collect();
    assert_eq!(states, [StageState::Submitted, StageState::Completed]);
    assert_eq!((req.files[0].finished, req.completed), (None, None));
    assert!(c.open_stage_files().await.unwrap().contains(&(r5, ids[2])));
    // A deleted file's holds go with it.
    let f1 = c.lookup(&p("/raw/f1")).await.unwrap().unwrap();
    c.remove(f1.id, false, None).await.unwrap();
    assert!(c.pins(ids[1], t(180)).await.unwrap().is_empty());
}

/// `bale fsck`'s reads and repair: the cached files in id order, page by
/// page; a lost copy is recorded only for files with a tape copy, whatever
/// pins or holds they have.
pub async fn lost_copies_are_recorded_for_files_on_tape(c: &dyn Catalog) {
    // f0, f1 on tape; f2 not.
    let ids = raw_files(c, 3, 2).await;
    c.settle_files(&ids).await.unwrap();
    mkdir(c, ROOT_ID, "dir").await;
    let page = |after, limit| async move {
        c.cached_files(after, limit)
            .await
            .unwrap()
            .iter()
            .map(|n| (n.id, n.file_id.unwrap()))
            .collect::<Vec<_>>()
    };
    let all = page(0, 100).await;
    assert_eq!(
        all.iter().map(|(_, f)| *f).collect::<Vec<_>>(),
        ids,
        "files only, in id order"
    );
    assert_eq!(page(all[0].0, 1).await, vec![all[1]]);
    assert!(page(all[2].0, 100).await.is_empty());
    // f0 pinned: a pin does not keep a copy that is not there.
    c.pin(&[ids[0]], "alice", t(100), t(10_000)).await.unwrap();
    let marked = c.mark_copies_lost(&ids).await.unwrap();
    assert_eq!(marked, vec![ids[0], ids[1]], "f2 has no tape copy: it stays");
    assert_eq!(page(0, 100).await, vec![all[2]]);
    // Again: nothing is cached that is on tape, nothing changes.
    assert!(c.mark_copies_lost(&ids).await.unwrap().is_empty());
    // Staged back: cached again.
    c.mark_staged(&[ids[0]]).await.unwrap();
    assert_eq!(page(0, 100).await, vec![all[0], all[2]]);
}
