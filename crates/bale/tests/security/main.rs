//! Safe access (issue 22): TLS with real clients, the public URL behind a
//! proxy, WLCG JWT tokens, HTTP Basic, the authorization table walked over
//! HTTP, and the audit log. One module per part; `pki` makes the test CA
//! and the test token issuer at run time.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod audit;
mod authz_walk;
mod basic;
mod jwt;
mod pki;
mod tls;
