//! Runs the catalog conformance suite against SQLite and PostgreSQL.

use bale_catalog::{conformance, Catalog, PostgresCatalog, SqliteCatalog};
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
    tokens_lifecycle,
    landing_notes,
    deep_paths,
    volumes_and_drives,
    archive_jobs_follow_their_files,
    tape_files_commit_in_sequence,
    alarms_are_kept,
    pools_fill_and_close,
    ids_are_never_reused,
    tape_commit_removes_exactly_its_files,
    stranded_files_are_rerouted,
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
