//! The `bale` command line: `bale serve` runs the server; every other
//! command is a client of its HTTP API (or, for `bench`, drives an embedded
//! server end to end).

mod client;
mod cmd;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub use client::Client;

/// bale: a tape archive for scientific data that makes small files cheap on tape.
#[derive(Parser, Debug)]
#[command(name = "bale", version, about, propagate_version = true)]
pub struct Cli {
    /// The bale server to talk to.
    #[arg(long, global = true, env = "BALE_SERVER", default_value = "http://127.0.0.1:8742")]
    server: String,
    /// API token. Defaults to the admin token in ./bale-data/admin.token.
    #[arg(long, global = true, env = "BALE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the bale server.
    Serve(cmd::serve::ServeArgs),
    /// Show or check configuration.
    #[command(subcommand)]
    Config(cmd::serve::ConfigCmd),
    /// Manage API tokens (administrators).
    #[command(subcommand)]
    Token(cmd::token::TokenCmd),
    /// Upload files and directory trees into a remote directory.
    Put(cmd::transfer::PutArgs),
    /// Download files (and with -r directory trees) into a local directory.
    Get(cmd::transfer::GetArgs),
    /// List directories.
    Ls(cmd::fs::LsArgs),
    /// Show a file's or directory's metadata.
    Stat(cmd::fs::StatArgs),
    /// Remove files (and with -r directories).
    Rm(cmd::fs::RmArgs),
    /// Move or rename a file or directory.
    Mv(cmd::fs::MvArgs),
    /// Create directories.
    Mkdir(cmd::fs::MkdirArgs),
    /// Change permission bits.
    Chmod(cmd::fs::ChmodArgs),
    /// Change owner and group (administrators).
    Chown(cmd::fs::ChownArgs),
    /// Set and show directory tags (storage_group, file_family, ...).
    #[command(subcommand)]
    Tag(cmd::fs::TagCmd),
    /// List tape volumes, or add blank ones (`volumes add`).
    Volumes(cmd::tape::VolumesArgs),
    /// Show a volume and its tape files, or set its state.
    #[command(subcommand)]
    Volume(cmd::tape::VolumeCmd),
    /// List tape drives and what they are doing.
    Drives(cmd::tape::ListArgs),
    /// Take a drive offline or bring it online (administrators).
    #[command(subcommand)]
    Drive(cmd::tape::DriveCmd),
    /// Show the alarms not yet acknowledged (failed writes and reads, bad
    /// checksums, worn volumes, failed drives, dead workers); `--all` too
    /// the acknowledged ones (administrators).
    Alarms(cmd::tape::AlarmsArgs),
    /// Acknowledge an alarm (`alarm ack ID`; administrators).
    #[command(subcommand)]
    Alarm(cmd::tape::AlarmCmd),
    /// List the server's background workers: state, counters, last error
    /// (administrators).
    Workers(cmd::tape::ListArgs),
    /// Show, load or try the aggregation policy.
    #[command(subcommand)]
    Policy(cmd::archive::PolicyCmd),
    /// Open pools and archive jobs; `queue flush` closes pools now.
    Queue(cmd::archive::QueueArgs),
    /// What the cache holds: cached, pinned and purgeable files and bytes.
    Cache(cmd::cache::CacheArgs),
    /// Remove the cache copies of files that are on tape and not pinned
    /// (administrators); a later read stages them back.
    Purge(cmd::cache::PurgeArgs),
    /// Bring files back from tape in one request (`bale stage status ID`,
    /// `bale stage cancel ID`).
    Stage(cmd::stage::StageArgs),
    /// Check the catalog against the cache (missing, short or damaged data,
    /// orphans); `--repair` repairs what can be (administrators).
    Fsck(cmd::cache::FsckArgs),
    /// Re-read and re-checksum copies: a volume's packages, one package,
    /// or the cache; a bad tape copy is marked bad, raises an alarm and is
    /// rewritten from a good copy (administrators).
    Verify(cmd::tape::VerifyArgs),
    /// Rebuild catalog entries from the manifests on tape, offline (the
    /// server stopped): one volume the catalog does not know, or a whole
    /// catalog into an empty data directory or database.
    Recover(cmd::serve::RecoverArgs),
    /// Where files' data is: DISK, TAPE, DISK_AND_TAPE, NONE (empty), LOST, UNAVAILABLE.
    Archiveinfo(cmd::cache::ArchiveInfoArgs),
    /// Keep files in the cache for a while (a named, expiring pin).
    Pin(cmd::cache::PinArgs),
    /// Release pins.
    Unpin(cmd::cache::UnpinArgs),
    /// Show a file's live pins.
    Pins(cmd::cache::PinsArgs),
    /// List recorded packages (tape files).
    Packages(cmd::archive::PackagesArgs),
    /// Show a package and its members.
    #[command(subcommand)]
    Package(cmd::archive::PackageCmd),
    /// Benchmarks against an embedded server.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCmd),
    /// The whole cycle on a throwaway server: write, pack, tape, purge,
    /// stage back, verify, and a report. Start here.
    Demo(cmd::demo::DemoArgs),
}

