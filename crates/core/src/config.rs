//! bale's configuration: one TOML file, one serde struct. Every key has a
//! default in code; unknown keys are an error naming the key.

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The configuration of a bale server.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the SQLite catalog, the cache and the admin token.
    /// Created if missing.
    pub data_dir: PathBuf,
    /// Address the HTTP server listens on. Port 0 picks a free port.
    pub listen: String,
    /// The catalog: "sqlite" (a file in data_dir), or a PostgreSQL URL
    /// (postgres://user:password@host:port/database) shared by several nodes.
    pub catalog: String,
    /// At shutdown, background work (commits, package writes, flushes)
    /// finishes within this many seconds; what is still running then is
    /// stopped as a crash would stop it (recovery redoes it at the next start).
    pub shutdown_deadline_s: u64,
    pub ingest: IngestConfig,
    pub namespace: NamespaceConfig,
    /// The aggregation policy and how often pools are checked.
    pub archive: ArchiveConfig,
    /// Reading back from tape.
    pub stage: StageConfig,
    /// How full the cache may get, and purging.
    pub cache: CacheConfig,
    /// Verifying tape copies: the background scrub and the rewrite of bad
    /// copies.
    pub verify: VerifyConfig,
    /// The WLCG Tape REST API's discovery answer.
    pub tape_rest: TapeRestConfig,
    /// Tape libraries, media and the scheduler.
    pub tape: bale_tape::TapeConfig,
}

/// Small file aggregation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// The policy file (TOML [[rule]]s). Empty: the policy last loaded with
    /// `bale policy load` (kept in data_dir), else the built-in policy.
    pub policy: PathBuf,
    /// How often open pools are checked for their triggers, in milliseconds.
    pub check_ms: u64,
    /// How often (and once at start) every live file is checked to be on
    /// its way to tape (in a pool, an archive job or a package), in
    /// seconds. A file that is not raises an alarm and is routed again.
    pub check_on_way_s: u64,
    /// A file not on tape this many seconds after it was due (a pooled
    /// file: its rule's maximum wait after it joined the pool; a file in
    /// an archive job: after the job was made) raises an alarm at the
    /// on-way check.
    pub stuck_after_s: u64,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            policy: PathBuf::new(),
            check_ms: 200,
            check_on_way_s: 600,
            stuck_after_s: 3600,
        }
    }
}

/// How writes are received and made durable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// "fsync": each file is fsynced by its own writer, in parallel; a batch
    /// then syncs its directory once. "syncfs": one syncfs(2) per batch for
    /// the whole cache filesystem (best when the cache has its own filesystem).
    pub sync: SyncModeConfig,
    /// Most files recorded in one catalog transaction (group commit).
    pub max_batch: usize,
    /// Files up to this size are *inline*: their data is committed with
    /// their catalog row (one flush per batch, no per-file fsync), and their
    /// cache copies are synced later by the settler. 0 turns this off. At
    /// most 1 MiB.
    pub inline_max: ByteSize,
    /// Most bytes of inline files whose cache copies are not yet settled
    /// (kept in the catalog meanwhile); past it, small files are fsynced
    /// one by one until the settler catches up.
    pub inline_pending_max: ByteSize,
    /// How often the settler syncs the cache copies of inline files (one
    /// syncfs(2)) and drops their data from the catalog, in milliseconds.
    pub settle_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncModeConfig {
    Fsync,
    Syncfs,
}

/// What a read of a file whose only copy is on tape does (a policy rule
/// may say otherwise for its files).
pub use bale_policy::OnReadMiss;

/// What `/.well-known/wlcg-tape-rest-api` says of this endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TapeRestConfig {
    /// The identifier clients address targeted metadata to.
    pub sitename: String,
    pub description: String,
}

impl Default for TapeRestConfig {
    fn default() -> Self {
        TapeRestConfig {
            sitename: "bale".into(),
            description: "bale tape archive: WLCG Tape REST API v1".into(),
        }
    }
}

/// The cache's size and the purger (Enstore's `purge_watermarks`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Bytes of cached copies the cache may hold; "0 B": the size of the
    /// filesystem the cache is on.
    pub capacity: ByteSize,
    /// Above this share of the capacity the purger removes cached copies
    /// of files that are on tape and not pinned, least recently read
    /// first, until use is under `purge_low`.
    pub purge_high: f64,
    pub purge_low: f64,
    /// Copies not read for this many seconds are purged whatever the use
    /// (0: never).
    pub max_time_in_cache_s: u64,
    /// How often the purger looks, in milliseconds.
    pub purge_check_ms: u64,
    /// `bale fsck` does not judge cache data younger than this (seconds):
    /// it may be a write or a stage in flight.
    pub fsck_settle_s: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: ByteSize(0),
            purge_high: 0.8,
            purge_low: 0.6,
            max_time_in_cache_s: 0,
            purge_check_ms: 60_000,
            fsck_settle_s: 60,
        }
    }
}

