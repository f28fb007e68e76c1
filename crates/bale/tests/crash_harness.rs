//! The crash harness's runs (see `harness/mod.rs` for what it does and
//! checks):
//!
//! - the CI subset: every crash point once, plus kills from outside, on
//!   SQLite and PostgreSQL;
//! - a short race run (no kills) in CI;
//! - the self-test: the checks do fail on a damaged cached file and a
//!   damaged tape file;
//! - the long runs, by hand (docs/RELIABILITY.md):
//!   `BALE_HARNESS_POINTS=200 BALE_HARNESS_SEED=1 cargo test --release -p bale --test crash_harness -- --ignored long_run --nocapture`
//!   and `BALE_RACE_MINUTES=30 cargo test --release -p bale --test crash_harness -- --ignored long_race --nocapture`
//!   (`BALE_TEST_CATALOG=postgres` for PostgreSQL).

mod common;
mod harness;

use common::Catalog;
use harness::{Harness, Kill, Round};
use std::time::{Duration, Instant};

fn report(r: &Round) {
    eprintln!(
        "seed {} kill {:?}{} died {} ops {} live files {} packages {} violations {}",
        r.seed,
        r.kill,
        if r.power {
            format!(" POWER CUT ({} unsynced bytes lost)", r.lost_bytes)
        } else {
            String::new()
        },
        r.died,
        r.ops,
        r.live_files,
        r.packages,
        r.violations.len()
    );
    for v in &r.violations {
        eprintln!("  VIOLATION: {v}");
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One round per kill, seeds from `base` on (more operations when the
/// kill comes from outside, so that it lands mid-workload); fails with
/// every round's violations.
fn run_kills(h: &mut Harness, base: u64, kills: impl IntoIterator<Item = Kill>) {
    let mut failed = Vec::new();
    for (i, kill) in kills.into_iter().enumerate() {
        let ops = if matches!(kill, Kill::After(_)) { 400 } else { 60 };
        let r = h.round(base + i as u64, ops, Some(kill));
        report(&r);
        if !r.violations.is_empty() {
            failed.push((r.seed, r.kill.clone(), r.violations.clone()));
        }
    }
    assert!(failed.is_empty(), "invariants violated: {failed:#?}");
}

/// Every crash point once (at its first hit) and two kills from outside.
fn crash_points(catalog: Catalog) {
    let mut h = Harness::new(catalog, 3);
    // A first round without kills gives the later ones packages to stage
    // and purge.
    let mut kills: Vec<Kill> = bale_util::crash::POINTS
        .iter()
        .map(|(name, _)| Kill::Point(name, 1))
        .collect();
    kills.insert(0, Kill::None);
    kills.extend([Kill::After(400), Kill::After(1500)]);
    run_kills(&mut h, 1000, kills);
}

on_both_catalogs!(crash_points);

/// Power cuts: the data directory on the lossy layer, every kill loses
/// what was not synced (PostgreSQL's own data is on its server's disk).
fn power_cuts(catalog: Catalog) {
    let mut h = Harness::on_lossy_layer(catalog, 3);
    h.power = Some(true);
    let kills = [
        Kill::None,
        Kill::Point("put.committed", 2),
        Kill::Point("settle.synced", 1),
        Kill::Point("tape.flushed", 1),
        Kill::Point("tape.recorded", 1),
        Kill::Point("stage.unpacked", 1),
        Kill::Point("stage.promoted", 1),
        Kill::Point("purge.marked", 1),
        Kill::Point("copy.queued", 1),
        Kill::After(500),
        Kill::After(1500),
    ];
    run_kills(&mut h, 2000, kills);
}

on_both_catalogs!(power_cuts);

/// The workload without kills: deletes, overwrites and renames meet pool
/// closes, package writes and stages.
fn race(catalog: Catalog) {
    let mut h = Harness::new(catalog, 4);
    for seed in 0..2 {
        let r = h.round(seed, 150, Some(Kill::None));
        report(&r);
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
    }
}

on_both_catalogs!(race);

/// The checks are not blind: a flipped byte in a cached file and one in a
/// tape file are both reported.
#[test]
fn the_harness_sees_damage() {
    let mut h = Harness::new(Catalog::from_env(), 2);
    let r = h.round(7, 80, Some(Kill::None));
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert!(r.packages > 0 && r.live_files > 0, "{r:?}");
    let data = h.srv.data_dir();
    let flip = |dir: &std::path::Path, ext: Option<&str>| {
        let f = common::local_files(dir)
            .into_iter()
            .map(|p| dir.join(p))
            .find(|p| {
                std::fs::metadata(p).unwrap().len() > 0 && ext.is_none_or(|e| p.extension().is_some_and(|x| x == e))
            })
            .expect("a file to damage");
        let mut b = std::fs::read(&f).unwrap();
        let i = b.len() / 2;
        b[i] ^= 0x20;
        std::fs::write(&f, b).unwrap();
        f
    };
    let cached = flip(&data.join("cache/files"), None);
    let (_, _, v) = h.check_deep();
    assert!(
        v.iter().any(|v| v.contains("cached data differs")),
        "damage to {} went unseen: {v:#?}",
        cached.display()
    );
    let tape = flip(&data.join("library"), Some("tar"));
    let (_, _, v) = h.check_deep();
    assert!(
        v.iter()
            .any(|v| v.contains("tape file") || v.contains("on tape are not")),
        "damage to {} went unseen: {v:#?}",
        tape.display()
    );
}

/// The long crash run: `BALE_HARNESS_POINTS` kills (default 200) from
/// `BALE_HARNESS_SEED`, a fresh data directory on the lossy layer every 25,
/// two kills in five power cuts.
#[test]
#[ignore]
fn long_run() {
    let points = env_u64("BALE_HARNESS_POINTS", 200);
    let seed = env_u64("BALE_HARNESS_SEED", 1);
    let catalog = Catalog::from_env();
    let t0 = Instant::now();
    let (mut died, mut violations, mut ops) = (0, 0, 0);
    let (mut h, mut power) = (None, 0);
    for i in 0..points {
        if i % 25 == 0 {
            // The data directory on the lossy layer: two in five kills
            // are power cuts.
            let mut fresh = Harness::on_lossy_layer(catalog, 3);
            fresh.power_share = 0.4;
            h = Some(fresh);
        }
        let r = h.as_mut().unwrap().round(seed * 1_000_000 + i, 80, None);
        report(&r);
        died += r.died as u64;
        power += r.power as u64;
        violations += r.violations.len();
        ops += r.ops;
    }
    eprintln!(
        "long run: {points} kills from seed {seed} on {catalog:?}: {power} power cuts, {died} during the workload, {ops} operations, {violations} violations, {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(violations, 0);
}

/// The long race run: rounds without kills for `BALE_RACE_MINUTES`.
#[test]
#[ignore]
fn long_race() {
    let minutes = env_u64("BALE_RACE_MINUTES", 30);
    let mut h = Harness::new(Catalog::from_env(), 4);
    let t0 = Instant::now();
    let (mut rounds, mut violations) = (0u64, 0);
    while t0.elapsed() < Duration::from_secs(minutes * 60) {
        let r = h.round(rounds, 200, Some(Kill::None));
        report(&r);
        violations += r.violations.len();
        rounds += 1;
    }
    eprintln!(
        "race run: {rounds} rounds in {:.0} s, {violations} violations",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(violations, 0);
}

/// The lossy layer keeps what was synced and loses the rest at a cut.
#[test]
fn the_lossy_layer_loses_exactly_the_unsynced_writes() {
    use std::io::Write;
    let backing = tempfile::tempdir().unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let mut fs = harness::lossyfs::LossyFs::mount(backing.path(), mnt.path());
    let m = mnt.path();
    let write = |name: &str, data: &[u8], sync: bool| {
        let mut f = std::fs::File::create(m.join(name)).unwrap();
        f.write_all(data).unwrap();
        if sync {
            f.sync_data().unwrap();
        }
    };
    write("synced", b"kept", true);
    write("unsynced", b"lost", false);
    std::fs::create_dir(m.join("d")).unwrap();
    write("d/half", b"first", true);
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(m.join("d/half")).unwrap();
        f.write_all(b" second").unwrap();
    }
    // Reads before the cut see everything.
    assert_eq!(std::fs::read(m.join("d/half")).unwrap(), b"first second");
    assert_eq!(std::fs::read(m.join("unsynced")).unwrap(), b"lost");
    std::fs::rename(m.join("synced"), m.join("d/moved")).unwrap();
    std::fs::hard_link(m.join("d/moved"), m.join("linked")).unwrap();
    let lost = fs.cut();
    assert_eq!(lost, 4 + 7);
    fs.remount();
    assert_eq!(std::fs::read(m.join("d/moved")).unwrap(), b"kept");
    assert_eq!(std::fs::read(m.join("linked")).unwrap(), b"kept");
    assert_eq!(
        std::fs::read(m.join("unsynced")).unwrap(),
        b"",
        "created, never synced: empty"
    );
    assert_eq!(std::fs::read(m.join("d/half")).unwrap(), b"first");
    drop(fs);
    assert_eq!(std::fs::read(backing.path().join("d/half")).unwrap(), b"first");
}
