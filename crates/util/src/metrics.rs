//! Every series bale exports on `/metrics`, in one place: its name (with
//! its unit in it, Prometheus style: `_bytes`, `_seconds`, `_total` for
//! counters), its type and its help text. Code records through these
//! constants, so a name is spelt once; [`describe`] hands the help texts
//! to the recorder, which prints them as `# HELP` and `# TYPE`.
//!
//! Two kinds of source feed them: events counted where they happen (files
//! in, bytes out, packages written) and state read when a scrape comes
//! (queue depths, drives, volumes, alarms: `bale_core`'s gauges), so a
//! gauge is never stale by more than one scrape. The cache figures come
//! from the purger's last round (`[cache] purge_check_ms`), which counts
//! them anyway.

/// What kind of series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported series (a family of them, by labels).
#[derive(Clone, Copy, Debug)]
pub struct Series {
    pub name: &'static str,
    pub kind: Kind,
    /// The labels it carries, for the documentation.
    pub labels: &'static str,
    pub help: &'static str,
}

macro_rules! series {
    ($( $(#[$m:meta])* $konst:ident = $name:literal, $kind:ident, $labels:literal, $help:literal; )+) => {
        $( $(#[$m])* pub const $konst: &str = $name; )+
        /// Every series, in the order of this file.
        pub const ALL: &[Series] = &[ $( Series { name: $name, kind: Kind::$kind, labels: $labels, help: $help } ),+ ];
    };
}

series! {
    // The way in and out.
    INGEST_FILES = "bale_ingest_files_total", Counter, "",
        "Files written into bale (PUT, COPY) and committed to the catalog.";
    INGEST_BYTES = "bale_ingest_bytes_total", Counter, "",
        "Bytes of the files written into bale and committed to the catalog.";
    READ_FILES = "bale_read_files_total", Counter, "",
        "File reads (GET) answered with data from the cache.";
    READ_BYTES = "bale_read_bytes_total", Counter, "",
        "Bytes of file data sent to clients.";
    COMMIT_BATCH_FILES = "bale_commit_batch_files", Histogram, "",
        "Files per catalog commit of the group committer.";
    INLINE_PENDING_BYTES = "bale_inline_pending_bytes", Gauge, "",
        "Bytes of small files kept inline in the catalog, awaiting the settler.";
    INLINE_SETTLED = "bale_inline_settled_total", Counter, "",
        "Inline files settled: their cache copy made durable and their catalog data dropped.";
    SETTLE_LAG = "bale_settle_lag_seconds", Gauge, "",
        "Age of the oldest inline file not yet settled (0 when none waits).";

    // Aggregation.
    POOLS_CLOSED = "bale_pools_closed_total", Counter, "",
        "Pools closed into archive jobs.";
    POOLS_OPEN = "bale_pools_open", Gauge, "",
        "Open pools (files waiting to be aggregated).";
    POOL_FILES = "bale_pool_files", Gauge, "",
        "Files in open pools.";
    POOL_BYTES = "bale_pool_bytes", Gauge, "",
        "Bytes in open pools.";
    POOL_OLDEST_AGE = "bale_pool_oldest_age_seconds", Gauge, "",
        "Age of the oldest file in any open pool (0 when none is open).";
    ARCHIVE_JOBS = "bale_archive_jobs", Gauge, "state",
        "Archive jobs (closed pools waiting for or being written to tape), by state.";
    ARCHIVE_JOB_BYTES = "bale_archive_job_bytes", Gauge, "state",
        "Bytes of the archive jobs, by state.";

    // Tape.
    PACKED_FILES = "bale_packed_files_total", Counter, "library",
        "Files recorded in tape files (packages or single files) written, each tape copy counted.";
    PACKED_BYTES = "bale_packed_bytes_total", Counter, "library",
        "Bytes of the files recorded in tape files written, each tape copy counted.";
    TAPE_FILES_WRITTEN = "bale_tape_files_written_total", Counter, "library",
        "Tape files (packages or single files) written and recorded in the catalog.";
    TAPE_FILES_READ = "bale_tape_files_read_total", Counter, "library",
        "Tape files read back (stages, verification, repairs).";
    DRIVE_STATE = "bale_drive_state", Gauge, "library, drive, state",
        "1 for the state a drive is in (idle, busy, offline), 0 for the others.";
    DRIVE_BUSY = "bale_drive_busy_seconds_total", Counter, "library, drive, kind",
        "Modelled seconds a drive spent, by kind of work (robot, load, locate, write, read, mark, unload).";
    DRIVE_MOUNTS = "bale_drive_mounts_total", Counter, "library, drive",
        "Volumes mounted in a drive.";
    DRIVE_WRITTEN_BYTES = "bale_drive_written_bytes_total", Counter, "library, drive",
        "Bytes a drive wrote to tape.";
    DRIVE_READ_BYTES = "bale_drive_read_bytes_total", Counter, "library, drive",
        "Bytes a drive read from tape.";
    VOLUMES = "bale_volumes", Gauge, "library, state",
        "Volumes, by library and state (blank, appendable, full, readonly, noaccess, shelf).";
    VOLUME_USED_BYTES = "bale_volume_used_bytes", Gauge, "library, state",
        "Bytes written on the volumes, by library and state.";
    VOLUME_CAPACITY_BYTES = "bale_volume_capacity_bytes", Gauge, "library, state",
        "Capacity of the volumes, by library and state.";
    VERIFY_BAD_COPIES = "bale_verify_bad_copies_total", Counter, "",
        "Tape copies found bad when read (checksum or format) and marked so.";

    // Stage and purge.
    STAGE_FILES_OPEN = "bale_stage_files_open", Gauge, "state",
        "Files of stage requests not yet finished, by state (submitted, started).";
    STAGE_PACKAGES = "bale_stage_packages_total", Counter, "",
        "Tape files staged into the cache.";
    STAGE_FILES = "bale_stage_files_total", Counter, "",
        "Files made cached by stages.";
    STAGE_BYTES = "bale_stage_bytes_total", Counter, "",
        "Bytes of the files made cached by stages.";
    STAGE_SECONDS = "bale_stage_duration_seconds", Histogram, "",
        "Time from a tape file's stage being started to its files cached (mount, position, read, check).";
    STAGE_CANCELLED = "bale_stage_cancelled_total", Counter, "",
        "Stages cancelled because no request needed them any more.";
    PURGE_FILES = "bale_purge_files_total", Counter, "",
        "Cache copies purged (files safely on tape).";
    PURGE_BYTES = "bale_purge_bytes_total", Counter, "",
        "Bytes of the cache copies purged.";
    PURGE_LAG = "bale_purge_lag_seconds", Gauge, "",
        "Seconds the cache has been above its high mark without getting under it (0 when under).";

    // The cache.
    CACHE_CAPACITY = "bale_cache_capacity_bytes", Gauge, "",
        "The cache's capacity as the purger counts it (configured, else its filesystem's size).";
    CACHE_USED = "bale_cache_used_bytes", Gauge, "",
        "Bytes of files cached (from the purger's last round).";
    CACHE_FILES = "bale_cache_files", Gauge, "",
        "Files cached (from the purger's last round).";
    CACHE_PINNED = "bale_cache_pinned_bytes", Gauge, "",
        "Cached bytes pinned or held by stage requests.";
    CACHE_PURGEABLE = "bale_cache_purgeable_bytes", Gauge, "",
        "Cached bytes the purger may remove (on tape, not pinned).";
    CACHE_HIGH = "bale_cache_purge_high_bytes", Gauge, "",
        "The purger's high mark: above it, it purges.";
    CACHE_LOW = "bale_cache_purge_low_bytes", Gauge, "",
        "The purger's low mark: it purges down to it.";
    CACHE_FS_FREE = "bale_cache_filesystem_free_bytes", Gauge, "",
        "Free space of the cache's filesystem.";

    // The node.
    ALARMS_OPEN = "bale_alarms_open", Gauge, "severity",
        "Alarms not acknowledged, by severity.";
    WORKER_UP = "bale_worker_up", Gauge, "worker",
        "1 for a background worker that runs, 0 for a dead one (a dead worker makes the node unready).";
    BUILD_INFO = "bale_build_info", Gauge, "version",
        "Always 1; its label says the version that runs.";
    CATALOG_SECONDS = "bale_catalog_transaction_seconds", Histogram, "backend",
        "Time a catalog call held its connection (SQLite: a read or a write transaction; PostgreSQL: from taking a pooled connection to giving it back), waiting for it included.";
    HTTP_REQUESTS = "bale_http_requests_total", Counter, "method, route, status",
        "HTTP requests answered, by method, route and status code.";
    HTTP_SECONDS = "bale_http_request_duration_seconds", Histogram, "method, route",
        "Time from a request's arrival to its answer's head (bodies stream after).";
    HTTP_REFUSED = "bale_http_connections_refused_total", Counter, "",
        "Connections refused at the connection limit.";
    HTTP_TIMED_OUT = "bale_http_connections_timed_out_total", Counter, "",
        "Connections closed because a header, body or idle timeout passed.";
    TLS_FAILED = "bale_tls_handshakes_failed_total", Counter, "",
        "TLS handshakes that failed.";
    AUDIT_ENTRIES = "bale_audit_entries_total", Counter, "result",
        "Audit log entries, by result.";
    AUDIT_SUPPRESSED = "bale_audit_suppressed_total", Counter, "",
        "Audit lines of refusals held back by the per-address rate limit.";
    HISTORY_EVENTS = "bale_history_events_total", Counter, "",
        "File history events written to the catalog.";
}

/// Histogram buckets, in the series' unit.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// A stage mounts, positions and reads a package of up to gigabytes.
pub const STAGE_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];
pub const COUNT_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// Hands every series' help text to the installed recorder.
pub fn describe() {
    for s in ALL {
        match s.kind {
            Kind::Counter => metrics::describe_counter!(s.name, s.help),
            Kind::Gauge => metrics::describe_gauge!(s.name, s.help),
            Kind::Histogram => metrics::describe_histogram!(s.name, s.help),
        }
    }
}

/// One line of the Prometheus text format: a series' name, its labels
/// (unescaped) and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampled<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

impl Sampled<'_> {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|l| l.0 == key).map(|l| l.1.as_str())
    }
}

/// Reads the text format as this process's recorder writes it (format
/// 0.0.4: comments, `name value` and `name{k="v",...} value`, label values
/// escaped with `\\`, `\"` and `\n`); a line that does not parse is left
/// out. For figures sampled from the same text a scrape gets.
pub fn parse_text(text: &str) -> Vec<Sampled<'_>> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sampled<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end = loop {
            // key
            while chars.peek().is_some_and(|c| c.1 == ',' || c.1 == ' ') {
                chars.next();
            }
            let (start, c) = chars.next()?;
            if c == '}' {
                break start + 1;
            }
            let eq = body[start..].find('=')? + start;
            let key = &body[start..eq];
            while chars.peek().is_some_and(|c| c.0 <= eq) {
                chars.next();
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.push((key, value));
        };
        rest = &body[end..];
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sampled { name, labels, value })
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn reads_names_labels_and_values() {
        let text = "# HELP x y\n# TYPE x counter\nbale_a_total 3\n\
            bale_b{library=\"lib 1\",drive=\"d\\\"1\\\\\",kind=\"write\"} 2.5\n\
            bale_c_bucket{le=\"+Inf\"} 7\nbale_d NaN\nbroken{x=\"1\" 4\n\n";
        let got = parse_text(text);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!((got[0].name, got[0].value), ("bale_a_total", 3.0));
        assert_eq!(got[1].label("library"), Some("lib 1"));
        assert_eq!(got[1].label("drive"), Some("d\"1\\"));
        assert_eq!((got[1].label("kind"), got[1].value), (Some("write"), 2.5));
        assert_eq!(got[2].label("le"), Some("+Inf"));
        assert!(got[3].value.is_nan());
    }
}
