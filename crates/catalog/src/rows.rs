//! Row mapping, once for both backends: the column lists both select and
//! the functions that turn a row into a record. A backend's row type
//! implements [`Columns`] (typed reads by index); integers of any width
//! read as i64, so SQLite's INTEGER and PostgreSQL's int4/int8 map alike.

use crate::model::{Node, NodeKind, Tags, TokenInfo};
use crate::pool::{PoolLimits, PoolSummary, PoolTarget};
use crate::tape::{Alarm, ArchiveJob, Drive, Family, JobTarget, Package, TapeStats, Volume};
use crate::CatalogError;
use bale_util::{Adler32, FileId, Timestamp};

pub(crate) const VOLUME_COLS: &str = "label, library, media, capacity, state, storage_group, file_family, wrapper, \
     used, tape_files, mount_limit, stats, created";
pub(crate) const PACKAGE_COLS: &str =
    "p.id, p.volume, p.seq, p.position, p.size, p.adler32, p.members, p.created, p.dead_members, p.dead_bytes, \
     p.bad, p.bad_since";
/// How many columns [`PACKAGE_COLS`] has: a statement's own columns follow.
pub(crate) const PACKAGE_NCOLS: usize = 12;
pub(crate) const JOB_COLS: &str =
    "id, state, library, storage_group, file_family, wrapper, width, bytes, created, attempts, error, pool, copies";
pub(crate) const POOL_COLS: &str = "p.key, p.rule, p.library, p.storage_group, p.file_family, p.wrapper, p.width, \
     p.target_size, p.max_files, p.max_wait_ms, p.copies";
pub(crate) const TOKEN_COLS: &str = "id, user_name, grp, admin, created, revoked, comment";
pub(crate) const DRIVE_COLS: &str = "name, library, state, stats";

/// The order in which a file's tape copies are tried (package `p`): good
/// copies first, then those on a readable volume, then the oldest.
pub(crate) const COPY_ORDER: &str = "p.bad IS NOT NULL, \
     (SELECT v.state FROM volumes v WHERE v.label = p.volume) NOT IN ('appendable', 'full', 'readonly'), \
     p.created, p.id";

/// The query of [`crate::StageCatalog::stage_request_packages`] (`?1`:
/// the request): each file's first good copy ([`COPY_ORDER`]), summed per
/// package.
pub(crate) fn stage_packages_sql() -> String {
    format!(
        "WITH c AS (SELECT f.state, m.size, p.id AS pkg, \
               ROW_NUMBER() OVER (PARTITION BY f.file_id ORDER BY {COPY_ORDER}) AS rk \
               FROM stage_files f JOIN members m ON m.file_id = f.file_id \
               JOIN packages p ON p.id = m.package AND p.bad IS NULL WHERE f.request = ?1), \
         d AS (SELECT pkg, CAST(SUM(size) AS BIGINT) AS bytes, \
               CAST(SUM(CASE WHEN state = 'COMPLETED' THEN size ELSE 0 END) AS BIGINT) AS done, \
               MAX(CASE WHEN state IN ('SUBMITTED', 'STARTED') THEN 1 ELSE 0 END) AS open \
               FROM c WHERE rk = 1 GROUP BY pkg) \
         SELECT {PACKAGE_COLS}, d.bytes, d.done, d.open FROM d JOIN packages p ON p.id = d.pkg \
         ORDER BY p.volume, p.seq"
    )
}

/// The statements of [`crate::StageCatalog::settle_open_stage_files`],
/// each `?1` the time: the open files whose file is gone, is cached, or
/// has no good tape copy, each finished (RETURNING its request).
pub(crate) const SETTLE_OPEN_SQL: [&str; 3] = [
    "UPDATE stage_files SET state = 'FAILED', error = 'the file was deleted', finished = ?1, \
     started = COALESCE(started, ?1) WHERE state IN ('SUBMITTED', 'STARTED') AND file_id IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.file_id = stage_files.file_id) RETURNING request",
    "UPDATE stage_files SET state = 'COMPLETED', error = NULL, finished = ?1, \
     started = COALESCE(started, ?1) WHERE state IN ('SUBMITTED', 'STARTED') AND file_id IS NOT NULL \
     AND EXISTS (SELECT 1 FROM nodes n WHERE n.file_id = stage_files.file_id AND n.cached) RETURNING request",
    "UPDATE stage_files SET state = 'FAILED', error = 'the file is not cached and has no good tape copy', \
     finished = ?1, started = COALESCE(started, ?1) WHERE state IN ('SUBMITTED', 'STARTED') \
     AND file_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM members m JOIN packages p ON p.id = m.package \
     AND p.bad IS NULL WHERE m.file_id = stage_files.file_id) RETURNING request",
];

