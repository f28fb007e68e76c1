//! bale's configuration: one TOML file, one serde struct. Every key has a
//! default in code; unknown keys are an error naming the key.

mod auth;
mod server;

pub use auth::{AuthConfig, GroupMapping, IssuerConfig, ANY_AUDIENCE};
pub use server::ServerConfig;

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
    /// Before [server]: the listen address at the top. Read into
    /// `server.listen`; never written.
    #[serde(skip_serializing)]
    pub listen: Option<String>,
    /// The HTTP server: where it listens, and the bounds of requests.
    pub server: ServerConfig,
    /// WLCG token issuers and the audit log.
    pub auth: AuthConfig,
    /// The catalog: "sqlite" (a file in data_dir), or a PostgreSQL URL
    /// (postgres://user:password@host:port/database) shared by several nodes.
    pub catalog: String,
    /// At shutdown, background work (commits, package writes, flushes)
    /// finishes within this many seconds; what is still running then is
    /// stopped as a crash would stop it (recovery redoes it at the next start).
    pub shutdown_deadline_s: u64,
    /// What the server logs: a level (error, warn, info, debug, trace) or
    /// tracing's per-target directives ("info,bale::access=warn").
    /// `BALE_LOG` wins at start; SIGHUP applies this one again.
    pub log: String,
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
    /// Each file's history (`bale history`).
    pub history: HistoryConfig,
    /// The status page (`/ui/`) and the figures its charts draw.
    pub ui: UiConfig,
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
    /// A stage request finished this many seconds ago, whose holds have
    /// all ended, is forgotten (its status then answers 404): clients that
    /// never delete their requests do not grow the catalog for ever.
    pub keep_finished_s: u64,
}

impl Default for StageConfig {
    fn default() -> Self {
        StageConfig {
            on_read_miss: OnReadMiss::Stage,
            read_wait_s: 60,
            keep_finished_s: 7 * 86_400,
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
            listen: None,
            server: ServerConfig::default(),
            auth: AuthConfig::default(),
            catalog: "sqlite".to_string(),
            shutdown_deadline_s: 60,
            log: "info".to_string(),
            ingest: IngestConfig::default(),
            namespace: NamespaceConfig::default(),
            archive: ArchiveConfig::default(),
            verify: VerifyConfig::default(),
            stage: StageConfig::default(),
            cache: CacheConfig::default(),
            tape_rest: TapeRestConfig::default(),
            history: HistoryConfig::default(),
            ui: UiConfig::default(),
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

/// Each file's history: events written in batches, kept for a while.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Keep file histories at all (the tape copies' events, written with
    /// the tape files, are kept regardless).
    pub enabled: bool,
    /// Events older than this many days are forgotten (0: kept forever).
    pub retention_days: u64,
    /// How often events waiting in memory are written to the catalog (ms).
    pub flush_ms: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            retention_days: 365,
            flush_ms: 1000,
        }
    }
}

/// The status page: how often the figures behind its charts are sampled
/// and how long they are kept (a ring on disk, in data_dir).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Seconds between two samples of the figures.
    pub sample_s: u64,
    /// Hours of samples kept (at most 100,000 samples).
    pub keep_hours: u64,
    /// Hours a login of the page lasts.
    pub session_hours: u64,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            sample_s: 60,
            keep_hours: 48,
            session_hours: 12,
        }
    }
}

impl UiConfig {
    /// How many samples the ring keeps.
    pub fn capacity(&self) -> usize {
        (self.keep_hours.saturating_mul(3600) / self.sample_s.max(1)).clamp(2, 100_000) as usize
    }

    /// The hours of samples the ring holds (at most `keep_hours`: the
    /// ring keeps 100,000 samples at most).
    pub fn kept_hours(&self) -> u64 {
        (self.capacity() as u64 * self.sample_s / 3600).clamp(1, self.keep_hours.max(1))
    }
}

/// A commented example configuration, equal to the defaults (a test checks).
pub const EXAMPLE: &str = include_str!("example.toml");

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
        let mut cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(listen) = cfg.listen.take() {
            if cfg.server.listen != ServerConfig::default().listen {
                return Err("listen is given twice: at the top and in [server]; keep the one in [server]".into());
            }
            cfg.server.listen = listen;
        }
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate().map_err(ConfigError::Invalid)?;
        self.auth.validate().map_err(ConfigError::Invalid)?;
        let ui = &self.ui;
        if !(1..=3600).contains(&ui.sample_s)
            || !(1..=24 * 366).contains(&ui.keep_hours)
            || !(1..=24 * 31).contains(&ui.session_hours)
        {
            return Err(ConfigError::Invalid(format!(
                "ui.sample_s must be 1 to 3600 (is {}), ui.keep_hours 1 to 8784 (is {}), ui.session_hours 1 to 744 (is {})",
                ui.sample_s, ui.keep_hours, ui.session_hours
            )));
        }
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
        if self.stage.keep_finished_s == 0 {
            return Err(ConfigError::Invalid("stage.keep_finished_s must be at least 1".into()));
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

    /// The audit log's file, or `None` for the server's log.
    pub fn audit_log_path(&self) -> Option<PathBuf> {
        match self.auth.audit_log.as_str() {
            "-" => None,
            p => Some(self.data_dir.join(p)),
        }
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
            .field("server", &self.server)
            .field("auth", &self.auth)
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
        let e = Config::parse("data_dir = \"x\"\n[ingest]\nmax_bach = 3\n").unwrap_err();
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
    fn listen_at_the_top_still_reads() {
        let c = Config::parse("listen = \"127.0.0.1:1\"\n").unwrap();
        assert_eq!((c.server.listen.as_str(), c.listen), ("127.0.0.1:1", None));
        let e = Config::parse("listen = \"127.0.0.1:1\"\n[server]\nlisten = \"127.0.0.1:2\"\n").unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let c = Config::parse("[server]\nbody_timeout_s = 0\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("server.body_timeout_s"));
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
