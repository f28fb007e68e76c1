//! The audit log: every administrative action (with its result), every
//! refused authorization and every failed authentication, one JSON line
//! each: when, who (and by which credential: a bale token's id, a WLCG
//! token's issuer and subject, never a secret), from where, what, on
//! what, and the result.
//!
//! It goes to its own file (`[auth] audit_log`, appended to with one
//! write per line; a file moved away by logrotate is followed by a new one
//! within seconds) or, with "-", to the server's log under the target
//! `bale::audit`.

use crate::auth::{Principal, Via};
use crate::authz::Action;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How often the file's path is looked at for a rotation.
const REOPEN_CHECK: Duration = Duration::from_secs(5);

/// One line of the audit log.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub time: String,
    /// The user, or "-" when no one authenticated.
    pub who: &'a str,
    /// The credential: "token 0a1b2c3d", "basic 0a1b2c3d", "jwt <iss> <sub>", "local".
    pub via: String,
    pub from: String,
    /// The action's name, or the request ("POST /api/v1/tokens").
    pub action: &'a str,
    pub target: &'a str,
    /// "ok", "failed", "refused" or "unauthenticated".
    pub result: &'a str,
    pub detail: &'a str,
    /// Refusals of the same client left out since its last line (see
    /// [`AuditLog::refused`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub suppressed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The longest a field of a line may be: what a client sends (a path, a
/// user name, a key id echoed in a reason) is cut there.
const FIELD_MAX: usize = 512;

/// `s` cut so that it takes at most `max` bytes in the line (as JSON
/// escapes it: a control character takes six), marked "…".
fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let width = |c: char| match c {
        '"' | '\\' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    };
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += width(c);
        if used > max {
            return format!("{}… ({} bytes)", &s[..i], s.len()).into();
        }
    }
    s.into()
}

/// Refusals and failed logins: each client address may write a burst of
/// `BURST` lines, then `PER_SECOND` a second; what is over is counted and
/// said in its next line, so a flood cannot fill the disk.
const BURST: f64 = 20.0;
const PER_SECOND: f64 = 5.0;
/// Addresses remembered at most (idle ones are forgotten first).
const CLIENTS_MAX: usize = 10_000;

struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

struct Open {
    file: File,
    ino: u64,
    checked: Instant,
}

enum Sink {
    File { path: PathBuf, open: Mutex<Option<Open>> },
    Log,
}

pub struct AuditLog {
    sink: Sink,
    clients: Mutex<std::collections::HashMap<Option<IpAddr>, Bucket>>,
}

fn open_file(path: &Path) -> std::io::Result<Open> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let ino = file.metadata()?.ino();
    Ok(Open {
        file,
        ino,
        checked: Instant::now(),
    })
}

/// The credential of a principal, for the `via` field.
pub fn via(who: &Principal) -> String {
    match &who.via {
        Via::Token => format!("token {}", who.token_id),
        Via::Basic => format!("basic {}", who.token_id),
        Via::Jwt { issuer, subject } => format!("jwt {issuer} {subject}"),
    }
}