/// The query of [`crate::StageCatalog::open_stage_packages`] (`?1`: the
/// limit): the first good copy ([`COPY_ORDER`]) of every open, live, not
/// cached file, each package once, the volumes taken in turn (each one's
/// packages in tape order), so that a window of them keeps every volume's
/// drive busy.
pub(crate) fn open_stage_packages_sql() -> String {
    format!(
        "WITH open AS (SELECT DISTINCT file_id FROM stage_files WHERE state IN ('SUBMITTED', 'STARTED') \
               AND file_id IS NOT NULL), \
         firsts AS (SELECT p.id, ROW_NUMBER() OVER (PARTITION BY o.file_id ORDER BY {COPY_ORDER}) AS rk \
               FROM open o JOIN nodes n ON n.file_id = o.file_id AND NOT n.cached \
               JOIN members m ON m.file_id = o.file_id JOIN packages p ON p.id = m.package AND p.bad IS NULL), \
         wanted AS (SELECT DISTINCT id FROM firsts WHERE rk = 1) \
         SELECT {PACKAGE_COLS} FROM (SELECT q.*, ROW_NUMBER() OVER (PARTITION BY q.volume ORDER BY q.seq) AS vr \
               FROM packages q JOIN wanted w ON w.id = q.id) p \
         ORDER BY p.vr, p.volume LIMIT ?1"
    )
}

/// Whether package `?1` has a member that an open stage file names.
pub(crate) const PACKAGE_WANTED_SQL: &str = "SELECT 1 FROM members m JOIN stage_files s ON s.file_id = m.file_id \
     AND s.state IN ('SUBMITTED', 'STARTED') WHERE m.package = ?1 LIMIT 1";

/// Typed reads of a result row by column index.
pub(crate) trait Columns {
    type Error;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn flag(&self, i: usize) -> Result<bool, Self::Error>;
    /// A value that does not parse.
    fn invalid(&self, i: usize, message: String) -> Self::Error;
}

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn flag(&self, i: usize) -> rusqlite::Result<bool> {
        Ok(self.get::<_, i64>(i)? != 0)
    }
    fn invalid(&self, i: usize, message: String) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, message.into())
    }
}

