use super::*;
use bytes::Bytes;

fn body(chunks: Vec<&'static [u8]>) -> impl futures::Stream<Item = Result<Bytes, String>> + Unpin {
    futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c))))
}

fn big(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 253) as u8).collect()
}

async fn roundtrip(mode: SyncMode, data: Vec<u8>, chunk: usize) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), mode).unwrap();
    let id = FileId::generate();
    let chunks: Vec<Result<Bytes, String>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut staged = cache
        .ingest(id, futures::stream::iter(chunks), Some(data.len() as u64))
        .await
        .unwrap();
    staged.wait_synced().await.unwrap();
    assert_eq!(staged.size, data.len() as u64);
    assert_eq!(staged.adler32, bale_util::Adler32::of(&data));
    tokio::task::spawn_blocking({
        let cache = cache.clone();
        move || cache.sync_batch()
    })
    .await
    .unwrap()
    .unwrap();
    let (id, _) = staged.keep();
    cache.promote(&[id]).unwrap();
    assert_eq!(std::fs::read(cache.file_path(id)).unwrap(), data);
    assert!(!cache.tmp_path(id).exists());
}

#[tokio::test]
async fn small_and_large_bodies_round_trip() {
    roundtrip(SyncMode::Fsync, Vec::new(), 1).await;
    roundtrip(SyncMode::Fsync, big(10_000), 999).await;
    roundtrip(SyncMode::Fsync, big(5 << 20), 65_536).await;
    roundtrip(SyncMode::Syncfs, big(3 << 20), 100_000).await;
    roundtrip(SyncMode::Syncfs, big(1 << 20), 1 << 20).await;
}

#[tokio::test]
async fn broken_body_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), SyncMode::Fsync).unwrap();
    for size in [10usize, 3 << 20] {
        let data = big(size);
        let mut chunks: Vec<Result<Bytes, String>> =
            data.chunks(65_536).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        chunks.push(Err("connection reset".to_string()));
        let r = cache
            .ingest(FileId::generate(), futures::stream::iter(chunks), None)
            .await;
        assert!(matches!(r, Err(IngestError::Body(_))), "{:?}", r.err());
    }
    assert_eq!(cache.pending().unwrap().0.len(), 0, "tmp/ is empty");
}

#[tokio::test]
async fn body_longer_than_declared_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), SyncMode::Fsync).unwrap();
    let r = cache
        .ingest(FileId::generate(), body(vec![b"hello", b"world"]), Some(7))
        .await;
    assert!(matches!(r, Err(IngestError::TooLong { declared: 7 })));
    assert_eq!(cache.pending().unwrap().0.len(), 0);
}

#[tokio::test]
async fn dropped_staged_file_is_removed_and_pending_lists_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), SyncMode::Fsync).unwrap();
    let s = cache
        .ingest(FileId::generate(), body(vec![b"abc"]), None)
        .await
        .unwrap();
    let p = s.path().to_path_buf();
    drop(s);
    assert!(!p.exists());

    let kept = cache
        .ingest(FileId::generate(), body(vec![b"abc"]), None)
        .await
        .unwrap()
        .keep()
        .0;
    std::fs::write(dir.path().join("tmp").join("garbage.part"), b"x").unwrap();
    let (ids, junk) = cache.pending().unwrap();
    assert_eq!(ids, vec![kept]);
    assert_eq!(junk.len(), 1);
    cache.discard_pending(&ids, &junk).unwrap();
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn open_read_finds_committed_file_before_promotion() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), SyncMode::Fsync).unwrap();
    let id = cache
        .ingest(FileId::generate(), body(vec![b"abc"]), None)
        .await
        .unwrap()
        .keep()
        .0;
    assert!(cache.open_read(id).await.is_ok());
    cache.promote(&[id]).unwrap();
    assert!(cache.open_read(id).await.is_ok());
    cache.remove(id).unwrap();
    assert!(cache.open_read(id).await.is_err());
    cache.remove(id).unwrap();
}

/// A file deleted between its commit and its promotion does not keep the
/// others of its batch in tmp/ (a DELETE can come right after the answer).
#[tokio::test]
async fn promotion_skips_a_file_deleted_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), SyncMode::Fsync).unwrap();
    let mut ids = Vec::new();
    for data in [&b"first"[..], b"second", b"third"] {
        let id = cache
            .ingest(FileId::generate(), body(vec![data]), None)
            .await
            .unwrap()
            .keep()
            .0;
        ids.push(id);
    }
    cache.remove(ids[1]).unwrap();
    cache.promote(&ids).unwrap();
    for id in [ids[0], ids[2]] {
        assert!(cache.file_path(id).exists(), "promoted");
    }
    assert!(!cache.file_path(ids[1]).exists());
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn inline_files_carry_their_data_and_budget() {
    let dir = tempfile::tempdir().unwrap();
    // Inline up to 8 bytes, at most 10 bytes unsettled.
    let cache = Cache::open(dir.path(), SyncMode::Fsync).unwrap().with_inline(8, 10);
    let a = cache
        .ingest(FileId::generate(), body(vec![b"abc", b"def"]), None)
        .await
        .unwrap();
    assert_eq!(a.inline().map(|b| &b[..]), Some(&b"abcdef"[..]));
    assert_eq!(cache.inline_pending(), 6);
    // Too large for inline, and over the budget: ordinary files.
    let big = cache
        .ingest(FileId::generate(), body(vec![b"123456789"]), None)
        .await
        .unwrap();
    assert!(big.inline().is_none());
    let over = cache
        .ingest(FileId::generate(), body(vec![b"12345"]), None)
        .await
        .unwrap();
    assert!(over.inline().is_none(), "6 + 5 bytes exceed the budget of 10");
    let fits = cache
        .ingest(FileId::generate(), body(vec![b"1234"]), None)
        .await
        .unwrap();
    assert!(fits.inline().is_some());
    assert_eq!(cache.inline_pending(), 10);
    // A file never committed gives its share back; a kept one holds it
    // until its share is dropped (settled).
    drop(fits);
    assert_eq!(cache.inline_pending(), 6);
    let (id, share) = a.keep();
    assert_eq!(cache.inline_pending(), 6);
    cache.promote_landed(&[id]).unwrap();
    assert_eq!(std::fs::read(cache.file_path(id)).unwrap(), b"abcdef");
    assert!(!cache.tmp_path(id).exists());
    cache.sync_landed(&[id]).unwrap();
    drop(share);
    assert_eq!(cache.inline_pending(), 0);
    // An overwrite stops being inline and gives its share back.
    let mut o = cache.ingest(FileId::generate(), body(vec![b"xy"]), None).await.unwrap();
    assert_eq!(cache.inline_pending(), 2);
    o.uninline();
    assert!(o.inline().is_none());
    o.wait_synced().await.unwrap();
    assert_eq!(cache.inline_pending(), 0);
    // Inline off: nothing is inline.
    let off = Cache::open(dir.path(), SyncMode::Fsync).unwrap().with_inline(8, 0);
    assert!(off
        .ingest(FileId::generate(), body(vec![b"a"]), None)
        .await
        .unwrap()
        .inline()
        .is_none());
}
