//! Tape administration: volumes, drives, alarms.

use crate::client::Client;
use anyhow::{bail, Context, Result};
use bale_api::model::{AddVolumes, SetState};
use clap::{Args, Subcommand};
use indicatif::DecimalBytes;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct VolumesArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    cmd: Option<VolumesCmd>,
}

#[derive(Subcommand, Debug)]
pub enum VolumesCmd {
    /// Add blank volumes to a library (administrators).
    Add(AddArgs),
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The library they go into (`bale drives` shows the libraries).
    #[arg(long)]
    library: String,
    /// The media; must be the library's.
    #[arg(long)]
    media: Option<String>,
    /// How many.
    #[arg(long)]
    count: u32,
    /// Capacity of each volume, e.g. "10 GB"; the library's default if absent.
    #[arg(long)]
    capacity: Option<String>,
    /// Label prefix; labels continue the highest number in use.
    #[arg(long)]
    prefix: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// A volume's details and its tape files in order.
    #[command(after_long_help = crate::columns::VOLUME_SHOW)]
    Show {
        /// The volume's label (`bale volumes` lists them).
        label: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a volume's state (administrators).
    Set {
        /// The volume's label.
        label: String,
        /// blank, appendable, full, readonly, noaccess or shelf.
        state: String,
    },
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum DriveCmd {
    /// Take a drive out of service (its volume is unloaded).
    Offline {
        /// The drive's name (`bale drives` lists them).
        name: String,
    },
    /// Put a drive back in service.
    Online {
        /// The drive's name.
        name: String,
    },
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("-")
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn eff(v: &Value) -> String {
    v["efficiency"]
        .as_f64()
        .map_or("-".into(), |e| format!("{:.1}%", e * 100.0))
}

fn family(v: &Value) -> String {
    let f = &v["family"];
    if f.is_null() {
        "-".into()
    } else {
        format!("{}.{}.{}", s(f, "storage_group"), s(f, "file_family"), s(f, "wrapper"))
    }
}

fn print_json(v: &Value) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

pub async fn volumes(c: &Client, a: &VolumesArgs) -> Result<ExitCode> {
    if let Some(VolumesCmd::Add(add)) = &a.cmd {
        let capacity = add
            .capacity
            .as_deref()
            .map(|c| crate::cmd::parse_size(c).with_context(|| format!("--capacity {c:?}")))
            .transpose()?;
        let req = AddVolumes {
            library: add.library.clone(),
            media: add.media.clone(),
            count: add.count,
            capacity,
            prefix: add.prefix.clone(),
        };
        let added: Value = c.post_json("volumes", &req).await?;
        if a.json {
            return print_json(&added);
        }
        for v in added.as_array().into_iter().flatten() {
            println!(
                "added {} ({}, {})",
                s(v, "label"),
                s(v, "media"),
                DecimalBytes(n(v, "capacity"))
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let vols: Value = c.get_json("volumes", &[]).await?;
    if a.json {
        return print_json(&vols);
    }
    println!(
        "{:<10} {:<8} {:<8} {:<11} {:<28} {:>21} {:>6} {:>6} {:>6}",
        "LABEL", "LIBRARY", "MEDIA", "STATE", "FAMILY", "USED/CAPACITY", "FILES", "MOUNTS", "EFF"
    );
    for v in vols.as_array().into_iter().flatten() {
        println!(
            "{:<10} {:<8} {:<8} {:<11} {:<28} {:>21} {:>6} {:>6} {:>6}",
            s(v, "label"),
            s(v, "library"),
            s(v, "media"),
            s(v, "state"),
            family(v),
            format!("{}/{}", DecimalBytes(n(v, "used")), DecimalBytes(n(v, "capacity"))),
            n(v, "tape_files"),
            n(&v["stats"], "mounts"),
            eff(v)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn volume(c: &Client, cmd: &VolumeCmd) -> Result<ExitCode> {
    match cmd {
        VolumeCmd::Show { label, json } => {
            let v: Value = c.get_json(&format!("volumes/{label}"), &[]).await?;
            if *json {
                return print_json(&v);
            }
            let vol = &v["volume"];
            let st = &vol["stats"];
            println!(
                "  label: {}  ({} in library {})",
                s(vol, "label"),
                s(vol, "media"),
                s(vol, "library")
            );
            println!("  state: {}  family: {}", s(vol, "state"), family(vol));
            println!(
                "  used: {} of {}  tape files: {}",
                DecimalBytes(n(vol, "used")),
                DecimalBytes(n(vol, "capacity")),
                n(vol, "tape_files")
            );
            println!(
                "  mounts: {} (limit {})  mounted in: {}",
                n(st, "mounts"),
                n(vol, "mount_limit"),
                s(vol, "mounted_in")
            );
            println!(
                "  modelled seconds: robot {:.1}, load {:.1}, locate {:.1}, write {:.1}, read {:.1}, marks {:.1}, unload {:.1}",
                st["robot_s"].as_f64().unwrap_or(0.0),
                st["load_s"].as_f64().unwrap_or(0.0),
                st["locate_s"].as_f64().unwrap_or(0.0),
                st["write_s"].as_f64().unwrap_or(0.0),
                st["read_s"].as_f64().unwrap_or(0.0),
                st["mark_s"].as_f64().unwrap_or(0.0),
                st["unload_s"].as_f64().unwrap_or(0.0)
            );
            println!("  efficiency: {}", eff(vol));
            println!(
                "\n  {:>6} {:>16} {:>14} {:>9} {:>8}  PACKAGE",
                "FILE", "POSITION", "SIZE", "ADLER32", "MEMBERS"
            );
            for p in v["tape_files"].as_array().into_iter().flatten() {
                println!(
                    "  {:>6} {:>16} {:>14} {:>9} {:>8}  {}",
                    n(p, "seq"),
                    n(p, "position"),
                    n(p, "size"),
                    s(p, "adler32"),
                    n(p, "members"),
                    s(p, "id")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        VolumeCmd::Set { label, state } => {
            let v: Value = c
                .post_json(&format!("volumes/{label}/state"), &SetState { state: state.clone() })
                .await?;
            println!("{} is {}", s(&v, "label"), s(&v, "state"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn drives(c: &Client, a: &ListArgs) -> Result<ExitCode> {
    let drives: Value = c.get_json("drives", &[]).await?;
    if a.json {
        return print_json(&drives);
    }
    println!(
        "{:<12} {:<8} {:<8} {:<9} {:<10} {:>7} {:>14} {:>6}",
        "DRIVE", "LIBRARY", "STATE", "ACTIVITY", "VOLUME", "MOUNTS", "WRITTEN", "EFF"
    );
    for d in drives.as_array().into_iter().flatten() {
        println!(
            "{:<12} {:<8} {:<8} {:<9} {:<10} {:>7} {:>14} {:>6}",
            s(d, "name"),
            s(d, "library"),
            s(d, "state"),
            s(d, "activity"),
            s(d, "volume"),
            n(&d["stats"], "mounts"),
            DecimalBytes(n(&d["stats"], "bytes_written")).to_string(),
            eff(d)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn drive(c: &Client, cmd: &DriveCmd) -> Result<ExitCode> {
    let (name, action) = match cmd {
        DriveCmd::Offline { name } => (name, "offline"),
        DriveCmd::Online { name } => (name, "online"),
    };
    if name.contains('/') {
        bail!("invalid drive name {name:?}");
    }
    let d: Value = c
        .post_json(&format!("drives/{name}/{action}"), &serde_json::json!({}))
        .await?;
    println!("{} is {}", s(&d, "name"), s(&d, "state"));
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct AlarmsArgs {
    /// The acknowledged alarms too.
    #[arg(long)]
    all: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum AlarmCmd {
    /// Acknowledge an alarm: it leaves `bale alarms`; a later repeat
    /// raises a new one.
    Ack {
        /// The alarm's id (`bale alarms` shows it).
        id: i64,
    },
}

pub async fn alarms(c: &Client, a: &AlarmsArgs) -> Result<ExitCode> {
    let all = if a.all { "true" } else { "false" };
    let alarms: Value = c.get_json("alarms", &[("all", all)]).await?;
    if a.json {
        return print_json(&alarms);
    }
    let list = alarms.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no alarms{}", if a.all { "" } else { " to acknowledge" });
        return Ok(ExitCode::SUCCESS);
    }
    let time = |v: &Value| bale_api::model::utc_seconds(bale_util::Timestamp(v.as_i64().unwrap_or(0)));
    let width = list.iter().map(|al| s(al, "source").len()).max().unwrap_or(0).max(9);
    println!(
        "{:>5}  {:<8}  {:<width$}  {:>5}  {:<20}  {:<20}  MESSAGE",
        "ID", "SEVERITY", "COMPONENT", "COUNT", "FIRST", "LAST"
    );
    for al in &list {
        let acked = match al.get("acked_by") {
            Some(by) => format!(
                "  (acknowledged by {} at {})",
                by.as_str().unwrap_or(""),
                time(&al["acked_at"])
            ),
            None => String::new(),
        };
        println!(
            "{:>5}  {:<8}  {:<width$}  {:>5}  {:<20}  {:<20}  {}{acked}",
            n(al, "id"),
            s(al, "severity"),
            s(al, "source"),
            n(al, "count"),
            time(&al["time"]),
            time(&al["last"]),
            s(al, "message")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn alarm(c: &Client, a: &AlarmCmd) -> Result<ExitCode> {
    match a {
        AlarmCmd::Ack { id } => {
            let al: Value = c.post_json(&format!("alarms/{id}/ack"), &serde_json::json!({})).await?;
            println!(
                "alarm {} acknowledged by {}: {} {}",
                al["id"],
                s(&al, "acked_by"),
                s(&al, "source"),
                s(&al, "message")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `bale workers`: every background worker, its state, counters and last error.
pub async fn workers(c: &Client, a: &ListArgs) -> Result<ExitCode> {
    let workers: Value = c.get_json("workers", &[]).await?;
    if a.json {
        return print_json(&workers);
    }
    println!(
        "{:<20} {:<10} {:>9} {:>7}  {:<40}  LAST ERROR",
        "WORKER", "STATE", "CALLS", "ERRORS", "DOING / COUNTERS"
    );
    for w in workers.as_array().into_iter().flatten() {
        let counters: Vec<String> = w["counters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let doing = match w["progress"].as_str() {
            Some(p) => p.to_string(),
            None => counters.join(" "),
        };
        println!(
            "{:<20} {:<10} {:>9} {:>7}  {:<40}  {}",
            s(w, "name"),
            s(w, "state"),
            n(w, "calls"),
            n(w, "errors"),
            doing,
            w["last_error"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(false))]
pub struct VerifyArgs {
    /// Every package on this volume, in tape order (one mount).
    #[arg(long, group = "what")]
    volume: Option<String>,
    /// One package.
    #[arg(long, group = "what")]
    package: Option<String>,
    /// Every cached file's data (repairs as `bale fsck --repair --checksums`).
    #[arg(long, group = "what")]
    cache: bool,
    /// Read at most this many bytes a second ("50 MB"; "0 B": no limit);
    /// default: the server's verify.scrub_rate.
    #[arg(long)]
    rate: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `bale verify`: exits 1 when a copy was found bad or could not be read.
pub async fn verify(c: &Client, a: &VerifyArgs) -> Result<ExitCode> {
    let rate = a
        .rate
        .as_deref()
        .map(|r| crate::cmd::parse_size(r).with_context(|| format!("--rate {r:?}")))
        .transpose()?;
    let body = serde_json::json!({
        "volume": a.volume,
        "package": a.package,
        "cache": a.cache,
        "rate": rate,
    });
    let r: Value = c.post_json("verify", &body).await?;
    let list = |k: &str| r[k].as_array().cloned().unwrap_or_default();
    let (bad, unreadable) = (list("bad"), list("unreadable"));
    let cache_problems = r["cache"]["problems"].as_array().map_or(0, |p| p.len());
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else if a.cache {
        println!(
            "checksummed {} of {} in {:.1} s: {}",
            r["cache"]["files_checksummed"],
            crate::cmd::plural(r["cache"]["files_checked"].as_u64().unwrap_or(0), "cached file"),
            r["seconds"].as_f64().unwrap_or(0.0),
            crate::cmd::plural(cache_problems as u64, "problem")
        );
        for p in r["cache"]["problems"].as_array().into_iter().flatten() {
            let what = p["path"].as_str().or(p["file_id"].as_str()).unwrap_or("");
            let done = if p["repaired"] == true {
                "done:"
            } else {
                "NOT repaired:"
            };
            println!(
                "  {:<12} {what}: {}\n               {done} {}",
                p["kind"].as_str().unwrap_or(""),
                p["detail"].as_str().unwrap_or(""),
                p["repair"].as_str().unwrap_or("")
            );
        }
    } else {
        println!(
            "read {}, {} in {:.1} s: {} good, {} bad, {} unreadable{}",
            crate::cmd::plural(r["packages"].as_u64().unwrap_or(0), "package"),
            DecimalBytes(r["bytes"].as_u64().unwrap_or(0)),
            r["seconds"].as_f64().unwrap_or(0.0),
            r["good"],
            bad.len(),
            unreadable.len(),
            match list("already_bad").len() {
                0 => String::new(),
                n => format!(" ({n} marked bad before, not read)"),
            }
        );
        for p in &bad {
            println!(
                "  BAD        package {} (tape file {} of {}): {}\n             marked bad; its files are rewritten from good copies",
                p["package"].as_str().unwrap_or(""),
                p["seq"],
                p["volume"].as_str().unwrap_or(""),
                p["error"].as_str().unwrap_or("")
            );
        }
        for p in &unreadable {
            println!(
                "  UNREADABLE package {} (tape file {} of {}): {}",
                p["package"].as_str().unwrap_or(""),
                p["seq"],
                p["volume"].as_str().unwrap_or(""),
                p["error"].as_str().unwrap_or("")
            );
        }
    }
    Ok(if bad.is_empty() && unreadable.is_empty() && cache_problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
