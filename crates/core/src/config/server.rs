//! `[server]`: where the HTTP server listens and the bounds of every
//! connection and request, so that no client can hold the server's
//! sockets, memory or time.

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

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
        Ok(())
    }
}
