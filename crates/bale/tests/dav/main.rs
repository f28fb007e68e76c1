//! WebDAV as clients expect it: listings checked by real clients, litmus,
//! PUT as RFC 9110 says with write-once areas, conditional requests,
//! PROPPATCH and dead properties, the client's modification times,
//! quotas per storage group. One module per part.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod conditional;
mod listing;
mod litmus;
mod props;
mod quota;
mod writes;

use reqwest::Method;

pub fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

/// A client tool, required in CI (where .ci/run installs it), optional elsewhere.
pub fn tool(name: &'static str) -> Option<&'static str> {
    common::installed(name).then_some(name)
}

/// rclone's arguments for bale as an ownCloud server (X-OC-Mtime, and
/// modification times compared rather than sizes alone).
pub fn owncloud(s: &common::Server) -> Vec<String> {
    [
        "--webdav-url",
        &s.url,
        "--webdav-bearer-token",
        &s.token,
        "--webdav-vendor",
        "owncloud",
    ]
    .map(String::from)
    .to_vec()
}