/// Reading back from tape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StageConfig {
    /// A GET of a file whose only copy is on tape: "stage" (read-through)
    /// or "error"; a policy rule's own `on_read_miss` wins for its files.
    pub on_read_miss: OnReadMiss,
    /// How long a read-through GET waits for its stage, in seconds.
    pub read_wait_s: u64,
}

impl Default for StageConfig {
    fn default() -> Self {
        StageConfig {
            on_read_miss: OnReadMiss::Stage,
            read_wait_s: 60,
        }
    }
}

/// Verifying tape copies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// The background scrub reads every good package once in this many
    /// seconds, one at a time; 0 (the default): no scrub.
    pub scrub_period_s: u64,
    /// The scrub's read rate (and `bale verify`'s when it gives none):
    /// bytes a second, "0 B" for no limit.
    pub scrub_rate: ByteSize,
    /// How often the repair worker looks for bad copies to rewrite, in
    /// seconds (it is also woken when a copy is found bad).
    pub repair_check_s: u64,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            scrub_period_s: 0,
            scrub_rate: ByteSize::mb(50),
            repair_check_s: 30,
        }
    }
}

/// Namespace behaviour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceConfig {
    /// How often reads are written to the catalog as last-access times, in
    /// milliseconds. A crash loses at most this much access history.
    pub access_time_flush_ms: u64,
    /// Permission bits of new files (octal in the file: 0o644).
    pub file_mode: u32,
    /// Permission bits of new directories.
    pub dir_mode: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./bale-data"),
            listen: "127.0.0.1:8742".to_string(),
            catalog: "sqlite".to_string(),
            shutdown_deadline_s: 60,
            ingest: IngestConfig::default(),
            namespace: NamespaceConfig::default(),
            archive: ArchiveConfig::default(),
            verify: VerifyConfig::default(),
            stage: StageConfig::default(),
            cache: CacheConfig::default(),
            tape_rest: TapeRestConfig::default(),
            tape: bale_tape::TapeConfig::default(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            sync: SyncModeConfig::Fsync,
            max_batch: 512,
            inline_max: ByteSize::kib(64),
            inline_pending_max: ByteSize::mib(256),
            settle_ms: 500,
        }
    }
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        NamespaceConfig {
            access_time_flush_ms: 1000,
            file_mode: 0o644,
            dir_mode: 0o755,
        }
    }
}

/// A commented example configuration, equal to the defaults (a test checks).
pub const EXAMPLE: &str = r#"# bale configuration. Every key is optional; the values shown are the defaults.

# Directory for the SQLite catalog, the cache and the admin token. Created if missing.
data_dir = "./bale-data"

# Address the HTTP server listens on. Port 0 picks a free port.
listen = "127.0.0.1:8742"

# The catalog: "sqlite" (a file in data_dir), or a PostgreSQL URL, e.g.
# "postgres://bale:secret@db.example.org:5432/bale" (one node per catalog
# for now: a second node refuses to start on a catalog a live node uses).
catalog = "sqlite"

# At shutdown, background work (commits, package writes, flushes) finishes
# within this many seconds; what still runs then stops as in a crash, and
# the next start redoes it.
shutdown_deadline_s = 60

[ingest]
# "fsync": each file is fsynced by its own writer, in parallel, and a batch
# then syncs its directory once. "syncfs": one syncfs(2) per batch for the
# whole cache filesystem (best when the cache has a filesystem of its own).
sync = "fsync"
# Most files recorded in one catalog transaction (group commit).
max_batch = 512
# Files up to this size are "inline": their data is committed together with
# their catalog row, so a batch of small files costs one flush (the catalog
# commit) instead of one fsync per file. Their cache copies are made durable
# later, many at once, by one syncfs(2) of the cache filesystem every
# settle_ms, and only then is their data dropped from the catalog; after a
# crash, recovery rewrites any copy that did not make it. "0 B" turns it off
# (every file is then fsynced as described for `sync`). At most 1 MiB.
inline_max = "64 KiB"
# Most bytes of inline files awaiting the settler (held in the catalog
# meanwhile); past it, small files are fsynced one by one.
inline_pending_max = "256 MiB"
settle_ms = 500

[namespace]
# How often reads are written to the catalog as last-access times (ms).
# A crash loses at most this much access history.
access_time_flush_ms = 1000
# Permission bits of new files and directories.
file_mode = 0o644
dir_mode = 0o755

