//! `bale bench ingest`: durable ingest measured end to end (HTTP client →
//! server → cache → catalog) against an embedded server, next to baselines
//! taken in the same run on the same disk: `dd conv=fsync` for bandwidth,
//! and plain parallel write+fsync of small files for the file rate.

use super::common::{in_scratch, median, set_drives, spawn_server, Server};
use crate::client::{check, Client};
use anyhow::{bail, Context, Result};
use bale_util::Adler32;
use bytes::Bytes;
use clap::Args;
use rand::RngCore;
use reqwest::{header, Method};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Scratch directory (on the disk to measure); removed afterwards.
    #[arg(long, default_value = "./bale-bench")]
    dir: PathBuf,
    /// Number of small files.
    #[arg(long, default_value_t = 20_000)]
    small_files: usize,
    /// Size of each small file in bytes.
    #[arg(long, default_value_t = 10 * 1024)]
    small_size: usize,
    /// Concurrent clients for the small files.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Size of each large file in MiB.
    #[arg(long, default_value_t = 1024)]
    large_mib: usize,
    /// Rounds of the small-file run (each followed by its baseline); the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Number of large files (each alternated with a dd run).
    #[arg(long, default_value_t = 3)]
    large_files: usize,
    /// How batches are made durable: fsync or syncfs.
    #[arg(long, default_value = "fsync")]
    sync: String,
    /// The server's ingest.inline_max: files up to this size are committed
    /// with their data in the catalog ("0 B": every file fsynced).
    #[arg(long, default_value = "64 KiB")]
    inline_max: bytesize::ByteSize,
    /// Keep the tape drives online, so that the files go to tape (pools
    /// close into packages, written to the emulated library on the same
    /// disk) while the next ones arrive. By default the drives are offline:
    /// the bench measures ingest alone.
    #[arg(long)]
    archive: bool,
    /// Catalog: sqlite or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    catalog: String,
    /// Seconds of quiet (after a sync) before each measured phase.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// Keep the scratch directory.
    #[arg(long)]
    keep: bool,
    /// Run the server with `[history] enabled = false` (no file history),
    /// to measure what the history costs.
    #[arg(long)]
    no_history: bool,
}

fn pattern(len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    Bytes::from(v)
}

fn start_server(a: &IngestArgs, data: &Path) -> Result<Server> {
    if !matches!(a.sync.as_str(), "fsync" | "syncfs") {
        bail!("--sync must be fsync or syncfs, not {:?}", a.sync);
    }
    let config = format!(
        "[ingest]\nsync = \"{}\"\ninline_max = {}\n[history]\nenabled = {}\n",
        a.sync,
        a.inline_max.as_u64(),
        !a.no_history
    );
    spawn_server(data, &config, &a.catalog)
}

/// Waits until the kernel has written back dirty pages (a previous phase's
/// data would otherwise compete with this phase's fsyncs) and ext4 no
/// longer treats recently freed inodes specially.
fn settle(secs: u64) {
    let _ = std::process::Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(secs));
}

/// Small files from `clients` concurrent clients; returns (files/s, p50, p99).
async fn small(c: &Client, a: &IngestArgs, round: usize) -> Result<(f64, Duration, Duration)> {
    let dir = format!("/small{round}");
    let r = c.request(Method::from_bytes(b"MKCOL")?, &c.url(&dir)).send().await;
    check(r, "mkdir").await?;
    let data = pattern(a.small_size + 4096);
    let per = a.small_files.div_ceil(a.clients);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..a.clients {
        let (c, data) = (c.clone(), data.clone());
        let n = per.min(a.small_files.saturating_sub(w * per));
        let size = a.small_size;
        let dir = dir.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            for i in 0..n {
                let off = (w * 7919 + i * 13) % 4096;
                let body = data.slice(off..off + size);
                let sum = Adler32::of(&body);
                let t = Instant::now();
                let r = c
                    .request(Method::PUT, &c.url(&format!("{dir}/c{w}-{i}")))
                    .header("Digest", sum.digest_header())
                    .header(header::CONTENT_LENGTH, size)
                    .body(body)
                    .send()
                    .await;
                check(r, "put").await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Ok((lat.len() as f64 / secs, pct(0.5), pct(0.99)))
}

/// The disk's own durable small-file rate: `clients` threads each writing
/// and fsyncing files (then the directory), no HTTP and no catalog.
fn raw_small(dir: &Path, a: &IngestArgs) -> Result<f64> {
    std::fs::create_dir_all(dir)?;
    let data = vec![7u8; a.small_size];
    let per = a.small_files.div_ceil(a.clients);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let hs: Vec<_> = (0..a.clients)
            .map(|w| {
                let data = &data;
                s.spawn(move || -> std::io::Result<()> {
                    for i in 0..per {
                        let mut f = std::fs::File::create(dir.join(format!("r{w}-{i}")))?;
                        f.write_all(data)?;
                        f.sync_all()?;
                    }
                    bale_util::durable::fsync_dir(dir)
                })
            })
            .collect();
        for h in hs {
            h.join().expect("writer thread")?;
        }
        Ok(())
    })?;
    Ok((per * a.clients) as f64 / start.elapsed().as_secs_f64())
}

