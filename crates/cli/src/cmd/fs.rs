//! Namespace commands: ls, stat, rm, mv, mkdir, chmod, chown, tag.

use crate::client::{check, join, Client};
use anyhow::{bail, Context, Result};
use bale_api::model::{AttrsRequest, Entry, MkdirRequest, TagsRequest};
use clap::{Args, Subcommand};
use reqwest::Method;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Paths to list (default: /).
    paths: Vec<String>,
    /// Long format: mode, owner, group, size, modification time, name.
    #[arg(short = 'l')]
    long: bool,
    /// One JSON array of entries per path.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct StatArgs {
    /// Files or directories (default: /).
    paths: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Files (with -r also directories) to remove.
    #[arg(required = true)]
    paths: Vec<String>,
    /// Remove directories and everything beneath them.
    #[arg(short = 'r', long)]
    recursive: bool,
}

#[derive(Args, Debug)]
pub struct MvArgs {
    /// The file or directory to move.
    from: String,
    /// Destination path; an existing directory receives FROM inside it.
    to: String,
    /// Replace an existing destination file.
    #[arg(short = 'f', long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct MkdirArgs {
    /// Directories to create.
    #[arg(required = true)]
    paths: Vec<String>,
    /// Create missing parents; no error if the directory exists.
    #[arg(short = 'p', long)]
    parents: bool,
    /// Owner of the new directories (administrators).
    #[arg(long)]
    owner: Option<String>,
    /// Group of the new directories (administrators).
    #[arg(long)]
    group: Option<String>,
    /// Permission bits in octal, e.g. 0775.
    #[arg(long)]
    mode: Option<String>,
}