impl Cli {
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
        Client::new(&self.server, token)
    }
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
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cap_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    // SAFETY: mallopt(3) takes two integers and touches no memory of ours;
    // it runs at the start of main, before any thread of ours exists, so
    // no allocation races with the change of the arena limit.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, cpus as libc::c_int);
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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BALE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
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
        Token(t) => cmd::token::run(&cli.client()?, t).await,
        Put(a) => cmd::transfer::put(&cli.client()?, a).await,
        Get(a) => cmd::transfer::get(&cli.client()?, a).await,
        Ls(a) => cmd::fs::ls(&cli.client()?, a).await,
        Stat(a) => cmd::fs::stat(&cli.client()?, a).await,
        Rm(a) => cmd::fs::rm(&cli.client()?, a).await,
        Mv(a) => cmd::fs::mv(&cli.client()?, a).await,
        Mkdir(a) => cmd::fs::mkdir(&cli.client()?, a).await,
        Chmod(a) => cmd::fs::chmod(&cli.client()?, a).await,
        Chown(a) => cmd::fs::chown(&cli.client()?, a).await,
        Tag(t) => cmd::fs::tag(&cli.client()?, t).await,
        Volumes(a) => cmd::tape::volumes(&cli.client()?, a).await,
        Volume(v) => cmd::tape::volume(&cli.client()?, v).await,
        Drives(a) => cmd::tape::drives(&cli.client()?, a).await,
        Drive(d) => cmd::tape::drive(&cli.client()?, d).await,
        Alarms(a) => cmd::tape::alarms(&cli.client()?, a).await,
        Alarm(a) => cmd::tape::alarm(&cli.client()?, a).await,
        Fsck(a) => cmd::cache::fsck(&cli.client()?, a).await,
        Verify(a) => cmd::tape::verify(&cli.client()?, a).await,
        Workers(a) => cmd::tape::workers(&cli.client()?, a).await,
        Policy(p) => cmd::archive::policy(&cli.client()?, p).await,
        Queue(a) => cmd::archive::queue(&cli.client()?, a).await,
        Packages(a) => cmd::archive::packages(&cli.client()?, a).await,
        Cache(a) => cmd::cache::cache(&cli.client()?, a).await,
        Purge(a) => cmd::cache::purge(&cli.client()?, a).await,
        Archiveinfo(a) => cmd::cache::archive_info(&cli.client()?, a).await,
        Stage(a) => cmd::stage::run(&cli.client()?, a).await,
        Pin(a) => cmd::cache::pin(&cli.client()?, a).await,
        Unpin(a) => cmd::cache::unpin(&cli.client()?, a).await,
        Pins(a) => cmd::cache::pins(&cli.client()?, a).await,
        Package(p) => cmd::archive::package(&cli.client()?, p).await,
    }
}
