//! Background workers: one shape for all of bale's background work (the
//! model is Garage's `util/background/worker.rs`).
//!
//! A [`Worker`] does one unit of work per call of [`Worker::work`] and says
//! what it wants next ([`State`]): go on at once (`Busy`), go on after a
//! pause (`Throttled`), wait for work (`Idle`, then
//! [`Worker::wait_for_work`]) or end (`Done`). The runner around it keeps
//! what operators see ([`WorkerInfo`]: state, calls, errors, the last error,
//! the worker's own counters), backs off on repeated errors, and notices a
//! worker that panics: it shows as `dead` and the `on_dead` hook (an alarm,
//! in the server) is told.
//!
//! Shutdown is one call ([`Background::shutdown`]) with a fixed order and a
//! deadline: workers stop phase by phase (a phase is a small number given
//! at spawn; lower phases stop first), each told by its stop flag, which it
//! sees in `work` and uses to finish up (drain, flush, release). A worker is
//! finished when it returns `Done`, or `Idle` once stopping. What has not
//! finished by the deadline is aborted and named in the report.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use crate::Timestamp;

/// What a worker wants after a call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum State {
    /// More work is ready: call `work` again now.
    Busy,
    /// More work, but not before this pause (rate limits, retries).
    Throttled(Duration),
    /// Nothing to do: call `wait_for_work` (or, when stopping, end).
    Idle,
    /// Finished for good.
    Done,
}

/// A worker's own view of itself, refreshed after every call.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// What it is doing, in words ("writing job 12 to L00003").
    pub progress: Option<String>,
    /// Counters of its own (files committed, tape files written, ...).
    pub counters: BTreeMap<String, u64>,
}

/// A piece of background work.
#[async_trait::async_trait]
pub trait Worker: Send + 'static {
    /// Unique among the workers of a server: "committer", "drive lib1-d1".
    fn name(&self) -> String;

    /// Counters and progress for `bale workers`.
    fn status(&self) -> Status {
        Status::default()
    }

    /// One unit of work. `stop` is true once shutdown has reached this
    /// worker's phase: finish what must be finished and return `Done` (or
    /// `Idle`). An error is counted, kept as the last error, and the call
    /// is repeated after a backoff.
    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<State, String>;

    /// Waits until there may be work; called only after `Idle`. Returns the
    /// next state (`Busy` to call `work`, `Done` to end). Shutdown does not
    /// wait for it: the runner calls `work` at once when told to stop.
    async fn wait_for_work(&mut self) -> State;
}

/// What `bale workers` shows of a worker.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerInfo {
    pub name: String,
    /// Shutdown phase: lower phases stop first.
    pub phase: u8,
    /// busy, throttled, idle, stopping, done, dead (panicked) or aborted
    /// (did not finish by the shutdown deadline).
    pub state: &'static str,
    pub started: Timestamp,
    /// Calls of `work` so far.
    pub calls: u64,
    /// Failed calls so far, and how many of the last calls in a row failed.
    pub errors: u64,
    pub consecutive_errors: u32,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    #[serde(flatten)]
    pub status: Status,
}

/// Told when a worker panics: its name and the panic's message.
pub type OnDead = Arc<dyn Fn(&str, &str) + Send + Sync>;

struct Entry {
    info: WorkerInfo,
    /// The fault point: the worker panics before its next call.
    kill: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    abort: AbortHandle,
}

#[derive(Default)]
struct Shared {
    entries: Vec<Entry>,
    on_dead: Option<OnDead>,
    stopping: bool,
}

/// The runner of every background worker of a server.
#[derive(Clone, Default)]
pub struct Background {
    shared: Arc<Mutex<Shared>>,
}

/// A handle that spawns workers into one phase (given to the parts that
/// own workers, e.g. the tape system for its drives).
#[derive(Clone)]
pub struct Spawner {
    bg: Background,
    phase: u8,
}

impl Spawner {
    pub fn spawn(&self, worker: impl Worker) {
        self.bg.spawn(self.phase, worker);
    }
}