#[derive(Args, Debug)]
pub struct ChmodArgs {
    /// Octal permission bits, e.g. 0750.
    mode: String,
    /// Files and directories.
    #[arg(required = true)]
    paths: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ChownArgs {
    /// USER or USER:GROUP.
    owner: String,
    /// Files and directories.
    #[arg(required = true)]
    paths: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum TagCmd {
    /// Set tags on a directory: KEY=VALUE, or KEY= to clear. New
    /// subdirectories inherit them; files record those in force when written.
    Set {
        /// The directory.
        path: String,
        /// KEY=VALUE (or KEY= to clear), e.g. file_family=raw.
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Show a directory's (or file's) tags.
    Show {
        /// The directory or file.
        path: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn long_line(e: &Entry) -> String {
    let kind = if e.is_dir() { 'd' } else { '-' };
    let mode = u32::from_str_radix(&e.mode, 8).unwrap_or(0);
    let mut bits = String::new();
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        bits.push(if b & 4 != 0 { 'r' } else { '-' });
        bits.push(if b & 2 != 0 { 'w' } else { '-' });
        bits.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    let mtime = e.mtime.get(..19).unwrap_or(&e.mtime).replace('T', " ");
    let name = if e.is_dir() {
        format!("{}/", e.name)
    } else {
        e.name.clone()
    };
    format!(
        "{kind}{bits} {:<10} {:<10} {:>14} {mtime} {name}",
        e.owner, e.group, e.size
    )
}

pub async fn ls(c: &Client, a: &LsArgs) -> Result<ExitCode> {
    let paths = if a.paths.is_empty() {
        vec!["/".to_string()]
    } else {
        a.paths.clone()
    };
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    for (i, p) in paths.iter().enumerate() {
        if paths.len() > 1 && !a.json {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "{p}:")?;
        }
        let mut first = true;
        if a.json {
            write!(out, "[")?;
        }
        c.list_all(p, |e| {
            if a.json {
                write!(out, "{}\n{}", if first { "" } else { "," }, serde_json::to_string(&e)?)?;
            } else if a.long {
                writeln!(out, "{}", long_line(&e))?;
            } else {
                writeln!(out, "{}{}", e.name, if e.is_dir() { "/" } else { "" })?;
            }
            first = false;
            Ok(())
        })
        .await?;
        if a.json {
            writeln!(out, "\n]")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub async fn stat(c: &Client, a: &StatArgs) -> Result<ExitCode> {
    if a.paths.is_empty() {
        bail!("stat needs at least one path");
    }
    for p in &a.paths {
        let full = c.stat_full(p).await?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&full)?);
            continue;
        }
        let e = &full.entry;
        println!("  path: {}", e.path);
        println!("  kind: {}", e.kind);
        if !e.is_dir() {
            println!("  size: {}", e.size);
            println!("  adler32: {}", e.adler32.as_deref().unwrap_or("-"));
            println!("  file id: {}", e.file_id.as_deref().unwrap_or("-"));
        }
        println!("  owner: {}:{}  mode: {}", e.owner, e.group, e.mode);
        println!("  created: {}", e.ctime);
        println!("  modified: {}", e.mtime);
        if !e.is_dir() {
            println!("  accessed: {}", e.atime);
        }
        for k in bale_core::catalog::TAG_NAMES {
            if let Some(v) = e.tags.get(k) {
                println!("  {k}: {v}");
            }
        }
        if let Some(ar) = &full.archive {
            match (&ar.pool, ar.job) {
                (Some(pool), _) => println!("  archive: {} (pool {pool})", ar.state),
                (None, Some(job)) => println!("  archive: {} (job {job})", ar.state),
                _ => println!("  archive: {}", ar.state),
            }
            if let Some(err) = &ar.error {
                println!("  last error: {err}");
            }
            for cp in &ar.copies {
                println!(
                    "  tape copy: volume {} tape file {} (package {}, {}, data at byte {}){}",
                    cp.volume,
                    cp.tape_file,
                    cp.package,
                    crate::cmd::plural(cp.members as u64, "member"),
                    cp.offset,
                    cp.bad.as_deref().map(|b| format!(" BAD: {b}")).unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn rm(c: &Client, a: &RmArgs) -> Result<ExitCode> {
    for p in &a.paths {
        let e = c.stat(p).await?;
        if e.is_dir() && !a.recursive {
            bail!("{p} is a directory: use rm -r to remove it and everything beneath it");
        }
        check(c.request(Method::DELETE, &c.url(p)).send().await, &format!("rm {p}")).await?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn mv(c: &Client, a: &MvArgs) -> Result<ExitCode> {
    let mut to = a.to.clone();
    if let Some(e) = c.try_stat(&a.to).await? {
        if e.is_dir() {
            let name = a.from.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            to = join(&a.to, name);
        }
    }
    let r = c
        .request(Method::from_bytes(b"MOVE")?, &c.url(&a.from))
        .header("Destination", c.url(&to))
        .header("Overwrite", if a.force { "T" } else { "F" })
        .send()
        .await;
    check(r, &format!("mv {} {}", a.from, to)).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn mkdir(c: &Client, a: &MkdirArgs) -> Result<ExitCode> {
    for p in &a.paths {
        let _: Entry = c
            .post_json(
                "mkdir",
                &MkdirRequest {
                    path: p.clone(),
                    parents: a.parents,
                    owner: a.owner.clone(),
                    group: a.group.clone(),
                    mode: a.mode.clone(),
                },
            )
            .await
            .with_context(|| format!("mkdir {p}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn chmod(c: &Client, a: &ChmodArgs) -> Result<ExitCode> {
    for p in &a.paths {
        let req = AttrsRequest {
            path: p.clone(),
            owner: None,
            group: None,
            mode: Some(a.mode.clone()),
        };
        let _: Entry = c.post_json("attrs", &req).await?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn chown(c: &Client, a: &ChownArgs) -> Result<ExitCode> {
    let (owner, group) = match a.owner.split_once(':') {
        Some((o, g)) => (Some(o.to_string()).filter(|s| !s.is_empty()), Some(g.to_string())),
        None => (Some(a.owner.clone()), None),
    };
    for p in &a.paths {
        let req = AttrsRequest {
            path: p.clone(),
            owner: owner.clone(),
            group: group.clone(),
            mode: None,
        };
        let _: Entry = c.post_json("attrs", &req).await?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn tag(c: &Client, t: &TagCmd) -> Result<ExitCode> {
    match t {
        TagCmd::Set { path, tags } => {
            let mut set = BTreeMap::new();
            for kv in tags {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("tag {kv:?} is not KEY=VALUE (use KEY= to clear a tag)"))?;
                set.insert(k.to_string(), (!v.is_empty()).then(|| v.to_string()));
            }
            let tags: bale_core::catalog::Tags = c
                .post_json(
                    "tags",
                    &TagsRequest {
                        path: path.clone(),
                        set,
                    },
                )
                .await?;
            print_tags(&tags);
        }
        TagCmd::Show { path, json } => {
            let tags: bale_core::catalog::Tags = c.get_json("tags", &[("path", path)]).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&tags)?);
            } else {
                print_tags(&tags);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_tags(t: &bale_core::catalog::Tags) {
    for k in bale_core::catalog::TAG_NAMES {
        println!("{k} = {}", t.get(k).unwrap_or_else(|| "(unset)".into()));
    }
}
