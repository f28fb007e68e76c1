//! `bale demo`: the whole cycle in a minute, on a temporary data dir with
//! the embedded defaults (SQLite catalog, an emulated LTO-9 library; only
//! idle drives unload after a second instead of a minute, so that the
//! read back starts from the shelf as a restore days later would): a few
//! thousand small files and a few large ones written, packed into packages
//! on tape, purged from the cache, staged back in ONE request, every
//! checksum verified; then a short report of the modelled tape time next
//! to writing and reading the same files one by one.

use super::bench::common::{busy_s, drives_idle, first_library, in_scratch, spawn_server};
use crate::client::{check, Client};
use anyhow::{bail, Context, Result};
use bale_util::Adler32;
use bytes::Bytes;
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use rand::{RngCore, SeedableRng};
use reqwest::{header, Method};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Small files (1 kB to 64 kB each).
    #[arg(long, default_value_t = 3000)]
    files: usize,
    /// Large files (32 MB each).
    #[arg(long, default_value_t = 3)]
    large: usize,
    /// Where the demo's data dir goes (default: a new temporary directory;
    /// removed afterwards unless --keep).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the data dir (and print where it is).
    #[arg(long)]
    keep: bool,
}

/// A demo file: its path, size and the seed its bytes come from.
struct DemoFile {
    path: String,
    size: usize,
    seed: u64,
    adler32: Adler32,
}

fn data(seed: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn files(small: usize, large: usize) -> Vec<DemoFile> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut out = Vec::with_capacity(small + large);
    for i in 0..small {
        let size = 1000 + (rng.next_u32() as usize % 63_000);
        let seed = i as u64;
        out.push(DemoFile {
            path: format!("/demo/run1/small/f{i:05}.dat"),
            size,
            seed,
            adler32: Adler32::of(&data(seed, size)),
        });
    }
    for i in 0..large {
        let (size, seed) = (32_000_000, 1_000_000 + i as u64);
        out.push(DemoFile {
            path: format!("/demo/run1/large/big{i}.dat"),
            size,
            seed,
            adler32: Adler32::of(&data(seed, size)),
        });
    }
    out
}

fn step(n: u32, what: &str) {
    println!("{n}. {what}");
}

fn spinner(msg: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

async fn localities(c: &Client, paths: &[&str]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(5000) {
        let v: Value = c.post_json("archiveinfo", &json!({ "paths": chunk })).await?;
        for f in v.as_array().context("archiveinfo")? {
            out.push(f["locality"].as_str().unwrap_or("ERROR").to_string());
        }
    }
    Ok(out)
}

pub async fn run(a: &DemoArgs) -> Result<ExitCode> {
    if a.files + a.large == 0 {
        bail!("the demo needs at least one file (--files, --large)");
    }
    let (dir, _tmp) = match &a.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new().prefix("bale-demo-").tempdir()?;
            (t.path().join("demo"), Some(t))
        }
    };
    let keep = a.keep;
    let shown = dir.clone();
    let r = in_scratch(&dir, keep, demo(a, dir.clone())).await;
    if keep {
        println!("data dir kept in {}", shown.join("data").display());
        if let Some(t) = _tmp {
            let _ = t.keep();
        }
    }
    r
}

