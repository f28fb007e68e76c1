//! `bale stage`: bulk staging from tape, its progress, cancel.

use crate::client::Client;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::DecimalBytes;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct StageArgs {
    #[command(subcommand)]
    cmd: Option<StageCmd>,
    /// Files to bring back from tape.
    paths: Vec<String>,
    /// A file with one path per line (as many as you like).
    #[arg(long)]
    from_file: Option<PathBuf>,
    /// Wait until every file is done, with a progress bar.
    #[arg(long)]
    wait: bool,
    /// How long the staged files stay pinned: 2d, 12h (default 1 day).
    #[arg(long, value_parser = humantime::parse_duration)]
    lifetime: Option<Duration>,
}

#[derive(Subcommand, Debug)]
enum StageCmd {
    /// A request's progress, per file.
    Status {
        /// The request's id (printed when it was made).
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a request's open files (or only PATHs of it).
    Cancel {
        /// The request's id.
        id: i64,
        /// Only these of its files (default: all of its open files).
        paths: Vec<String>,
    },
}

fn count(v: &Value, s: &str) -> u64 {
    v["counts"][s].as_u64().unwrap_or(0)
}

/// Polls a request with a progress bar: files and bytes staged, volumes
/// done, the modelled time left; returns the request when it is complete.
pub(crate) async fn wait(c: &Client, id: i64) -> Result<Value> {
    // Drawn only once the first answer filled it in: never a line with
    // empty fields.
    let bar = indicatif::ProgressBar::hidden();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files, {msg} ({elapsed}, {prefix})")
            .expect("template"),
    );
    loop {
        let v: Value = c.get_json(&format!("stage/{id}"), &[]).await?;
        let p: Value = c.get_json(&format!("stage/{id}/progress"), &[]).await?;
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        bar.set_length(n("files"));
        bar.set_position(n("files_done") + n("files_failed") + n("files_cancelled"));
        bar.set_message(format!(
            "{} of {}, {}/{} volumes, {} failed",
            DecimalBytes(n("bytes_done")),
            DecimalBytes(n("bytes")),
            n("volumes_done"),
            n("volumes"),
            n("files_failed")
        ));
        bar.set_prefix(format!("about {} left", time_left(&p)));
        if bar.is_hidden() && crate::stderr_is_terminal() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        if !v["completedAt"].is_null() {
            bar.finish();
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The time left as a person reads it: this library's, and the modelled
/// one of real media when they differ (an unpaced emulation).
fn time_left(p: &Value) -> String {
    let secs = |k: &str| Duration::from_secs(p[k].as_f64().unwrap_or(0.0).round() as u64);
    let (wall, model) = (secs("time_left_s"), secs("modelled_s_left"));
    if wall == model {
        humantime::format_duration(wall).to_string()
    } else {
        format!(
            "{} (real media: {})",
            humantime::format_duration(wall),
            humantime::format_duration(model)
        )
    }
}

pub async fn run(c: &Client, a: &StageArgs) -> Result<ExitCode> {
    match &a.cmd {
        Some(StageCmd::Status { id, json }) => {
            let v: Value = c.get_json(&format!("stage/{id}"), &[]).await?;
            let p: Value = c.get_json(&format!("stage/{id}/progress"), &[]).await?;
            if *json {
                let mut v = v;
                v["progress"] = p;
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_status(&v);
                print_progress(&p);
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(StageCmd::Cancel { id, paths }) => {
            let body = match paths.is_empty() {
                true => json!({}),
                false => json!({ "paths": paths }),
            };
            let v: Value = c.post_json(&format!("stage/{id}/cancel"), &body).await?;
            println!(
                "cancelled {}",
                crate::cmd::plural(v["cancelled"].as_u64().unwrap_or(0), "file")
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let mut paths = a.paths.clone();
            if let Some(f) = &a.from_file {
                let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
                paths.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from));
            }
            if paths.is_empty() {
                anyhow::bail!("name the files to stage (or --from-file LIST)");
            }
            if let Some(p) = paths.iter().find(|p| !p.starts_with('/')) {
                anyhow::bail!(
                    "{p:?} is not a path in bale (they start with /); to see a request, bale stage status ID"
                );
            }
            let mut body = json!({ "paths": paths });
            if let Some(l) = a.lifetime {
                body["lifetime_s"] = json!(l.as_secs().max(1));
            }
            let v: Value = c.post_json("stage", &body).await?;
            let id = v["id"].as_i64().context("no request id in the answer")?;
            if !a.wait {
                // Files refused at intake (missing, not readable, a bad
                // path) are failed already: said, and the exit status says
                // the request was refused in part.
                let v: Value = c.get_json(&format!("stage/{id}"), &[]).await?;
                println!(
                    "stage request {id}: {}; bale stage status {id}",
                    crate::cmd::plural(paths.len() as u64, "file")
                );
                print_failed(&v);
                return Ok(match count(&v, "FAILED") {
                    0 => ExitCode::SUCCESS,
                    _ => ExitCode::FAILURE,
                });
            }
            let v = wait(c, id).await?;
            print_status(&v);
            Ok(match count(&v, "FAILED") {
                0 => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            })
        }
    }
}

fn print_status(v: &Value) {
    println!(
        "stage request {} by {}: {} completed, {} failed, {} cancelled, {} open{}",
        v["id"],
        v["owner"].as_str().unwrap_or("?"),
        count(v, "COMPLETED"),
        count(v, "FAILED"),
        count(v, "CANCELLED"),
        count(v, "SUBMITTED") + count(v, "STARTED"),
        if v["completedAt"].is_null() { "" } else { " (done)" }
    );
    print_failed(v);
}

/// Every file of a request that has an error, with it.
fn print_failed(v: &Value) {
    for f in v["files"].as_array().into_iter().flatten() {
        if let Some(e) = f["error"].as_str() {
            println!(
                "  {:<10} {}: {e}",
                f["state"].as_str().unwrap_or("?"),
                f["path"].as_str().unwrap_or("?")
            );
        }
    }
}

fn print_progress(p: &Value) {
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    println!(
        "  {} of {} staged; {}/{} packages and {}/{} volumes done; {} and about {} left",
        DecimalBytes(n("bytes_done")),
        DecimalBytes(n("bytes")),
        n("packages_done"),
        n("packages"),
        n("volumes_done"),
        n("volumes"),
        crate::cmd::plural(n("mounts_left"), "mount"),
        time_left(p)
    );
}
