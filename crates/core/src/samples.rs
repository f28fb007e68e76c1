//! The figures behind the status page's charts: every `[ui] sample_s` the
//! sampler reads the text a `/metrics` scrape gets (the gauges refreshed
//! first), keeps the figures the charts draw, and appends them to a ring
//! kept in memory and on disk (`data_dir/ui-samples.jsonl`, one line per
//! sample, made durable and rewritten when it holds twice the ring), so
//! that the page has hours of history without an external Prometheus and
//! a restart keeps them.
//!
//! Counters are kept as they are; a chart of a rate takes the difference
//! of two neighbouring samples over their interval, and a counter that
//! went back (the process restarted) leaves a gap rather than a dip.

use crate::Result;
use bale_util::metrics as m;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, Weak};
use std::time::Duration;

/// The process's Prometheus recorder: histograms with buckets (not
/// summaries), every series described (`bale_util::metrics`). `/metrics`
/// renders it; the sampler reads the same text.
pub fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    use metrics_exporter_prometheus::Matcher;
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), m::SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(m::STAGE_SECONDS.into()), m::STAGE_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(m::COMMIT_BATCH_FILES.into()), m::COUNT_BUCKETS))
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (tests embedding several servers).
            if metrics::set_global_recorder(recorder).is_ok() {
                m::describe();
            }
            handle
        })
        .clone()
}

/// One sample: its time (Unix milliseconds) and figures by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t: i64,
    pub v: BTreeMap<String, f64>,
}

/// The kinds of drive work the busy chart groups the drives' counters
/// in: its label, the figure kept, the counters' `kind` labels.
const BUSY_KINDS: &[(&str, &str, &[&str])] = &[
    ("mount", "busy_mount", &["robot", "load", "unload"]),
    ("locate", "busy_locate", &["locate"]),
    ("write", "busy_write", &["write", "mark"]),
    ("read", "busy_read", &["read"]),
];

/// The figures of one scrape's text that the charts draw.
pub fn figures(text: &str) -> BTreeMap<String, f64> {
    let mut v: BTreeMap<String, f64> = BTreeMap::new();
    let mut add = |k: &str, x: f64| {
        if x.is_finite() {
            *v.entry(k.to_string()).or_default() += x;
        }
    };
    for s in bale_util::metrics::parse_text(text) {
        let key = match s.name {
            n if n == m::INGEST_FILES => "ingest_files",
            n if n == m::INGEST_BYTES => "ingest_bytes",
            n if n == m::DRIVE_WRITTEN_BYTES => "tape_written_bytes",
            n if n == m::DRIVE_READ_BYTES => "tape_read_bytes",
            "bale_stage_duration_seconds_sum" => "stage_seconds_sum",
            "bale_stage_duration_seconds_count" => "stage_count",
            n if n == m::CACHE_USED => "cache_used",
            n if n == m::CACHE_CAPACITY => "cache_capacity",
            n if n == m::CACHE_HIGH => "cache_high",
            n if n == m::CACHE_LOW => "cache_low",
            n if n == m::CACHE_PINNED => "cache_pinned",
            n if n == m::POOL_FILES => "pool_files",
            n if n == m::STAGE_FILES_OPEN => "stage_open",
            n if n == m::ARCHIVE_JOBS => match s.label("state") {
                Some("queued") => "jobs_queued",
                Some("failed") => "jobs_failed",
                _ => continue,
            },
            n if n == m::DRIVE_BUSY => {
                let kind = s.label("kind").unwrap_or("");
                match BUSY_KINDS.iter().find(|k| k.2.contains(&kind)) {
                    Some((_, figure, _)) => figure,
                    None => continue,
                }
            }
            _ => continue,
        };
        add(key, s.value);
    }
    v
}

/// What a chart's values are, for its axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    BytesPerSecond,
    FilesPerSecond,
    Seconds,
    Bytes,
    Count,
    /// Modelled seconds of drive work per second of the interval (the
    /// drives busy on average, at the library's time scale).
    Drives,
}

/// One line of a chart: a value per sample, `None` where there is none
/// (a gap).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Line {
    pub label: String,
    pub points: Vec<(i64, Option<f64>)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Chart {
    pub name: &'static str,
    pub title: &'static str,
    pub unit: Unit,
    /// The time span asked for (Unix ms): the axis runs over it.
    pub from: i64,
    pub to: i64,
    pub lines: Vec<Line>,
}

