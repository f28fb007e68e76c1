//! The PostgreSQL catalog's connections and schema: the two pools (one
//! that plans every statement for its parameters, one that keeps generic
//! plans for index probes) and the migrations.

use crate::{CatalogError, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// Additive migrations, one numbered file each in `migrations/postgres/`; each
/// runs once, in order, in its own transaction.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_namespace.sql"),
    include_str!("../migrations/postgres/0002_landing.sql"),
    include_str!("../migrations/postgres/0003_tape.sql"),
    include_str!("../migrations/postgres/0004_pools.sql"),
    include_str!("../migrations/postgres/0005_landing_inline_data.sql"),
    include_str!("../migrations/postgres/0006_never_reused_ids.sql"),
    include_str!("../migrations/postgres/0007_catalog_users.sql"),
    include_str!("../migrations/postgres/0008_residency_and_pins.sql"),
    include_str!("../migrations/postgres/0009_stage_requests.sql"),
    include_str!("../migrations/postgres/0010_stage_holds.sql"),
    include_str!("../migrations/postgres/0011_walk_function.sql"),
    include_str!("../migrations/postgres/0012_alarm_folding.sql"),
    include_str!("../migrations/postgres/0013_tape_copies.sql"),
    include_str!("../migrations/postgres/0014_trial_fixes.sql"),
    include_str!("../migrations/postgres/0015_webdav.sql"),
    include_str!("../migrations/postgres/0016_quotas.sql"),
    include_str!("../migrations/postgres/0017_file_history.sql"),
    include_str!("../migrations/postgres/0018_status_page.sql"),
];

/// Any number that is bale's own, to serialize migrations across nodes.
const MIGRATION_LOCK: i64 = 0x6261_6c65;

pub struct PostgresCatalog {
    pub(crate) pool: Timed,
    /// Connections whose statements keep one generic plan, for reads that
    /// are index probes on a unique key or its leading columns (a file's
    /// tape copies, its job, its pool): one plan fits every parameter,
    /// and planning it anew took 0.27 ms of a 0.33 ms lookup at ten
    /// million files. Each such statement is written so that even a plan
    /// made on an empty catalog probes indexes (PostgreSQL also makes it
    /// again after each ANALYZE of its tables).
    pub(crate) probes: Timed,
}

impl PostgresCatalog {
    /// Connects with a libpq-style URL (`postgres://user@host:port/db?options=...`)
    /// and migrates the schema.
    pub async fn connect(url: &str) -> Result<PostgresCatalog> {
        let cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| CatalogError::backend(format!("invalid PostgreSQL URL: {e}"), false))?;
        // Plan every statement for its parameters. A prepared statement's
        // generic plan is made once, when a connection first uses it: on a
        // new, empty catalog that is a scan, and it stayed one as the
        // tables grew (the walk of a path spilled to temp files and ingest
        // fell from 500 to 5 files/s at 45,000 files). Planning these
        // small statements costs about 0.1 ms.
        let pool = pool_planning(cfg.clone(), "force_custom_plan")?;
        let probes = pool_planning(cfg, "force_generic_plan")?;
        let cat = PostgresCatalog { pool, probes };
        cat.migrate().await?;
        Ok(cat)
    }

    async fn migrate(&self) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .await?;
        let current: i32 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .await?
            .get(0);
        if current as usize > MIGRATIONS.len() {
            return Err(CatalogError::backend(
                format!(
                    "catalog schema version {current} is newer than this bale knows ({})",
                    MIGRATIONS.len()
                ),
                false,
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(sql).await?;
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&(i as i32 + 1)])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A pool whose connections time their use: from being asked for to
/// being given back, the `bale_catalog_transaction_seconds` histogram
/// (every catalog call takes one connection and gives it back).
pub(crate) struct Timed(Pool);

impl Timed {
    pub(crate) async fn get(&self) -> std::result::Result<Held, deadpool_postgres::PoolError> {
        let start = std::time::Instant::now();
        Ok(Held {
            conn: self.0.get().await?,
            start,
        })
    }
}

/// A connection taken from a [`Timed`] pool.
pub(crate) struct Held {
    conn: deadpool_postgres::Object,
    start: std::time::Instant,
}

impl std::ops::Deref for Held {
    type Target = deadpool_postgres::Object;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for Held {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::histogram!(bale_util::metrics::CATALOG_SECONDS, "backend" => "postgres")
            .record(self.start.elapsed().as_secs_f64());
    }
}

/// A pool of up to 16 connections that plan with `plan_cache_mode = mode`.
fn pool_planning(mut cfg: tokio_postgres::Config, mode: &str) -> Result<Timed> {
    let opts = match cfg.get_options() {
        Some(o) => format!("{o} -c plan_cache_mode={mode}"),
        None => format!("-c plan_cache_mode={mode}"),
    };
    cfg.options(&opts);
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(16)
        .build()
        .map(Timed)
        .map_err(|e| CatalogError::backend(e, false))
}
