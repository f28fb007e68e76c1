//! `bale bench`: benchmarks that drive a real `bale serve` and measure it
//! against baselines taken in the same run on the same disk. One file per
//! bench; `common` holds what they share (the server, scratch directories,
//! drive toggling); nothing here imports a bench back.

mod aggregate;
mod catalog;
pub(crate) mod common;
mod ingest;
mod intake;
mod metrics;
mod pack;
mod restore;
mod tape;
mod unpack;

use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Files/s for small files from concurrent clients and MB/s for large files.
    Ingest(ingest::IngestArgs),
    /// Modelled tape efficiency of files written straight to tape, by size.
    Tape(tape::TapeArgs),
    /// Packing throughput against `tar -cf` of the same cached files.
    Pack(pack::PackArgs),
    /// Modelled tape efficiency of small files aggregated and written direct.
    Aggregate(aggregate::AggregateArgs),
    /// Bulk requests taken in: a 100,000-file stage request, its polls, archiveinfo of 10,000 paths.
    Intake(intake::IntakeArgs),
    /// The Mu2e restore: 9,700 files in 28 packages on one volume, one bulk request against one per file.
    Restore(restore::RestoreArgs),
    /// Unpacking a package into the cache against `tar -xf` and `sync`.
    Unpack(unpack::UnpackArgs),
    /// The catalog at scale: 10 million files loaded in bulk, stat latency, a 100,000-entry listing, RSS.
    Catalog(catalog::CatalogArgs),
    /// A Prometheus scrape of /metrics on a library of 1,000 volumes and 100 drives, p50/p99 of 100.
    Metrics(metrics::MetricsArgs),
}

pub async fn run(cmd: &BenchCmd) -> Result<ExitCode> {
    match cmd {
        BenchCmd::Ingest(a) => ingest::ingest(a).await,
        BenchCmd::Tape(a) => tape::run(a).await,
        BenchCmd::Pack(a) => pack::run(a).await,
        BenchCmd::Aggregate(a) => aggregate::run(a).await,
        BenchCmd::Intake(a) => intake::run(a).await,
        BenchCmd::Restore(a) => restore::run(a).await,
        BenchCmd::Unpack(a) => unpack::run(a).await,
        BenchCmd::Catalog(a) => catalog::run(a).await,
        BenchCmd::Metrics(a) => metrics::run(a).await,
    }
}
