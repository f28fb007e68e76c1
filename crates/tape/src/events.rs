//! The event log: what the drives did, for operators and for tests that
//! assert on order.

use bale_util::Timestamp;
use std::collections::VecDeque;

/// What happened, for operators and for tests that assert on order.
#[derive(Clone, Debug)]
pub struct Event {
    pub seq: u64,
    pub time: Timestamp,
    pub drive: String,
    pub volume: String,
    /// mount, unload, write, read, flush, full, error, offline, retry.
    pub kind: String,
    pub tape_file: Option<u32>,
    pub bytes: u64,
    pub detail: String,
}

const EVENTS_KEPT: usize = 100_000;

/// The last [`EVENTS_KEPT`] events.
#[derive(Default)]
pub(crate) struct EventLog {
    events: VecDeque<Event>,
    seq: u64,
}

impl EventLog {
    pub fn push(&mut self, drive: &str, volume: &str, kind: &str, tape_file: Option<u32>, bytes: u64, detail: String) {
        self.seq += 1;
        let e = Event {
            seq: self.seq,
            time: Timestamp::now(),
            drive: drive.to_string(),
            volume: volume.to_string(),
            kind: kind.to_string(),
            tape_file,
            bytes,
            detail,
        };
        tracing::debug!(drive = %e.drive, volume = %e.volume, kind = %e.kind, tape_file = ?e.tape_file, "{}", e.detail);
        if self.events.len() >= EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    /// Events after `after` (a previous event's `seq`), oldest first.
    pub fn after(&self, after: u64) -> Vec<Event> {
        self.events.iter().filter(|e| e.seq > after).cloned().collect()
    }
}
