//! `bale bench intake`: how fast bulk requests are taken in, at the sizes
//! FTS and experiments send them: a stage request of 100,000 files (all on
//! tape only) accepted, its status polled while it runs and after, and
//! archiveinfo of 10,000 paths. Each figure is the median of `--rounds`
//! timed requests from a client in another process (the bench), over HTTP.

use super::common::{in_scratch, median, put_all, spawn_server};
use crate::client::check;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct IntakeArgs {
    /// Scratch directory (removed afterwards unless --keep).
    #[arg(long, default_value = "./bale-bench-intake")]
    dir: PathBuf,
    /// Files in the stage request.
    #[arg(long, default_value_t = 100_000)]
    files: usize,
    /// Files per directory.
    #[arg(long, default_value_t = 10_000)]
    per_dir: usize,
    /// Paths in the archiveinfo request.
    #[arg(long, default_value_t = 10_000)]
    archiveinfo: usize,
    /// Timed requests of each kind; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Catalog: sqlite or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    catalog: String,
    /// Keep the scratch directory.
    #[arg(long)]
    keep: bool,
    /// Measure the server's memory instead of times: one stage request of
    /// every file (and --missing paths more) against the server's resident
    /// set before, at its peak, and a minute after the request ended.
    #[arg(long)]
    memory: bool,
    /// Paths of files that do not exist, added to the measured request
    /// (each is walked and fails on its own): a million-path intake
    /// without writing a million files.
    #[arg(long, default_value_t = 0)]
    missing: usize,
}

pub async fn run(a: &IntakeArgs) -> Result<ExitCode> {
    if a.files == 0 || a.per_dir == 0 || a.archiveinfo > a.files || a.rounds == 0 {
        bail!("--files, --per-dir and --rounds must be positive and --archiveinfo at most --files");
    }
    in_scratch(&a.dir, a.keep, bench(a)).await
}

async fn timed<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<(f64, T)> {
    let t = Instant::now();
    let v = f.await?;
    Ok((t.elapsed().as_secs_f64(), v))
}

