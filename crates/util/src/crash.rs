//! Crash points: named places in the narrow windows of bale's work (after
//! a tape write and before its catalog commit, between unpacking a package
//! and recording it, in the middle of a purge, ...) where the crash harness
//! has the server die as if its power were pulled from under the process.
//!
//! A point does nothing unless the process was started with
//! `BALE_CRASH_AT=<name>:<n>`: then the `n`-th time the point named `name`
//! is reached (from 1), the process sends itself SIGKILL: no destructor,
//! no flush, no reply, exactly what `kill -9` from outside does, but at
//! an instant no outside timer can hit. Unarmed, a point costs one load of
//! an initialised `OnceLock`.
//!
//! Every point is listed in [`POINTS`] so that the harness can pick among
//! them from its seed.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Every crash point, with where it is.
pub const POINTS: &[(&str, &str)] = &[
    ("put.committed", "a PUT's catalog row is committed, its reply not sent"),
    (
        "pool.closed",
        "a pool's archive job is committed, not yet queued for a drive",
    ),
    ("tape.written", "a package is on tape, its file mark not yet written"),
    ("tape.flushed", "tape files are marked, not yet recorded in the catalog"),
    (
        "tape.recorded",
        "tape files are recorded, the drive's state not updated",
    ),
    (
        "stage.unpacked",
        "a staged package's members are verified in the stage area, not yet in the cache",
    ),
    (
        "stage.promoted",
        "staged members are in the cache, not yet marked cached",
    ),
    (
        "purge.marked",
        "purged files are marked in the catalog, their data not yet removed",
    ),
    ("stage.accepted", "a stage request is recorded, its reply not sent"),
    (
        "copy.queued",
        "a tape copy is recorded and the next copy's job committed, not yet handed to a drive",
    ),
    (
        "settle.synced",
        "inline files' cache copies are synced, not yet settled",
    ),
];

struct Armed {
    name: String,
    at: u32,
    hits: AtomicU32,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var("BALE_CRASH_AT").ok()?;
            let (name, at) = v.rsplit_once(':').unwrap_or((v.as_str(), "1"));
            let at = at.parse().unwrap_or(1).max(1);
            if !POINTS.iter().any(|(p, _)| *p == name) {
                tracing::warn!("BALE_CRASH_AT names no crash point: {name:?}");
            }
            tracing::warn!("crash point armed: {name}, hit {at}");
            Some(Armed {
                name: name.to_string(),
                at,
                hits: AtomicU32::new(0),
            })
        })
        .as_ref()
}

/// Dies here if this is the armed point's `n`-th hit.
pub fn point(name: &'static str) {
    debug_assert!(POINTS.iter().any(|(p, _)| *p == name), "unlisted crash point {name}");
    let Some(a) = armed() else { return };
    if a.name == name && a.hits.fetch_add(1, Ordering::SeqCst) + 1 == a.at {
        eprintln!("bale: crash point {name} reached (hit {}): SIGKILL", a.at);
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; should it not arrive at once, stop here.
        std::process::abort();
    }
}
