//! Conformance: pools fill and close.

use super::*;

pub async fn pools_fill_and_close(c: &dyn Catalog) {
    let d = mkdir(c, ROOT_ID, "raw").await;
    // Eight files of 100..800 bytes in pool A (target 1000 bytes, at most 3
    // files), two in pool B; one joins at a later time.
    let mut files = Vec::new();
    for i in 0..10u64 {
        let mut f = new_file(d.id, &format!("f{i}"), 100 * (i + 1));
        f.time = t(10 + i as i64);
        f.archive = Some(ArchiveRoute::Pool(if i < 8 {
            pool_target("small/a", "ff1", 1000, 3)
        } else {
            pool_target("small/b", "ff2", 1000, 3)
        }));
        files.push(f);
    }
    for r in c.commit_files("n1", &files, &[]).await.unwrap() {
        assert!(r.unwrap().job.is_none(), "a pooled file has no job yet");
    }
    let pools = c.pools().await.unwrap();
    assert_eq!(pools.len(), 2);
    assert_eq!(
        (pools[0].key.as_str(), pools[0].files, pools[0].bytes, pools[0].oldest),
        ("small/a", 8, 3600, t(10))
    );
    assert_eq!((pools[1].files, pools[1].bytes, pools[1].oldest), (2, 1900, t(18)));
    assert_eq!(pools[0].limits.max_files, 3);
    assert_eq!(pools[1].target, target("ff2"));
    assert_eq!(c.pool_of(files[0].file_id).await.unwrap().as_deref(), Some("small/a"));
    assert!(c.archive_jobs().await.unwrap().is_empty());

    // A pool below every limit stays open until its oldest member waited
    // its 2 s.
    let mut young = new_file(d.id, "young", 10);
    young.time = t(100);
    young.archive = Some(ArchiveRoute::Pool(pool_target("small/c", "ff1", 1000, 3)));
    c.commit_files("n1", &[young], &[]).await.unwrap().remove(0).unwrap();
    assert!(c.close_pool("small/c", t(101), false).await.unwrap().is_none());
    let aged = c.close_pool("small/c", t(102), false).await.unwrap().unwrap();
    assert_eq!((aged.files.len(), aged.bytes), (1, 10));
    assert!(c.pools().await.unwrap().iter().all(|p| p.key != "small/c"));

    // Oldest first; stops at the member that reaches the target: 100+200+300
    // is below 1000 but three files is the limit.
    let j1 = c.close_pool("small/a", t(40), false).await.unwrap().unwrap();
    assert_eq!(j1.files.len(), 3);
    assert_eq!((j1.bytes, j1.pool.as_deref()), (600, Some("small/a")));
    assert_eq!(j1.target, target("ff1"));
    // 400+500 = 900 < 1000, +600 = 1500: past the target by one member.
    let j2 = c.close_pool("small/a", t(41), false).await.unwrap().unwrap();
    assert_eq!(j2.bytes, 1500);
    let mut expect = vec![files[3].file_id, files[4].file_id, files[5].file_id];
    expect.sort();
    assert_eq!(j2.files, expect);
    assert!(c.pool_of(files[3].file_id).await.unwrap().is_none());
    assert_eq!(c.job_of(files[3].file_id).await.unwrap().unwrap().id, j2.id);
    // 700 is below the target; 700 + 800 reaches it.
    let j3 = c.close_pool("small/a", t(42), true).await.unwrap().unwrap();
    assert_eq!((j3.files.len(), j3.bytes), (2, 1500));
    assert!(c.close_pool("small/a", t(43), true).await.unwrap().is_none());
    assert!(c.close_pool("nope", t(43), true).await.unwrap().is_none());
    assert_eq!(c.pools().await.unwrap().len(), 1, "the empty pool is gone");

    // A file deleted from an open pool leaves it; a pool left empty goes.
    for name in ["f8", "f9"] {
        let n = c.lookup(&p(&format!("/raw/{name}"))).await.unwrap().unwrap();
        c.remove(n.id, false, None).await.unwrap();
    }
    assert!(c.pools().await.unwrap().is_empty());
    assert!(c.close_pool("small/b", t(44), true).await.unwrap().is_none());

    // A member whose data is bad is held back in a failed job of its own.
    let held = c.hold_member(j1.id, j1.files[0], "adler32 mismatch").await.unwrap();
    assert_eq!((held.state, held.files.as_slice()), (JobState::Failed, &j1.files[..1]));
    assert_eq!(held.error.as_deref(), Some("adler32 mismatch"));
    let rest = c.job_of(j1.files[1]).await.unwrap().unwrap();
    assert_eq!((rest.id, rest.files.len(), rest.state), (j1.id, 2, JobState::Queued));
    assert!(matches!(
        c.hold_member(j1.id, j1.files[0], "again").await,
        Err(CatalogError::NotFound(_))
    ));
    assert_eq!(c.archive_jobs().await.unwrap().len(), 5);

    // Once the cause is fixed, an administrator requeues failed jobs: a
    // queued one is refused, an unknown one is not found, nothing changes.
    assert!(matches!(
        c.retry_jobs(Some(rest.id)).await,
        Err(CatalogError::Invalid(_))
    ));
    assert!(matches!(
        c.retry_jobs(Some(999_999)).await,
        Err(CatalogError::NotFound(_))
    ));
    let retried = c.retry_jobs(Some(held.id)).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(
        (
            retried[0].id,
            retried[0].state,
            retried[0].attempts,
            retried[0].error.as_deref()
        ),
        (held.id, JobState::Queued, 0, None)
    );
    assert_eq!(retried[0].files, held.files);
    assert!(c.retry_jobs(None).await.unwrap().is_empty(), "no failed job left");
    for id in [rest.id, held.id] {
        c.job_attempt_failed(id, "again", true).await.unwrap();
    }
    let all: Vec<i64> = c.retry_jobs(None).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(all, vec![rest.id, held.id]);
    assert!(c
        .archive_jobs()
        .await
        .unwrap()
        .iter()
        .all(|j| j.state == JobState::Queued));
}
