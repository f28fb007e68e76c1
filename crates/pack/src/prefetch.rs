//! Reading members ahead of the writer.
//!
//! A package of small files is limited by the reads, not by the tape: a
//! cold small file costs a seek or more, and one reader in tar order waits
//! for each in turn. [`Plan::write_ahead`] keeps several reads in flight on
//! reader threads, in member order, within a byte window, so the stream to
//! the drive never holds more than the window in memory and never waits
//! for a read that could have been issued earlier. Members above
//! `whole_max` are opened ahead and then streamed by the writer itself (the
//! kernel's read-ahead keeps a large sequential read busy).

use crate::{ManifestMember, PackError, Plan, Written};
use std::io::{self, Cursor, Read, Write};
use std::sync::{Condvar, Mutex};

/// How far ahead of the writer members are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadAhead {
    /// Reader threads: reads in flight at once.
    pub threads: usize,
    /// Most bytes read ahead and not yet written.
    pub window: u64,
    /// Members up to this size are read whole ahead; larger ones are only
    /// opened ahead.
    pub whole_max: u64,
}

impl Default for ReadAhead {
    fn default() -> Self {
        ReadAhead {
            threads: 8,
            window: 64 << 20,
            whole_max: 8 << 20,
        }
    }
}

enum Slot<R> {
    Pending,
    Whole(Vec<u8>),
    Stream(R),
    Failed(io::Error),
    Taken,
}

struct Shared<R> {
    slots: Vec<Slot<R>>,
    /// The next member a reader claims.
    next_claim: usize,
    /// The member the writer waits for next.
    next_take: usize,
    /// Bytes read ahead and not yet taken.
    inflight: u64,
    /// Readers waiting for room in the window.
    waiting: usize,
    abort: bool,
}

/// A member's data as the writer gets it.
pub enum Prefetch<R> {
    Whole(Cursor<Vec<u8>>),
    Stream(R),
}

impl<R: Read> Read for Prefetch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Prefetch::Whole(c) => c.read(buf),
            Prefetch::Stream(r) => r.read(buf),
        }
    }
}

/// Stops the readers when the writer is done or gives up, waking every
/// waiter on both condition variables.
struct Abort<'a, R> {
    state: &'a Mutex<Shared<R>>,
    waits: [&'a Condvar; 2],
}

impl<R> Drop for Abort<'_, R> {
    fn drop(&mut self) {
        lock(self.state).abort = true;
        for cv in self.waits {
            cv.notify_all();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Plan {
    /// [`Plan::write`] with the members read ahead on `ahead.threads`
    /// threads. `open(member)` is called on those threads, in member order.
    pub fn write_ahead<W, R, F>(&self, out: &mut W, ahead: ReadAhead, open: F) -> Result<Written, PackError>
    where
        W: Write,
        R: Read + Send,
        F: Fn(&ManifestMember) -> io::Result<R> + Sync,
    {
        let members = &self.manifest().members;
        let cost = |i: usize| {
            let size = members[i].meta.size;
            if size <= ahead.whole_max {
                size
            } else {
                0
            }
        };
        let state = Mutex::new(Shared {
            slots: (0..members.len()).map(|_| Slot::Pending).collect(),
            next_claim: 0,
            next_take: 0,
            inflight: 0,
            waiting: 0,
            abort: false,
        });
        // The writer waits on `ready` for its next member; readers wait on
        // `room` for the window (or for their member to be the next).
        let (ready, room) = (Condvar::new(), Condvar::new());
        std::thread::scope(|scope| {
            for _ in 0..ahead.threads.clamp(1, members.len().max(1)) {
                scope.spawn(|| loop {
                    let i = {
                        let mut st = lock(&state);
                        if st.abort || st.next_claim >= members.len() {
                            return;
                        }
                        let i = st.next_claim;
                        st.next_claim += 1;
                        // The member the writer needs next always goes.
                        while !(st.abort || i == st.next_take || st.inflight + cost(i) <= ahead.window) {
                            st.waiting += 1;
                            st = room.wait(st).unwrap_or_else(|p| p.into_inner());
                            st.waiting -= 1;
                        }
                        if st.abort {
                            return;
                        }
                        st.inflight += cost(i);
                        i
                    };
                    let m = &members[i];
                    let slot = match open(m) {
                        Ok(r) if m.meta.size <= ahead.whole_max => {
                            let mut data = Vec::with_capacity(m.meta.size as usize);
                            match r.take(m.meta.size).read_to_end(&mut data) {
                                Ok(_) => Slot::Whole(data),
                                Err(e) => Slot::Failed(e),
                            }
                        }
                        Ok(r) => Slot::Stream(r),
                        Err(e) => Slot::Failed(e),
                    };
                    let wake = {
                        let mut st = lock(&state);
                        st.slots[i] = slot;
                        i == st.next_take
                    };
                    if wake {
                        ready.notify_one();
                    }
                });
            }
            let _stop = Abort {
                state: &state,
                waits: [&room, &ready],
            };
            self.write(out, |i, _| {
                let mut st = lock(&state);
                loop {
                    match std::mem::replace(&mut st.slots[i], Slot::Taken) {
                        Slot::Pending => {
                            st.slots[i] = Slot::Pending;
                            st = ready.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                        slot => {
                            st.next_take = i + 1;
                            st.inflight -= cost(i);
                            let waiting = st.waiting > 0;
                            drop(st);
                            if waiting {
                                room.notify_all();
                            }
                            return match slot {
                                Slot::Whole(d) => Ok(Prefetch::Whole(Cursor::new(d))),
                                Slot::Stream(r) => Ok(Prefetch::Stream(r)),
                                Slot::Failed(e) => Err(e),
                                Slot::Pending | Slot::Taken => unreachable!("member {i} taken twice"),
                            };
                        }
                    }
                }
            })
        })
    }
}