/// Longest pause between retries of a failing worker.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn backoff(consecutive: u32) -> Duration {
    let secs = 1u64 << consecutive.saturating_sub(1).min(6);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

impl Background {
    pub fn new() -> Background {
        Background::default()
    }

    /// Sets what is told of a worker that panics (the server raises an alarm).
    pub fn on_dead(&self, hook: OnDead) {
        self.shared.lock().unwrap().on_dead = Some(hook);
    }

    /// A spawner for `phase`.
    pub fn spawner(&self, phase: u8) -> Spawner {
        Spawner {
            bg: self.clone(),
            phase,
        }
    }

    /// Starts `worker` in `phase`. Must be called inside a tokio runtime.
    pub fn spawn(&self, phase: u8, worker: impl Worker) {
        let name = worker.name();
        let (stop_tx, stop_rx) = watch::channel(false);
        let kill = Arc::new(AtomicBool::new(false));
        let mut shared = self.shared.lock().unwrap();
        if shared.stopping {
            let _ = stop_tx.send(true);
        }
        let inner = tokio::spawn(run(worker, self.shared.clone(), name.clone(), stop_rx, kill.clone()));
        let abort = inner.abort_handle();
        let me = self.shared.clone();
        let monitor_name = name.clone();
        let task = tokio::spawn(async move {
            let outcome = inner.await;
            let panic = match outcome {
                Ok(()) => None,
                Err(e) if e.is_panic() => {
                    let p = e.into_panic();
                    Some(
                        p.downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic without a message".into()),
                    )
                }
                Err(_) => None, // aborted: marked by shutdown
            };
            if let Some(msg) = panic {
                let hook = {
                    let mut s = me.lock().unwrap();
                    if let Some(e) = s.entries.iter_mut().find(|e| e.info.name == monitor_name) {
                        e.info.state = "dead";
                        e.info.errors += 1;
                        e.info.last_error = Some(format!("panicked: {msg}"));
                        e.info.last_error_at = Some(Timestamp::now());
                    }
                    s.on_dead.clone()
                };
                tracing::error!("background worker {monitor_name} died: {msg}");
                if let Some(h) = hook {
                    h(&monitor_name, &msg);
                }
            }
        });
        shared.entries.push(Entry {
            info: WorkerInfo {
                name,
                phase,
                state: "busy",
                started: Timestamp::now(),
                calls: 0,
                errors: 0,
                consecutive_errors: 0,
                last_error: None,
                last_error_at: None,
                status: Status::default(),
            },
            kill,
            stop: stop_tx,
            task: Some(task),
            abort,
        });
    }

    /// Every worker, in the order they were started.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.shared
            .lock()
            .unwrap()
            .entries
            .iter()
            .map(|e| e.info.clone())
            .collect()
    }

    /// The fault point: `name` panics before its next call (or at once if
    /// it waits for work). Returns false if there is no such live worker.
    pub fn kill(&self, name: &str) -> bool {
        let s = self.shared.lock().unwrap();
        match s.entries.iter().find(|e| e.info.name == name && e.task.is_some()) {
            Some(e) if !matches!(e.info.state, "dead" | "done" | "aborted") => {
                e.kill.store(true, Ordering::SeqCst);
                // Wakes a waiting worker through the stop channel's version
                // without setting the flag.
                e.stop.send_modify(|_| {});
                true
            }
            _ => false,
        }
    }

    /// Stops every worker, phase by phase, within `deadline` in all.
    /// Returns the names of the workers aborted at the deadline.
    pub async fn shutdown(&self, deadline: Duration) -> Vec<String> {
        let until = tokio::time::Instant::now() + deadline;
        let phases: Vec<u8> = {
            let mut s = self.shared.lock().unwrap();
            s.stopping = true;
            let mut p: Vec<u8> = s.entries.iter().map(|e| e.info.phase).collect();
            p.sort_unstable();
            p.dedup();
            p
        };
        let mut aborted = Vec::new();
        for phase in phases {
            let tasks: Vec<(String, JoinHandle<()>)> = {
                let mut s = self.shared.lock().unwrap();
                s.entries
                    .iter_mut()
                    .filter(|e| e.info.phase == phase)
                    .filter_map(|e| {
                        let _ = e.stop.send(true);
                        e.task.take().map(|t| (e.info.name.clone(), t))
                    })
                    .collect()
            };
            for (name, task) in tasks {
                if tokio::time::timeout_at(until, task).await.is_err() {
                    aborted.push(name);
                }
            }
        }
        if !aborted.is_empty() {
            let mut s = self.shared.lock().unwrap();
            for e in s.entries.iter_mut() {
                if aborted.contains(&e.info.name) {
                    e.abort.abort();
                    e.info.state = "aborted";
                }
            }
            tracing::error!(
                "shutdown deadline of {deadline:?} passed: aborted {}",
                aborted.join(", ")
            );
        }
        aborted
    }
}

