//! What the benches share: the real server in a child process, drives on
//! and off, tagged directories, scratch directories, medians.

use crate::client::{check, Client};
use anyhow::{bail, Context, Result};
use reqwest::Method;
use std::path::Path;

/// The real `bale serve` binary in a child process, as in production: the
/// clients of the benchmark do not share its runtime.
pub(crate) struct Server {
    pub(crate) client: Client,
    child: Option<std::process::Child>,
}

impl Server {
    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stops the server with SIGTERM and waits for it.
    pub(crate) fn stop(mut self) -> Result<()> {
        let mut child = self.child.take().expect("running");
        let signalled = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        if signalled.is_err() {
            let _ = child.kill();
        }
        child.wait()?;
        signalled?;
        Ok(())
    }
}

/// A bench or demo that fails half way does not leave its server behind.
impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every drive's name, after setting them all online or offline (benches
/// take the drives offline while files arrive).
pub(crate) async fn set_drives(c: &Client, online: bool, names: Option<Vec<String>>) -> Result<Vec<String>> {
    let names = match names {
        Some(n) => n,
        None => {
            let drives: serde_json::Value = c.get_json("drives", &[]).await?;
            drives
                .as_array()
                .context("drives")?
                .iter()
                .filter_map(|d| d["name"].as_str().map(str::to_string))
                .collect()
        }
    };
    let action = if online { "online" } else { "offline" };
    for n in &names {
        let _: serde_json::Value = c
            .post_json(&format!("drives/{n}/{action}"), &serde_json::json!({}))
            .await?;
    }
    Ok(names)
}

/// Creates directory `dir` and sets its `tags` (a JSON object).
pub(crate) async fn mkdir_tagged(c: &Client, dir: &str, tags: serde_json::Value) -> Result<()> {
    check(
        c.request(Method::from_bytes(b"MKCOL")?, &c.url(dir)).send().await,
        "mkdir",
    )
    .await?;
    let _: serde_json::Value = c
        .post_json("tags", &serde_json::json!({"path": dir, "set": tags}))
        .await?;
    Ok(())
}

/// Starts `bale serve` on a free port with `config` (TOML) and `catalog`.
pub(crate) fn spawn_server(data: &Path, config: &str, catalog: &str) -> Result<Server> {
    std::fs::create_dir_all(data)?;
    let cfg = data.with_extension("toml");
    std::fs::write(&cfg, config)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--catalog")
        .arg(catalog)
        // Quiet unless asked (BALE_BENCH_LOG=bale_core=debug shows phases).
        .env(
            "BALE_LOG",
            std::env::var("BALE_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start bale serve")?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("piped")),
        &mut line,
    )?;
    let url = line
        .trim()
        .strip_prefix("bale listening on ")
        .with_context(|| format!("bale serve did not start: {line:?}"))?
        .to_string();
    let token = std::fs::read_to_string(data.join("admin.token"))?.trim().to_string();
    Ok(Server {
        client: Client::new(&url, token)?,
        child: Some(child),
    })
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs a bench in a new scratch directory `dir`, removed afterwards
/// unless `keep`. An existing `dir` is refused (it would be removed).
pub(crate) async fn in_scratch<T>(
    dir: &Path,
    keep: bool,
    bench: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    if dir.exists() {
        bail!("{} exists; give a new --dir (it is removed afterwards)", dir.display());
    }
    std::fs::create_dir_all(dir)?;
    let result = bench.await;
    if !keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

/// Whether every drive has given its volume back (the library is at rest).
pub(crate) async fn drives_idle(c: &Client) -> Result<bool> {
    let drives: serde_json::Value = c.get_json("drives", &[]).await?;
    Ok(drives
        .as_array()
        .context("drives")?
        .iter()
        .all(|d| d["volume"].is_null()))
}

/// Empties the page cache (root only): a cold run.
pub(crate) fn drop_caches() -> Result<()> {
    if !std::process::Command::new("sync").status()?.success() {
        bail!("sync failed");
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
        .context("dropping the page cache needs root (/proc/sys/vm/drop_caches)")
}

/// Modelled seconds of tape work of every kind in a drive's or library's
/// `stats` (JSON).
pub(crate) fn busy_s(stats: &serde_json::Value) -> f64 {
    [
        "robot_s", "load_s", "locate_s", "write_s", "read_s", "mark_s", "unload_s",
    ]
    .iter()
    .map(|k| stats[k].as_f64().unwrap_or(0.0))
    .sum()
}

/// The first library: its counters and timing model.
pub(crate) async fn first_library(c: &Client) -> Result<serde_json::Value> {
    let v: serde_json::Value = c.get_json("libraries", &[]).await?;
    v.as_array().and_then(|a| a.first()).cloned().context("no library")
}

/// PUTs `body(path)` at every path, `parallel` at a time.
pub(crate) async fn put_all(
    c: &Client,
    paths: &[String],
    parallel: usize,
    body: impl Fn(&str) -> bytes::Bytes,
) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(paths.iter().map(|p| {
        let (c, data) = (c.clone(), body(p));
        async move {
            let r = c
                .request(Method::PUT, &c.url(p))
                .header(reqwest::header::CONTENT_LENGTH, data.len())
                .body(data)
                .send()
                .await;
            check(r, p).await.map(|_| ())
        }
    }))
    .buffer_unordered(parallel)
    .try_collect::<()>()
    .await
}

/// `files` files of `size` random bytes (each with its own first 64)
/// written into `cache` through its ingest path and promoted; their
/// package metadata, as the packer sees it.
pub(crate) async fn fill_cache(
    cache: &bale_core::cache::Cache,
    files: usize,
    size: u64,
) -> Result<Vec<bale_pack::MemberMeta>> {
    use rand::RngCore;
    let mut metas = Vec::with_capacity(files);
    let mut ids = Vec::with_capacity(files);
    let mut data = vec![0u8; size as usize];
    rand::rng().fill_bytes(&mut data);
    let head = data.len().min(64);
    for i in 0..files {
        rand::rng().fill_bytes(&mut data[..head]);
        let id = bale_util::FileId::generate();
        let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(&data))]);
        let staged = cache.ingest(id, body, Some(size)).await?;
        metas.push(bale_pack::MemberMeta {
            file_id: id,
            path: format!("/bench/d{:03}/f{i:06}.dat", i % 100),
            size: staged.size,
            adler32: staged.adler32,
            owner: "bench".into(),
            group: "bench".into(),
            mode: 0o644,
            ctime: bale_util::Timestamp::now(),
            mtime: bale_util::Timestamp::now(),
            props: Vec::new(),
        });
        ids.push(staged.keep().0);
    }
    cache.sync_batch()?;
    cache.promote(&ids)?;
    Ok(metas)
}
