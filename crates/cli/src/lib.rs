//! The `bale` command line: `bale serve` runs the server; every other
//! command is a client of its HTTP API (or, for `bench`, drives an embedded
//! server end to end).

mod client;
mod cmd;
pub(crate) mod columns;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub use client::Client;

/// bale: a tape archive for scientific data that makes small files cheap on tape.
#[derive(Parser, Debug)]
#[command(name = "bale", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text or as JSON objects (one per line, with the request
    /// id and the fields of each event).
    #[arg(long, global = true, env = "BALE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

type FilterHandle = tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// Logs are JSON lines (`--log-format json`).
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn json_logs() -> bool {
    JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A message of the server's own to whoever watches it: a line on stderr,
/// or a log event where the log is JSON lines (stderr holds only those).
pub(crate) fn say(msg: &str) {
    match json_logs() {
        true => tracing::info!("{msg}"),
        false => eprintln!("bale: {msg}"),
    }
}

/// The log filter in force, changeable while the server runs (SIGHUP).
static LOG_FILTER: std::sync::OnceLock<FilterHandle> = std::sync::OnceLock::new();

/// Sets what is logged from now on: tracing directives ("info",
/// "info,bale::access=warn").
pub(crate) fn set_log_filter(directives: &str) -> Result<()> {
    let f = tracing_subscriber::EnvFilter::try_new(directives)
        .map_err(|e| anyhow::anyhow!("invalid log setting {directives:?}: {e}"))?;
    if let Some(h) = LOG_FILTER.get() {
        h.reload(f)
            .map_err(|e| anyhow::anyhow!("cannot change the log filter: {e}"))?;
    }
    Ok(())
}

/// Logs to stderr: text (colours only on a terminal; without timestamps
/// under systemd, whose journal stamps each line) or JSON lines.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("BALE_LOG").unwrap_or_else(|_| "info".into());
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = LOG_FILTER.set(handle);
    JSON_LOGS.store(format == LogFormat::Json, std::sync::atomic::Ordering::Relaxed);
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Text if journald => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .without_time()
                    .with_ansi(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(stderr_is_terminal())
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

/// Where the server is and who you are: the options of every command
/// that talks to a server.
#[derive(Args, Debug, Clone)]
pub(crate) struct Conn {
    /// The bale server to talk to.
    #[arg(long, global = true, env = "BALE_SERVER", default_value = "http://127.0.0.1:8742")]
    server: String,
    /// API token. Defaults to the admin token in ./bale-data/admin.token.
    #[arg(long, global = true, env = "BALE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A PEM file of CA certificates to trust for an https server, besides
    /// the system's roots (a site or test CA).
    #[arg(long, global = true, env = "BALE_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
}

/// A client command's own arguments and the connection options.
#[derive(Args, Debug)]
pub(crate) struct On<T: Args> {
    #[command(flatten)]
    args: T,
    #[command(flatten)]
    conn: Conn,
}

/// A command group (`bale token create ...`) as arguments.
#[derive(Args, Debug)]
pub(crate) struct Group<S: Subcommand> {
    #[command(subcommand)]
    cmd: S,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the bale server.
    Serve(cmd::serve::ServeArgs),
    /// Show or check configuration.
    #[command(subcommand)]
    Config(cmd::serve::ConfigCmd),
    /// Manage API tokens (administrators).
    Token(On<Group<cmd::token::TokenCmd>>),
    /// Upload files and directory trees into a remote directory.
    Put(On<cmd::transfer::PutArgs>),
    /// Download files (and with -r directory trees) into a local directory.
    Get(On<cmd::transfer::GetArgs>),
    /// List directories.
    Ls(On<cmd::fs::LsArgs>),
    /// Show a file's or directory's metadata.
    Stat(On<cmd::fs::StatArgs>),
    /// Remove files (and with -r directories).
    Rm(On<cmd::fs::RmArgs>),
    /// Move or rename a file or directory.
    Mv(On<cmd::fs::MvArgs>),
    /// Create directories.
    Mkdir(On<cmd::fs::MkdirArgs>),
    /// Change permission bits.
    Chmod(On<cmd::fs::ChmodArgs>),
    /// Change owner and group (administrators).
    Chown(On<cmd::fs::ChownArgs>),
    /// Set and show directory tags (storage_group, file_family, ...).
    Tag(On<Group<cmd::fs::TagCmd>>),
    /// List tape volumes, or add blank ones (`volumes add`).
    #[command(after_long_help = columns::VOLUMES)]
    Volumes(On<cmd::tape::VolumesArgs>),
    /// Show a volume and its tape files, or set its state.
    Volume(On<Group<cmd::tape::VolumeCmd>>),
    /// List tape drives and what they are doing.
    #[command(after_long_help = columns::DRIVES)]
    Drives(On<cmd::tape::ListArgs>),
    /// Take a drive offline or bring it online (administrators).
    Drive(On<Group<cmd::tape::DriveCmd>>),
    /// Show the alarms not yet acknowledged (failed writes and reads, bad
    /// checksums, worn volumes, failed drives, dead workers); with `--all`
    /// the acknowledged ones too (administrators).
    #[command(after_long_help = columns::ALARMS)]
    Alarms(On<cmd::tape::AlarmsArgs>),
    /// Acknowledge an alarm (`alarm ack ID`; administrators).
    Alarm(On<Group<cmd::tape::AlarmCmd>>),
    /// List the server's background workers: state, counters, last error
    /// (administrators).
    #[command(after_long_help = columns::WORKERS)]
    Workers(On<cmd::tape::ListArgs>),
    /// Show, load or try the aggregation policy.
    Policy(On<Group<cmd::archive::PolicyCmd>>),
    /// Open pools and a summary of the archive jobs; `queue flush` closes
    /// pools now, `queue retry` sends failed jobs again.
    #[command(after_long_help = columns::QUEUE)]
    Queue(On<cmd::archive::QueueArgs>),
    /// What the cache holds, against its capacity: cached files (their data
    /// is in the cache), pinned (kept by a pin or a stage request), purgeable
    /// (on tape, not pinned: the purger may remove their copies); the
    /// capacity ([cache] capacity, else the filesystem's size), the purger's
    /// high and low marks ([cache] purge_high and purge_low), and the
    /// filesystem's free space.
    #[command(after_long_help = columns::CACHE)]
    Cache(On<cmd::cache::CacheArgs>),
    /// The node at a glance: readiness, the cache against its marks, pools
    /// and archive jobs, stage requests, drives, volumes by state; workers
    /// and alarms for administrators.
    #[command(after_long_help = cmd::status::STATUS_HELP)]
    Status(On<cmd::status::StatusArgs>),
    /// A file's journey: written, pooled, packed (each tape copy), verified,
    /// purged, staged, read, moved, overwritten, deleted.
    #[command(after_long_help = cmd::status::HISTORY_HELP)]
    History(On<cmd::status::HistoryArgs>),
    /// Storage groups' quotas and use (`quota set SG --bytes 10TB --files 1M
    /// --volumes LIB=N`, administrators).
    #[command(after_long_help = columns::QUOTA)]
    Quota(On<cmd::quota::QuotaArgs>),
    /// Remove the cache copies of files that are on tape and not pinned
    /// (administrators); a later read stages them back.
    Purge(On<cmd::cache::PurgeArgs>),
    /// Bring files back from tape in one request (`bale stage status ID`,
    /// `bale stage cancel ID`).
    Stage(On<cmd::stage::StageArgs>),
    /// Check the catalog against the cache (missing, short or damaged data,
    /// orphans); `--repair` repairs what can be (administrators).
    Fsck(On<cmd::cache::FsckArgs>),
    /// Re-read and re-checksum copies: a volume's packages, one package,
    /// or the cache; a bad tape copy is marked bad, raises an alarm and is
    /// rewritten from a good copy (administrators).
    Verify(On<cmd::tape::VerifyArgs>),
    /// Rebuild catalog entries from the manifests on tape, offline (the
    /// server stopped): one volume the catalog does not know, or a whole
    /// catalog into an empty data directory or database.
    Recover(cmd::serve::RecoverArgs),
    /// Where files' data is: DISK, TAPE, DISK_AND_TAPE, NONE (empty), LOST, UNAVAILABLE.
    Archiveinfo(On<cmd::cache::ArchiveInfoArgs>),
    /// Keep files in the cache for a while (a named, expiring pin).
    Pin(On<cmd::cache::PinArgs>),
    /// Release pins.
    Unpin(On<cmd::cache::UnpinArgs>),
    /// Show a file's live pins.
    Pins(On<cmd::cache::PinsArgs>),
    /// List recorded packages (tape files).
    #[command(after_long_help = columns::PACKAGES)]
    Packages(On<cmd::archive::PackagesArgs>),
    /// Show a package and its members.
    Package(On<Group<cmd::archive::PackageCmd>>),
    /// Benchmarks against an embedded server.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCmd),
    /// The whole cycle on a throwaway server: write, pack, tape, purge,
    /// stage back, verify, and a report. Start here.
    Demo(cmd::demo::DemoArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish,
    /// powershell): `bale completions bash > /etc/bash_completion.d/bale`.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff): `bale man | man -l -`; with `--dir`
    /// write it and one page per command (bale-serve.1, ...) there.
    Man {
        /// Write bale.1 and a page per command into this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

impl Conn {
    /// A client for the configured server and token.
    fn client(&self) -> Result<Client> {
        let token = match &self.token {
            Some(t) => t.clone(),
            None => {
                let path = PathBuf::from("./bale-data/admin.token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no token given: pass --token or set BALE_TOKEN (cannot read the default {}",
                            path.display()
                        ) + ")"
                    })?
                    .trim()
                    .to_string()
            }
        };
        Client::with_ca(&self.server, token, self.ca.as_deref())
    }
}

/// Whether stderr is a terminal: colours and progress bars only then.
pub(crate) fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// A client command writing into a closed pipe (`bale ls -l / | head`) ends
/// quietly, as Unix tools do, instead of panicking in `println!`. The
/// server keeps SIGPIPE ignored: it must never die of a client hanging up.
fn default_sigpipe() {
    // SAFETY: signal(2) with SIG_DFL installs no handler (no Rust code runs
    // in signal context); it only undoes the SIG_IGN that Rust's runtime set
    // before main. It runs before any thread of ours exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Caps glibc's malloc arenas at one per CPU (its default is eight per
/// CPU). A server's request tasks move between tokio's worker threads and
/// its blocking threads, and each thread took an arena that kept what it
/// had freed: one listing of 100,000 entries left the server 150 MB larger
/// for good (BENCHMARKS, the catalog at scale). `MALLOC_ARENA_MAX` in the
/// environment still wins. Only on glibc, where mallopt has this option.
///
/// It also fixes glibc's mmap threshold at 4 MiB: by default the threshold
/// rises to the size of each large block freed (up to 32 MiB), after which
/// blocks that large come from the arenas and, freed, fragment them: a
/// million-path stage request left the server 100 MB larger for good.
/// Blocks of 4 MiB and more are mapped on their own and returned whole
/// when freed (`MALLOC_MMAP_THRESHOLD_` in the environment still wins).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cap_malloc_arenas() {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt(3) takes two integers and touches no memory of
        // ours; it runs at the start of main, before any thread of ours
        // exists, so no allocation races with the change of the limit.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, cpus as libc::c_int);
        }
    }
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: as above: two integers, before any thread of ours.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_malloc_arenas() {}

pub fn main() -> ExitCode {
    cap_malloc_arenas();
    let cli = Cli::parse();
    // The server and the benches (which run one, and feed child processes
    // through pipes) keep it ignored.
    if !matches!(cli.command, Command::Serve(_) | Command::Bench(_) | Command::Demo(_)) {
        default_sigpipe();
    }
    init_logging(cli.log_format);
    // Blocking threads (file I/O, SQLite, tape) that sit idle for 2 s go:
    // with tokio's default of 10 s, the server's periodic work kept some
    // 50 of them alive, each with its stack and allocator caches.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bale: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bale: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Work cut off at the server's shutdown deadline may still hold a
    // blocking thread (a tape write): it ends with the process, as in a
    // crash, instead of holding the exit up.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

async fn run(cli: Cli) -> Result<ExitCode> {
    use Command::*;
    match &cli.command {
        Serve(a) => cmd::serve::serve(a).await,
        Config(c) => cmd::serve::config(c),
        Recover(a) => cmd::serve::recover(a).await,
        Bench(b) => cmd::bench::run(b).await,
        Demo(a) => cmd::demo::run(a).await,
        Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "bale", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Man { dir } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            match dir {
                None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
                Some(dir) => {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                    clap_mangen::generate_to(cmd, dir).with_context(|| format!("cannot write to {}", dir.display()))?;
                    println!("manual pages written to {}", dir.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Token(o) => cmd::token::run(&o.conn.client()?, &o.args.cmd).await,
        Put(o) => cmd::transfer::put(&o.conn.client()?, &o.args).await,
        Get(o) => cmd::transfer::get(&o.conn.client()?, &o.args).await,
        Ls(o) => cmd::fs::ls(&o.conn.client()?, &o.args).await,
        Stat(o) => cmd::fs::stat(&o.conn.client()?, &o.args).await,
        Rm(o) => cmd::fs::rm(&o.conn.client()?, &o.args).await,
        Mv(o) => cmd::fs::mv(&o.conn.client()?, &o.args).await,
        Mkdir(o) => cmd::fs::mkdir(&o.conn.client()?, &o.args).await,
        Chmod(o) => cmd::fs::chmod(&o.conn.client()?, &o.args).await,
        Chown(o) => cmd::fs::chown(&o.conn.client()?, &o.args).await,
        Tag(o) => cmd::fs::tag(&o.conn.client()?, &o.args.cmd).await,
        Volumes(o) => cmd::tape::volumes(&o.conn.client()?, &o.args).await,
        Volume(o) => cmd::tape::volume(&o.conn.client()?, &o.args.cmd).await,
        Drives(o) => cmd::tape::drives(&o.conn.client()?, &o.args).await,
        Drive(o) => cmd::tape::drive(&o.conn.client()?, &o.args.cmd).await,
        Alarms(o) => cmd::tape::alarms(&o.conn.client()?, &o.args).await,
        Alarm(o) => cmd::tape::alarm(&o.conn.client()?, &o.args.cmd).await,
        Fsck(o) => cmd::cache::fsck(&o.conn.client()?, &o.args).await,
        Verify(o) => cmd::tape::verify(&o.conn.client()?, &o.args).await,
        Workers(o) => cmd::tape::workers(&o.conn.client()?, &o.args).await,
        Policy(o) => cmd::archive::policy(&o.conn.client()?, &o.args.cmd).await,
        Queue(o) => cmd::archive::queue(&o.conn.client()?, &o.args).await,
        Packages(o) => cmd::archive::packages(&o.conn.client()?, &o.args).await,
        Cache(o) => cmd::cache::cache(&o.conn.client()?, &o.args).await,
        Status(o) => cmd::status::status(&o.conn.client()?, &o.args).await,
        History(o) => cmd::status::history(&o.conn.client()?, &o.args).await,
        Quota(o) => cmd::quota::run(&o.conn.client()?, &o.args).await,
        Purge(o) => cmd::cache::purge(&o.conn.client()?, &o.args).await,
        Archiveinfo(o) => cmd::cache::archive_info(&o.conn.client()?, &o.args).await,
        Stage(o) => cmd::stage::run(&o.conn.client()?, &o.args).await,
        Pin(o) => cmd::cache::pin(&o.conn.client()?, &o.args).await,
        Unpin(o) => cmd::cache::unpin(&o.conn.client()?, &o.args).await,
        Pins(o) => cmd::cache::pins(&o.conn.client()?, &o.args).await,
        Package(o) => cmd::archive::package(&o.conn.client()?, &o.args.cmd).await,
    }
}
