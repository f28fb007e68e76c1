//! `bale bench metrics`: how long a Prometheus scrape of `/metrics` takes
//! on a site-sized library (1,000 volumes, 100 drives by default): the
//! queues read from the catalog, every drive and volume turned into
//! gauges, the text rendered. Baseline in the same run: `GET /healthz`,
//! the HTTP round trip that does nothing.

use super::common::{in_scratch, spawn_server};
use crate::client::check;
use anyhow::{bail, Result};
use clap::Args;
use reqwest::Method;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Scratch directory (removed afterwards unless --keep).
    #[arg(long, default_value = "./bale-bench-metrics")]
    dir: PathBuf,
    /// Volumes in the library.
    #[arg(long, default_value_t = 1000)]
    volumes: u32,
    /// Drives in the library.
    #[arg(long, default_value_t = 100)]
    drives: u32,
    /// Scrapes timed (and as many health probes).
    #[arg(long, default_value_t = 100)]
    scrapes: usize,
    /// Catalog: sqlite or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    catalog: String,
    /// Keep the scratch directory.
    #[arg(long)]
    keep: bool,
}

pub async fn run(a: &MetricsArgs) -> Result<ExitCode> {
    if a.scrapes == 0 || a.drives == 0 {
        bail!("--scrapes and --drives must be positive");
    }
    in_scratch(&a.dir, a.keep, bench(a)).await
}

/// The `q` quantile (0..1) of `v`, nearest rank.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

async fn bench(a: &MetricsArgs) -> Result<ExitCode> {
    let config = format!(
        "[[tape.libraries]]\nname = \"lib1\"\ndrives = {}\ninitial_volumes = {}\nvolume_capacity = \"10 GB\"\n",
        a.drives, a.volumes
    );
    let server = spawn_server(&a.dir.join("data"), &config, &a.catalog)?;
    let c = server.client.clone();
    let time = |path: &'static str| {
        let c = c.clone();
        async move {
            let t = Instant::now();
            let r = check(c.request(Method::GET, &c.url(path)).send().await, path).await?;
            let body = r.bytes().await?;
            anyhow::Ok((t.elapsed().as_secs_f64() * 1000.0, body.len()))
        }
    };
    // Warm: the first scrape creates every series.
    let (_, size) = time("/metrics").await?;
    let page = String::from_utf8(
        c.request(Method::GET, &c.url("/metrics"))
            .send()
            .await?
            .bytes()
            .await?
            .to_vec(),
    )?;
    let series = page.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
    let (mut scrape, mut probe) = (Vec::new(), Vec::new());
    for _ in 0..a.scrapes {
        scrape.push(time("/metrics").await?.0);
        probe.push(time("/healthz").await?.0);
    }
    println!(
        "/metrics with {} volumes and {} drives: {series} series, {size} bytes",
        a.volumes, a.drives
    );
    println!("{:<22} {:>8} {:>8} {:>8}", "", "p50 ms", "p99 ms", "max ms");
    for (what, v) in [("GET /metrics", &mut scrape), ("GET /healthz (baseline)", &mut probe)] {
        println!(
            "{what:<22} {:>8.2} {:>8.2} {:>8.2}",
            quantile(v, 0.5),
            quantile(v, 0.99),
            quantile(v, 1.0)
        );
    }
    server.stop()?;
    Ok(ExitCode::SUCCESS)
}
