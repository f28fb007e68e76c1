//! `bale put` and `bale get`: parallel transfers with progress and adler32
//! verification at both ends.
//!
//! put: files up to [`INLINE_LIMIT`] are read first, so that their adler32
//! travels in the `Digest` header and the server refuses corrupted data
//! before storing it; larger files are streamed while hashing, and the
//! server's digest is compared afterwards (a mismatch removes the remote
//! file). Either way the server's answer is checked against our own sum.
//! get: the `Digest` the server sends is compared with the bytes received
//! before the file is renamed into place.

use crate::client::{check, join, Client};
use anyhow::{anyhow, bail, Context, Result};
use bale_util::checksum::Adler32Hasher;
use bale_util::Adler32;
use bytes::Bytes;
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::{header, Method};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tokio::io::AsyncWriteExt;

/// Files up to this size are read whole before upload.
const INLINE_LIMIT: u64 = 64 << 20;

#[derive(Args, Debug)]
pub struct PutArgs {
    /// Local files or directories to upload.
    #[arg(required = true, value_name = "LOCAL")]
    locals: Vec<String>,
    /// The remote directory to put them in.
    #[arg(value_name = "REMOTE_DIR")]
    remote_dir: String,
    /// Parallel transfers.
    #[arg(short = 'j', long, default_value_t = 4)]
    jobs: usize,
    /// Replace remote files that exist already.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Remote files (or with -r directories) to download.
    #[arg(required = true, value_name = "REMOTE")]
    remotes: Vec<String>,
    /// The local directory to put them in (created for a single remote).
    #[arg(value_name = "LOCAL_DIR")]
    local_dir: String,
    /// Parallel transfers.
    #[arg(short = 'j', long, default_value_t = 4)]
    jobs: usize,
    /// Download directories and everything beneath them.
    #[arg(short = 'r', long)]
    recursive: bool,
}

struct Transfer {
    local: PathBuf,
    remote: String,
    size: u64,
    /// The remote file's modification time (a get restores it).
    mtime: Option<SystemTime>,
}

struct Progress {
    bar: ProgressBar,
    files_total: usize,
    files_done: Mutex<usize>,
    started: Instant,
}

impl Progress {
    fn new(bytes: u64, files: usize) -> Arc<Progress> {
        // A bar only on a terminal; the summary line always.
        let target = match crate::stderr_is_terminal() {
            true => ProgressDrawTarget::stderr(),
            false => ProgressDrawTarget::hidden(),
        };
        let bar = ProgressBar::with_draw_target(Some(bytes), target);
        bar.set_style(
            ProgressStyle::with_template(
                "[{elapsed_precise}] {wide_bar} {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} {msg}",
            )
            .expect("valid template"),
        );
        Arc::new(Progress {
            bar,
            files_total: files,
            files_done: Mutex::new(0),
            started: Instant::now(),
        })
    }

    fn file_done(&self) {
        let mut n = self.files_done.lock().unwrap();
        *n += 1;
        let rate = *n as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar
            .set_message(format!("{}/{} files {rate:.0} files/s", *n, self.files_total));
    }

    fn finish(&self, verb: &str, failed: usize) {
        // Read the position first: finishing moves the bar to its end.
        let bytes = self.bar.position();
        self.bar.finish_and_clear();
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let done = *self.files_done.lock().unwrap();
        eprintln!(
            "{verb} {}, {} in {secs:.2} s: {}/s, {} files/s{}",
            crate::cmd::plural(done as u64, "file"),
            indicatif::DecimalBytes(bytes),
            indicatif::DecimalBytes((bytes as f64 / secs) as u64),
            match done as f64 / secs {
                r if r < 10.0 => format!("{r:.2}"),
                r => format!("{r:.0}"),
            },
            if failed > 0 {
                format!(", {failed} FAILED")
            } else {
                String::new()
            }
        );
    }
}

fn digest_of(resp: &reqwest::Response) -> Result<Adler32> {
    let v = resp
        .headers()
        .get("digest")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("the server sent no adler32 Digest"))?;
    Adler32::from_digest_header(v)
        .map_err(|e| anyhow!(e))?
        .ok_or_else(|| anyhow!("the server's Digest has no adler32: {v}"))
}

