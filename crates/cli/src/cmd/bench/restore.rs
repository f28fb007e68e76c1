//! `bale bench restore`: the Mu2e restore case (a dataset of 9,700 files in
//! 28 packages on ONE volume, which Enstore took 18 days to bring back
//! behind a 1,000-file limit), scaled in bytes only: the media profile's
//! bytes and rate are divided by `--scale`, its times are not, so the
//! modelled tape time is that of the full-size dataset.
//!
//! Three ways to bring the purged dataset back, each from an idle library:
//! 1. one bulk request of every file (measured);
//! 2. one request per file, all submitted together (measured: bale joins
//!    them into the same package reads);
//! 3. per-member staging as Enstore did it: every requested member reads
//!    its whole package (modelled from the same timing model).
//!
//! For 1 the bench checks the tape work against the model: one mount, each
//! package read once in position order, and the modelled time within 5% of
//! mount + locates + bytes / rate.

use super::common::{busy_s, drives_idle, first_library, in_scratch, mkdir_tagged, put_all, spawn_server};
use crate::client::Client;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use bytesize::ByteSize;
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use rand::RngCore;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Scratch directory (removed afterwards unless --keep).
    #[arg(long, default_value = "./bale-bench-restore")]
    dir: PathBuf,
    /// Files in the dataset.
    #[arg(long, default_value_t = 9700)]
    files: usize,
    /// Packages they are packed into (max_files of the rule).
    #[arg(long, default_value_t = 28)]
    packages: usize,
    /// Modelled size of each file.
    #[arg(long, default_value = "200 MB")]
    size: ByteSize,
    /// Media profile.
    #[arg(long, default_value = "LTO-9")]
    media: String,
    /// Profile scale: bytes and rate divided by it, times unchanged.
    #[arg(long, default_value_t = 10_000.0)]
    scale: f64,
    /// Catalog: sqlite or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    catalog: String,
    #[arg(long)]
    keep: bool,
}