impl AuditLog {
    /// The log at `path` (created if missing), or the server's log.
    pub fn open(path: Option<&Path>) -> std::io::Result<AuditLog> {
        Ok(AuditLog {
            clients: Mutex::default(),
            sink: match path {
                None => Sink::Log,
                Some(p) => Sink::File {
                    path: p.to_path_buf(),
                    open: Mutex::new(Some(open_file(p).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("cannot open the audit log {}: {e}", p.display()))
                    })?)),
                },
            },
        })
    }

    /// Writes one line; a failure to write is logged, never the caller's.
    pub fn record(&self, e: &Entry<'_>) {
        let line = match serde_json::to_string(e) {
            Ok(l) => l,
            Err(_) => return,
        };
        metrics::counter!(bale_util::metrics::AUDIT_ENTRIES, "result" => e.result.to_string()).increment(1);
        match &self.sink {
            Sink::Log => tracing::info!(target: "bale::audit", "{line}"),
            Sink::File { path, open } => {
                let mut open = open.lock().expect("audit log");
                let stale = match open.as_ref() {
                    None => true,
                    Some(o) if o.checked.elapsed() >= REOPEN_CHECK => {
                        std::fs::metadata(path).map(|m| m.ino()).ok() != Some(o.ino)
                    }
                    Some(_) => false,
                };
                if stale {
                    match open_file(path) {
                        Ok(o) => *open = Some(o),
                        Err(err) => tracing::error!("cannot open the audit log {}: {err}", path.display()),
                    }
                } else if let Some(o) = open.as_mut() {
                    if o.checked.elapsed() >= REOPEN_CHECK {
                        o.checked = Instant::now();
                    }
                }
                if let Some(o) = open.as_mut() {
                    // One write(2) of the whole line, appended atomically.
                    if let Err(err) = o.file.write_all(format!("{line}\n").as_bytes()) {
                        tracing::error!("cannot write the audit log {}: {err}", path.display());
                        tracing::info!(target: "bale::audit", "{line}");
                    }
                }
            }
        }
    }

    /// An administrative action that was allowed, with its result.
    pub fn action<T, E: std::fmt::Display>(
        &self,
        who: &Principal,
        action: Action,
        target: &str,
        r: &Result<T, E>,
        ok_detail: impl FnOnce(&T) -> String,
    ) {
        let (result, detail) = match r {
            Ok(v) => ("ok", ok_detail(v)),
            Err(e) => ("failed", e.to_string()),
        };
        self.record(&Entry {
            time: now(),
            who: &who.user,
            via: via(who),
            from: from(who.from),
            action: action.name(),
            target,
            result,
            detail: &clip(&detail, FIELD_MAX),
            suppressed: 0,
        });
    }

    /// A request refused (403) to `who`, or not authenticated (401). At
    /// most a burst of lines per client address, then a few a second; the
    /// ones left out are counted in the next (`suppressed`).
    pub fn refused(&self, who: Option<&Principal>, client: Option<IpAddr>, request: &str, detail: &str) {
        let Some(suppressed) = self.admit(client) else {
            metrics::counter!(bale_util::metrics::AUDIT_SUPPRESSED).increment(1);
            return;
        };
        self.record(&Entry {
            time: now(),
            who: &clip(who.map(|p| p.user.as_str()).unwrap_or("-"), FIELD_MAX),
            via: who.map(via).unwrap_or_else(|| "-".into()),
            from: from(client),
            action: &clip(request, FIELD_MAX),
            target: "",
            result: if who.is_some() { "refused" } else { "unauthenticated" },
            detail: &clip(detail, FIELD_MAX),
            suppressed,
        });
    }

    /// Whether `client` may write a line now, and how many of its lines
    /// were left out before this one.
    fn admit(&self, client: Option<IpAddr>) -> Option<u64> {
        let mut clients = self.clients.lock().expect("audit clients");
        let now = Instant::now();
        if clients.len() >= CLIENTS_MAX && !clients.contains_key(&client) {
            clients.retain(|_, b| b.suppressed > 0 || now.duration_since(b.last).as_secs() < 60);
            if clients.len() >= CLIENTS_MAX {
                let lost: u64 = clients.values().map(|b| b.suppressed).sum();
                tracing::warn!("audit: {CLIENTS_MAX} client addresses refused at once; {lost} refusals not written");
                clients.clear();
            }
        }
        let b = clients.entry(client).or_insert(Bucket {
            tokens: BURST,
            last: now,
            suppressed: 0,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * PER_SECOND).min(BURST);
        b.last = now;
        if b.tokens < 1.0 {
            b.suppressed += 1;
            return None;
        }
        b.tokens -= 1.0;
        Some(std::mem::take(&mut b.suppressed))
    }

    /// An action run on the server's machine, not over the network
    /// (`bale recover`).
    pub fn local(&self, action: &str, target: &str, result: &str, detail: &str) {
        let user = std::env::var("USER").unwrap_or_else(|_| "-".into());
        self.record(&Entry {
            time: now(),
            who: &user,
            via: "local".into(),
            from: "local".into(),
            action,
            target,
            result,
            detail: &clip(detail, FIELD_MAX),
            suppressed: 0,
        });
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn from(a: Option<IpAddr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_and_follow_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(Some(&path)).unwrap();
        let who = Principal::with_token("alice", "phys", true, "0a1b2c3d");
        let r: Result<u32, String> = Ok(7);
        log.action(&who, Action::TokenCreate, "user bob", &r, |n| format!("made {n}"));
        log.refused(None, Some("192.0.2.1".parse().unwrap()), "GET /x", "invalid token");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["action"], "token-create");
        assert_eq!(lines[0]["via"], "token 0a1b2c3d");
        assert_eq!(lines[0]["detail"], "made 7");
        assert_eq!(lines[1]["result"], "unauthenticated");
        assert_eq!(lines[1]["from"], "192.0.2.1");
        // Rotated away: the next line goes to a new file at the path.
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        if let Sink::File { open, .. } = &log.sink {
            open.lock().unwrap().as_mut().unwrap().checked = Instant::now() - REOPEN_CHECK;
        }
        log.refused(None, None, "GET /y", "no token");
        assert!(std::fs::read_to_string(&path).unwrap().contains("GET /y"));
    }

    #[test]
    fn a_flood_of_refusals_is_bounded_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(Some(&path)).unwrap();
        let flood: Option<IpAddr> = Some("192.0.2.9".parse().unwrap());
        let long = "\u{1}".repeat(10_000);
        for _ in 0..1000 {
            log.refused(None, flood, &format!("GET /{long}"), &long);
        }
        // Another client is still heard.
        log.refused(None, Some("192.0.2.10".parse().unwrap()), "GET /z", "bad token");
        let lines = || -> Vec<serde_json::Value> {
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let got = lines();
        let from_flood = got.iter().filter(|l| l["from"] == "192.0.2.9").count();
        assert!((20..=22).contains(&from_flood), "{from_flood} lines");
        assert!(got.iter().any(|l| l["from"] == "192.0.2.10"));
        for l in &got {
            assert!(l["action"].as_str().unwrap().len() < 600 && l["detail"].as_str().unwrap().len() < 600);
        }
        assert!(std::fs::metadata(&path).unwrap().len() < 40_000, "bounded");
        // Once the bucket refills, the next line says how many were left out.
        if let Some(b) = log.clients.lock().unwrap().get_mut(&flood) {
            b.last = Instant::now() - Duration::from_secs(10);
        }
        log.refused(None, flood, "GET /again", "bad token");
        let last = lines().pop().unwrap();
        assert_eq!(last["action"], "GET /again");
        assert!(last["suppressed"].as_u64().unwrap() >= 970, "{last}");
    }
}
