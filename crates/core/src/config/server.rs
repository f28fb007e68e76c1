//! `[server]`: where the HTTP server listens and the bounds of every
//! connection and request, so that no client can hold the server's
//! sockets, memory or time.

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The HTTP server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server listens on. Port 0 picks a free port.
    pub listen: String,
    /// Seconds a client may take to send a request's headers, from their
    /// first byte.
    pub header_timeout_s: u64,
    /// Seconds a connection may stay open without a request (keep-alive).
    pub idle_timeout_s: u64,
    /// Seconds a request body may go without a byte, or a response without
    /// the client taking one, before the connection is closed; an upload
    /// cut off this way keeps nothing.
    pub body_timeout_s: u64,
    /// Most connections at once; one more is answered 503 at once. Kept
    /// below the process's open-file limit.
    pub max_connections: usize,
    /// Largest body of an ordinary JSON request (413 past it).
    pub json_body_limit: ByteSize,
    /// Largest body of a bulk request (stage, archiveinfo, release,
    /// cancel): a path costs 30 to 100 bytes of JSON.
    pub bulk_body_limit: ByteSize,
    /// Most files one user may have open in stage requests (submitted or
    /// being read); a request past it is answered 429.
    pub max_stage_files_per_user: u64,
    /// TLS: the PEM certificate chain (the server's first). With
    /// `tls_key`, the server speaks https only; either file replaced on
    /// disk is loaded again without a restart.
    pub tls_cert: Option<PathBuf>,
    /// TLS: the PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// The URL clients reach this server by (`https://tape.example.org`),
    /// when it is not the one they connect to (a proxy in front): every
    /// absolute URL bale emits starts with it. No path, query or fragment.
    pub public_url: Option<String>,
    /// Addresses or networks (`10.0.0.5`, `10.1.0.0/16`) of proxies whose
    /// `Forwarded`, `X-Forwarded-Proto`, `X-Forwarded-Host` and
    /// `X-Forwarded-For` are believed; from anyone else they are ignored.
    pub trusted_proxies: Vec<String>,
    /// Addresses or networks that may read `/metrics` without a token
    /// (e.g. `["127.0.0.1", "::1"]` for a Prometheus on this host); anyone
    /// else needs one (any user's). What counts is the connection's own
    /// peer, and a request with forwarding headers always needs a token:
    /// a proxy on an open address does not open the metrics to its clients.
    pub metrics_open_to: Vec<String>,
    /// One line per HTTP request in the log (target `bale::access`):
    /// method, path, status, bytes, duration, user, request id.
    pub access_log: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8742".to_string(),
            header_timeout_s: 20,
            idle_timeout_s: 120,
            body_timeout_s: 60,
            max_connections: 4096,
            json_body_limit: ByteSize::mib(2),
            bulk_body_limit: ByteSize::mib(64),
            max_stage_files_per_user: 1_000_000,
            tls_cert: None,
            tls_key: None,
            public_url: None,
            trusted_proxies: Vec::new(),
            metrics_open_to: Vec::new(),
            access_log: true,
        }
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("header_timeout_s", self.header_timeout_s),
            ("idle_timeout_s", self.idle_timeout_s),
            ("body_timeout_s", self.body_timeout_s),
            ("max_connections", self.max_connections as u64),
            ("max_stage_files_per_user", self.max_stage_files_per_user),
        ] {
            if v == 0 {
                return Err(format!("server.{key} must be at least 1"));
            }
        }
        for (key, v) in [
            ("json_body_limit", self.json_body_limit),
            ("bulk_body_limit", self.bulk_body_limit),
        ] {
            if v.as_u64() < 1024 {
                return Err(format!("server.{key} is {v}; it must be at least 1 KiB"));
            }
            if v.as_u64() > 1 << 30 {
                return Err(format!("server.{key} is {v}; it can be at most 1 GiB"));
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err("server.tls_cert is set but server.tls_key is not; TLS needs both".into()),
            (None, Some(_)) => return Err("server.tls_key is set but server.tls_cert is not; TLS needs both".into()),
            _ => {}
        }
        if let Some(u) = &self.public_url {
            public_origin(u)?;
        }
        self.trusted_proxy_nets()?;
        self.metrics_open_nets()?;
        Ok(())
    }

    /// The scheme and authority of `public_url`, if set.
    pub fn public_origin(&self) -> Option<(String, String)> {
        self.public_url.as_deref().and_then(|u| public_origin(u).ok())
    }

    /// `trusted_proxies` as networks (an address is a network of one).
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, String> {
        nets("trusted_proxies", &self.trusted_proxies)
    }

    /// `metrics_open_to` as networks.
    pub fn metrics_open_nets(&self) -> Result<Vec<ipnet::IpNet>, String> {
        nets("metrics_open_to", &self.metrics_open_to)
    }
}

impl ServerConfig {
    /// Whether the server speaks TLS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some()
    }
}

/// A list of addresses or networks (an address is a network of one).
fn nets(key: &str, list: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    list.iter()
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("server.{key}: {p:?} is not an IP address or network (10.0.0.5, 10.1.0.0/16, ::1)")
                })
        })
        .collect()
}

/// `https://host[:port]` into its scheme and authority (lower case).
fn public_origin(u: &str) -> Result<(String, String), String> {
    let bad = |why: &str| format!("server.public_url {u:?} {why}; write it as https://host or https://host:port");
    let (scheme, rest) = u.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad("is not http or https"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(bad("has no host"));
    }
    if authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad("has a path, query, user or space (bale is served at the root)"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, _)) if h.contains(':') && !h.starts_with('[') => return Err(bad("has an IPv6 address without [ ]")),
        Some((h, p)) if !authority.ends_with(']') => (h, Some(p)),
        Some(_) => (authority, None),
        None => (authority, None),
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(bad("has a port that is not a number up to 65535"));
    }
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c)) {
        return Err(bad("does not have a valid host"));
    }
    Ok((scheme, authority.to_ascii_lowercase()))
}