pub async fn run(a: &RestoreArgs) -> Result<ExitCode> {
    if a.files == 0 || a.packages == 0 || a.packages > a.files || a.scale < 1.0 {
        bail!("--files and --packages positive, at most one package per file, --scale at least 1");
    }
    in_scratch(&a.dir, a.keep, bench(a)).await
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

async fn last_event(c: &Client) -> Result<u64> {
    let v: Value = c.get_json("tape/events", &[]).await?;
    Ok(v.as_array()
        .and_then(|a| a.last())
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or(0))
}

/// Purges everything and waits until every drive has put its volume back.
async fn to_rest(c: &Client, files: usize) -> Result<()> {
    loop {
        let u: Value = c.get_json("cache", &[]).await?;
        if u["purgeable_files"].as_u64() == Some(files as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _: Value = c
        .post_json("cache/purge", &json!({"paths": [], "all": true, "dry_run": false}))
        .await?;
    while !drives_idle(c).await? {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// One way of restoring: its modelled tape time, mounts, reads (tape file
/// numbers in order) and wall time.
struct Restore {
    modelled_s: f64,
    mounts: u64,
    reads: Vec<u64>,
    wall_s: f64,
}

async fn measure(
    c: &Client,
    files: usize,
    submit: impl std::future::Future<Output = Result<Vec<i64>>>,
) -> Result<Restore> {
    let (lib0, seq0) = (first_library(c).await?, last_event(c).await?);
    let t = Instant::now();
    let ids = submit.await?;
    for id in &ids {
        loop {
            let v: Value = c.get_json(&format!("stage/{id}/progress"), &[]).await?;
            if v["files_failed"].as_u64() != Some(0) {
                bail!("stage request {id}: files failed: {v}");
            }
            if v["files_done"] == v["files"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let wall_s = t.elapsed().as_secs_f64();
    // Released, so that the next way starts from a purged cache again.
    for id in &ids {
        let _: Value = c.post_json(&format!("stage/{id}/release"), &json!({})).await?;
    }
    // Counted once the volume is back on the shelf (its unload included).
    while !drives_idle(c).await? {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lib1 = first_library(c).await?;
    let events: Value = c.get_json("tape/events", &[("after", &seq0.to_string())]).await?;
    let reads = events
        .as_array()
        .context("events")?
        .iter()
        .filter(|e| e["kind"] == "read")
        .filter_map(|e| e["tape_file"].as_u64())
        .collect();
    let cached: Value = c.get_json("cache", &[]).await?;
    if cached["cached_files"].as_u64() != Some(files as u64) {
        bail!("not every file is back: {cached}");
    }
    Ok(Restore {
        modelled_s: busy_s(&lib1["stats"]) - busy_s(&lib0["stats"]),
        mounts: lib1["stats"]["mounts"].as_u64().unwrap_or(0) - lib0["stats"]["mounts"].as_u64().unwrap_or(0),
        reads,
        wall_s,
    })
}

async fn bench(a: &RestoreArgs) -> Result<ExitCode> {
    let real = ((a.size.0 as f64 / a.scale) as usize).max(1);
    let per_package = a.files.div_ceil(a.packages);
    let config = format!(
        "[archive]\npolicy = {:?}\ncheck_ms = 100\n\n[tape]\nidle_unload_s = 1.0\n\n\
         [[tape.libraries]]\nname = \"lib1\"\nmedia = \"{}\"\nscale = {}\ndrives = 2\ninitial_volumes = 2\n",
        a.dir.join("policy.toml").display().to_string(),
        a.media,
        a.scale
    );
    std::fs::create_dir_all(&a.dir)?;
    std::fs::write(
        a.dir.join("policy.toml"),
        format!(
            "[[rule]]\nname = \"mu2e\"\naction = \"aggregate\"\nmax_member_size = \"1 TB\"\ntarget_size = \"1 TB\"\n\
             max_files = {per_package}\nmax_wait_s = 86400\n"
        ),
    )?;
    let srv = spawn_server(&a.dir.join("data"), &config, &a.catalog)?;
    let c = srv.client.clone();
    eprintln!(
        "bench restore: {} files of {} (modelled; {} on disk) in {} packages, {} scaled 1/{}",
        a.files,
        a.size,
        ByteSize(real as u64),
        a.packages,
        a.media,
        a.scale
    );
    mkdir_tagged(&c, "/mu2e", json!({"storage_group": "mu2e", "file_family": "raw"})).await?;
    let mut body = vec![0u8; real];
    rand::rng().fill_bytes(&mut body);
    let body = Bytes::from(body);
    let paths: Vec<String> = (0..a.files).map(|i| format!("/mu2e/f{i:05}.art")).collect();
    let t = Instant::now();
    put_all(&c, &paths, 16, |_| body.clone()).await?;
    let _: Value = c.post_json("queue/flush", &json!({})).await?;
    eprintln!("  written in {:.1} s; to tape, purged", t.elapsed().as_secs_f64());
    to_rest(&c, a.files).await?;
    let packages: Value = c.get_json("packages", &[]).await?;
    let packages = packages.as_array().context("packages")?.clone();
    let volumes: std::collections::BTreeSet<&str> = packages.iter().filter_map(|p| p["volume"].as_str()).collect();
    if packages.len() != a.packages || volumes.len() != 1 {
        bail!(
            "expected {} packages on one volume, got {} on {:?}",
            a.packages,
            packages.len(),
            volumes
        );
    }

    // The model's figure for one pass: a mount, then in position order a
    // locate over each gap and the package's bytes, then the unload.
    let lib = first_library(&c).await?;
    let rate = f(&lib, "rate");
    let (capacity, full_locate) = (f(&lib, "capacity"), f(&lib, "full_locate_s"));
    let (robot, load, unload) = (f(&lib, "robot_s"), f(&lib, "load_s"), f(&lib, "unload_s"));
    let mut spans: Vec<(u64, u64, u64)> = packages
        .iter()
        .map(|p| {
            (
                p["position"].as_u64().unwrap_or(0),
                p["size"].as_u64().unwrap_or(0),
                p["members"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    spans.sort_unstable();
    let locate = |bytes: u64| full_locate * (bytes as f64 / capacity).min(1.0);
    let mut expected = 2.0 * robot + load + unload;
    // Enstore's per-member staging: each member reads its whole package
    // (the volume kept mounted; back to the package's start each time).
    let mut enstore = expected;
    let mut head = 0;
    for &(pos, size, members) in &spans {
        expected += locate(pos.abs_diff(head)) + size as f64 / rate;
        enstore += locate(pos.abs_diff(head))
            + members as f64 * (size as f64 / rate)
            + members.saturating_sub(1) as f64 * locate(size);
        head = pos + size;
    }

    // 1. One bulk request.
    let bulk = measure(&c, a.files, async {
        let v: Value = c.post_json("stage", &json!({ "paths": paths })).await?;
        Ok(vec![v["id"].as_i64().context("id")?])
    })
    .await?;
    to_rest(&c, a.files).await?;
    // 2. One request per file, submitted together.
    let single = measure(&c, a.files, async {
        futures::stream::iter(paths.iter().map(|p| {
            let c = c.clone();
            async move {
                let v: Value = c.post_json("stage", &json!({ "paths": [p] })).await?;
                v["id"].as_i64().context("id")
            }
        }))
        .buffer_unordered(16)
        .try_collect::<Vec<i64>>()
        .await
    })
    .await?;
    srv.stop()?;

    let in_order = |r: &[u64]| r.windows(2).all(|w| w[0] < w[1]);
    let h = |s: f64| humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string();
    println!(
        "restore, catalog {}: {} files of {} in {} packages on 1 volume ({}, scaled 1/{} in bytes)",
        a.catalog, a.files, a.size, a.packages, a.media, a.scale
    );
    println!(
        "  model: mount + locates + bytes/rate + unload = {:.1} s ({})",
        expected,
        h(expected)
    );
    for (name, r) in [("one bulk request", &bulk), ("one request per file", &single)] {
        println!(
            "  {name:<22} {:>3} mount(s), {:>3} package reads (position order: {}), modelled {:.1} s ({}, {:+.2}% of the model), wall {:.1} s",
            r.mounts,
            r.reads.len(),
            in_order(&r.reads),
            r.modelled_s,
            h(r.modelled_s),
            100.0 * (r.modelled_s - expected) / expected,
            r.wall_s
        );
    }
    println!(
        "  per-member staging (Enstore, modelled): {} package reads, {:.0} s ({})",
        a.files,
        enstore,
        h(enstore)
    );
    let ok = bulk.mounts == 1
        && bulk.reads.len() == a.packages
        && in_order(&bulk.reads)
        && ((bulk.modelled_s - expected) / expected).abs() <= 0.05;
    println!("  one mount, one read per package in order, within 5% of the model: {ok}");
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