[archive]
# The aggregation policy file: [[rule]]s that send files to tape directly or
# pack small ones together (see examples/mu2e-sfa.toml). Empty: the policy
# last loaded with `bale policy load` (kept in data_dir/policy.toml), else
# the built-in one (aggregate files below tape.direct_min_size into packages
# of 8 GB or 2,000 files, or after a day). `bale serve --policy FILE` wins.
policy = ""
# How often open pools are checked for their triggers (ms).
check_ms = 200
# How often (and once at start) every file is checked to be on its way to
# tape: in a pool, an archive job or a package (s). A file that is not
# raises an alarm and is routed again.
check_on_way_s = 600
# A file not on tape this long after it was due (its rule's maximum wait
# after it joined its pool; for a file in an archive job, after the job was
# made) raises an alarm at that check: a drive, a volume or a job needs an
# operator (s).
stuck_after_s = 3600

[stage]
# A GET of a file whose only copy is on tape: "stage" reads its package back
# (every member of it, once, however many ask) and waits up to read_wait_s,
# then answers 503 with Retry-After while the stage goes on; "error" refuses
# at once (409: stage it first); a policy rule's on_read_miss wins for its
# files. HEAD, stat, ls and PROPFIND never stage.
on_read_miss = "stage"
read_wait_s = 60

[cache]
# Bytes of cached copies the cache may hold ("0 B": its filesystem's size).
capacity = "0 B"
# Above purge_high of the capacity, cached copies of files that are on tape
# and not pinned are removed, least recently read first (a stat does not
# count as a read), until use is under purge_low. A file not yet on tape is
# never purged.
purge_high = 0.8
purge_low = 0.6
# Copies not read for this many seconds are purged whatever the use (0: never).
max_time_in_cache_s = 0
# How often the purger looks (ms).
purge_check_ms = 60000
# bale fsck does not judge cache data younger than this (s): it may be a
# write or a stage in flight.
fsck_settle_s = 60

[verify]
# The background scrub re-reads every good package once in this many
# seconds, one at a time (0: no scrub). A copy whose data does not check out
# is marked bad with an alarm and rewritten from a good copy.
scrub_period_s = 0
# The scrub's read rate, and bale verify's when it gives none ("0 B": no limit).
scrub_rate = "50 MB"
# How often the repair worker looks for bad copies to rewrite (s).
repair_check_s = 30

[tape_rest]
# What /.well-known/wlcg-tape-rest-api says: the name targeted metadata is
# addressed to, and a description. The API itself is at /api/tape/v1.
sitename = "bale"
description = "bale tape archive: WLCG Tape REST API v1"

[tape]
# Real seconds slept per modelled second of tape work: 0 only accounts
# (the default), 1 is real time, fractions in between.
time_scale = 0.0
# Files of at least this size go to tape as their own tape file as soon as
# they are safely in the cache.
direct_min_size = "256 MiB"
# Seconds an idle drive keeps its volume mounted before unloading it.
idle_unload_s = 60.0
# Seconds a request may wait before a drive gives up the work left on its
# mounted volume to serve it (no request starves).
max_wait_s = 3600.0
# Attempts of an archive job (on other volumes) before it is parked as
# failed, and attempts of a tape file read.
write_attempts = 3
read_attempts = 2
# Cache reads in flight while a package streams to a drive (members are read
# ahead in order, in parallel), and the most bytes read ahead of the drive.
read_ahead_threads = 8
read_ahead_window = "64 MiB"

# Media profiles beyond (or replacing) the built-in LTO-8, LTO-9, LTO-10 and
# T10000D, for example:
# [tape.media.LTO-9-small]
# capacity = "10 GB"          # native capacity
# rate = "400 MB"             # native rate per second
# load_s = 15.0               # load and thread
# unload_s = 17.0             # rewind done; unload and eject
# robot_s = 10.0              # one robot move
# full_locate_s = 120.0       # locate over the whole tape (a locate costs its share)
# file_mark_s = 3.0           # one synchronous file mark

