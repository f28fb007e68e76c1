//! Aggregation administration: the policy, the queue, packages.

use crate::client::{check, Client};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::DecimalBytes;
use reqwest::Method;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Print the policy in force and where it came from.
    Show,
    /// Replace the policy with FILE (administrators). An invalid file is
    /// refused with its line and column; the old policy stays.
    Load {
        /// The policy file (TOML [[rule]]s; see examples/mu2e-sfa.toml).
        file: PathBuf,
    },
    /// Show which rule a file would get and why every earlier rule did not
    /// match. The file need not exist.
    Check {
        /// The file's path (it need not exist).
        path: String,
        /// The file's size, e.g. 12345 or "5 MB".
        #[arg(long)]
        size: String,
        /// The owner (default: you).
        #[arg(long)]
        owner: Option<String>,
        /// The group (default: yours).
        #[arg(long)]
        group: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct QueueArgs {
    /// List every archive job (the default is a summary per family, with
    /// the failed jobs listed).
    #[arg(long)]
    all: bool,
    /// Print JSON (every pool and job).
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    cmd: Option<QueueCmd>,
}

#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// Close a pool now (all of them without POOL) and queue its packages
    /// for tape (administrators).
    Flush {
        /// The pool's key (`bale queue` lists them); none: every pool.
        pool: Option<String>,
        /// Then wait until no archive job is queued: every package (and
        /// direct file) on tape. Exits 1 if a job failed.
        #[arg(long)]
        wait: bool,
    },
    /// Put a failed archive job back in the queue, or every failed job with
    /// --failed, once the cause of the failure is fixed (administrators).
    #[command(group = clap::ArgGroup::new("which").required(true).multiple(false))]
    Retry {
        /// The job (its number in `bale queue`).
        #[arg(group = "which")]
        job: Option<i64>,
        /// Every failed job.
        #[arg(long, group = "which")]
        failed: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct PackagesArgs {
    /// Only the packages on this volume, in tape order.
    #[arg(long)]
    volume: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum PackageCmd {
    /// A package's location and its members with path, size, adler32 and
    /// offset (Enstore's --pkginfo).
    #[command(after_long_help = crate::columns::PACKAGE_SHOW)]
    Show {
        /// The package's id (`bale packages` lists them), or the path of a
        /// file: the package of its first tape copy.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("-")
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn print_json(v: &Value) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

pub async fn policy(c: &Client, cmd: &PolicyCmd) -> Result<ExitCode> {
    match cmd {
        PolicyCmd::Show => {
            let p: Value = c.get_json("policy", &[]).await?;
            println!("# policy in force: {}", s(&p, "origin"));
            for w in p["warnings"].as_array().into_iter().flatten() {
                println!("# warning: {}", w.as_str().unwrap_or(""));
            }
            print!("{}", s(&p, "source"));
        }
        PolicyCmd::Load { file } => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            let r = c.request(Method::PUT, &c.api("policy")).body(text).send().await;
            let p: Value = check(r, "policy").await?.json().await?;
            let rules: Vec<&str> = p["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str())
                .collect();
            println!(
                "policy loaded: {}: {}",
                crate::cmd::plural(rules.len() as u64, "rule"),
                rules.join(", ")
            );
            for w in p["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", w.as_str().unwrap_or(""));
            }
        }
        PolicyCmd::Check {
            path,
            size,
            owner,
            group,
            json,
        } => {
            let size = crate::cmd::parse_size(size).with_context(|| format!("--size {size:?}"))?;
            let size = size.to_string();
            let mut q = vec![("path", path.as_str()), ("size", size.as_str())];
            if let Some(o) = owner {
                q.push(("owner", o));
            }
            if let Some(g) = group {
                q.push(("group", g));
            }
            let e: Value = c.get_json("policy/check", &q).await?;
            if *json {
                return print_json(&e);
            }
            for sk in e["skipped"].as_array().into_iter().flatten() {
                println!("  skipped {:<20} {}", s(sk, "rule"), s(sk, "why"));
            }
            println!(
                "rule {} (#{}, line {}): {}",
                s(&e, "rule"),
                n(&e, "index"),
                n(&e, "line"),
                s(&e, "route")
            );
            println!("  why: {}", s(&e, "why"));
            for w in e["warnings"].as_array().into_iter().flatten() {
                println!("  warning: {}", w.as_str().unwrap_or(""));
            }
            if let Some(pool) = e["pool"].as_str() {
                println!("  pool: {pool}");
            }
            println!("  to: library {}, family {}", s(&e, "library"), s(&e, "family"));
            let copies: Vec<&str> = e["copies"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            if !copies.is_empty() {
                println!("  more copies: library {}", copies.join(", library "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn queue(c: &Client, a: &QueueArgs) -> Result<ExitCode> {
    if let Some(QueueCmd::Retry { job, failed, json }) = &a.cmd {
        let body = match job {
            Some(id) => serde_json::json!({ "job": id }),
            None => serde_json::json!({ "failed": failed }),
        };
        let retried: Value = c.post_json("queue/retry", &body).await?;
        if *json {
            return print_json(&retried);
        }
        let jobs = retried.as_array().cloned().unwrap_or_default();
        for j in &jobs {
            println!(
                "job {} queued again: {}, {}",
                n(j, "job"),
                crate::cmd::plural(n(j, "files"), "file"),
                DecimalBytes(n(j, "bytes"))
            );
        }
        if jobs.is_empty() {
            println!("no failed job to retry");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(QueueCmd::Flush { pool, wait }) = &a.cmd {
        let closed: Value = c.post_json("queue/flush", &serde_json::json!({ "pool": pool })).await?;
        if a.json {
            return print_json(&closed);
        }
        let jobs = closed.as_array().cloned().unwrap_or_default();
        for j in &jobs {
            println!(
                "closed {}: job {} with {}, {}",
                s(j, "pool"),
                n(j, "job"),
                crate::cmd::plural(n(j, "files"), "file"),
                DecimalBytes(n(j, "bytes"))
            );
        }
        if jobs.is_empty() {
            println!("no open pool to close");
        }
        if *wait {
            return wait_for_tape(c).await;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let q: Value = c.get_json("queue", &[]).await?;
    if a.json {
        return print_json(&q);
    }
    println!("OPEN POOLS");
    println!(
        "  {:<44} {:>7} {:>11} {:>9}  NEAREST TRIGGER",
        "POOL", "FILES", "BYTES", "OLDEST"
    );
    for p in q["pools"].as_array().into_iter().flatten() {
        let nearest = match s(p, "nearest") {
            "size" => format!("size {}", DecimalBytes(n(p, "target_size"))),
            "files" => format!("files {}", n(p, "max_files")),
            _ => format!("wait {:.0} s", p["max_wait_s"].as_f64().unwrap_or(0.0)),
        };
        println!(
            "  {:<44} {:>7} {:>11} {:>8.1}s  {} ({:.0}%)",
            s(p, "key"),
            n(p, "files"),
            DecimalBytes(n(p, "bytes")).to_string(),
            p["oldest_age_s"].as_f64().unwrap_or(0.0),
            nearest,
            p["progress"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    let jobs: Vec<&Value> = q["jobs"].as_array().into_iter().flatten().collect();
    if a.all {
        println!("ARCHIVE JOBS ({})", jobs.len());
        print_jobs(&jobs);
        return Ok(ExitCode::SUCCESS);
    }
    // A summary per state, library and family; failed jobs need a person,
    // so they are listed.
    #[derive(Default)]
    struct Group {
        jobs: u64,
        files: u64,
        bytes: u64,
        oldest: f64,
    }
    let mut groups: std::collections::BTreeMap<(&str, &str, &str), Group> = Default::default();
    for j in &jobs {
        let g = groups
            .entry((s(j, "state"), s(j, "library"), s(j, "family")))
            .or_default();
        g.jobs += 1;
        g.files += n(j, "files");
        g.bytes += n(j, "bytes");
        g.oldest = g.oldest.max(j["age_s"].as_f64().unwrap_or(0.0));
    }
    let count = |state: &str| jobs.iter().filter(|j| s(j, "state") == state).count() as u64;
    println!("ARCHIVE JOBS: {} queued, {} failed", count("queued"), count("failed"));
    if !groups.is_empty() {
        println!(
            "  {:<7} {:<10} {:<36} {:>6} {:>8} {:>11} {:>9}",
            "STATE", "LIBRARY", "FAMILY", "JOBS", "FILES", "BYTES", "OLDEST"
        );
    }
    for ((state, library, family), g) in &groups {
        println!(
            "  {:<7} {:<10} {:<36} {:>6} {:>8} {:>11} {:>8.1}s",
            state,
            library,
            family,
            g.jobs,
            g.files,
            DecimalBytes(g.bytes).to_string(),
            g.oldest
        );
    }
    let failed: Vec<&Value> = jobs.iter().copied().filter(|j| s(j, "state") == "failed").collect();
    if !failed.is_empty() {
        println!("FAILED JOBS (bale queue retry JOB, or --failed, once the cause is fixed)");
        print_jobs(&failed);
    }
    if jobs.len() > failed.len() {
        println!("(bale queue --all lists every job)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits until no archive job is queued; a failed job ends the wait with
/// exit status 1 (it waits for `bale queue retry`).
async fn wait_for_tape(c: &Client) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let bar = indicatif::ProgressBar::hidden();
    if crate::stderr_is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("template"));
    // Alarms raised while waiting say why the wait may be long (no volume
    // for a family, a failed drive): shown once each.
    let since = bale_util::Timestamp::now().0 - 5_000_000_000;
    let mut told = std::collections::HashSet::new();
    loop {
        let alarms: Value = c.get_json("alarms", &[]).await.unwrap_or(Value::Null);
        for a in alarms.as_array().into_iter().flatten() {
            if a["last"].as_i64().unwrap_or(0) >= since && told.insert(a["id"].as_i64().unwrap_or(0)) {
                bar.suspend(|| eprintln!("alarm: {}", s(a, "message")));
            }
        }
        let q: Value = c.get_json("queue", &[]).await?;
        let jobs: Vec<&Value> = q["jobs"].as_array().into_iter().flatten().collect();
        let queued: Vec<&&Value> = jobs.iter().filter(|j| s(j, "state") == "queued").collect();
        let failed: Vec<&Value> = jobs.iter().copied().filter(|j| s(j, "state") == "failed").collect();
        if queued.is_empty() {
            bar.finish_and_clear();
            if !failed.is_empty() {
                println!("FAILED JOBS (bale queue retry JOB, or --failed, once the cause is fixed)");
                print_jobs(&failed);
                return Ok(ExitCode::FAILURE);
            }
            println!(
                "every archive job is on tape ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            return Ok(ExitCode::SUCCESS);
        }
        let files: u64 = queued.iter().map(|j| n(j, "files")).sum();
        let bytes: u64 = queued.iter().map(|j| n(j, "bytes")).sum();
        bar.set_message(format!(
            "waiting for {} ({}, {}) to reach tape",
            crate::cmd::plural(queued.len() as u64, "archive job"),
            crate::cmd::plural(files, "file"),
            DecimalBytes(bytes)
        ));
        bar.tick();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

fn print_jobs(jobs: &[&Value]) {
    println!(
        "  {:>6} {:<7} {:<28} {:>6} {:>11} {:>8} {:>4}  POOL / ERROR",
        "JOB", "STATE", "FAMILY", "FILES", "BYTES", "AGE", "TRY"
    );
    for j in jobs {
        println!(
            "  {:>6} {:<7} {:<28} {:>6} {:>11} {:>7.1}s {:>4}  {}",
            n(j, "id"),
            s(j, "state"),
            s(j, "family"),
            n(j, "files"),
            DecimalBytes(n(j, "bytes")).to_string(),
            j["age_s"].as_f64().unwrap_or(0.0),
            n(j, "attempts"),
            j["error"].as_str().or(j["pool"].as_str()).unwrap_or("direct")
        );
    }
}

pub async fn packages(c: &Client, a: &PackagesArgs) -> Result<ExitCode> {
    let mut q = Vec::new();
    if let Some(v) = &a.volume {
        q.push(("volume", v.as_str()));
    }
    let pkgs: Value = c.get_json("packages", &q).await?;
    if a.json {
        return print_json(&pkgs);
    }
    println!(
        "{:<36} {:<10} {:>5} {:>11} {:>9} {:>8} {:>11}",
        "PACKAGE", "VOLUME", "FILE", "SIZE", "ADLER32", "MEMBERS", "DEAD"
    );
    for p in pkgs.as_array().into_iter().flatten() {
        println!(
            "{:<36} {:<10} {:>5} {:>11} {:>9} {:>8} {:>11}",
            s(p, "id"),
            s(p, "volume"),
            n(p, "seq"),
            DecimalBytes(n(p, "size")).to_string(),
            s(p, "adler32"),
            n(p, "members"),
            DecimalBytes(n(p, "dead_bytes")).to_string()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn package(c: &Client, cmd: &PackageCmd) -> Result<ExitCode> {
    let PackageCmd::Show { id, json } = cmd;
    // A path names the package of the file's first tape copy.
    let id = match id.starts_with('/') {
        false => id.clone(),
        true => {
            let st: Value = serde_json::to_value(c.stat_full(id).await?)?;
            match st["archive"]["copies"][0]["package"].as_str() {
                Some(p) => p.to_string(),
                None => anyhow::bail!("{id} has no tape copy yet (bale stat {id} says where it is)"),
            }
        }
    };
    let id = &id;
    if id.contains('/') {
        anyhow::bail!("invalid package id {id:?}");
    }
    let p: Value = c.get_json(&format!("packages/{id}"), &[]).await?;
    if *json {
        return print_json(&p);
    }
    println!("  package: {}", s(&p, "id"));
    println!(
        "  volume: {}  tape file: {}  position: {}",
        s(&p, "volume"),
        n(&p, "seq"),
        n(&p, "position")
    );
    println!(
        "  size: {} ({} bytes)  adler32: {}  members: {}  dead: {}, {}",
        DecimalBytes(n(&p, "size")),
        n(&p, "size"),
        s(&p, "adler32"),
        n(&p, "member_count"),
        crate::cmd::plural(n(&p, "dead_members"), "member"),
        DecimalBytes(n(&p, "dead_bytes"))
    );
    println!("\n  {:>14} {:>12} {:>9}  PATH", "OFFSET", "SIZE", "ADLER32");
    for m in p["members"].as_array().into_iter().flatten() {
        let path = match (m["path"].as_str(), m["hidden"].as_bool().unwrap_or(false)) {
            (Some(path), _) => path.to_string(),
            // A path the user may not see: the file id only.
            (None, true) => format!("(file id {})", s(m, "file_id")),
            (None, false) => "(deleted)".to_string(),
        };
        println!(
            "  {:>14} {:>12} {:>9}  {}",
            n(m, "offset"),
            n(m, "size"),
            s(m, "adler32"),
            path
        );
    }
    Ok(ExitCode::SUCCESS)
}
