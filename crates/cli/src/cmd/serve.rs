//! `bale serve`, `bale config`, and `bale recover` (which works on a
//! stopped server's data directory and catalog).

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
    /// TLS: the server's PEM certificate chain (with --tls-key; overrides
    /// the config file). Replaced on disk, it is served without a restart.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS: the server's PEM private key (with --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print a commented example configuration with every default.
    Example,
    /// Check a configuration file and print it as bale reads it.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
}

pub fn config(c: &ConfigCmd) -> Result<ExitCode> {
    match c {
        ConfigCmd::Example => print!("{}", bale_core::config::EXAMPLE),
        ConfigCmd::Check { file } => {
            let cfg = Config::load(file)?;
            // What `serve` reads at start besides the file: the issuers' keys.
            bale_core::auth::jwt::Issuers::load(&cfg.auth).map_err(|e| anyhow::anyhow!("[auth] {e}"))?;
            println!("{cfg:#?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A configuration file (or the defaults) with the data directory and
/// catalog flags on top.
fn config_with(file: &Option<PathBuf>, data_dir: &Option<PathBuf>, catalog: &Option<String>) -> Result<Config> {
    let mut cfg = match file {
        Some(f) => Config::load(f)?,
        None => Config::default(),
    };
    if let Some(d) = data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(c) = catalog {
        cfg.catalog = c.clone();
    }
    Ok(cfg)
}

/// The configuration `serve` runs with: file (or defaults), then flags.
pub fn effective_config(a: &ServeArgs) -> Result<Config> {
    let mut cfg = config_with(&a.config, &a.data_dir, &a.catalog)?;
    if let Some(l) = &a.listen {
        cfg.server.listen = l.clone();
    }
    if let Some(p) = &a.policy {
        cfg.archive.policy = p.clone();
    }
    if let (Some(c), Some(k)) = (&a.tls_cert, &a.tls_key) {
        cfg.server.tls_cert = Some(c.clone());
        cfg.server.tls_key = Some(k.clone());
    }
    cfg.validate()?;
    Ok(cfg)
}

pub async fn serve(a: &ServeArgs) -> Result<ExitCode> {
    let cfg = effective_config(a)?;
    if std::env::var_os("BALE_LOG").is_none() {
        crate::set_log_filter(&cfg.log)?;
    }
    // The certificate is checked before anything starts: a typo in a path
    // is a clear error, not a server nobody can reach.
    if let (Some(c), Some(k)) = (&cfg.server.tls_cert, &cfg.server.tls_key) {
        bale_api::tls::Tls::load(c, k).map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
    }
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let addr = listener.local_addr()?;
    // The address as bound (port 0 resolved): what the lock file and the
    // catalog's claim name.
    let mut cfg = cfg;
    cfg.server.listen = addr.to_string();
    let svc = Service::start(cfg.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let scheme = if cfg.server.tls() { "https" } else { "http" };
    if !cfg.server.tls() && !addr.ip().is_loopback() {
        let warning = format!(
            "WARNING: listening on {addr} in plain HTTP: every token and every byte crosses the \
             network readable by anyone on the path. Set [server] tls_cert and tls_key (or --tls-cert and \
             --tls-key), or put a TLS proxy in front and listen on loopback."
        );
        crate::say(&warning);
        if !crate::json_logs() {
            tracing::warn!("{warning}");
        }
    }
    if cfg.server.public_url.is_none() && !addr.ip().is_loopback() {
        crate::say(
            "note: no [server] public_url: the URLs bale hands out (Tape REST discovery, Location) \
             are built from the Host header each client sends; set public_url to the name clients use.",
        );
    }
    // Tests and scripts read this line to find the port.
    println!("bale listening on {scheme}://{addr}");
    crate::say(&format!(
        "catalog {}, data in {}, admin token in {}",
        svc.catalog_backend(),
        cfg.data_dir.display(),
        cfg.admin_token_path().display()
    ));
    let server = tokio::spawn(bale_api::serve(listener, svc.clone(), shutdown_signal()));
    // Under systemd (Type=notify): ready once a request is answered, then
    // watchdog pings; SIGHUP reloads the policy file.
    tokio::spawn(notify_ready(addr, cfg.server.tls()));
    tokio::spawn(reload_on_hangup(svc.clone(), a.config.clone()));
    server.await??;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    svc.shutdown().await;
    crate::say("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Tells systemd (when `NOTIFY_SOCKET` is set) that the server is ready,
/// once it answers a request: a `GET /healthz` over plain HTTP, or a
/// connection taken over TLS. Then pings the watchdog, if one is set, at
/// half its interval.
async fn notify_ready(addr: std::net::SocketAddr, tls: bool) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let target = match addr.ip().is_unspecified() {
        true => std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port()),
        false => addr,
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !answers(target, tls).await {
        if tokio::time::Instant::now() > deadline {
            tracing::error!("the server did not answer on {target} within 60 s: systemd is not told it is ready");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot tell systemd that bale is ready: {e}");
    }
    // As sd_watchdog_enabled(3): WATCHDOG_USEC, for this process when
    // WATCHDOG_PID names it or is not set.
    let usec: u64 = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let ours = std::env::var("WATCHDOG_PID")
        .ok()
        .is_none_or(|p| p.parse::<u32>().ok() == Some(std::process::id()));
    if usec > 0 && ours {
        let every = std::time::Duration::from_micros(usec / 2);
        loop {
            tokio::time::sleep(every).await;
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
    }
}

/// Whether the server answers at `target`.
async fn answers(target: std::net::SocketAddr, tls: bool) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(Ok(mut c)) = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::TcpStream::connect(target),
    )
    .await
    else {
        return false;
    };
    if tls {
        return true;
    }
    let ask = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if ask.await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), c.read_exact(&mut head)).await,
        Ok(Ok(_))
    ) && &head == b"HTTP/1.1 200"
}

/// SIGHUP: the policy file is read again (a bad one is refused, the
/// running policy stays); the TLS certificate and key are read again (a
/// pair that does not load is refused, the running one stays); the
/// configuration file's `log` is applied. Connections stay open.
/// Everything else in the configuration needs a restart.
async fn reload_on_hangup(svc: std::sync::Arc<Service>, config: Option<PathBuf>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        bale_api::tls::reload_now();
        if let Some(path) = &config {
            match Config::load(path) {
                Ok(c) => {
                    // Said before it applies: a quieter level would hide it.
                    tracing::info!("SIGHUP: logging {:?}", c.log);
                    if let Err(e) = crate::set_log_filter(&c.log) {
                        tracing::error!("SIGHUP: {e}; the running log setting stays");
                    }
                }
                Err(e) => tracing::error!("SIGHUP: {e}; the running log setting stays"),
            }
        }
        match svc.reload_policy_file() {
            None => tracing::info!("SIGHUP: no policy file is configured; nothing to reload"),
            Some(Ok(what)) => tracing::info!("SIGHUP: {what}"),
            Some(Err(e)) => tracing::error!("SIGHUP: the policy file was not loaded, the running one stays: {e}"),
        }
    }
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
    crate::say("shutting down");
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(false))]
pub struct RecoverArgs {
    /// One volume (any configured library's), into a catalog that does not
    /// know it.
    #[arg(long, group = "what")]
    volume: Option<String>,
    /// Every volume of every configured library, into an empty catalog.
    #[arg(long, group = "what")]
    all: bool,
    /// Configuration file (TOML): the libraries and the catalog.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides the config file).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Catalog: "sqlite" or a postgres:// URL (overrides the config file).
    #[arg(long, env = "BALE_CATALOG", hide_env_values = true)]
    catalog: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `bale recover`: exits 1 when files were skipped or tape files did not
/// read as packages.
pub async fn recover(a: &RecoverArgs) -> Result<ExitCode> {
    let cfg = config_with(&a.config, &a.data_dir, &a.catalog)?;
    cfg.validate()?;
    let target = match &a.volume {
        Some(v) => bale_core::recover::RecoverTarget::Volume(v.clone()),
        None => bale_core::recover::RecoverTarget::All,
    };
    let what = format!("{target:?}");
    let r = bale_core::recover::recover(&cfg, target).await;
    // Recorded in the data directory's audit log, as the server's
    // administrative actions are.
    match bale_core::audit::AuditLog::open(cfg.audit_log_path().as_deref()) {
        Ok(log) => match &r {
            Ok(r) => log.local(
                "recover",
                &what,
                "ok",
                &format!(
                    "{} files, {} packages, {} skipped",
                    r.files,
                    r.packages,
                    r.skipped.len()
                ),
            ),
            Err(e) => log.local("recover", &what, "failed", &e.to_string()),
        },
        Err(e) => eprintln!("bale: {e}"),
    }
    let r = r.map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "read {}, {}: {}; recorded {} ({}) in {} new director{}",
            crate::cmd::plural(r.volumes.len() as u64, "volume"),
            crate::cmd::plural(r.tape_files, "tape file"),
            crate::cmd::plural(r.packages, "package"),
            crate::cmd::plural(r.files, "file"),
            indicatif::DecimalBytes(r.bytes),
            r.directories,
            if r.directories == 1 { "y" } else { "ies" }
        );
        for s in &r.superseded {
            println!("  superseded {} ({}): {}", s.path, s.file_id, s.why);
        }
        for s in &r.skipped {
            println!("  SKIPPED {} ({}): {}", s.path, s.file_id, s.why);
        }
        for u in &r.unreadable {
            println!("  not a package: {u} (recorded as a bad package)");
        }
    }
    Ok(if r.skipped.is_empty() && r.unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
