//! `bale bench aggregate`: modelled tape efficiency of small files written
//! through aggregation and written direct, in one run on one server.
//!
//! Each way of writing gets a library of its own (one drive, the chosen
//! profile scaled down so that production package sizes fit a test disk)
//! and the same files: by default 20,000 of 100 KiB and 2,000 of 1 MiB.
//! - `direct`: every file its own tape file, one synchronous mark each.
//! - `agg-sync`: Mu2e's packages (8 GB, scaled), one synchronous mark each.
//! - `agg-buffered`: the same packages, buffered marks (a flush every
//!   32 GB, scaled).
//! - `agg-large`: packages of 32 GB (scaled), synchronous marks.
//!
//! The drives are offline while the files arrive; pools close by size as
//! they fill and the rest is flushed, then the drives come online and the
//! modelled seconds of every library are compared.

use super::common::{drives_idle, in_scratch, mkdir_tagged, set_drives, spawn_server};
use crate::client::check;
use anyhow::{bail, Result};
use bytes::Bytes;
use bytesize::ByteSize;
use clap::Args;
use futures::StreamExt;
use rand::RngCore;
use reqwest::{header, Method};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct AggregateArgs {
    /// Scratch directory (removed afterwards unless --keep).
    #[arg(long, default_value = "./bale-bench-aggregate")]
    dir: PathBuf,
    /// Small files per library, and their size.
    #[arg(long, default_value_t = 20_000)]
    small_files: usize,
    #[arg(long, default_value = "100 KiB")]
    small_size: ByteSize,
    /// Larger files per library, and their size.
    #[arg(long, default_value_t = 2_000)]
    large_files: usize,
    #[arg(long, default_value = "1 MiB")]
    large_size: ByteSize,
    /// Media profile.
    #[arg(long, default_value = "LTO-9")]
    media: String,
    /// Profile scale: capacity and rate divided by it, times unchanged.
    #[arg(long, default_value_t = 100.0)]
    scale: f64,
    /// Concurrent uploads.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Catalog: sqlite or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    catalog: String,
    /// Only these libraries (direct, agg-sync, agg-buffered, agg-large).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,agg-sync,agg-buffered,agg-large"
    )]
    libraries: Vec<String>,
    #[arg(long)]
    keep: bool,
}

const KINDS: [&str; 4] = ["direct", "agg-sync", "agg-buffered", "agg-large"];

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

pub async fn run(a: &AggregateArgs) -> Result<ExitCode> {
    if a.scale < 1.0 || a.clients == 0 || a.small_files + a.large_files == 0 {
        bail!("--scale must be at least 1, --clients and the file counts positive");
    }
    if let Some(l) = a.libraries.iter().find(|l| !KINDS.contains(&l.as_str())) {
        bail!("unknown library {l:?}; one of {}", KINDS.join(", "));
    }
    in_scratch(&a.dir, a.keep, bench(a)).await
}