async fn bench(a: &IntakeArgs) -> Result<ExitCode> {
    // Idle drives keep their volumes: the stages below do not wait for mounts.
    let server = spawn_server(&a.dir.join("data"), "", &a.catalog)?;
    let c = server.client.clone();
    let dirs = a.files.div_ceil(a.per_dir);
    check(
        c.request(Method::from_bytes(b"MKCOL")?, &c.url("/intake")).send().await,
        "mkdir",
    )
    .await?;
    for d in 0..dirs {
        let p = format!("/intake/d{d:03}");
        check(c.request(Method::from_bytes(b"MKCOL")?, &c.url(&p)).send().await, &p).await?;
    }
    let paths: Vec<String> = (0..a.files)
        .map(|i| format!("/intake/d{:03}/file-{i:07}.dat", i / a.per_dir))
        .collect();
    eprintln!("writing {} files of 100 bytes", a.files);
    let t = Instant::now();
    put_all(&c, &paths, 32, |p| Bytes::from(format!("{p:<100}").into_bytes())).await?;
    eprintln!(
        "  {:.1} s; packing, writing to tape, purging",
        t.elapsed().as_secs_f64()
    );
    let _: Value = c.post_json("queue/flush", &json!({})).await?;
    loop {
        let u: Value = c.get_json("cache", &[]).await?;
        if u["purgeable_files"].as_u64() == Some(a.files as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _: Value = c
        .post_json("cache/purge", &json!({"paths": [], "all": true, "dry_run": false}))
        .await?;

    if a.memory {
        let mut all = paths.clone();
        all.extend((0..a.missing).map(|i| format!("/intake/d{:03}/missing-{i:07}.dat", i % dirs)));
        memory(&c, server.pid(), &all, a.files).await?;
        server.stop()?;
        return Ok(ExitCode::SUCCESS);
    }

    // archiveinfo of N paths, spread over the directories.
    let step = (a.files / a.archiveinfo.max(1)).max(1);
    let some: Vec<&str> = paths
        .iter()
        .step_by(step)
        .take(a.archiveinfo)
        .map(String::as_str)
        .collect();
    let mut info_s = Vec::new();
    for _ in 0..a.rounds {
        let (s, v): (f64, Value) = timed(c.post_json("archiveinfo", &json!({ "paths": some }))).await?;
        let tape = v
            .as_array()
            .context("archiveinfo")?
            .iter()
            .filter(|f| f["locality"] == "TAPE")
            .count();
        if tape != some.len() {
            bail!("archiveinfo: {tape} of {} on tape only", some.len());
        }
        info_s.push(s);
    }

    // Stage requests of every file: accepted, polled while running, polled when done.
    let mut accept_s = Vec::new();
    let mut poll_running_s = Vec::new();
    let mut poll_done_s = Vec::new();
    let mut poll_rest_s = Vec::new();
    for round in 0..a.rounds {
        if round > 0 {
            let _: Value = c
                .post_json("cache/purge", &json!({"paths": [], "all": true, "dry_run": false}))
                .await?;
        }
        let (s, v): (f64, Value) = timed(c.post_json("stage", &json!({ "paths": paths }))).await?;
        accept_s.push(s);
        let id = v["id"].as_i64().context("no request id")?;
        let (s, v): (f64, Value) = timed(c.get_json(&format!("stage/{id}"), &[])).await?;
        poll_running_s.push(s);
        let running = v["completedAt"].is_null();
        loop {
            let v: Value = c.get_json(&format!("stage/{id}/progress"), &[]).await?;
            if v["files_done"].as_u64() == Some(a.files as u64) {
                break;
            }
            if v["files_failed"].as_u64() != Some(0) {
                bail!("stage request {id}: files failed: {v}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let (s, _): (f64, Value) = timed(c.get_json(&format!("stage/{id}"), &[])).await?;
        poll_done_s.push(s);
        // The same poll through the WLCG Tape REST API, as FTS makes it.
        let rest = c.url(&format!("/api/tape/v1/stage/{id}"));
        let (s, _) = timed(async {
            Ok(check(c.request(Method::GET, &rest).send().await, &rest)
                .await?
                .bytes()
                .await?)
        })
        .await?;
        poll_rest_s.push(s);
        eprintln!("  round {round}: request {id} done (first poll while running: {running})");
        // Released, so that the next round's purge may take the files again.
        let _: Value = c.post_json(&format!("stage/{id}/release"), &json!({})).await?;
    }
    server.stop()?;
    println!(
        "intake, catalog {}: {} files in {} directories",
        a.catalog, a.files, dirs
    );
    println!(
        "  stage request of {} files accepted:      {:.3} s (median of {})",
        a.files,
        median(accept_s),
        a.rounds
    );
    println!(
        "  its status polled while running:        {:.3} s",
        median(poll_running_s)
    );
    println!("  its status polled when done:            {:.3} s", median(poll_done_s));
    println!("  the same through the Tape REST API:     {:.3} s", median(poll_rest_s));
    println!(
        "  archiveinfo of {} paths:               {:.3} s",
        some.len(),
        median(info_s)
    );
    Ok(ExitCode::SUCCESS)
}

/// Resident set and its peak (`VmRSS`, `VmHWM`) of process `pid`, bytes.
fn rss(pid: u32) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> Result<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
        let n: u64 = line[key.len()..].trim().trim_end_matches("kB").trim().parse()?;
        Ok(n * 1024)
    };
    Ok((kb("VmRSS:")?, kb("VmHWM:")?))
}

/// One stage request of `paths` (the first `real` of them on tape only),
/// the server's memory around it: before, at the peak (the kernel's
/// high-water mark, reset just before), and a minute after the request was
/// done, released and deleted.
async fn memory(c: &crate::Client, pid: u32, paths: &[String], real: usize) -> Result<()> {
    let mb = |b: u64| b as f64 / 1e6;
    // Measured idle, a minute after the setup's work (the server gives
    // freed memory back once a minute), as the "after" is.
    tokio::time::sleep(Duration::from_secs(65)).await;
    let (before, _) = rss(pid)?;
    // Resets the peak to the current resident set (Linux 4.0+).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").context("resetting the peak RSS")?;
    let body = serde_json::to_vec(&json!({ "paths": paths }))?;
    eprintln!(
        "  one stage request of {} paths ({:.1} MB of JSON)",
        paths.len(),
        mb(body.len() as u64)
    );
    let t = Instant::now();
    let r = c
        .request(Method::POST, &c.api("stage"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let v: Value = check(r, "stage").await?.json().await?;
    let accepted = t.elapsed().as_secs_f64();
    // The intake's own peak, apart from the staging's.
    let (_, intake_peak) = rss(pid)?;
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").context("resetting the peak RSS")?;
    let id = v["id"].as_i64().context("no request id")?;
    loop {
        let v: Value = c.get_json(&format!("stage/{id}/progress"), &[]).await?;
        if v["files_done"].as_u64() == Some(real as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let done = t.elapsed().as_secs_f64();
    let (_, stage_peak) = rss(pid)?;
    let peak = intake_peak.max(stage_peak);
    let _: Value = c.post_json(&format!("stage/{id}/release"), &json!({})).await?;
    check(
        c.request(Method::DELETE, &c.api(&format!("stage/{id}"))).send().await,
        "delete",
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (after, _) = rss(pid)?;
    if std::env::var_os("BALE_BENCH_SMAPS").is_some() {
        // Where the resident set is: the largest mappings.
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
        let mut maps: Vec<(u64, String)> = Vec::new();
        let mut name = String::new();
        for line in smaps.lines() {
            // A mapping's header starts with its address range ("7f..-7f..").
            let first = line.split_whitespace().next().unwrap_or("");
            if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                name = line.to_string();
            } else if let Some(kb) = line.strip_prefix("Rss:") {
                let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                maps.push((kb, name.clone()));
            }
        }
        maps.sort_by_key(|m| std::cmp::Reverse(m.0));
        for (kb, m) in maps.iter().take(12) {
            eprintln!("  {kb:>8} kB {m}");
        }
        eprintln!("  threads: {}", std::fs::read_dir(format!("/proc/{pid}/task"))?.count());
    }
    println!(
        "intake memory: one stage request of {} paths ({real} files on tape only)",
        paths.len()
    );
    println!("  accepted in {accepted:.2} s; every file on disk after {done:.1} s");
    println!("  server RSS before:                  {:8.1} MB", mb(before));
    println!(
        "  peak while taking it in:             {:8.1} MB (+{:.1} MB, {:.0} bytes a path)",
        mb(intake_peak),
        mb(intake_peak.saturating_sub(before)),
        intake_peak.saturating_sub(before) as f64 / paths.len() as f64
    );
    println!(
        "  peak while staging its files:        {:8.1} MB (+{:.1} MB)",
        mb(stage_peak),
        mb(stage_peak.saturating_sub(before))
    );
    println!(
        "  peak of both:                        {:8.1} MB (+{:.1} MB, {:.0} bytes a path)",
        mb(peak),
        mb(peak.saturating_sub(before)),
        peak.saturating_sub(before) as f64 / paths.len() as f64
    );
    println!(
        "  a minute after it ended:            {:8.1} MB ({:+.1}% of before)",
        mb(after),
        (after as f64 / before as f64 - 1.0) * 100.0
    );
    Ok(())
}