# Libraries; the first is the default for directories without a library tag.
[[tape.libraries]]
name = "lib1"
# "emulated": volumes are directories bale creates under path, with modelled
# timing. "directory": every volume is an existing directory path/<label>
# (an LTFS-mounted cartridge), with real timing.
backend = "emulated"
path = "library"              # relative to data_dir
media = "LTO-9"
drives = 2
# Divides capacity and rate (not times), so benchmarks reach production
# ratios with small data.
scale = 1.0
# Blank volumes labelled at the first start, and their label prefix.
initial_volumes = 4
volume_prefix = "VL"
# Capacity of new volumes; the media profile's when not set.
# volume_capacity = "18 TB"
# Mounts after which a volume turns readonly and an alarm is raised.
mount_limit = 5000
# "sync": one synchronous file mark per tape file (Enstore). "buffered": one
# flush every flush_bytes or flush_files tape files (CTA); tape files are
# recorded only once a flush covers them.
file_marks = "sync"
flush_bytes = "32 GiB"
flush_files = 1000
"#;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML; the error names the line, column and offending key.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ingest.max_batch == 0 {
            return Err(ConfigError::Invalid("ingest.max_batch must be at least 1".into()));
        }
        if self.ingest.inline_max.as_u64() > bale_cache::INLINE_MAX as u64 {
            return Err(ConfigError::Invalid(format!(
                "ingest.inline_max is {}; it can be at most {}",
                self.ingest.inline_max,
                ByteSize(bale_cache::INLINE_MAX as u64)
            )));
        }
        if self.ingest.settle_ms == 0 {
            return Err(ConfigError::Invalid("ingest.settle_ms must be at least 1".into()));
        }
        if self.namespace.file_mode > 0o7777 || self.namespace.dir_mode > 0o7777 {
            return Err(ConfigError::Invalid(
                "namespace.file_mode and dir_mode are permission bits (at most 0o7777)".into(),
            ));
        }
        self.tape.validate().map_err(ConfigError::Invalid)?;
        let c = &self.cache;
        if !(0.0 < c.purge_low && c.purge_low < c.purge_high && c.purge_high <= 1.0) {
            return Err(ConfigError::Invalid(format!(
                "cache.purge_low ({}) and cache.purge_high ({}) must satisfy 0 < low < high <= 1",
                c.purge_low, c.purge_high
            )));
        }
        if c.purge_check_ms == 0 {
            return Err(ConfigError::Invalid("cache.purge_check_ms must be at least 1".into()));
        }
        if self.verify.repair_check_s == 0 {
            return Err(ConfigError::Invalid("verify.repair_check_s must be at least 1".into()));
        }
        if self.shutdown_deadline_s == 0 {
            return Err(ConfigError::Invalid("shutdown_deadline_s must be at least 1".into()));
        }
        if self.archive.check_ms == 0 {
            return Err(ConfigError::Invalid("archive.check_ms must be at least 1".into()));
        }
        if self.archive.check_on_way_s == 0 {
            return Err(ConfigError::Invalid("archive.check_on_way_s must be at least 1".into()));
        }
        if self.archive.stuck_after_s == 0 {
            return Err(ConfigError::Invalid("archive.stuck_after_s must be at least 1".into()));
        }
        if self.catalog != "sqlite"
            && !self.catalog.starts_with("postgres://")
            && !self.catalog.starts_with("postgresql://")
        {
            return Err(ConfigError::Invalid(format!(
                "catalog must be \"sqlite\" or a postgres:// URL, not {:?}",
                redact_url(&self.catalog)
            )));
        }
        Ok(())
    }

    /// The catalog spec to open: an SQLite path or the PostgreSQL URL.
    pub fn catalog_spec(&self) -> String {
        if self.catalog == "sqlite" {
            format!("sqlite:{}", self.data_dir.join("catalog.sqlite").display())
        } else {
            self.catalog.clone()
        }
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }

    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }
}

/// Hides the password of a URL (`postgres://u:secret@h` → `postgres://u:***@h`).
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("catalog", &redact_url(&self.catalog))
            .field("shutdown_deadline_s", &self.shutdown_deadline_s)
            .field("ingest", &self.ingest)
            .field("namespace", &self.namespace)
            .field("archive", &self.archive)
            .field("stage", &self.stage)
            .field("cache", &self.cache)
            .field("tape_rest", &self.tape_rest)
            .field("tape", &self.tape)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_to_the_defaults() {
        assert_eq!(Config::parse(EXAMPLE).unwrap(), Config::default());
        Config::default().validate().unwrap();
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("listen = \"127.0.0.1:1\"\n[ingest]\nmax_bach = 3\n").unwrap_err();
        assert!(e.contains("max_bach"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn invalid_values_are_refused() {
        let c = Config::parse("[ingest]\nmax_batch = 0\n").unwrap();
        assert!(c.validate().is_err());
        let c = Config::parse("catalog = \"mysql://x\"\n").unwrap();
        assert!(c.validate().is_err());
        assert!(Config::parse("[ingest]\nsync = \"sometimes\"\n").is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Config {
            catalog: "postgres://bale:hunter2@db:5432/bale".into(),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://bale:***@db:5432/bale"), "{shown}");
    }
}
