//! Conformance: cache residency and pins.

use super::tape::{new_volume, one_member_package, volume_write};
use super::*;

async fn node(c: &dyn Catalog, i: usize) -> Node {
    c.lookup(&p(&format!("/raw/f{i}"))).await.unwrap().unwrap()
}

/// Only a settled file on tape without a live pin is marked purged, in least
/// recently read order; pins have owners and expiries and go with their
/// file; staging marks a file cached again; usage adds up.
pub async fn residency_and_pins(c: &dyn Catalog) {
    c.add_volumes(&[new_volume("VL0001")]).await.unwrap();
    let d = mkdir(c, ROOT_ID, "raw").await;
    let files: Vec<NewFile> = (0..4)
        .map(|i| new_file(d.id, &format!("f{i}"), 100 * (i + 1)))
        .collect();
    c.commit_files("n1", &files, &[]).await.unwrap();
    let ids: Vec<FileId> = files.iter().map(|f| f.file_id).collect();
    // f0, f1, f2 go to tape; f3 does not.
    c.commit_tape_files(
        &volume_write("VL0001"),
        &[
            one_member_package(&files[0], None, 0),
            one_member_package(&files[1], None, 1),
            one_member_package(&files[2], None, 2),
        ],
    )
    .await
    .unwrap();
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
