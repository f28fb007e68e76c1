//! Operating bale (issue 24): health and readiness probes. One module per
//! part.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod cache_view;
mod columns;
mod health;
mod metrics;
mod systemd;
mod ui;
