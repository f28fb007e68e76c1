//! The `[tape]` section of bale's configuration.

use crate::media::MediaProfile;
use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TapeConfig {
    /// Real seconds slept per modelled second: 0 accounts only (the
    /// default), 1 is real time, fractions in between.
    pub time_scale: f64,
    /// Files of at least this size are written to tape as their own tape
    /// file as soon as they are in the cache.
    pub direct_min_size: ByteSize,
    /// Seconds an idle drive keeps its volume before unloading it.
    pub idle_unload_s: f64,
    /// Seconds a request may wait before a drive gives up its mounted
    /// volume's remaining work to serve it (the no-starvation bound).
    pub max_wait_s: f64,
    /// Attempts of an archive job before it is parked as failed.
    pub write_attempts: u32,
    /// Attempts of a tape file read before the request fails.
    pub read_attempts: u32,
    /// Cache reads in flight while a package streams to a drive (members
    /// are read ahead in order, in parallel: cold small files need it).
    pub read_ahead_threads: usize,
    /// Most member bytes read ahead of the drive (never a whole package).
    pub read_ahead_window: ByteSize,
    /// Media profiles added to or replacing the built-in LTO-8, LTO-9,
    /// LTO-10 and T10000D.
    pub media: BTreeMap<String, MediaProfile>,
    /// The libraries; the first is the default for files whose directory
    /// has no `library` tag.
    pub libraries: Vec<LibraryConfig>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Emulated,
    Directory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileMarks {
    /// One synchronous file mark per tape file (Enstore's behaviour).
    Sync,
    /// Buffered marks with one synchronising flush every `flush_bytes` or
    /// `flush_files` (CTA's behaviour); tape files commit at the flush.
    Buffered,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LibraryConfig {
    pub name: String,
    pub backend: BackendKind,
    /// Emulated: where volumes are created. Directory: where each volume
    /// is a directory (an LTFS mount point). Relative to data_dir.
    pub path: PathBuf,
    /// The media profile of the library's drives and new volumes.
    pub media: String,
    pub drives: u32,
    /// Divides capacity and rate (times unchanged), for benchmarks with
    /// production ratios on small data. Reports name it.
    pub scale: f64,
    /// Blank volumes created at the first start.
    pub initial_volumes: u32,
    /// Capacity of volumes created here; the (scaled) profile's by default.
    pub volume_capacity: Option<ByteSize>,
    /// Label prefix of volumes created here.
    pub volume_prefix: String,
    /// Mounts after which a volume turns readonly and raises an alarm.
    pub mount_limit: u64,
    pub file_marks: FileMarks,
    /// Buffered marks: flush after this many bytes ...
    pub flush_bytes: ByteSize,
    /// ... or this many tape files, whichever comes first.
    pub flush_files: u32,
}

impl Default for TapeConfig {
    fn default() -> Self {
        TapeConfig {
            time_scale: 0.0,
            direct_min_size: ByteSize::mib(256),
            idle_unload_s: 60.0,
            max_wait_s: 3600.0,
            write_attempts: 3,
            read_attempts: 2,
            read_ahead_threads: 8,
            read_ahead_window: ByteSize::mib(64),
            media: BTreeMap::new(),
            libraries: vec![LibraryConfig::default()],
        }
    }
}

impl Default for LibraryConfig {
    fn default() -> Self {
        LibraryConfig {
            name: "lib1".into(),
            backend: BackendKind::Emulated,
            path: PathBuf::from("library"),
            media: "LTO-9".into(),
            drives: 2,
            scale: 1.0,
            initial_volumes: 4,
            volume_capacity: None,
            volume_prefix: "VL".into(),
            mount_limit: 5000,
            file_marks: FileMarks::Sync,
            flush_bytes: ByteSize::gib(32),
            flush_files: 1000,
        }
    }
}

impl TapeConfig {
    /// Every media profile: built-in ones with the config's on top.
    pub fn profiles(&self) -> BTreeMap<String, MediaProfile> {
        let mut all = crate::media::builtin();
        all.extend(self.media.clone());
        all
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1000.0).contains(&self.time_scale) {
            return Err("tape.time_scale must be between 0 and 1000".into());
        }
        if self.libraries.is_empty() {
            return Err("at least one [[tape.libraries]] is needed".into());
        }
        if self.write_attempts == 0 || self.read_attempts == 0 {
            return Err("tape.write_attempts and tape.read_attempts must be at least 1".into());
        }
        if self.read_ahead_threads == 0 || self.read_ahead_threads > 256 {
            return Err("tape.read_ahead_threads must be 1 to 256".into());
        }
        let profiles = self.profiles();
        let mut names = std::collections::BTreeSet::new();
        for l in &self.libraries {
            if l.name.is_empty() || l.name.contains(['/', ' ']) {
                return Err(format!(
                    "library name {:?} must be non-empty, without '/' or spaces",
                    l.name
                ));
            }
            if !names.insert(&l.name) {
                return Err(format!("library {:?} is configured twice", l.name));
            }
            if !profiles.contains_key(&l.media) {
                return Err(format!(
                    "library {}: unknown media {:?}; known: {}",
                    l.name,
                    l.media,
                    profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            if l.drives == 0 || l.drives > 1000 {
                return Err(format!("library {}: drives must be 1 to 1000", l.name));
            }
            if l.scale.is_nan() || l.scale < 1.0 {
                return Err(format!("library {}: scale must be at least 1", l.name));
            }
            if l.flush_files == 0 {
                return Err(format!("library {}: flush_files must be at least 1", l.name));
            }
            if l.volume_prefix.is_empty() || !l.volume_prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!("library {}: volume_prefix must be letters and digits", l.name));
            }
        }
        for (name, p) in &self.media {
            if p.capacity.0 == 0 || p.rate.0 == 0 {
                return Err(format!("media {name}: capacity and rate must be positive"));
            }
            for (k, v) in [
                ("load_s", p.load_s),
                ("unload_s", p.unload_s),
                ("robot_s", p.robot_s),
                ("full_locate_s", p.full_locate_s),
                ("file_mark_s", p.file_mark_s),
            ] {
                if v.is_nan() || v < 0.0 {
                    return Err(format!("media {name}: {k} must not be negative"));
                }
            }
        }
        Ok(())
    }
}