async fn demo(a: &DemoArgs, dir: PathBuf) -> Result<ExitCode> {
    let t0 = Instant::now();
    println!("bale demo: a throwaway server in {} (embedded defaults)", dir.display());
    let server = spawn_server(&dir.join("data"), "[tape]\nidle_unload_s = 1.0\n", "sqlite")?;
    let c = server.client.clone();
    let list = files(a.files, a.large);
    let write_start = first_library(&c).await?;
    let bytes: u64 = list.iter().map(|f| f.size as u64).sum();

    step(
        1,
        &format!(
            "writing {} small and {} large files ({})",
            a.files,
            a.large,
            indicatif::DecimalBytes(bytes)
        ),
    );
    for d in ["/demo", "/demo/run1", "/demo/run1/small", "/demo/run1/large"] {
        check(c.request(Method::from_bytes(b"MKCOL")?, &c.url(d)).send().await, d).await?;
    }
    let bar = indicatif::ProgressBar::new(list.len() as u64);
    futures::stream::iter(list.iter().map(|f| {
        let (c, bar) = (c.clone(), bar.clone());
        async move {
            let body = Bytes::from(data(f.seed, f.size));
            let r = c
                .request(Method::PUT, &c.url(&f.path))
                .header(header::CONTENT_LENGTH, body.len())
                .header("Digest", format!("adler32={}", f.adler32))
                .body(body)
                .send()
                .await;
            check(r, &f.path).await?;
            bar.inc(1);
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(16)
    .try_collect::<()>()
    .await?;
    bar.finish_and_clear();

    step(2, "packing them into packages and writing those to tape");
    let _: Value = c.post_json("queue/flush", &json!({})).await?;
    let paths: Vec<&str> = list.iter().map(|f| f.path.as_str()).collect();
    let sp = spinner("waiting for every file to be on tape");
    loop {
        let l = localities(&c, &paths).await?;
        if l.iter().all(|x| x == "DISK_AND_TAPE") {
            break;
        }
        if let Some(bad) = l.iter().find(|x| *x == "ERROR" || *x == "LOST") {
            bail!("a file is {bad}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    sp.finish_and_clear();
    let written = first_library(&c).await?;
    let packages: Value = c.get_json("packages", &[]).await?;
    let packages = packages.as_array().context("packages")?.clone();
    let volumes: std::collections::BTreeSet<&str> = packages.iter().filter_map(|p| p["volume"].as_str()).collect();
    println!(
        "   {} files in {} on {}",
        list.len(),
        crate::cmd::plural(packages.len() as u64, "package"),
        crate::cmd::plural(volumes.len() as u64, "volume")
    );

    step(3, "purging them from the cache (they are safe on tape)");
    let sp = spinner("waiting for the copies to settle");
    loop {
        let u: Value = c.get_json("cache", &[]).await?;
        if u["purgeable_files"].as_u64() == Some(list.len() as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sp.finish_and_clear();
    let _: Value = c
        .post_json("cache/purge", &json!({"paths": [], "all": true, "dry_run": false}))
        .await?;
    let l = localities(&c, &paths).await?;
    if let Some(x) = l.iter().find(|x| *x != "TAPE") {
        bail!("after the purge a file is {x}, not TAPE");
    }
    println!("   every file is on tape only (archiveinfo: TAPE)");

    let sp = spinner("waiting for the drives to put the volumes back");
    while !drives_idle(&c).await? {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sp.finish_and_clear();

    step(4, "staging all of them back in one request");
    let v: Value = c.post_json("stage", &json!({ "paths": paths })).await?;
    let id = v["id"].as_i64().context("no request id")?;
    let done = super::stage::wait(&c, id).await?;
    if done["counts"]["COMPLETED"].as_u64() != Some(list.len() as u64) {
        bail!("stage request {id} did not complete every file: {}", done["counts"]);
    }
    let read = first_library(&c).await?;

    step(5, "reading every file back and checking its adler32");
    let bar = indicatif::ProgressBar::new(list.len() as u64);
    futures::stream::iter(list.iter().map(|f| {
        let (c, bar) = (c.clone(), bar.clone());
        async move {
            let r = check(c.request(Method::GET, &c.url(&f.path)).send().await, &f.path).await?;
            let body = r.bytes().await?;
            if body.len() != f.size || Adler32::of(&body) != f.adler32 {
                bail!(
                    "{} came back different: {} bytes, adler32 {}",
                    f.path,
                    body.len(),
                    Adler32::of(&body)
                );
            }
            bar.inc(1);
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(16)
    .try_collect::<()>()
    .await?;
    bar.finish_and_clear();
    println!(
        "   {} files, {} byte-identical",
        list.len(),
        indicatif::DecimalBytes(bytes)
    );
    server.stop()?;

    report(&list, &write_start, &written, &read, packages.len(), volumes.len());
    println!("done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

/// The report: what the tape did, and what the same files one by one
/// would have cost in the same timing model.
fn report(list: &[DemoFile], before: &Value, written: &Value, read: &Value, packages: usize, volumes: usize) {
    let (s0, s1, s2) = (&before["stats"], &written["stats"], &read["stats"]);
    let mounts = |a: &Value, b: &Value| b["mounts"].as_u64().unwrap_or(0) - a["mounts"].as_u64().unwrap_or(0);
    let write_s = busy_s(s1) - busy_s(s0);
    let read_s = busy_s(s2) - busy_s(s1);
    // One by one: every file its own tape file with a synchronous file
    // mark (on one mount); every read its own request on an idle library:
    // a mount, a locate to the file, its bytes, an unload.
    let rate = f(read, "rate").max(1.0);
    let (mark, robot, load, unload) = (
        f(read, "file_mark_s"),
        f(read, "robot_s"),
        f(read, "load_s"),
        f(read, "unload_s"),
    );
    let (capacity, full_locate) = (f(read, "capacity").max(1.0), f(read, "full_locate_s"));
    let mut pos = 0.0;
    let (mut w1, mut r1) = (robot + load, 0.0);
    for file in list {
        let size = file.size as f64;
        w1 += size / rate + mark;
        r1 += 2.0 * robot + load + unload + full_locate * (pos / capacity).min(1.0) + size / rate;
        pos += size;
    }
    let h = |s: f64| match s < 60.0 {
        true => format!("{s:.1} s"),
        false => humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string(),
    };
    println!();
    println!(
        "report ({} media, modelled tape time)",
        read["media"].as_str().unwrap_or("?")
    );
    let plural = crate::cmd::plural;
    println!(
        "  {} files -> {} on {}",
        list.len(),
        plural(packages as u64, "package"),
        plural(volumes as u64, "volume")
    );
    println!(
        "  write: {} ({}, {}); one by one: {}",
        h(write_s),
        plural(mounts(s0, s1), "mount"),
        plural(
            s1["file_marks"].as_u64().unwrap_or(0) - s0["file_marks"].as_u64().unwrap_or(0),
            "file mark"
        ),
        h(w1)
    );
    println!(
        "  read back: {} ({}, one request); one by one: {}",
        h(read_s),
        plural(mounts(s1, s2), "mount"),
        h(r1)
    );
}
