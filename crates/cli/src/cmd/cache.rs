//! `bale cache`, `bale purge`, `bale pin`, `bale unpin`, `bale pins`: what
//! the cache holds, removing the cache copies of files that are safely on
//! tape, and holding files in the cache.

use crate::client::Client;
use anyhow::Result;
use clap::Args;
use indicatif::DecimalBytes;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CacheArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct PurgeArgs {
    /// Files whose cache copies to remove (each must be on tape and not pinned).
    paths: Vec<String>,
    /// Every file that is on tape and not pinned.
    #[arg(long, conflicts_with = "paths")]
    all: bool,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

pub async fn cache(c: &Client, a: &CacheArgs) -> Result<ExitCode> {
    let u: Value = c.get_json("cache", &[]).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&u)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<10} {:>10} {:>12}", "", "FILES", "BYTES");
    for (what, files, bytes) in [
        ("cached", "cached_files", "cached_bytes"),
        ("pinned", "pinned_files", "pinned_bytes"),
        ("purgeable", "purgeable_files", "purgeable_bytes"),
    ] {
        println!(
            "{what:<10} {:>10} {:>12}",
            n(&u, files),
            DecimalBytes(n(&u, bytes)).to_string()
        );
    }
    let cap = n(&u, "capacity_bytes");
    let share = |b: u64| match cap {
        0 => String::new(),
        c => format!(" ({:.0} %)", b as f64 * 100.0 / c as f64),
    };
    println!();
    println!("capacity   {:>23}", DecimalBytes(cap).to_string());
    println!(
        "used       {:>23}{}",
        DecimalBytes(n(&u, "cached_bytes")).to_string(),
        share(n(&u, "cached_bytes"))
    );
    println!(
        "high mark  {:>23}{}   above it the purger removes what is safe on tape...",
        DecimalBytes(n(&u, "purge_high_bytes")).to_string(),
        share(n(&u, "purge_high_bytes"))
    );
    println!(
        "low mark   {:>23}{}   ...down to this",
        DecimalBytes(n(&u, "purge_low_bytes")).to_string(),
        share(n(&u, "purge_low_bytes"))
    );
    println!(
        "fs free    {:>23}",
        DecimalBytes(n(&u, "filesystem_free_bytes")).to_string()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn purge(c: &Client, a: &PurgeArgs) -> Result<ExitCode> {
    if !a.all && a.paths.is_empty() {
        anyhow::bail!("name the files to purge, or give --all");
    }
    let r: Value = c
        .post_json(
            "cache/purge",
            &json!({"paths": a.paths, "all": a.all, "dry_run": a.dry_run}),
        )
        .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    for k in r["kept"].as_array().into_iter().flatten() {
        println!(
            "kept {}: {}",
            k["path"].as_str().unwrap_or("?"),
            k["reason"].as_str().unwrap_or("?")
        );
    }
    println!(
        "{} {} cache cop{} ({})",
        if a.dry_run { "would purge" } else { "purged" },
        n(&r, "files"),
        if n(&r, "files") == 1 { "y" } else { "ies" },
        DecimalBytes(n(&r, "bytes"))
    );
    for k in r["kept_by_reason"].as_array().into_iter().flatten() {
        println!(
            "{} {} ({}): {}",
            if a.dry_run { "would keep" } else { "kept" },
            crate::cmd::plural(n(k, "files"), "file"),
            DecimalBytes(n(k, "bytes")),
            k["reason"].as_str().unwrap_or("?")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct PinArgs {
    /// Files to keep in the cache.
    #[arg(required = true)]
    paths: Vec<String>,
    /// How long: 2d, 12h, 30m, 1w 2d (a pin of the same owner keeps the later expiry).
    #[arg(long, value_parser = humantime::parse_duration)]
    lifetime: std::time::Duration,
    /// The pin's owner (default: you; another name: administrators).
    #[arg(long)]
    owner: Option<String>,
}

#[derive(Args, Debug)]
pub struct UnpinArgs {
    /// Files whose pins to release.
    #[arg(required = true)]
    paths: Vec<String>,
    /// Whose pins to release (default: yours).
    #[arg(long)]
    owner: Option<String>,
}

#[derive(Args, Debug)]
pub struct PinsArgs {
    /// The file.
    path: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn pin(c: &Client, a: &PinArgs) -> Result<ExitCode> {
    let r: Value = c
        .post_json(
            "pins",
            &json!({"paths": a.paths, "lifetime_s": a.lifetime.as_secs().max(1), "owner": a.owner}),
        )
        .await?;
    println!(
        "pinned {} for {}",
        crate::cmd::plural(n(&r, "pinned"), "file"),
        bale_util::human::duration(a.lifetime)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn unpin(c: &Client, a: &UnpinArgs) -> Result<ExitCode> {
    let r: Value = c
        .post_json("pins/release", &json!({"paths": a.paths, "owner": a.owner}))
        .await?;
    println!("released {}", crate::cmd::plural(n(&r, "released"), "pin"));
    Ok(ExitCode::SUCCESS)
}

pub async fn pins(c: &Client, a: &PinsArgs) -> Result<ExitCode> {
    let r: Value = c.get_json("pins", &[("path", a.path.as_str())]).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    for p in r.as_array().into_iter().flatten() {
        println!(
            "{:<20} until {}",
            p["owner"].as_str().unwrap_or("?"),
            bale_api::model::utc_seconds(bale_util::Timestamp(p["expires"].as_i64().unwrap_or(0)))
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct ArchiveInfoArgs {
    /// Files.
    #[arg(required = true)]
    paths: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `bale archiveinfo`: where each file's data is: DISK, TAPE, DISK_AND_TAPE,
/// NONE (empty), LOST, UNAVAILABLE.
pub async fn archive_info(c: &Client, a: &ArchiveInfoArgs) -> Result<ExitCode> {
    let r: Value = c.post_json("archiveinfo", &json!({"paths": a.paths})).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut code = ExitCode::SUCCESS;
    for f in r.as_array().into_iter().flatten() {
        let path = f["path"].as_str().unwrap_or("?");
        match f["locality"].as_str() {
            Some(l) => println!("{l:<14} {path}"),
            None => {
                println!("{:<14} {path}: {}", "ERROR", f["error"].as_str().unwrap_or("?"));
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

#[derive(Args, Debug)]
pub struct FsckArgs {
    /// Make the repairs (without it: the plan only, nothing changes).
    #[arg(long)]
    repair: bool,
    /// Read and checksum every cached file's data too (slow: all of it).
    #[arg(long)]
    checksums: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `bale fsck`: the catalog and the cache checked against each other.
/// Exits 1 while problems are left (all of them without --repair).
pub async fn fsck(c: &Client, a: &FsckArgs) -> Result<ExitCode> {
    let r: Value = c
        .post_json("fsck", &json!({"repair": a.repair, "checksums": a.checksums}))
        .await?;
    let problems = r["problems"].as_array().cloned().unwrap_or_default();
    let left = problems.iter().filter(|p| p["repaired"] != true).count();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "checked {}{} and {}: {}",
            crate::cmd::plural(n(&r, "files_checked"), "cached file"),
            if a.checksums {
                format!(" ({} checksummed)", r["files_checksummed"])
            } else {
                String::new()
            },
            crate::cmd::plural(n(&r, "data_files"), "data file"),
            crate::cmd::plural(problems.len() as u64, "problem")
        );
        let young = r["files_too_young"].as_u64().unwrap_or(0);
        if young > 0 {
            println!(
                "  {} not judged{}: changed in the last {} s (cache.fsck_settle_s), a write or a stage \
                 may still be under way; run it again later to judge them",
                crate::cmd::plural(young, "file"),
                if a.checksums { " nor checksummed" } else { "" },
                r["settle_s"].as_u64().unwrap_or(0)
            );
        }
        for p in &problems {
            let what = p["path"].as_str().or(p["file_id"].as_str()).unwrap_or("");
            let done = match (a.repair, p["repaired"] == true) {
                (false, _) => "would",
                (true, true) => "done:",
                (true, false) => "NOT repaired:",
            };
            println!(
                "  {:<12} {what}: {}\n               {done} {}",
                p["kind"].as_str().unwrap_or(""),
                p["detail"].as_str().unwrap_or(""),
                p["repair"].as_str().unwrap_or("")
            );
        }
        if !a.repair && !problems.is_empty() {
            println!("nothing was changed; run bale fsck --repair to make these repairs");
        }
    }
    Ok(if left == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
