//! `bale serve` and `bale config`.

use anyhow::{Context, Result};
use bale_core::{Config, Service};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML); see `bale config example`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides the config file).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Listen address, e.g. 127.0.0.1:8742 (overrides the config file).
    #[arg(long)]
    listen: Option<String>,
    /// Catalog: "sqlite" or a postgres:// URL (overrides the config file).
    #[arg(long, env = "BALE_CATALOG", hide_env_values = true)]
    catalog: Option<String>,
    /// Aggregation policy file (overrides the config file); see
    /// examples/mu2e-sfa.toml.
    #[arg(long)]
    policy: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print a commented example configuration with every default.
    Example,
    /// Check a configuration file and print it as bale reads it.
    Check { file: PathBuf },
}

pub fn config(c: &ConfigCmd) -> Result<ExitCode> {
    match c {
        ConfigCmd::Example => print!("{}", bale_core::config::EXAMPLE),
        ConfigCmd::Check { file } => {
            let cfg = Config::load(file)?;
            println!("{cfg:#?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The configuration `serve` runs with: file (or defaults), then flags.
pub fn effective_config(a: &ServeArgs) -> Result<Config> {
    let mut cfg = match &a.config {
        Some(f) => Config::load(f)?,
        None => Config::default(),
    };
    if let Some(d) = &a.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(l) = &a.listen {
        cfg.listen = l.clone();
    }
    if let Some(c) = &a.catalog {
        cfg.catalog = c.clone();
    }
    if let Some(p) = &a.policy {
        cfg.archive.policy = p.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

pub async fn serve(a: &ServeArgs) -> Result<ExitCode> {
    let cfg = effective_config(a)?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let svc = Service::start(cfg.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    // Tests and scripts read this line to find the port.
    println!("bale listening on http://{addr}");
    eprintln!(
        "bale: catalog {}, data in {}, admin token in {}",
        svc.catalog_backend(),
        cfg.data_dir.display(),
        cfg.admin_token_path().display()
    );
    bale_api::serve(listener, svc.clone(), shutdown_signal()).await?;
    svc.shutdown().await;
    eprintln!("bale: stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("bale: shutting down");
}
