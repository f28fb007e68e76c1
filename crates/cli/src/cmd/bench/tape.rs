//! `bale bench tape`: files written straight to tape, one file family per
//! size, on a real server with the emulated library; reports the modelled
//! efficiency of each size with synchronous file marks (one per tape file,
//! Enstore) and with buffered marks (one flush per batch, CTA), side by
//! side, next to the steady-state figure size / (size + rate x mark).

use super::common::{drives_idle, in_scratch, mkdir_tagged, set_drives, spawn_server};
use crate::client::{check, Client};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use bytesize::ByteSize;
use clap::Args;
use rand::RngCore;
use reqwest::{header, Method};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct TapeArgs {
    /// Scratch directory (removed afterwards unless --keep).
    #[arg(long, default_value = "./bale-bench-tape")]
    dir: PathBuf,
    /// File sizes as the modelled drive sees them.
    #[arg(long, value_delimiter = ',', default_value = "1GB,100MB,10MB,1MB")]
    sizes: Vec<ByteSize>,
    /// Files per size (and per file-mark mode).
    #[arg(long, default_value_t = 10)]
    files: usize,
    /// Media profile.
    #[arg(long, default_value = "LTO-9")]
    media: String,
    /// Profile scale: bytes and rate divided by it, times unchanged (so a
    /// modelled 1 GB file is 1 GB / scale on disk).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Catalog: sqlite or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    catalog: String,
    /// Keep the scratch directory.
    #[arg(long)]
    keep: bool,
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

async fn put(c: &Client, path: &str, body: Bytes) -> Result<()> {
    let r = c
        .request(Method::PUT, &c.url(path))
        .header(header::CONTENT_LENGTH, body.len())
        .body(body)
        .send()
        .await;
    check(r, path).await?;
    Ok(())
}

pub async fn run(a: &TapeArgs) -> Result<ExitCode> {
    if a.sizes.is_empty() || a.files == 0 || a.scale < 1.0 {
        bail!("--sizes, --files must be non-empty and positive, --scale at least 1");
    }
    in_scratch(&a.dir, a.keep, bench(a)).await
}

async fn bench(a: &TapeArgs) -> Result<ExitCode> {
    let smallest = a.sizes.iter().map(|s| s.0).min().unwrap_or(1);
    let real = |s: u64| ((s as f64 / a.scale) as u64).max(1);
    let volumes = 2 * a.sizes.len() as u32 + 2;
    let lib = |name: &str, marks: &str| {
        format!(
            "[[tape.libraries]]\nname = \"{name}\"\nmedia = \"{}\"\nscale = {}\ndrives = {}\ninitial_volumes = {volumes}\n\
             file_marks = \"{marks}\"\nflush_files = 1000\nflush_bytes = \"{}\"\n",
            a.media,
            a.scale,
            a.sizes.len(),
            ByteSize((32u64 << 30) / a.scale as u64).0
        )
    };
    let config = format!(
        "[tape]\ndirect_min_size = {}\nidle_unload_s = 1.0\n\n{}\n{}",
        real(smallest),
        lib("sync", "sync"),
        lib("buffered", "buffered")
    );
    let srv = spawn_server(&a.dir.join("data"), &config, &a.catalog)?;
    let c = &srv.client;
    eprintln!(
        "bench tape: {} files each of {} on {} scaled 1/{} (real file sizes {})",
        a.files,
        a.sizes
            .iter()
            .map(|s| s.display().si().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        a.media,
        a.scale,
        a.sizes
            .iter()
            .map(|s| ByteSize(real(s.0)).display().si().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    // Drives offline while files arrive, so that every size meets its
    // drive as a full queue (as after a busy period), in both modes.
    let names = set_drives(c, false, None).await?;
    let start = Instant::now();
    let mut expected = 0u64;
    for mode in ["sync", "buffered"] {
        for size in &a.sizes {
            let dir = format!("/{mode}-{}", size.0);
            mkdir_tagged(c, &dir, json!({"library": mode, "file_family": format!("f{}", size.0)})).await?;
            let mut data = vec![0u8; real(size.0) as usize];
            rand::rng().fill_bytes(&mut data);
            let data = Bytes::from(data);
            for i in 0..a.files {
                put(c, &format!("{dir}/file{i}"), data.clone()).await?;
                expected += 1;
            }
        }
    }
    let upload = start.elapsed();
    let start = Instant::now();
    set_drives(c, true, Some(names)).await?;
    // Every file on tape, then every drive idle and unloaded.
    loop {
        let vols: Value = c.get_json("volumes", &[]).await?;
        let files: u64 = vols
            .as_array()
            .context("volumes")?
            .iter()
            .map(|v| v["tape_files"].as_u64().unwrap_or(0))
            .sum();
        let idle = drives_idle(c).await?;
        if files >= expected && idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wall = start.elapsed();
    let vols: Value = c.get_json("volumes", &[]).await?;
    let libs: Value = c.get_json("libraries", &[]).await?;
    let rate = libs[0]["rate"].as_f64().unwrap_or(1.0);
    let mark = libs[0]["file_mark_s"].as_f64().unwrap_or(0.0);

    println!(
        "\nbale bench tape on the {} profile scaled 1/{} (bytes and rate divided by the scale; native rate {} MB/s, \
         file mark {mark} s), {} files per size",
        a.media,
        a.scale,
        rate * a.scale / 1e6,
        a.files
    );
    println!(
        "\n| file size | marks | tape files | modelled s: mount+unload | locate | write | marks | efficiency (all) | streaming | steady-state formula |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for mode in ["sync", "buffered"] {
        for size in &a.sizes {
            let fam = format!("f{}", size.0);
            for v in vols.as_array().into_iter().flatten() {
                if v["library"] != mode || v["family"]["file_family"] != fam.as_str() {
                    continue;
                }
                let st = &v["stats"];
                let bytes = st["bytes_written"].as_f64().unwrap_or(0.0);
                let handling = f(st, "robot_s") + f(st, "load_s") + f(st, "unload_s");
                let streaming = bytes / (rate * (f(st, "write_s") + f(st, "mark_s")));
                let formula = if mode == "sync" {
                    let t = size.0 as f64 / (rate * a.scale);
                    format!("{:.2}%", 100.0 * t / (t + mark))
                } else {
                    "-".into()
                };
                println!(
                    "| {} | {mode} | {} | {handling:.1} | {:.1} | {:.1} | {:.1} | {:.2}% | {:.2}% | {formula} |",
                    size.display().si(),
                    v["tape_files"],
                    f(st, "locate_s"),
                    f(st, "write_s"),
                    f(st, "mark_s"),
                    100.0 * v["efficiency"].as_f64().unwrap_or(0.0),
                    100.0 * streaming,
                );
            }
        }
    }
    for l in libs.as_array().into_iter().flatten() {
        println!(
            "\nlibrary {} ({} marks): efficiency {:.2}% over {:.0} modelled drive-seconds",
            l["name"].as_str().unwrap_or("?"),
            l["file_marks"].as_str().unwrap_or("?"),
            100.0 * l["efficiency"].as_f64().unwrap_or(0.0),
            f(l, "busy_s"),
        );
    }
    println!(
        "\nreal time: upload {:.1} s, then all on tape and unloaded {:.1} s after the drives came online",
        upload.as_secs_f64(),
        wall.as_secs_f64()
    );
    srv.stop()?;
    Ok(ExitCode::SUCCESS)
}
