//! One module per command group.

pub mod archive;
pub mod bench;
pub mod cache;
pub mod demo;
pub mod fs;
pub mod serve;
pub mod stage;
pub mod tape;
pub mod token;
pub mod transfer;

pub(crate) use bale_util::human::plural;
