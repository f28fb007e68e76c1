//! bale's tape library.
//!
//! - [`media`]: media profiles (LTO-8, LTO-9, LTO-10, T10000D, or the
//!   config's own) and their scaling for benchmarks.
//! - [`backend`]: the volume backend trait and its filesystem
//!   implementations: emulated volumes with a timing model, and existing
//!   directories (LTFS) with real timing.
//! - [`TapeSystem`]: the library model (drives, robot, volumes and their
//!   states and wear) and the scheduler that turns archive jobs and read
//!   requests into mounts, locates, writes and reads, charging modelled
//!   seconds to every drive and volume.
//!
//! - [`members`]: the [`MemberSource`] the server injects: the members of a
//!   job with their paths, and their data (the tape crate knows neither
//!   namespace paths nor the cache).
//!
//! Layering: uses the catalog (volumes, packages, jobs are catalog rows)
//! and the package format.

pub mod backend;
pub mod config;
pub mod media;
pub mod members;
mod system;

pub use config::{BackendKind, FileMarks, LibraryConfig, TapeConfig};
pub use media::MediaProfile;
pub use members::{member_meta, CatalogMembers, MemberSource};
pub use system::{
    Charge, DriveView, Event, Fault, LibraryView, ReadDone, ReadRequest, TapeError, TapeSystem, VolumeView,
};
