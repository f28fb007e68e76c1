//! `bale quota`: storage groups' quotas and use; `bale quota set` changes
//! one (administrators).

use crate::client::Client;
use anyhow::{anyhow, bail, Result};
use bytesize::ByteSize;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct QuotaArgs {
    #[command(subcommand)]
    cmd: Option<QuotaCmd>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum QuotaCmd {
    /// Set (or with "none" remove) a storage group's limits; what is not
    /// named stays as it is (administrators).
    Set(SetArgs),
}

#[derive(Args, Debug)]
struct SetArgs {
    /// The storage group (its tag's value; files without one are "default").
    storage_group: String,
    /// Logical bytes in the namespace ("10TB", "500 GiB", or "none").
    #[arg(long)]
    bytes: Option<String>,
    /// Files in the namespace ("1000000", or "none").
    #[arg(long)]
    files: Option<String>,
    /// Volumes per library: LIBRARY=N (or LIBRARY=none); repeatable.
    #[arg(long, value_name = "LIBRARY=N")]
    volumes: Vec<String>,
}

/// A limit as given: a number (a size for bytes), or "none".
fn limit(v: &str, size: bool) -> Result<Value> {
    if v.eq_ignore_ascii_case("none") {
        return Ok(Value::Null);
    }
    let n = if size { super::parse_size(v)? } else { count(v)? };
    Ok(json!(n))
}

/// A number of files or volumes: 1000000, 1k, 1M, 1G.
fn count(v: &str) -> Result<u64> {
    let v = v.trim();
    let (num, mult) = match v.chars().last() {
        Some('k' | 'K') => (&v[..v.len() - 1], 1_000),
        Some('M' | 'm') => (&v[..v.len() - 1], 1_000_000),
        Some('G' | 'g') => (&v[..v.len() - 1], 1_000_000_000),
        _ => (v, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| anyhow!("{v:?} is not a count (such as 1000000, 1M, or none)"))
}

pub async fn run(c: &Client, a: &QuotaArgs) -> Result<ExitCode> {
    match &a.cmd {
        None => list(c, a.json).await,
        Some(QuotaCmd::Set(s)) => set(c, s, a.json).await,
    }
}

async fn set(c: &Client, s: &SetArgs, as_json: bool) -> Result<ExitCode> {
    let mut body = Map::new();
    body.insert("storage_group".into(), json!(s.storage_group));
    if let Some(b) = &s.bytes {
        body.insert("bytes".into(), limit(b, true)?);
    }
    if let Some(f) = &s.files {
        body.insert("files".into(), limit(f, false).map_err(|e| anyhow!("--files: {e}"))?);
    }
    let mut vols = Map::new();
    for v in &s.volumes {
        let (lib, n) = v
            .split_once('=')
            .ok_or_else(|| anyhow!("--volumes takes LIBRARY=N (or LIBRARY=none), not {v:?}"))?;
        vols.insert(
            lib.to_string(),
            limit(n, false).map_err(|e| anyhow!("--volumes {lib}: {e}"))?,
        );
    }
    if !vols.is_empty() {
        body.insert("volumes".into(), Value::Object(vols));
    }
    if body.len() == 1 {
        bail!("name a limit to set: --bytes, --files or --volumes LIBRARY=N");
    }
    let v: Value = c.post_json("quotas", &Value::Object(body)).await?;
    print(&[v], as_json)
}

async fn list(c: &Client, as_json: bool) -> Result<ExitCode> {
    let v: Value = c.get_json("quotas", &[]).await?;
    print(v.as_array().map(Vec::as_slice).unwrap_or(&[]), as_json)
}

fn print(rows: &[Value], as_json: bool) -> Result<ExitCode> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:>12} {:>12} {:>12} {:>12}  VOLUMES (used/quota per library)",
        "STORAGE GROUP", "FILES", "FILE QUOTA", "BYTES", "BYTE QUOTA"
    );
    let num = |v: &Value| v.as_u64().map_or("-".to_string(), |n| n.to_string());
    let size = |v: &Value| v.as_u64().map_or("-".to_string(), |n| ByteSize(n).to_string());
    for r in rows {
        let vols: Vec<String> = r["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                format!(
                    "{}: {}/{}",
                    v["library"].as_str().unwrap_or("?"),
                    num(&v["used"]),
                    num(&v["max"])
                )
            })
            .collect();
        println!(
            "{:<16} {:>12} {:>12} {:>12} {:>12}  {}",
            r["storage_group"].as_str().unwrap_or("?"),
            num(&r["used_files"]),
            num(&r["files"]),
            size(&r["used_bytes"]),
            size(&r["bytes"]),
            if vols.is_empty() {
                "-".to_string()
            } else {
                vols.join(", ")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
