//! `bale status`: the node at a glance; `bale history`: a file's journey.

use crate::client::Client;
use anyhow::Result;
use clap::Args;
use indicatif::DecimalBytes;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// The text of `bale status --help` after its options.
pub const STATUS_HELP: &str = "\
Rows:
  node      the node's id, bale's version, the catalog backend, when it started, and whether it is
            ready (/readyz: the catalog answers, the cache takes writes, no worker is dead)
  cache     bytes of cached files against the capacity ([cache] capacity, else the filesystem's
            size); the purger's high mark (above it, it purges) and low mark (down to it); pinned
            bytes (pins and stage requests hold them); purgeable bytes (on tape, not pinned); the
            filesystem's free space
  pools     open aggregation pools: their files, bytes and the age of the oldest file
  jobs      archive jobs (files on their way to tape) by state, with their bytes
  stage     stage requests not finished; their files submitted (waiting for a drive) and
            started (being read)
  drives    one line per drive: DRIVE its name, LIBRARY, ACTIVITY (idle, busy, offline), VOLUME
            the volume mounted, EFF its modelled efficiency (bytes moved over what its busy time
            would move at the media's rate: low when small files and mounts dominate)
  volumes   one line per library and STATE (blank, appendable, full, readonly, noaccess, shelf)
            that has volumes: LIBRARY, COUNT volumes, USED bytes written on them, CAPACITY their
            capacity, FILL used over capacity
  workers   (administrators) background workers that run, and any dead one with its last error
  alarms    (administrators) alarms not acknowledged, by severity, and the latest ones";

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Show it again every this many seconds, until interrupted.
    #[arg(long, value_name = "SECONDS")]
    watch: Option<u64>,
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("-")
}

fn size(b: u64) -> String {
    DecimalBytes(b).to_string()
}

fn share(part: u64, whole: u64) -> String {
    match whole {
        0 => "-".into(),
        w => format!("{:.0} %", part as f64 * 100.0 / w as f64),
    }
}

/// A catalog timestamp (ns since the epoch) as UTC, to the second, as
/// the other tables show times.
fn when(ns: i64) -> String {
    bale_api::model::utc_seconds(bale_util::Timestamp(ns))
}