fn update(shared: &Mutex<Shared>, name: &str, f: impl FnOnce(&mut WorkerInfo)) {
    let mut s = shared.lock().unwrap();
    if let Some(e) = s.entries.iter_mut().find(|e| e.info.name == name) {
        f(&mut e.info);
    }
}

fn state_name(s: State, stopping: bool) -> &'static str {
    match s {
        _ if stopping => "stopping",
        State::Busy => "busy",
        State::Throttled(_) => "throttled",
        State::Idle => "idle",
        State::Done => "done",
    }
}

async fn run<W: Worker>(
    mut worker: W,
    shared: Arc<Mutex<Shared>>,
    name: String,
    mut stop: watch::Receiver<bool>,
    kill: Arc<AtomicBool>,
) {
    let mut state = State::Busy;
    // Whether `work` has been called since the stop flag was set: a worker
    // always gets one call to finish up before it ends.
    let mut told = false;
    loop {
        if kill.load(Ordering::SeqCst) {
            panic!("fault point: worker {name} was killed");
        }
        let stopping = *stop.borrow();
        match state {
            State::Done => break,
            State::Idle if stopping && told => break,
            State::Idle if stopping => {}
            State::Idle => {
                tokio::select! {
                    s = worker.wait_for_work() => state = s,
                    _ = stop.changed() => state = State::Busy,
                }
                continue;
            }
            State::Throttled(d) if !stopping => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stop.changed() => {}
                }
                if kill.load(Ordering::SeqCst) {
                    continue;
                }
            }
            _ => {}
        }
        told = *stop.borrow();
        if state != State::Busy {
            update(&shared, &name, |i| i.state = if told { "stopping" } else { "busy" });
        }
        let r = worker.work(&stop).await;
        let status = worker.status();
        let stopping = *stop.borrow();
        let mut pause = None;
        update(&shared, &name, |i| {
            i.calls += 1;
            i.status = status;
            match r {
                Ok(s) => {
                    i.consecutive_errors = 0;
                    i.state = state_name(s, stopping && s != State::Done);
                    state = s;
                }
                Err(e) => {
                    i.errors += 1;
                    i.consecutive_errors += 1;
                    tracing::warn!("background worker {name}: {e} (retried)");
                    i.last_error = Some(e);
                    i.last_error_at = Some(Timestamp::now());
                    let d = backoff(i.consecutive_errors);
                    i.state = "throttled";
                    pause = Some(d);
                }
            }
        });
        if let Some(d) = pause {
            state = State::Throttled(d);
            if stopping {
                // Still retried while stopping (the deadline bounds it).
                tokio::time::sleep(d.min(Duration::from_secs(1))).await;
            }
        }
    }
    update(&shared, &name, |i| i.state = "done");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Counts to `until`, failing on the calls named in `fail`.
    struct Counter {
        name: String,
        n: Arc<AtomicU64>,
        until: u64,
        fail: Vec<u64>,
        slow_stop: Option<Duration>,
    }

    #[async_trait::async_trait]
    impl Worker for Counter {
        fn name(&self) -> String {
            self.name.clone()
        }
        fn status(&self) -> Status {
            let mut s = Status::default();
            s.counters.insert("n".into(), self.n.load(Ordering::SeqCst));
            s
        }
        async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<State, String> {
            if *stop.borrow() {
                if let Some(d) = self.slow_stop {
                    tokio::time::sleep(d).await;
                }
                return Ok(State::Done);
            }
            let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail.contains(&n) {
                return Err(format!("call {n} failed"));
            }
            Ok(if n >= self.until { State::Idle } else { State::Busy })
        }
        async fn wait_for_work(&mut self) -> State {
            std::future::pending().await
        }
    }

    fn counter(name: &str, until: u64) -> (Counter, Arc<AtomicU64>) {
        let n = Arc::new(AtomicU64::new(0));
        (
            Counter {
                name: name.into(),
                n: n.clone(),
                until,
                fail: vec![],
                slow_stop: None,
            },
            n,
        )
    }

    async fn settle(bg: &Background, name: &str, state: &str) -> WorkerInfo {
        for _ in 0..500 {
            let w = bg.workers().into_iter().find(|w| w.name == name).unwrap();
            if w.state == state {
                return w;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} never became {state}: {:?}", bg.workers());
    }

    #[tokio::test]
    async fn a_worker_runs_until_idle_and_counts_errors() {
        let bg = Background::new();
        let (mut w, n) = counter("c", 5);
        w.fail = vec![2];
        bg.spawn(0, w);
        let info = settle(&bg, "c", "idle").await;
        assert_eq!(n.load(Ordering::SeqCst), 5);
        assert_eq!(info.errors, 1);
        assert_eq!(info.consecutive_errors, 0);
        assert_eq!(info.last_error.as_deref(), Some("call 2 failed"));
        assert_eq!(info.status.counters["n"], 5);
        assert!(bg.shutdown(Duration::from_secs(5)).await.is_empty());
        assert_eq!(bg.workers()[0].state, "done");
    }

    #[tokio::test]
    async fn a_killed_worker_is_dead_and_reported() {
        let bg = Background::new();
        let told = Arc::new(Mutex::new(Vec::new()));
        let t = told.clone();
        bg.on_dead(Arc::new(move |name, msg| {
            t.lock().unwrap().push(format!("{name}: {msg}"))
        }));
        let (w, _) = counter("victim", 1);
        bg.spawn(0, w);
        settle(&bg, "victim", "idle").await;
        assert!(bg.kill("victim"));
        let info = settle(&bg, "victim", "dead").await;
        assert!(info.last_error.unwrap().contains("killed"), "{:?}", bg.workers());
        assert_eq!(told.lock().unwrap().len(), 1);
        assert!(!bg.kill("victim"), "a dead worker cannot be killed again");
        assert!(!bg.kill("nobody"));
        assert!(bg.shutdown(Duration::from_secs(5)).await.is_empty());
    }

    #[tokio::test]
    async fn shutdown_goes_by_phase_and_keeps_its_deadline() {
        let bg = Background::new();
        let (w1, _) = counter("first", 1);
        let (mut w2, _) = counter("stuck", 1);
        w2.slow_stop = Some(Duration::from_secs(3600));
        let (w3, _) = counter("last", 1);
        bg.spawn(2, w3);
        bg.spawn(0, w1);
        bg.spawn(1, w2);
        for n in ["first", "stuck", "last"] {
            settle(&bg, n, "idle").await;
        }
        let t0 = std::time::Instant::now();
        let aborted = bg.shutdown(Duration::from_millis(300)).await;
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        assert_eq!(aborted, vec!["stuck".to_string(), "last".to_string()]);
        let states: Vec<_> = bg.workers().into_iter().map(|w| (w.name, w.state)).collect();
        assert!(states.contains(&("first".into(), "done")), "{states:?}");
        assert!(states.contains(&("stuck".into(), "aborted")), "{states:?}");
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
