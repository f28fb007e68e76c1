//! `bale bench pack`: packing throughput against GNU tar on the same files
//! in the same cache, with a warm and with a cold page cache.
//!
//! The files are ingested through the cache's own write path. bale packs
//! them as it does for tape (manifest first, members read ahead in
//! parallel, every member's adler32 recomputed and compared) into a file;
//! `tar -cf` archives the same cache directory into a file on the same
//! disk. Neither syncs its output. A cold run drops the page cache first
//! (`/proc/sys/vm/drop_caches`, root only).

use super::common::{drop_caches, fill_cache, in_scratch, median};
use anyhow::{bail, Context, Result};
use bale_core::cache::{Cache, SyncMode};
use bale_pack::{Plan, ReadAhead};
use bale_util::{FileId, Timestamp};
use bytesize::ByteSize;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct PackArgs {
    /// Scratch directory on the disk to measure (removed afterwards).
    #[arg(long, default_value = "./bale-bench-pack")]
    dir: PathBuf,
    /// Number of files.
    #[arg(long, default_value_t = 20_000)]
    files: usize,
    /// Size of each file.
    #[arg(long, default_value = "100 KiB")]
    size: ByteSize,
    /// Read-ahead threads of the packer.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Runs of each (bale, tar) per cache state; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn pack_once(cache: &Cache, plan: &Plan, out: &Path, ahead: ReadAhead) -> Result<f64> {
    let t = Instant::now();
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    plan.write_ahead(&mut f, ahead, |m| cache.open_data(m.meta.file_id))?;
    std::io::Write::flush(&mut f)?;
    Ok(t.elapsed().as_secs_f64())
}

fn tar_once(cache_root: &Path, out: &Path) -> Result<f64> {
    let t = Instant::now();
    let st = Command::new("tar")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(cache_root)
        .arg("files")
        .status()
        .context("running GNU tar")?;
    if !st.success() {
        bail!("tar -cf failed: {st}");
    }
    Ok(t.elapsed().as_secs_f64())
}

pub async fn run(a: &PackArgs) -> Result<ExitCode> {
    if a.files == 0 || a.rounds == 0 || a.threads == 0 {
        bail!("--files, --rounds and --threads must be positive");
    }
    in_scratch(&a.dir, false, bench(a)).await
}

async fn bench(a: &PackArgs) -> Result<ExitCode> {
    let root = a.dir.join("cache");
    let cache = Cache::open(&root, SyncMode::Syncfs)?;
    eprintln!(
        "bench pack: ingesting {} files of {} into the cache",
        a.files,
        a.size.display().iec()
    );
    let metas = fill_cache(&cache, a.files, a.size.0).await?;
    let plan = Plan::new(&FileId::generate().to_string(), Timestamp::now(), metas)?;
    let total = plan.size();
    let ahead = ReadAhead {
        threads: a.threads,
        ..ReadAhead::default()
    };
    let out_bale = a.dir.join("bale.tar");
    let out_tar = a.dir.join("gnu.tar");
    let can_drop = drop_caches().is_ok();
    let mut rows = Vec::new();
    for cold in [false, true] {
        if cold && !can_drop {
            eprintln!("bench pack: cold runs skipped: cannot drop the page cache (needs root)");
            continue;
        }
        let (mut tb, mut tt) = (Vec::new(), Vec::new());
        if !cold {
            // Warm both: read everything once.
            pack_once(&cache, &plan, &out_bale, ahead)?;
        }
        for _ in 0..a.rounds {
            for which in ["bale", "tar"] {
                let _ = std::fs::remove_file(&out_bale);
                let _ = std::fs::remove_file(&out_tar);
                if cold {
                    drop_caches()?;
                }
                match which {
                    "bale" => tb.push(pack_once(&cache, &plan, &out_bale, ahead)?),
                    _ => tt.push(tar_once(&root, &out_tar)?),
                }
            }
        }
        rows.push((if cold { "cold" } else { "warm" }, median(tb), median(tt)));
    }
    let tar_size = std::fs::metadata(&out_tar).map(|m| m.len()).unwrap_or(0);
    println!(
        "\nbale bench pack: {} files of {} ({} of data), package {} bytes, GNU tar archive {} bytes; \
         read-ahead {} threads, window {}; median of {} runs",
        a.files,
        a.size.display().iec(),
        ByteSize(a.size.0 * a.files as u64).display().si(),
        total,
        tar_size,
        ahead.threads,
        ByteSize(ahead.window).display().iec(),
        a.rounds
    );
    println!("\n| page cache | bale pack (checks every adler32) | tar -cf | bale / tar |");
    println!("|---|---|---|---|");
    let mb = |secs: f64| total as f64 / secs / 1e6;
    for (state, b, t) in rows {
        println!(
            "| {state} | {b:.2} s, {:.0} MB/s, {:.0} files/s | {t:.2} s, {:.0} MB/s | {:.2}x |",
            mb(b),
            a.files as f64 / b,
            mb(t),
            t / b
        );
    }
    Ok(ExitCode::SUCCESS)
}
