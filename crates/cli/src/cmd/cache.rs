//! `bale cache` and `bale purge`: what the cache holds, and removing the
//! cache copies of files that are safely on tape.

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
    for (what, files, bytes) in [
        ("cached", "cached_files", "cached_bytes"),
        ("pinned", "pinned_files", "pinned_bytes"),
        ("purgeable", "purgeable_files", "purgeable_bytes"),
    ] {
        println!(
            "{what:<10} {:>10} files {:>12}",
            n(&u, files),
            DecimalBytes(n(&u, bytes)).to_string()
        );
    }
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
    Ok(ExitCode::SUCCESS)
}