/// The charts the page draws, by name.
pub const CHARTS: &[(&str, &str)] = &[
    ("ingest", "Ingest"),
    ("tape", "Bytes to and from tape"),
    ("stage", "Stage latency"),
    ("cache", "Cache use and marks"),
    ("queue", "Queue depth"),
    ("drives", "Drive busy time by kind"),
];

enum How {
    /// A gauge as it was.
    Level(&'static str),
    /// A counter's rate per second.
    Rate(&'static str),
    /// The mean of a histogram over each interval: Δsum / Δcount.
    Mean(&'static str, &'static str),
}

fn plan(name: &str) -> Option<(Unit, Vec<(&'static str, How)>)> {
    use How::*;
    Some(match name {
        "ingest" => (Unit::FilesPerSecond, vec![("files/s", Rate("ingest_files"))]),
        "tape" => (
            Unit::BytesPerSecond,
            vec![
                ("written", Rate("tape_written_bytes")),
                ("read", Rate("tape_read_bytes")),
                ("ingested", Rate("ingest_bytes")),
            ],
        ),
        "stage" => (
            Unit::Seconds,
            vec![("mean stage time", Mean("stage_seconds_sum", "stage_count"))],
        ),
        "cache" => (
            Unit::Bytes,
            vec![
                ("used", Level("cache_used")),
                ("pinned", Level("cache_pinned")),
                ("high mark", Level("cache_high")),
                ("low mark", Level("cache_low")),
                ("capacity", Level("cache_capacity")),
            ],
        ),
        "queue" => (
            Unit::Count,
            vec![
                ("files in pools", Level("pool_files")),
                ("archive jobs queued", Level("jobs_queued")),
                ("archive jobs failed", Level("jobs_failed")),
                ("files to stage", Level("stage_open")),
            ],
        ),
        "drives" => (
            Unit::Drives,
            BUSY_KINDS
                .iter()
                .map(|(label, figure, _)| (*label, Rate(figure)))
                .collect(),
        ),
        _ => return None,
    })
}

/// Points per line of a chart at most (samples are thinned to it).
pub const MAX_POINTS: usize = 720;

/// The ring of samples, in memory and on disk.
pub struct Samples {
    path: PathBuf,
    capacity: usize,
    every: Duration,
    ring: Mutex<VecDeque<Sample>>,
    /// Lines in the file (rewritten at twice the capacity).
    lines: Mutex<usize>,
}

impl Samples {
    /// Opens the ring at `path`, reading what an earlier run kept (a torn
    /// last line is left out).
    pub fn open(path: PathBuf, capacity: usize, every: Duration) -> Samples {
        let mut ring = VecDeque::new();
        let mut lines = 0;
        let mut torn = false;
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                // A last line without its newline was cut short.
                torn = !text.is_empty() && !text.ends_with('\n');
                for line in text.lines() {
                    lines += 1;
                    match serde_json::from_str::<Sample>(line) {
                        Ok(s) => ring.push_back(s),
                        Err(e) => tracing::warn!("{}: a sample left out: {e}", path.display()),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot read the status page's samples {}: {e}", path.display()),
        }
        while ring.len() > capacity {
            ring.pop_front();
        }
        let samples = Samples {
            path,
            capacity,
            every,
            ring: Mutex::new(ring),
            lines: Mutex::new(lines),
        };
        // Written again whole, so that the next sample starts a line of
        // its own rather than ending the torn one.
        if torn {
            if let Err(e) = samples.rewrite() {
                tracing::warn!("cannot rewrite {}: {e}", samples.path.display());
            }
        }
        samples
    }

    /// Writes the file again from the ring (through a temporary file).
    fn rewrite(&self) -> std::io::Result<()> {
        let all: Vec<Sample> = self.ring.lock().unwrap().iter().cloned().collect();
        let mut lines = self.lines.lock().unwrap();
        let mut text = Vec::new();
        for s in &all {
            serde_json::to_writer(&mut text, s).map_err(std::io::Error::other)?;
            text.push(b'\n');
        }
        bale_util::durable::write_file_durable(&self.path, &text, 0o600)?;
        *lines = all.len();
        Ok(())
    }

    pub fn every(&self) -> Duration {
        self.every
    }

    pub fn len(&self) -> usize {
        self.ring.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a sample and makes it durable: appended, or the file rewritten
    /// (through a temporary file) when it has grown to twice the ring.
    pub fn push(&self, s: Sample) -> std::io::Result<()> {
        {
            let mut ring = self.ring.lock().unwrap();
            ring.push_back(s.clone());
            while ring.len() > self.capacity {
                ring.pop_front();
            }
        }
        if *self.lines.lock().unwrap() + 1 >= 2 * self.capacity {
            return self.rewrite();
        }
        let mut lines = self.lines.lock().unwrap();
        let mut line = serde_json::to_vec(&s).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let fresh = !self.path.exists();
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        f.write_all(&line)?;
        f.sync_data()?;
        if fresh {
            bale_util::durable::fsync_dir(self.path.parent().unwrap_or(std::path::Path::new(".")))?;
        }
        *lines += 1;
        Ok(())
    }

    /// Chart `name` over the last `hours`, or `None` for an unknown name.
    pub fn chart(&self, name: &str, hours: u64, now_ms: i64) -> Option<Chart> {
        let (unit, lines) = plan(name)?;
        let &(name, title) = CHARTS.iter().find(|c| c.0 == name)?;
        let from = now_ms - (hours as i64) * 3_600_000;
        let ring = self.ring.lock().unwrap();
        // One sample before the span, so that its first rate is known.
        let start = ring.partition_point(|s| s.t < from).saturating_sub(1);
        // At most about MAX_POINTS per line: every k-th sample (a rate
        // over k samples is their mean rate; a level is as it was).
        let stride = (ring.len() - start).div_ceil(MAX_POINTS).max(1);
        let last = ring.len().saturating_sub(1);
        let window: Vec<&Sample> = ring
            .range(start..)
            .enumerate()
            .filter(|(i, _)| i % stride == 0 || start + i == last)
            .map(|(_, s)| s)
            .collect();
        let lines = lines
            .into_iter()
            .map(|(label, how)| Line {
                label: label.to_string(),
                points: points(&window, &how, from),
            })
            .collect();
        Some(Chart {
            name,
            title,
            unit,
            from,
            to: now_ms,
            lines,
        })
    }
}

fn points(window: &[&Sample], how: &How, from: i64) -> Vec<(i64, Option<f64>)> {
    let mut out = Vec::with_capacity(window.len());
    for (i, s) in window.iter().enumerate() {
        if s.t < from {
            continue;
        }
        let prev = i.checked_sub(1).map(|j| window[j]);
        let v = match how {
            How::Level(k) => s.v.get(*k).copied(),
            // A counter not yet in a scrape has not counted anything: 0.
            How::Rate(k) => prev.and_then(|p| {
                let (a, b) = (p.v.get(*k).copied().unwrap_or(0.0), *s.v.get(*k)?);
                let dt = (s.t - p.t) as f64 / 1000.0;
                (b >= a && dt > 0.0).then(|| (b - a) / dt)
            }),
            How::Mean(sum, count) => prev.and_then(|p| {
                let ds = s.v.get(*sum)? - p.v.get(*sum).copied().unwrap_or(0.0);
                let dn = s.v.get(*count)? - p.v.get(*count).copied().unwrap_or(0.0);
                // No stage finished in the interval: no point (not zero).
                (dn > 0.0 && ds >= 0.0).then(|| ds / dn)
            }),
        };
        out.push((s.t, v));
    }
    out
}

/// What the sampler needs of the service: its gauges brought up to date.
#[async_trait::async_trait]
pub(crate) trait Gauges: Send + Sync {
    async fn refresh_gauges(&self) -> Result<()>;
}

/// Takes a sample every `[ui] sample_s`.
pub(crate) struct Sampler {
    pub samples: std::sync::Arc<Samples>,
    pub gauges: Weak<dyn Gauges>,
    pub taken: u64,
}

#[async_trait::async_trait]
impl bale_util::background::Worker for Sampler {
    fn name(&self) -> String {
        "sampler".into()
    }

    fn status(&self) -> bale_util::background::Status {
        let mut s = bale_util::background::Status::default();
        s.counters.insert("samples".into(), self.taken);
        s
    }

    async fn work(
        &mut self,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> std::result::Result<bale_util::background::State, String> {
        use bale_util::background::State;
        if *stop.borrow() {
            return Ok(State::Done);
        }
        let Some(gauges) = self.gauges.upgrade() else {
            return Ok(State::Done);
        };
        if let Err(e) = gauges.refresh_gauges().await {
            // The counters still count; the gauges keep their last values.
            tracing::warn!("sampler: reading the queues failed: {e}");
        }
        drop(gauges);
        let sample = Sample {
            t: bale_util::Timestamp::now().0 / 1_000_000,
            v: figures(&metrics_handle().render()),
        };
        let samples = self.samples.clone();
        tokio::task::spawn_blocking(move || samples.push(sample))
            .await
            .map_err(|e| format!("sampler: {e}"))?
            .map_err(|e| format!("cannot keep a sample in {}: {e}", self.samples.path.display()))?;
        self.taken += 1;
        Ok(State::Idle)
    }

    async fn wait_for_work(&mut self) -> bale_util::background::State {
        tokio::time::sleep(self.samples.every).await;
        bale_util::background::State::Busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64, pairs: &[(&str, f64)]) -> Sample {
        Sample {
            t,
            v: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn figures_come_from_the_scrape_text() {
        let text = "bale_ingest_files_total 10\n\
            bale_drive_busy_seconds_total{library=\"l\",drive=\"a\",kind=\"write\"} 3\n\
            bale_drive_busy_seconds_total{library=\"l\",drive=\"b\",kind=\"mark\"} 1\n\
            bale_drive_busy_seconds_total{library=\"l\",drive=\"b\",kind=\"robot\"} 2\n\
            bale_archive_jobs{state=\"queued\"} 4\nbale_archive_jobs{state=\"failed\"} 1\n\
            bale_stage_duration_seconds_sum 12.5\nbale_stage_duration_seconds_count 5\n";
        let f = figures(text);
        assert_eq!(f["ingest_files"], 10.0);
        assert_eq!(f["busy_write"], 4.0, "write and mark summed over drives");
        assert_eq!(f["busy_mount"], 2.0);
        assert_eq!((f["jobs_queued"], f["jobs_failed"]), (4.0, 1.0));
        assert_eq!((f["stage_seconds_sum"], f["stage_count"]), (12.5, 5.0));
    }

    #[test]
    fn rates_leave_gaps_at_restarts_and_the_ring_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let r = Samples::open(path.clone(), 3, Duration::from_secs(1));
        r.push(sample(1_000, &[("ingest_files", 0.0), ("cache_used", 5.0)]))
            .unwrap();
        r.push(sample(3_000, &[("ingest_files", 10.0), ("cache_used", 6.0)]))
            .unwrap();
        r.push(sample(4_000, &[("ingest_files", 2.0), ("cache_used", 7.0)]))
            .unwrap();
        r.push(sample(5_000, &[("ingest_files", 4.0), ("cache_used", 8.0)]))
            .unwrap();
        assert_eq!(r.len(), 3, "the oldest went");
        let c = r.chart("ingest", 1, 5_000).unwrap();
        assert_eq!(
            c.lines[0].points,
            vec![(3_000, None), (4_000, None), (5_000, Some(2.0))],
            "no rate without the one before; a counter that went back is a gap"
        );
        // The file was rewritten at twice the ring, and reopens whole.
        drop(r);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().count() <= 4, "{text}");
        std::fs::write(&path, format!("{text}{{\"t\": 6000, \"v\"")).unwrap();
        let r = Samples::open(path.clone(), 3, Duration::from_secs(1));
        let c = r.chart("cache", 1, 5_000).unwrap();
        assert_eq!(
            c.lines[0].points.last(),
            Some(&(5_000, Some(8.0))),
            "a torn line is left out"
        );
        // ... and the next sample is not lost with it.
        r.push(sample(7_000, &[("cache_used", 9.0)])).unwrap();
        drop(r);
        let r = Samples::open(path, 3, Duration::from_secs(1));
        let c = r.chart("cache", 1, 7_000).unwrap();
        assert_eq!(c.lines[0].points.last(), Some(&(7_000, Some(9.0))));
        assert!(r.chart("nope", 1, 0).is_none());
    }

    #[test]
    fn a_long_span_is_thinned_to_a_bounded_number_of_points() {
        let dir = tempfile::tempdir().unwrap();
        let r = Samples::open(dir.path().join("s.jsonl"), 10_000, Duration::from_secs(1));
        for i in 0..5_000 {
            r.ring
                .lock()
                .unwrap()
                .push_back(sample(i * 1000, &[("ingest_files", (i * 2) as f64)]));
        }
        let c = r.chart("ingest", 2, 5_000_000).unwrap();
        let p = &c.lines[0].points;
        assert!(p.len() <= MAX_POINTS + 1 && p.len() >= MAX_POINTS / 2, "{}", p.len());
        assert_eq!(p.last().unwrap().0, 4_999_000, "the newest sample is always drawn");
        assert!(
            p.iter().skip(1).all(|(_, v)| (v.unwrap() - 2.0).abs() < 1e-9),
            "the rate over a stride: 2/s"
        );
    }
}