async fn bench(a: &AggregateArgs) -> Result<ExitCode> {
    let scaled = |bytes: u64| (bytes as f64 / a.scale) as u64;
    let total_real = a.small_files as u64 * a.small_size.0 + a.large_files as u64 * a.large_size.0;
    let mut config = format!(
        "[archive]\npolicy = {:?}\ncheck_ms = 100\n\n[tape]\nidle_unload_s = 1.0\nmax_wait_s = 1e9\n",
        a.dir.join("policy.toml").display().to_string()
    );
    let mut policy = String::new();
    for kind in &a.libraries {
        let marks = if kind == "agg-buffered" { "buffered" } else { "sync" };
        config += &format!(
            "\n[[tape.libraries]]\nname = \"{kind}\"\nmedia = \"{}\"\nscale = {}\ndrives = 1\ninitial_volumes = 2\n\
             volume_capacity = \"{}\"\nfile_marks = \"{marks}\"\nflush_files = 100000\nflush_bytes = \"{}\"\n",
            a.media,
            a.scale,
            ByteSize(2 * total_real + (1 << 30)),
            ByteSize(scaled(32_000_000_000)),
        );
        let (target, max_files) = match kind.as_str() {
            "direct" => continue,
            "agg-large" => (scaled(32_000_000_000), 100_000),
            _ => (scaled(8_000_000_000), 2000),
        };
        policy += &format!(
            "[[rule]]\nname = \"{kind}\"\nmatch = {{ library = \"{kind}\" }}\naction = \"aggregate\"\n\
             max_member_size = {}\ntarget_size = {target}\nmax_files = {max_files}\nmax_wait_s = 86400\n\n",
            scaled(300_000_000).max(a.large_size.0 + 1)
        );
    }
    policy += "[[rule]]\nname = \"direct\"\naction = \"direct\"\n";
    std::fs::write(a.dir.join("policy.toml"), &policy)?;
    let srv = spawn_server(&a.dir.join("data"), &config, &a.catalog)?;
    let c = &srv.client;
    eprintln!(
        "bench aggregate: per library {} files of {} and {} of {} on {} scaled 1/{}",
        a.small_files,
        a.small_size.display().iec(),
        a.large_files,
        a.large_size.display().iec(),
        a.media,
        a.scale
    );
    let names = set_drives(c, false, None).await?;
    let mut bodies = Vec::new();
    for size in [a.small_size.0, a.large_size.0] {
        let mut d = vec![0u8; size as usize];
        rand::rng().fill_bytes(&mut d);
        bodies.push(Bytes::from(d));
    }
    let start = Instant::now();
    let mut puts = Vec::new();
    for kind in &a.libraries {
        let dir = format!("/{kind}");
        mkdir_tagged(
            c,
            &dir,
            json!({"library": kind, "storage_group": "bench", "file_family": kind}),
        )
        .await?;
        for i in 0..a.small_files + a.large_files {
            let body = bodies[usize::from(i >= a.small_files)].clone();
            puts.push((format!("{dir}/f{i:06}"), body));
        }
    }
    let n_files = puts.len();
    let mut results = futures::stream::iter(puts.into_iter().map(|(path, body)| async move {
        let r = c
            .request(Method::PUT, &c.url(&path))
            .header(header::CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await;
        check(r, &path).await.map(|_| ())
    }))
    .buffer_unordered(a.clients);
    while let Some(r) = results.next().await {
        r?;
    }
    drop(results);
    let upload = start.elapsed();
    // What is left in the pools goes now (an administrator's flush).
    let _: Value = c.post_json("queue/flush", &json!({})).await?;
    let start = Instant::now();
    set_drives(c, true, Some(names)).await?;
    loop {
        let q: Value = c.get_json("queue", &[]).await?;
        let idle = drives_idle(c).await?;
        if q["jobs"].as_array().is_some_and(|j| j.is_empty())
            && q["pools"].as_array().is_some_and(|p| p.is_empty())
            && idle
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let wall = start.elapsed();
    let libs: Value = c.get_json("libraries", &[]).await?;
    let pkgs: Value = c.get_json("packages", &[]).await?;
    let vols: Value = c.get_json("volumes", &[]).await?;
    let native = |l: &Value| f(l, "rate") * a.scale / 1e6;
    println!(
        "\nbale bench aggregate: per library {} files of {} + {} of {} ({} real, {} as the modelled drive sees it); \
         {} scaled 1/{} (native rate {} MB/s, file mark {} s); {n_files} files in all",
        a.small_files,
        a.small_size.display().iec(),
        a.large_files,
        a.large_size.display().iec(),
        ByteSize(total_real).display().si(),
        ByteSize((total_real as f64 * a.scale) as u64).display().si(),
        a.media,
        a.scale,
        libs[0]["rate"].as_f64().map_or(0.0, |_| native(&libs[0])),
        f(&libs[0], "file_mark_s"),
    );
    println!(
        "\n| library | marks | package target (modelled) | tape files | mean tape file (modelled) | modelled s: mount+unload | locate | write | marks | streaming efficiency | efficiency incl. mounts |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for l in libs.as_array().into_iter().flatten() {
        let name = l["name"].as_str().unwrap_or("?");
        let st = &l["stats"];
        let bytes = f(st, "bytes_written");
        let tape_files: u64 = vols
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["library"] == name)
            .map(|v| v["tape_files"].as_u64().unwrap_or(0))
            .sum();
        let rate = f(l, "rate");
        let streaming = bytes / (rate * (f(st, "write_s") + f(st, "mark_s")));
        let target = match name {
            "direct" => "none (each file)".to_string(),
            "agg-large" => "32 GB".to_string(),
            _ => "8 GB (Mu2e)".to_string(),
        };
        println!(
            "| {name} | {} | {target} | {tape_files} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}% | {:.2}% |",
            l["file_marks"].as_str().unwrap_or("?"),
            ByteSize((bytes * a.scale / tape_files.max(1) as f64) as u64)
                .display()
                .si(),
            f(st, "robot_s") + f(st, "load_s") + f(st, "unload_s"),
            f(st, "locate_s"),
            f(st, "write_s"),
            f(st, "mark_s"),
            100.0 * streaming,
            100.0 * l["efficiency"].as_f64().unwrap_or(0.0),
        );
    }
    println!(
        "\n{} packages recorded; real time: upload {:.1} s, all on tape and unloaded {:.1} s after the drives came online",
        pkgs.as_array().map_or(0, |p| p.len()),
        upload.as_secs_f64(),
        wall.as_secs_f64()
    );
    srv.stop()?;
    Ok(ExitCode::SUCCESS)
}