pub async fn status(c: &Client, a: &StatusArgs) -> Result<ExitCode> {
    loop {
        let v: Value = c.get_json("status", &[]).await?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            if a.watch.is_some() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                print!("\x1b[H\x1b[2J");
            }
            print_status(&v);
        }
        match a.watch {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs.max(1))).await,
            None => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn print_status(v: &Value) {
    let ready = if v["ready"].as_bool() == Some(true) {
        "ready".to_string()
    } else {
        match v["not_ready"].as_str() {
            Some(why) => format!("NOT READY: {why}"),
            None => "NOT READY".to_string(),
        }
    };
    println!(
        "node     {}  bale {}  catalog {}  started {}  {ready}",
        s(v, "node"),
        s(v, "version"),
        s(v, "catalog"),
        when(v["started"].as_i64().unwrap_or(0))
    );
    let c = &v["cache"];
    let cap = n(c, "capacity");
    println!(
        "cache    {} of {} used ({}), {} files; high mark {} ({}), low mark {} ({}); pinned {}, purgeable {}; fs free {}",
        size(n(c, "used")),
        size(cap),
        share(n(c, "used"), cap),
        n(c, "files"),
        size(n(c, "purge_high")),
        share(n(c, "purge_high"), cap),
        size(n(c, "purge_low")),
        share(n(c, "purge_low"), cap),
        size(n(c, "pinned")),
        size(n(c, "purgeable")),
        size(n(c, "filesystem_free"))
    );
    let q = &v["queue"];
    let oldest = q["oldest_pool_age_s"]
        .as_f64()
        .map(|a| format!(", oldest {}", humantime::format_duration(Duration::from_secs(a as u64))))
        .unwrap_or_default();
    println!(
        "pools    {} open: {} files, {}{oldest}",
        n(q, "pools_open"),
        n(q, "pool_files"),
        size(n(q, "pool_bytes"))
    );
    let jobs: Vec<String> = q["jobs"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(state, nb)| {
                    format!(
                        "{state} {} ({})",
                        nb[0].as_u64().unwrap_or(0),
                        size(nb[1].as_u64().unwrap_or(0))
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    println!("jobs     {}", jobs.join(", "));
    let st = &v["stage"];
    println!(
        "stage    {} open requests: {} files submitted, {} started",
        n(st, "requests_open"),
        n(st, "files_submitted"),
        n(st, "files_started")
    );
    let drives = v["drives"].as_array().cloned().unwrap_or_default();
    println!("drives");
    println!(
        "  {:<14} {:<10} {:<9} {:<10} {:>6}",
        "DRIVE", "LIBRARY", "ACTIVITY", "VOLUME", "EFF"
    );
    for d in &drives {
        let eff = d["efficiency"]
            .as_f64()
            .map_or("-".to_string(), |e| format!("{:.0} %", e * 100.0));
        println!(
            "  {:<14} {:<10} {:<9} {:<10} {:>6}",
            s(d, "name"),
            s(d, "library"),
            s(d, "activity"),
            d["volume"].as_str().unwrap_or("-"),
            eff
        );
    }
    println!("volumes");
    println!(
        "  {:<10} {:<11} {:>6} {:>12} {:>12} {:>6}",
        "LIBRARY", "STATE", "COUNT", "USED", "CAPACITY", "FILL"
    );
    for g in v["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| n(g, "count") > 0)
    {
        println!(
            "  {:<10} {:<11} {:>6} {:>12} {:>12} {:>6}",
            s(g, "library"),
            s(g, "state"),
            n(g, "count"),
            size(n(g, "used")),
            size(n(g, "capacity")),
            share(n(g, "used"), n(g, "capacity"))
        );
    }
    if let Some(ws) = v["workers"].as_array() {
        let dead: Vec<&Value> = ws.iter().filter(|w| s(w, "state") == "dead").collect();
        println!("workers  {} running, {} dead", ws.len() - dead.len(), dead.len());
        for w in dead {
            println!("  DEAD {}: {}", s(w, "name"), w["last_error"].as_str().unwrap_or("-"));
        }
    }
    if let Some(a) = v["alarms"].as_object() {
        let open: Vec<String> = a["open"]
            .as_object()
            .map(|o| o.iter().map(|(k, c)| format!("{k} {c}")).collect())
            .unwrap_or_default();
        println!(
            "alarms   {}",
            if open.is_empty() {
                "none open".to_string()
            } else {
                open.join(", ")
            }
        );
        for l in a["latest"].as_array().into_iter().flatten() {
            println!(
                "  {:<8} {}: {}",
                l[0].as_str().unwrap_or("?"),
                l[1].as_str().unwrap_or("?"),
                l[2].as_str().unwrap_or("?")
            );
        }
    }
}

/// The text of `bale history --help` after its options.
pub const HISTORY_HELP: &str = "\
Columns:
  TIME     when it happened (UTC)
  EVENT    written (by a PUT or a COPY), pooled (joined an aggregation pool, or sent to tape on its
           own), packed (recorded in a tape file: one line per tape copy), verified (a tape copy
           read back and found good), bad (found bad), purged (the cache copy removed), requested
           (by a stage request), staged (cached again from tape), read (reads counted over ten
           minutes: xN), moved, overwritten (replaced by a newer file), deleted
  BY       the user who caused it (shown as \"(another user)\" to a file's owner, who sees only their own
           actions in full)
  REQUEST  the HTTP request id (X-Request-Id: it finds the request's lines in the server's log),
           or the stage request (stage N)
  DETAIL   where: the path, the package and the member's offset in it, the volume, the client
Events older than [history] retention_days are forgotten.";

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The file (its owner and administrators).
    #[arg(required_unless_present = "file_id")]
    path: Option<String>,
    /// A file by its id instead, deleted ones too (administrators).
    #[arg(long, conflicts_with = "path")]
    file_id: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn history(c: &Client, a: &HistoryArgs) -> Result<ExitCode> {
    let q: Vec<(&str, &str)> = match (&a.path, &a.file_id) {
        (Some(p), _) => vec![("path", p.as_str())],
        (None, Some(id)) => vec![("file_id", id.as_str())],
        (None, None) => unreachable!("clap requires one"),
    };
    let h: Value = c.get_json("history", &q).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&h)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} (file id {})", h["path"].as_str().unwrap_or("-"), s(&h, "file_id"));
    if h["truncated"].as_bool() == Some(true) {
        println!("(the newest 10,000 events only; older ones are not shown)");
    }
    println!("{:<20} {:<11} {:<10} {:<32} DETAIL", "TIME", "EVENT", "BY", "REQUEST");
    for e in h["events"].as_array().into_iter().flatten() {
        println!(
            "{:<20} {:<11} {:<10} {:<32} {}",
            when(e["time"].as_i64().unwrap_or(0)),
            s(e, "kind"),
            e["who"].as_str().unwrap_or("-"),
            e["request"].as_str().unwrap_or("-"),
            detail(e)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// An event's where and what, in words.
fn detail(e: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(p) = e["path"].as_str() {
        parts.push(p.to_string());
    }
    if let Some(p) = e["package"].as_str() {
        let at = e["offset"]
            .as_u64()
            .map(|o| format!(" at offset {o}"))
            .unwrap_or_default();
        parts.push(format!("package {p}{at}"));
    }
    if let Some(v) = e["volume"].as_str() {
        parts.push(format!("volume {v}"));
    }
    if n(e, "count") > 1 {
        parts.push(format!("x{}", n(e, "count")));
    }
    if let Some(d) = e["detail"].as_str() {
        parts.push(d.to_string());
    }
    parts.join("; ")
}