async fn large(c: &Client, name: &str, mib: usize) -> Result<f64> {
    let chunk = pattern(1 << 20);
    let stream = futures::stream::iter((0..mib).map(move |_| Ok::<Bytes, std::io::Error>(chunk.clone())));
    let start = Instant::now();
    let r = c
        .request(Method::PUT, &c.url(&format!("/{name}")))
        .header(header::CONTENT_LENGTH, (mib as u64) << 20)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    check(r, "put large").await?;
    Ok(((mib as u64) << 20) as f64 / start.elapsed().as_secs_f64())
}

fn dd(dir: &Path, mib: usize) -> Result<f64> {
    let out = dir.join("dd.bin");
    let start = Instant::now();
    let st = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", out.display()))
        .arg("bs=1M")
        .arg(format!("count={mib}"))
        .arg("conv=fsync")
        .stderr(std::process::Stdio::null())
        .status()
        .context("cannot run dd")?;
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&out)?;
    if !st.success() {
        bail!("dd failed: {st}");
    }
    Ok(((mib as u64) << 20) as f64 / secs)
}

pub(super) async fn ingest(a: &IngestArgs) -> Result<ExitCode> {
    if a.clients == 0 || a.small_files == 0 || a.large_files == 0 {
        bail!("--clients, --small-files and --large-files must be at least 1");
    }
    in_scratch(&a.dir, a.keep, async {
        let srv = start_server(a, &a.dir.join("data"))?;
        if !a.archive {
            set_drives(&srv.client, false, None).await?;
        }
        eprintln!(
            "bench: {} files of {} from {} clients (sync={}, inline_max={}, catalog={}, drives {})",
            a.small_files,
            indicatif::BinaryBytes(a.small_size as u64),
            a.clients,
            a.sync,
            a.inline_max,
            a.catalog,
            if a.archive { "online: archiving meanwhile" } else { "offline: ingest alone" }
        );
        // bale first, then the baseline; nothing is deleted in between, so
        // neither run pays for the other's deletions (ext4 skips recently
        // freed inodes when it allocates, which is slow for a while).
        let mut rates = Vec::new();
        let mut raws = Vec::new();
        let mut lat = (Duration::ZERO, Duration::ZERO);
        for round in 0..a.rounds.max(1) {
            settle(a.settle);
            let (rate, p50, p99) = small(&srv.client, a, round).await?;
            raws.push(raw_small(&a.dir.join(format!("raw{round}")), a)?);
            eprintln!("round {round}: bale {rate:.0} files/s (p50 {p50:.2?}, p99 {p99:.2?}), raw {:.0} files/s", raws[round]);
            rates.push(rate);
            lat = (p50, p99);
        }
        let (rate, raw) = (median(rates.clone()), median(raws.clone()));
        let (p50, p99) = lat;
        let mut bale_bw = Vec::new();
        let mut dd_bw = Vec::new();
        for i in 0..a.large_files {
            settle(a.settle);
            dd_bw.push(dd(&a.dir, a.large_mib)?);
            settle(a.settle);
            bale_bw.push(large(&srv.client, &format!("large{i}"), a.large_mib).await?);
            // Free the space again so that every run sees the same disk.
            let r = srv
                .client
                .request(Method::DELETE, &srv.client.url(&format!("/large{i}")))
                .send()
                .await;
            check(r, "delete large").await?;
        }
        srv.stop()?;
        let mb = |b: f64| b / 1e6;
        let (bale_m, dd_m) = (median(bale_bw.clone()), median(dd_bw.clone()));
        println!(
            "small files ({} x {} B, {} clients):",
            a.small_files, a.small_size, a.clients
        );
        let runs = |v: &[f64]| v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
        println!(
            "  bale PUT, durable        {rate:>10.0} files/s (median of {}: {}; last round p50 {p50:.2?}, p99 {p99:.2?})",
            rates.len(),
            runs(&rates)
        );
        println!("  raw write+fsync, no HTTP {raw:>10.0} files/s (runs: {})", runs(&raws));
        println!("large files ({} x {} MiB):", a.large_files, a.large_mib);
        println!(
            "  bale PUT, durable        {:>10.1} MB/s (runs: {})",
            mb(bale_m),
            bale_bw
                .iter()
                .map(|b| format!("{:.1}", mb(*b)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  dd bs=1M conv=fsync      {:>10.1} MB/s (runs: {})",
            mb(dd_m),
            dd_bw
                .iter()
                .map(|b| format!("{:.1}", mb(*b)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("  bale / dd                {:>10.1} %", 100.0 * bale_m / dd_m);
        anyhow::Ok(())
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