impl Columns for tokio_postgres::Row {
    type Error = CatalogError;
    fn int(&self, i: usize) -> Result<i64, CatalogError> {
        self.opt_int(i)?
            .ok_or_else(|| self.invalid(i, "unexpected NULL".into()))
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, CatalogError> {
        use tokio_postgres::types::Type;
        Ok(match *self.columns()[i].type_() {
            Type::INT2 => self.try_get::<_, Option<i16>>(i)?.map(i64::from),
            Type::INT4 => self.try_get::<_, Option<i32>>(i)?.map(i64::from),
            _ => self.try_get::<_, Option<i64>>(i)?,
        })
    }
    fn text(&self, i: usize) -> Result<String, CatalogError> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, CatalogError> {
        Ok(self.try_get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool, CatalogError> {
        Ok(self.try_get(i)?)
    }
    fn invalid(&self, i: usize, message: String) -> CatalogError {
        CatalogError::Invalid(format!("column {} of the catalog: {message}", self.columns()[i].name()))
    }
}

fn parsed<R: Columns, T: std::str::FromStr<Err = String>>(r: &R, i: usize) -> Result<T, R::Error> {
    r.text(i)?.parse().map_err(|e| r.invalid(i, e))
}

fn stats<R: Columns>(r: &R, i: usize) -> Result<TapeStats, R::Error> {
    serde_json::from_str(&r.text(i)?).map_err(|e| r.invalid(i, e.to_string()))
}

pub(crate) fn stats_json(s: &TapeStats) -> String {
    serde_json::to_string(s).expect("stats serialize")
}

/// The columns of an alarm, in the order [`alarm`] reads them.
pub(crate) const ALARM_COLS: &str = "id, time, last_time, count, severity, source, message, acked_at, acked_by";

/// An alarm from [`ALARM_COLS`].
pub(crate) fn alarm<R: Columns>(r: &R) -> Result<Alarm, R::Error> {
    let acked = match (r.opt_int(7)?, r.opt_text(8)?) {
        (Some(at), Some(by)) => Some((Timestamp(at), by)),
        _ => None,
    };
    Ok(Alarm {
        id: r.int(0)?,
        time: Timestamp(r.int(1)?),
        last: Timestamp(r.int(2)?),
        count: r.int(3)? as u64,
        severity: r.text(4)?,
        source: r.text(5)?,
        message: r.text(6)?,
        acked,
    })
}

/// A node from the node columns starting at column `o`.
pub(crate) fn node<R: Columns>(r: &R, o: usize) -> Result<Node, R::Error> {
    Ok(Node {
        id: r.int(o)?,
        parent: r.opt_int(o + 1)?,
        name: r.text(o + 2)?,
        kind: NodeKind::from_code(r.int(o + 3)? as i32),
        owner: r.text(o + 4)?,
        group: r.text(o + 5)?,
        mode: r.int(o + 6)? as u32,
        size: r.int(o + 7)? as u64,
        ctime: Timestamp(r.int(o + 8)?),
        mtime: Timestamp(r.int(o + 9)?),
        atime: Timestamp(r.int(o + 10)?),
        file_id: r.opt_text(o + 11)?.as_deref().and_then(FileId::parse),
        adler32: r.opt_int(o + 12)?.map(|a| Adler32(a as u32)),
        tags: Tags {
            storage_group: r.opt_text(o + 13)?,
            file_family: r.opt_text(o + 14)?,
            file_family_width: r.opt_int(o + 15)?.map(|w| w as u32),
            wrapper: r.opt_text(o + 16)?,
            library: r.opt_text(o + 17)?,
            write_once: r.opt_int(o + 19)?.map(|w| w != 0),
        },
        cached: r.flag(o + 18)?,
    })
}

pub(crate) fn token<R: Columns>(r: &R) -> Result<TokenInfo, R::Error> {
    Ok(TokenInfo {
        id: r.text(0)?,
        user: r.text(1)?,
        group: r.text(2)?,
        admin: r.flag(3)?,
        created: Timestamp(r.int(4)?),
        revoked: r.opt_int(5)?.map(Timestamp),
        comment: r.text(6)?,
    })
}

pub(crate) fn volume<R: Columns>(r: &R) -> Result<Volume, R::Error> {
    Ok(Volume {
        label: r.text(0)?,
        library: r.text(1)?,
        media: r.text(2)?,
        capacity: r.int(3)? as u64,
        state: parsed(r, 4)?,
        family: match (r.opt_text(5)?, r.opt_text(6)?, r.opt_text(7)?) {
            (Some(storage_group), Some(file_family), Some(wrapper)) => Some(Family {
                storage_group,
                file_family,
                wrapper,
            }),
            _ => None,
        },
        used: r.int(8)? as u64,
        tape_files: r.int(9)? as u32,
        mount_limit: r.int(10)? as u64,
        stats: stats(r, 11)?,
        created: Timestamp(r.int(12)?),
    })
}

pub(crate) fn drive<R: Columns>(r: &R) -> Result<Drive, R::Error> {
    Ok(Drive {
        name: r.text(0)?,
        library: r.text(1)?,
        state: parsed(r, 2)?,
        stats: stats(r, 3)?,
    })
}

pub(crate) fn package<R: Columns>(r: &R) -> Result<Package, R::Error> {
    Ok(Package {
        id: r.text(0)?,
        volume: r.text(1)?,
        seq: r.int(2)? as u32,
        position: r.int(3)? as u64,
        size: r.int(4)? as u64,
        adler32: Adler32(r.int(5)? as u32),
        members: r.int(6)? as u32,
        created: Timestamp(r.int(7)?),
        dead_members: r.int(8)? as u32,
        dead_bytes: r.int(9)? as u64,
        bad: match r.opt_text(10)? {
            Some(why) => Some((why, Timestamp(r.opt_int(11)?.unwrap_or(0)))),
            None => None,
        },
    })
}

/// A row of [`stage_packages_sql`]: the package, then its sums.
pub(crate) fn stage_package<R: Columns>(r: &R) -> Result<crate::stage::StagePackage, R::Error> {
    const N: usize = PACKAGE_NCOLS;
    Ok(crate::stage::StagePackage {
        package: package(r)?,
        bytes: r.int(N)? as u64,
        bytes_done: r.int(N + 1)? as u64,
        open: r.int(N + 2)? != 0,
    })
}

/// A job's or a pool's target: library, family and width in columns 2 to 6,
/// the libraries of the copies after it in column `copies`.
pub(crate) fn target<R: Columns>(r: &R, copies: usize) -> Result<JobTarget, R::Error> {
    Ok(JobTarget {
        library: r.text(2)?,
        family: Family {
            storage_group: r.text(3)?,
            file_family: r.text(4)?,
            wrapper: r.text(5)?,
        },
        width: r.int(6)? as u32,
        copies: split_copies(&r.text(copies)?),
    })
}

/// The `copies` column: libraries, comma-separated.
pub(crate) fn split_copies(s: &str) -> Vec<String> {
    s.split(',').filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// The `copies` column of a target.
pub(crate) fn join_copies(t: &JobTarget) -> String {
    t.copies.join(",")
}

/// A row of [`crate::tape::repair_work_sql`].
pub(crate) fn repair_file<R: Columns>(r: &R) -> Result<crate::tape::RepairFile, R::Error> {
    Ok(crate::tape::RepairFile {
        file_id: FileId::parse(&r.text(0)?).ok_or_else(|| r.invalid(0, "not a file id".into()))?,
        size: r.int(1)? as u64,
        cached: r.flag(2)?,
        target: JobTarget {
            library: r.text(3)?,
            family: Family {
                storage_group: r.text(4)?,
                file_family: r.text(5)?,
                wrapper: r.text(6)?,
            },
            width: 1,
            copies: Vec::new(),
        },
        has_good: r.flag(7)?,
    })
}

/// A job without its files (JOB_COLS).
pub(crate) fn job<R: Columns>(r: &R) -> Result<ArchiveJob, R::Error> {
    Ok(ArchiveJob {
        id: r.int(0)?,
        state: parsed(r, 1)?,
        target: target(r, 12)?,
        bytes: r.int(7)? as u64,
        created: Timestamp(r.int(8)?),
        attempts: r.int(9)? as u32,
        error: r.opt_text(10)?,
        pool: r.opt_text(11)?,
        files: Vec::new(),
    })
}

/// A pool (POOL_COLS).
pub(crate) fn pool<R: Columns>(r: &R) -> Result<PoolTarget, R::Error> {
    Ok(PoolTarget {
        key: r.text(0)?,
        rule: r.text(1)?,
        target: target(r, 10)?,
        limits: PoolLimits {
            target_size: r.int(7)? as u64,
            max_files: r.int(8)? as u32,
            max_wait_ms: r.int(9)? as u64,
        },
    })
}

/// An open pool with its members' count, bytes and oldest join
/// (POOL_COLS, then those three).
pub(crate) fn pool_summary<R: Columns>(r: &R) -> Result<PoolSummary, R::Error> {
    let p = pool(r)?;
    Ok(PoolSummary {
        key: p.key,
        rule: p.rule,
        target: p.target,
        limits: p.limits,
        files: r.int(11)? as u64,
        bytes: r.int(12)? as u64,
        oldest: Timestamp(r.int(13)?),
    })
}

/// A file event from `id, ` then [`crate::ops::EVENT_COLS`].
pub(crate) fn file_event<R: Columns>(r: &R) -> Result<crate::ops::FileEvent, R::Error> {
    Ok(crate::ops::FileEvent {
        seq: r.int(0)?,
        time: Timestamp(r.int(1)?),
        file_id: FileId::parse(&r.text(2)?).ok_or_else(|| r.invalid(2, "not a file id".into()))?,
        kind: r.text(3)?.parse().map_err(|e: String| r.invalid(3, e))?,
        path: r.opt_text(4)?,
        who: r.opt_text(5)?,
        request: r.opt_text(6)?,
        package: r.opt_text(7)?,
        offset: r.opt_int(8)?.map(|o| o as u64),
        volume: r.opt_text(9)?,
        count: r.int(10)? as u64,
        detail: r.opt_text(11)?,
    })
}
