//! bale's services: configuration, the namespace operations and their
//! permission rules, tokens, and the group commit that makes many small
//! writes cheap while acknowledging each only once it is durable.
//!
//! Layering: this crate uses the catalog and the cache and is used by the
//! API. It knows nothing of HTTP.

mod access;
mod account;
pub mod admin;
pub mod archive;
pub mod audit;
pub mod auth;
pub mod authz;
mod committer;
pub mod conditions;
pub mod config;
pub mod dashboard;
mod error;
mod events;
pub mod fsck;
pub mod history;
mod inventory;
mod namespace;
pub mod perms;
mod pins;
mod purge;
mod put;
pub mod quota;
pub mod recover;
mod recovery;
mod repair;
mod reserved;
pub mod samples;
mod service;
mod settle;
mod stager;
mod staging;
pub mod status;
pub mod verify;
mod workers;

pub use auth::Principal;
pub use config::Config;
pub use error::{Error, Result};
pub use inventory::{ArchiveStatus, Locality, MemberView, PackageView};
pub use namespace::{Listing, MkdirOptions};
pub use put::PutOptions;
pub use reserved::RESERVED_NAMES;
pub use service::Service;
pub use staging::StageProgress;

pub use bale_cache as cache;
pub use bale_catalog as catalog;
pub use bale_tape as tape;
