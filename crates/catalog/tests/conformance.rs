//! Runs the catalog conformance suite against SQLite and PostgreSQL.

use bale_catalog::{conformance, Catalog, PostgresCatalog, SqliteCatalog, TapeCatalog};
use std::sync::Arc;

struct Fixture {
    catalog: Arc<dyn Catalog>,
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

impl Fixture {
    async fn cleanup(self) {
        if let Some(s) = &self.schema {
            drop(self.catalog);
            conformance::drop_postgres_schema(s).await;
        }
    }
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cat = SqliteCatalog::open(&dir.path().join("catalog.sqlite")).await.unwrap();
    Fixture {
        catalog: Arc::new(cat),
        _dir: Some(dir),
        schema: None,
    }
}

async fn postgres() -> Fixture {
    let (url, schema) = conformance::fresh_postgres().await;
    let cat = PostgresCatalog::connect(&url).await.unwrap();
    Fixture {
        catalog: Arc::new(cat),
        _dir: None,
        schema: Some(schema),
    }
}

macro_rules! suite {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let f = super::$backend().await;
                    bale_catalog::conformance::$test(&*f.catalog).await;
                    f.cleanup().await;
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn paths_stay_within_the_limit_under_concurrency() {
                let f = super::$backend().await;
                bale_catalog::conformance::paths_stay_within_the_limit_under_concurrency(f.catalog.clone()).await;
                f.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn quotas_hold_under_concurrent_commits() {
                let f = super::$backend().await;
                bale_catalog::conformance::quotas_hold_under_concurrent_commits(f.catalog.clone()).await;
                f.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn use_is_counted_once_under_concurrent_removals() {
                let f = super::$backend().await;
                bale_catalog::conformance::use_is_counted_once_under_concurrent_removals(f.catalog.clone()).await;
                f.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_commits() {
                let f = super::$backend().await;
                bale_catalog::conformance::concurrent_commits(f.catalog.clone()).await;
                f.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dead_counts_exact_under_concurrency() {
                let f = super::$backend().await;
                bale_catalog::conformance::dead_counts_exact_under_concurrency(f.catalog.clone()).await;
                f.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn alarm_repeats_fold_under_concurrency() {
                let f = super::$backend().await;
                bale_catalog::conformance::alarm_repeats_fold_under_concurrency(f.catalog.clone()).await;
                f.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stage_requests_complete_under_concurrency() {
                let f = super::$backend().await;
                bale_catalog::conformance::stage_requests_complete_under_concurrency(f.catalog.clone()).await;
                f.cleanup().await;
            }
        }
    };
}

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        suite!(sqlite: $($test),*);
        suite!(postgres: $($test),*);
    };
}

both!(
    root_exists,
    directories_nest,
    tags_inherit_at_creation,
    batch_commit_is_per_file,
    listing_pages_in_byte_order,
    remove_rules,
    rename_rules,
    access_time_moves_forward,
    attrs_change,
    overwrite_replaces_the_checked_file,
    dead_props_live_with_their_node,
    write_once_tag,
    quotas_hold_in_the_commit,
    tokens_lifecycle,
    landing_notes,
    deep_paths,
    paths_stay_within_the_limit,
    volumes_and_drives,
    archive_jobs_follow_their_files,
    tape_files_commit_in_sequence,
    alarms_are_kept,
    stuck_files_are_found,
    pools_fill_and_close,
    residency_and_pins,
    lost_copies_are_recorded_for_files_on_tape,
    stage_requests_follow_their_files,
    stage_requests_know_their_packages,
    stage_packages_come_in_windows,
    open_stage_files_are_bounded_per_user,
    stage_requests_are_counted_once_and_forgotten,
    ids_are_never_reused,
    tape_commit_removes_exactly_its_files,
    stranded_files_are_rerouted,
    catalog_is_claimed_by_one_node,
    one_node_id_two_processes,
    files_with_paths,
    walks_in_bulk,
    imports_in_bulk,
    stage_requests_hold_their_files,
    copies_are_queued_counted_and_repaired,
    depths_count_the_queues,
    file_events_are_kept_in_order_and_pruned_by_age,
    requests_and_pins_are_listed_per_owner,
    stages_begin_in_one_call,
);

/// Committed rows survive closing and reopening the catalog.
#[tokio::test]
async fn sqlite_reopen_keeps_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    {
        let c = SqliteCatalog::open(&path).await.unwrap();
        conformance::directories_nest(&c).await;
    }
    let c = SqliteCatalog::open(&path).await.unwrap();
    let n = c.lookup(&bale_util::NsPath::parse("/a/b").unwrap()).await.unwrap();
    assert!(n.is_some());
}

#[tokio::test]
async fn postgres_reconnect_keeps_commits_and_migrations_are_idempotent() {
    let (url, schema) = conformance::fresh_postgres().await;
    {
        let c = PostgresCatalog::connect(&url).await.unwrap();
        conformance::directories_nest(&c).await;
    }
    let c = PostgresCatalog::connect(&url).await.unwrap();
    assert!(c
        .lookup(&bale_util::NsPath::parse("/a/b").unwrap())
        .await
        .unwrap()
        .is_some());
    drop(c);
    conformance::drop_postgres_schema(&schema).await;
}

/// A catalog made by an earlier bale (schema v5) migrates to v6: the id
/// counters start above every id ever handed out that is still there.
#[tokio::test]
async fn sqlite_v5_catalog_migrates_to_counters_that_continue_its_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            .unwrap();
        for (i, sql) in [
            include_str!("../migrations/sqlite/0001_namespace.sql"),
            include_str!("../migrations/sqlite/0002_landing.sql"),
            include_str!("../migrations/sqlite/0003_tape.sql"),
            include_str!("../migrations/sqlite/0004_pools.sql"),
            include_str!("../migrations/sqlite/0005_landing_inline_data.sql"),
        ]
        .iter()
        .enumerate()
        {
            c.execute_batch(sql).unwrap();
            c.execute("INSERT INTO schema_version (version) VALUES (?1)", [i as i64 + 1])
                .unwrap();
        }
        c.execute_batch(
            "INSERT INTO archive_jobs (id, state, library, storage_group, file_family, wrapper, width, bytes, created) \
             VALUES (41, 'queued', 'lib1', 'sg', 'ff', 'tar', 1, 0, 0); \
             INSERT INTO alarms (id, time, severity, source, message) VALUES (9, 0, 'error', 'x', 'old');",
        )
        .unwrap();
    }
    let c = SqliteCatalog::open(&path).await.unwrap();
    let a = c.raise_alarm("error", "x", "new").await.unwrap();
    assert_eq!(a.id, 10);
    let d = c
        .create_dir(bale_catalog::NewDir {
            parent: 1,
            name: "d".into(),
            owner: "o".into(),
            group: "g".into(),
            mode: 0o755,
            time: bale_util::Timestamp(1),
        })
        .await
        .unwrap();
    assert_eq!(d.id, 2);
    let mut f = bale_catalog::NewFile {
        parent: d.id,
        name: "f".into(),
        file_id: bale_catalog::FileId::generate(),
        owner: "o".into(),
        group: "g".into(),
        mode: 0o644,
        size: 1,
        adler32: bale_util::Adler32(1),
        time: bale_util::Timestamp(2),
        mtime: None,
        replace: bale_catalog::Replace::No,
        archive: None,
        inline: None,
    };
    f.archive = Some(bale_catalog::ArchiveRoute::Direct(bale_catalog::JobTarget {
        library: "lib1".into(),
        family: bale_catalog::Family {
            storage_group: "sg".into(),
            file_family: "ff".into(),
            wrapper: "tar".into(),
        },
        width: 1,
        copies: Vec::new(),
    }));
    let job = c.commit_files("n1", &[f], &[]).await.unwrap().remove(0).unwrap().job;
    assert_eq!(job, Some(42));
}
