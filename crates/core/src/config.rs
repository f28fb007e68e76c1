//! bale's configuration: one TOML file, one serde struct. Every key has a
//! default in code; unknown keys are an error naming the key.

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
    pub ingest: IngestConfig,
    pub namespace: NamespaceConfig,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncModeConfig {
    Fsync,
    Syncfs,
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
            ingest: IngestConfig::default(),
            namespace: NamespaceConfig::default(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            sync: SyncModeConfig::Fsync,
            max_batch: 512,
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

# The catalog: "sqlite" (a file in data_dir), or a PostgreSQL URL shared by
# several nodes, e.g. "postgres://bale:secret@db.example.org:5432/bale".
catalog = "sqlite"

[ingest]
# "fsync": each file is fsynced by its own writer, in parallel, and a batch
# then syncs its directory once. "syncfs": one syncfs(2) per batch for the
# whole cache filesystem (best when the cache has a filesystem of its own).
sync = "fsync"
# Most files recorded in one catalog transaction (group commit).
max_batch = 512

[namespace]
# How often reads are written to the catalog as last-access times (ms).
# A crash loses at most this much access history.
access_time_flush_ms = 1000
# Permission bits of new files and directories.
file_mode = 0o644
dir_mode = 0o755
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
        if self.namespace.file_mode > 0o7777 || self.namespace.dir_mode > 0o7777 {
            return Err(ConfigError::Invalid(
                "namespace.file_mode and dir_mode are permission bits (at most 0o7777)".into(),
            ));
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
            .field("ingest", &self.ingest)
            .field("namespace", &self.namespace)
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
