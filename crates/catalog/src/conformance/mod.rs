//! The catalog conformance suite: every test here runs against every backend
//! (see `tests/conformance.rs`). A backend is correct when it passes all of
//! them; nothing backend-specific may be observable through the trait.
//!
//! By part: `namespace`, `tape`, `pools`.
//!
//! Also home to [`fresh_postgres`], which gives a test its own PostgreSQL
//! schema, so that tests never share state.

use crate::*;
use bale_util::{Adler32, NsPath, Timestamp};

/// The PostgreSQL server tests use: `BALE_TEST_PG`, or the local default.
pub fn test_postgres_base() -> String {
    std::env::var("BALE_TEST_PG").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string())
}

/// Creates an empty schema on the test server and returns a catalog URL
/// confined to it, and the schema's name (to drop it later).
pub async fn fresh_postgres() -> (String, String) {
    let base = test_postgres_base();
    let schema = format!("bale_t_{}", uuid::Uuid::now_v7().simple());
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {base} (set BALE_TEST_PG): {e}"));
    let h = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create test schema");
    drop(client);
    let _ = h.await;
    let sep = if base.contains('?') { '&' } else { '?' };
    (format!("{base}{sep}options=-csearch_path%3D{schema}"), schema)
}

/// Drops a schema made by [`fresh_postgres`].
pub async fn drop_postgres_schema(schema: &str) {
    let base = test_postgres_base();
    if let Ok((client, conn)) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
        let h = tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
        drop(client);
        let _ = h.await;
    }
}

fn p(s: &str) -> NsPath {
    NsPath::parse(s).unwrap()
}

fn t(n: i64) -> Timestamp {
    Timestamp(n * 1_000_000_000)
}

/// A directory owned by someone else than the suite's usual owner.
fn other_dir(parent: NodeId, name: &str) -> NewDir {
    NewDir {
        parent,
        name: name.into(),
        owner: "x".into(),
        group: "x".into(),
        mode: 0o700,
        time: t(1),
    }
}

async fn mkdir(c: &dyn Catalog, parent: NodeId, name: &str) -> Node {
    c.create_dir(NewDir {
        parent,
        name: name.into(),
        owner: "alice".into(),
        group: "phys".into(),
        mode: 0o755,
        time: t(10),
    })
    .await
    .unwrap_or_else(|e| panic!("mkdir {name}: {e}"))
}

fn new_file(parent: NodeId, name: &str, size: u64) -> NewFile {
    NewFile {
        parent,
        name: name.into(),
        file_id: FileId::generate(),
        owner: "alice".into(),
        group: "phys".into(),
        mode: 0o644,
        size,
        adler32: Adler32(size as u32 + 1),
        time: t(20),
        mtime: None,
        replace: Replace::No,
        archive: None,
        inline: None,
    }
}

async fn put(c: &dyn Catalog, parent: NodeId, name: &str, size: u64) -> Node {
    let mut r = c
        .commit_files("n1", &[new_file(parent, name, size)], &[])
        .await
        .unwrap();
    r.remove(0).unwrap().node
}

fn family(ff: &str) -> Family {
    Family {
        storage_group: "mu2e".into(),
        file_family: ff.into(),
        wrapper: "tar".into(),
    }
}

fn target(ff: &str) -> JobTarget {
    JobTarget {
        library: "lib1".into(),
        family: family(ff),
        width: 2,
        copies: Vec::new(),
    }
}

fn direct(mut f: NewFile) -> NewFile {
    f.archive = Some(ArchiveRoute::Direct(target("ff1")));
    f
}

fn pool_target(key: &str, ff: &str, target_size: u64, max_files: u32) -> PoolTarget {
    PoolTarget {
        key: key.into(),
        rule: "small".into(),
        target: target(ff),
        limits: PoolLimits {
            target_size,
            max_files,
            max_wait_ms: 2000,
        },
    }
}

mod copies;
mod namespace;
mod ops;
mod pools;
mod residency;
mod stage;
mod tape;

pub use copies::*;
pub use namespace::*;
pub use ops::*;
pub use pools::*;
pub use residency::*;
pub use stage::*;
pub use tape::*;
