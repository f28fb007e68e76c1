//! `bale stage`: bulk staging from tape, its progress, cancel.

use crate::client::Client;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
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
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a request's open files (or only PATHs of it).
    Cancel { id: i64, paths: Vec<String> },
}

fn count(v: &Value, s: &str) -> u64 {
    v["counts"][s].as_u64().unwrap_or(0)
}

async fn wait(c: &Client, id: i64, total: u64) -> Result<Value> {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg} ({elapsed})").expect("template"),
    );
    loop {
        let v: Value = c.get_json(&format!("stage/{id}"), &[]).await?;
        let done = count(&v, "COMPLETED") + count(&v, "FAILED") + count(&v, "CANCELLED");
        bar.set_position(done);
        bar.set_message(format!("{} failed", count(&v, "FAILED")));
        if !v["completedAt"].is_null() {
            bar.finish();
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn run(c: &Client, a: &StageArgs) -> Result<ExitCode> {
    match &a.cmd {
        Some(StageCmd::Status { id, json }) => {
            let v: Value = c.get_json(&format!("stage/{id}"), &[]).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_status(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(StageCmd::Cancel { id, paths }) => {
            let body = match paths.is_empty() {
                true => json!({}),
                false => json!({ "paths": paths }),
            };
            let v: Value = c.post_json(&format!("stage/{id}/cancel"), &body).await?;
            println!("cancelled {} file(s)", v["cancelled"]);
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
            let mut body = json!({ "paths": paths });
            if let Some(l) = a.lifetime {
                body["lifetime_s"] = json!(l.as_secs().max(1));
            }
            let v: Value = c.post_json("stage", &body).await?;
            let id = v["id"].as_i64().context("no request id in the answer")?;
            if !a.wait {
                println!("stage request {id}: {} file(s); bale stage status {id}", paths.len());
                return Ok(ExitCode::SUCCESS);
            }
            let v = wait(c, id, paths.len() as u64).await?;
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
