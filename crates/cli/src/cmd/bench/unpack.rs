//! `bale bench unpack`: unpacking a package into the cache, as a stage
//! does it, against GNU tar extracting the same package, with a warm and a
//! cold page cache.
//!
//! bale: the package file is read through the package adler32, every
//! member streamed by `bale_pack::read` (path, offset, size and adler32 of
//! each checked against the manifest) into the cache's stage area with
//! `Cache::write_staged`, then `Cache::promote_staged` (one syncfs, each
//! member renamed into `files/`, the directories fsynced): durable, as the
//! catalog requires before it marks the members cached. GNU tar:
//! `tar -xf package -C out` followed by `sync`, durable the same way.
//! Each run starts from an empty target; the median of `--rounds` runs.

use super::common::{drop_caches, fill_cache, in_scratch, median};
use anyhow::{bail, Context, Result};
use bale_core::cache::{Cache, SyncMode};
use bale_pack::{Plan, ReadAhead};
use bale_util::checksum::Adler32Hasher;
use bale_util::{FileId, Timestamp};
use bytesize::ByteSize;
use clap::Args;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct UnpackArgs {
    /// Scratch directory on the disk to measure (removed afterwards).
    #[arg(long, default_value = "./bale-bench-unpack")]
    dir: PathBuf,
    /// Members in the package.
    #[arg(long, default_value_t = 2_000)]
    files: usize,
    /// Size of each member.
    #[arg(long, default_value = "1 MiB")]
    size: ByteSize,
    /// Runs of each (bale, tar) per page-cache state; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

pub async fn run(a: &UnpackArgs) -> Result<ExitCode> {
    if a.files == 0 || a.rounds == 0 {
        bail!("--files and --rounds must be positive");
    }
    in_scratch(&a.dir, false, bench(a)).await
}

/// Hashes what is read through it (the package's own adler32).
struct Hashing<R> {
    inner: R,
    hash: Adler32Hasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

fn bale_once(package: &Path, target: &Path, expected: bale_util::Adler32) -> Result<f64> {
    let _ = std::fs::remove_dir_all(target);
    let t = Instant::now();
    let cache = Cache::open(target, SyncMode::Fsync)?;
    let mut src = Hashing {
        // As the emulated drive reads a tape file (FsBackend::read_file).
        inner: std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(package)?),
        hash: Adler32Hasher::new(),
    };
    let mut ids = Vec::new();
    bale_pack::read(&mut src, |m, data| {
        cache.write_staged(m.meta.file_id, data)?;
        ids.push(m.meta.file_id);
        Ok(())
    })?;
    std::io::copy(&mut src, &mut std::io::sink())?;
    if src.hash.finish() != expected {
        bail!("package adler32 {} != {expected}", src.hash.finish());
    }
    cache.promote_staged(&ids)?;
    Ok(t.elapsed().as_secs_f64())
}

fn tar_once(package: &Path, target: &Path) -> Result<f64> {
    let _ = std::fs::remove_dir_all(target);
    std::fs::create_dir_all(target)?;
    let t = Instant::now();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(package)
        .arg("-C")
        .arg(target)
        .status()
        .context("running GNU tar")?;
    if !st.success() {
        bail!("tar -xf failed: {st}");
    }
    if !Command::new("sync").status()?.success() {
        bail!("sync failed");
    }
    Ok(t.elapsed().as_secs_f64())
}

async fn bench(a: &UnpackArgs) -> Result<ExitCode> {
    // The package, built as a drive writes it, from files in a cache.
    let source = Cache::open(&a.dir.join("source"), SyncMode::Syncfs)?;
    eprintln!(
        "bench unpack: a package of {} members of {}",
        a.files,
        a.size.display().iec()
    );
    let metas = fill_cache(&source, a.files, a.size.0).await?;
    let plan = Plan::new(&FileId::generate().to_string(), Timestamp::now(), metas)?;
    let package = a.dir.join("package.tar");
    let written = {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&package)?);
        let w = plan.write_ahead(&mut f, ReadAhead::default(), |m| source.open_data(m.meta.file_id))?;
        std::io::Write::flush(&mut f)?;
        f.into_inner()?.sync_all()?;
        w
    };
    drop(source);
    std::fs::remove_dir_all(a.dir.join("source"))?;
    let size = std::fs::metadata(&package)?.len();
    let (t_bale, t_tar) = (a.dir.join("bale-cache"), a.dir.join("tar-out"));
    let can_drop = drop_caches().is_ok();
    let mut rows = Vec::new();
    for cold in [false, true] {
        if cold && !can_drop {
            eprintln!("bench unpack: cold runs skipped: cannot drop the page cache (needs root)");
            continue;
        }
        if !cold {
            std::io::copy(&mut std::fs::File::open(&package)?, &mut std::io::sink())?;
        }
        let (mut tb, mut tt) = (Vec::new(), Vec::new());
        for _ in 0..a.rounds {
            for which in ["bale", "tar"] {
                // Each run on an empty target, the previous output gone for good.
                let _ = std::fs::remove_dir_all(&t_bale);
                let _ = std::fs::remove_dir_all(&t_tar);
                if cold {
                    drop_caches()?;
                } else {
                    Command::new("sync").status()?;
                }
                match which {
                    "bale" => tb.push(bale_once(&package, &t_bale, written.adler32)?),
                    _ => tt.push(tar_once(&package, &t_tar)?),
                }
            }
        }
        rows.push((if cold { "cold" } else { "warm" }, median(tb), median(tt)));
    }
    println!(
        "\nbale bench unpack: {} members of {} (package {} bytes); median of {} runs",
        a.files,
        a.size.display().iec(),
        size,
        a.rounds
    );
    println!("\n| page cache | bale unpack (every adler32 checked, durable) | tar -xf && sync | bale / tar |");
    println!("|---|---|---|---|");
    for (state, b, t) in rows {
        let mb = |secs: f64| size as f64 / secs / 1e6;
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