/// Plans an upload: remote directories to create (parents first) and files.
fn plan_put(locals: &[String], remote_dir: &str) -> Result<(Vec<String>, Vec<Transfer>)> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for l in locals {
        let local = Path::new(l);
        let meta = std::fs::metadata(local).with_context(|| format!("cannot read {l}"))?;
        let abs = std::fs::canonicalize(local)?;
        let name = abs
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("{l}: file name is not valid UTF-8"))?
            .to_string();
        let target = join(remote_dir, &name);
        if meta.is_file() {
            files.push(Transfer {
                local: local.to_path_buf(),
                remote: target,
                size: meta.len(),
                mtime: None,
            });
            continue;
        }
        if !meta.is_dir() {
            bail!("{l} is neither a file nor a directory");
        }
        dirs.push(target.clone());
        for entry in walkdir::WalkDir::new(local).min_depth(1).sort_by_file_name() {
            let entry = entry?;
            let rel = entry.path().strip_prefix(local)?;
            let rel = rel
                .to_str()
                .ok_or_else(|| anyhow!("{}: name is not valid UTF-8", entry.path().display()))?;
            let remote = join(&target, rel);
            let ft = entry.file_type();
            if ft.is_dir() {
                dirs.push(remote);
            } else if ft.is_file() {
                files.push(Transfer {
                    local: entry.path().to_path_buf(),
                    remote,
                    size: entry.metadata()?.len(),
                    mtime: None,
                });
            } else {
                eprintln!("bale: skipping {} (not a regular file)", entry.path().display());
            }
        }
    }
    Ok((dirs, files))
}

pub async fn put(c: &Client, a: &PutArgs) -> Result<ExitCode> {
    let (locals, remote_dir) = (&a.locals[..], &a.remote_dir);
    let target = c.stat(remote_dir).await?;
    if !target.is_dir() {
        bail!("{remote_dir} is not a directory");
    }
    let (dirs, files) = plan_put(locals, remote_dir)?;
    for d in &dirs {
        let r = c.request(Method::from_bytes(b"MKCOL")?, &c.url(d)).send().await;
        match r {
            Ok(r) if r.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED => {
                // Exists: fine if it is a directory.
                if !c.stat(d).await?.is_dir() {
                    bail!("{d} exists and is not a directory");
                }
            }
            r => {
                check(r, &format!("mkdir {d}")).await?;
            }
        }
    }
    let progress = Progress::new(files.iter().map(|f| f.size).sum(), files.len());
    let results: Vec<Result<()>> = futures::stream::iter(files)
        .map(|f| {
            let (c, p) = (c.clone(), progress.clone());
            async move {
                upload(&c, &f, a.overwrite, &p)
                    .await
                    .with_context(|| format!("put {} -> {}", f.local.display(), f.remote))
            }
        })
        .buffer_unordered(a.jobs.max(1))
        .collect()
        .await;
    report(&progress, "put", results)
}

