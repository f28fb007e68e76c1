//! bale's tape library.
//!
//! - [`media`]: media profiles (LTO-8, LTO-9, LTO-10, T10000D, or the
//!   config's own), their scaling for benchmarks, and the kinds of
//!   modelled work ([`Charge`]).
//! - [`backend`]: the volume backend trait and its filesystem
//!   implementations: emulated volumes with a timing model, and existing
//!   directories (LTFS) with real timing. Wrappers add behaviour around a
//!   backend: real-time pacing (`pace`) and fault injection ([`fault`]).
//! - [`TapeSystem`] (`system`): the libraries, start-up reconciliation,
//!   the entry points for jobs, reads and faults; `views`: what operators
//!   see and change (volumes, drives, libraries, events).
//! - `schedule`: the scheduling decision, pure (no I/O, no clock): which
//!   drive writes which job to which volume, or reads which volume's batch.
//! - `drive`: one background worker per drive and its mechanics (mount,
//!   locate, unload, the timing model, failures); `write`: the package
//!   write and its commit; `read`: reading tape files in tape order.
//! - [`members`]: the [`MemberSource`] the server injects: the members of a
//!   job with their paths, and their data (the tape crate knows neither
//!   namespace paths nor the cache).
//!
//! Layering: uses the catalog (volumes, packages, jobs are catalog rows)
//! and the package format.

pub mod backend;
pub mod config;
mod drive;
mod estimate;
mod events;
pub mod fault;
pub mod media;
pub mod members;
mod pace;
mod read;
pub mod scan;
mod schedule;
mod state;
mod system;
mod views;
mod write;

use bale_catalog::CatalogError;

pub use config::{BackendKind, FileMarks, LibraryConfig, TapeConfig};
pub use estimate::{PendingPackage, ReadEstimate};
pub use events::Event;
pub use fault::Fault;
pub use media::{Charge, MediaProfile};
pub use members::{member_meta, BadMember, CatalogMembers, MemberSink, MemberSource};
pub use state::{ReadDone, ReadRequest};
pub use system::TapeSystem;
pub use views::{DriveView, LibraryView, VolumeView};

#[derive(Debug, thiserror::Error)]
pub enum TapeError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
    /// A filesystem is full (the cache a stage writes into, or the one
    /// under the library): nothing is wrong with the tape; retry once
    /// space is freed.
    #[error("{0}")]
    NoSpace(String),
    /// The tape file was read but its data does not check out (the
    /// package's or a member's adler32, the size, the tar format) on every
    /// attempt: the copy is bad.
    #[error("{0}")]
    BadData(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

pub type Result<T, E = TapeError> = std::result::Result<T, E>;