fn report(progress: &Progress, verb: &str, results: Vec<Result<()>>) -> Result<ExitCode> {
    let failed: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    progress.finish(verb, failed.len());
    for e in &failed {
        eprintln!("bale: {e:#}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An RFC 3339 time as the server writes them.
fn parse_time(s: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// A time as `X-OC-Mtime` carries it: seconds since 1970, with the
/// nanoseconds as a fraction.
fn oc_mtime(t: SystemTime) -> Option<String> {
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
}

async fn upload(c: &Client, f: &Transfer, overwrite: bool, p: &Progress) -> Result<()> {
    let mut req = c
        .request(Method::PUT, &c.url(&f.remote))
        .header("Overwrite", if overwrite { "T" } else { "F" });
    // The local file's time goes with its data, as tar, rsync -t and cp -p keep it.
    let modified = tokio::fs::metadata(&f.local).await?.modified().ok();
    if let Some(t) = modified.and_then(oc_mtime) {
        req = req.header("X-OC-Mtime", t);
    }
    if f.size <= INLINE_LIMIT {
        let data = tokio::fs::read(&f.local).await?;
        let sum = Adler32::of(&data);
        let len = data.len() as u64;
        let resp = req
            .header("Digest", sum.digest_header())
            .header(header::CONTENT_LENGTH, len)
            .body(data)
            .send()
            .await;
        let resp = check(resp, "upload").await?;
        let theirs = digest_of(&resp)?;
        if theirs != sum {
            bail!("server stored adler32 {theirs}, local file has {sum}");
        }
        p.bar.inc(len);
    } else {
        let file = tokio::fs::File::open(&f.local).await?;
        let hasher = Arc::new(Mutex::new(Adler32Hasher::new()));
        let (h, bar) = (hasher.clone(), p.bar.clone());
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).map_ok(move |chunk: Bytes| {
            h.lock().unwrap().update(&chunk);
            bar.inc(chunk.len() as u64);
            chunk
        });
        let resp = req
            .header(header::CONTENT_LENGTH, f.size)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await;
        let resp = check(resp, "upload").await?;
        let theirs = digest_of(&resp)?;
        let ours = hasher.lock().unwrap().finish();
        if theirs != ours {
            let _ = c.request(Method::DELETE, &c.url(&f.remote)).send().await;
            bail!("server stored adler32 {theirs}, local file read as {ours}; the remote copy was removed");
        }
    }
    p.file_done();
    Ok(())
}

/// Plans a download: local directories to create and files to fetch.
/// What a get writes where. With `as_target`, the one remote is copied to
/// `local_dir` itself (cp's `cp -r /dir ./back` when ./back does not exist);
/// otherwise each remote goes into `local_dir` under its own name.
async fn plan_get(
    c: &Client,
    remotes: &[String],
    local_dir: &Path,
    recursive: bool,
    as_target: bool,
) -> Result<(Vec<PathBuf>, Vec<Transfer>)> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for r in remotes {
        let e = c.stat(r).await?;
        let name = if e.name.is_empty() {
            "root".to_string()
        } else {
            e.name.clone()
        };
        let local = if as_target {
            local_dir.to_path_buf()
        } else {
            local_dir.join(&name)
        };
        if !e.is_dir() {
            files.push(Transfer {
                local,
                mtime: parse_time(&e.mtime),
                remote: e.path,
                size: e.size,
            });
            continue;
        }
        if !recursive {
            bail!("{r} is a directory: use get -r");
        }
        let mut queue = vec![(e.path.clone(), local)];
        while let Some((remote, local)) = queue.pop() {
            dirs.push(local.clone());
            let mut sub = Vec::new();
            c.list_all(&remote, |e| {
                let l = local.join(&e.name);
                if e.is_dir() {
                    sub.push((e.path, l));
                } else {
                    files.push(Transfer {
                        local: l,
                        mtime: parse_time(&e.mtime),
                        remote: e.path,
                        size: e.size,
                    });
                }
                Ok(())
            })
            .await?;
            queue.extend(sub);
        }
    }
    Ok((dirs, files))
}

pub async fn get(c: &Client, a: &GetArgs) -> Result<ExitCode> {
    let (remotes, local_dir) = (&a.remotes[..], PathBuf::from(&a.local_dir));
    // As cp, scp and rclone: a target that does not exist is created; one
    // remote is copied to it under the target's name, several into it.
    if local_dir.exists() && !local_dir.is_dir() {
        bail!("{} exists and is not a local directory", local_dir.display());
    }
    let as_target = !local_dir.exists() && remotes.len() == 1;
    let (dirs, files) = plan_get(c, remotes, &local_dir, a.recursive, as_target).await?;
    let parent = local_dir.parent().filter(|p| !p.as_os_str().is_empty());
    let top = if as_target {
        parent.map(Path::to_path_buf)
    } else {
        Some(local_dir.clone())
    };
    for d in top.iter().chain(&dirs) {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let progress = Progress::new(files.iter().map(|f| f.size).sum(), files.len());
    let results: Vec<Result<()>> = futures::stream::iter(files)
        .map(|f| {
            let (c, p) = (c.clone(), progress.clone());
            async move {
                download(&c, &f, &p)
                    .await
                    .with_context(|| format!("get {} -> {}", f.remote, f.local.display()))
            }
        })
        .buffer_unordered(a.jobs.max(1))
        .collect()
        .await;
    report(&progress, "got", results)
}

async fn download(c: &Client, f: &Transfer, p: &Progress) -> Result<()> {
    let resp = c
        .request(Method::GET, &c.url(&f.remote))
        .header("Want-Digest", "adler32")
        .send()
        .await;
    let resp = check(resp, "download").await?;
    let expected = digest_of(&resp)?;
    let name = f.local.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let part = f.local.with_file_name(format!(".{name}.bale-part"));
    let guard = bale_util::durable::RemoveOnDrop::new(part.clone());
    let mut out = tokio::fs::File::create(&part).await?;
    let mut h = Adler32Hasher::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        h.update(&chunk);
        out.write_all(&chunk).await?;
        p.bar.inc(chunk.len() as u64);
    }
    out.flush().await?;
    let got = h.finish();
    if got != expected {
        bail!("checksum mismatch: server says adler32 {expected}, received data has {got}; nothing was written");
    }
    if let Some(t) = f.mtime {
        out.into_std().await.set_modified(t)?;
    } else {
        drop(out);
    }
    tokio::fs::rename(&part, &f.local).await?;
    guard.disarm();
    p.file_done();
    Ok(())
}
