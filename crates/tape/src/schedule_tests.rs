//! The scheduling decision without a drive, a tape or a clock.

use super::*;
use bale_catalog::{JobState, JobTarget};
use bale_util::{FileId, Timestamp};

/// A read in the unit tests: a tape file and when it was asked for.
struct Read {
    seq: u32,
    since: Instant,
    abandoned: bool,
}

impl Waiting for Read {
    fn since(&self) -> Instant {
        self.since
    }
}

impl TapeRead for Read {
    fn seq(&self) -> u32 {
        self.seq
    }

    fn abandoned(&self) -> bool {
        self.abandoned
    }
}

const MB: u64 = 1 << 20;

fn family(name: &str) -> Family {
    Family {
        storage_group: "mu2e".into(),
        file_family: name.into(),
        wrapper: "cpio_odc".into(),
    }
}

fn volume(label: &str, capacity: u64, used: u64, fam: Option<&str>) -> Volume {
    Volume {
        label: label.into(),
        library: "lib1".into(),
        media: "LTO-9".into(),
        capacity,
        state: if fam.is_some() {
            VolumeState::Appendable
        } else {
            VolumeState::Blank
        },
        family: fam.map(family),
        used,
        tape_files: if used > 0 { 1 } else { 0 },
        mount_limit: 1000,
        stats: TapeStats::default(),
        created: Timestamp::now(),
    }
}

fn job(id: i64, fam: &str, width: u32, bytes: u64) -> ArchiveJob {
    ArchiveJob {
        id,
        state: JobState::Queued,
        target: JobTarget {
            library: "lib1".into(),
            family: family(fam),
            width,
            copies: Vec::new(),
        },
        bytes,
        created: Timestamp::now(),
        attempts: 0,
        error: None,
        pool: None,
        files: vec![FileId::generate()],
    }
}

fn schedule(drives: usize, volumes: Vec<Volume>) -> Schedule<Read> {
    let mut s = Schedule::default();
    for i in 1..=drives {
        s.drives
            .insert(format!("d{i}"), Slot::new("lib1", true, TapeStats::default()));
    }
    for v in volumes {
        s.volumes.insert(v.label.clone(), v);
    }
    s
}

const WAIT: Duration = Duration::from_secs(300);

fn write_volume(w: Work<Read>) -> (String, i64) {
    match w {
        Work::Write { volume, job } => (volume, job.job.id),
        _ => panic!("expected a write"),
    }
}

#[test]
fn a_family_never_has_more_volumes_in_writing_than_its_width() {
    let blanks = (1..=4).map(|i| volume(&format!("V{i}"), 100 * MB, 0, None)).collect();
    let mut s = schedule(4, blanks);
    let t0 = Instant::now();
    for id in 1..=6 {
        assert!(s.enqueue(job(id, "raw", 2, MB), t0));
    }
    let mut full = vec![];
    let (v1, j1) = write_volume(s.assign("d1", t0, WAIT, &mut full));
    let (v2, j2) = write_volume(s.assign("d2", t0, WAIT, &mut full));
    assert_ne!(v1, v2, "two drives write two volumes");
    assert_eq!((j1, j2), (1, 2), "oldest first");
    assert!(
        matches!(s.assign("d3", t0, WAIT, &mut full), Work::Idle),
        "width 2 reached"
    );
    assert!(matches!(s.assign("d4", t0, WAIT, &mut full), Work::Idle));
    // A drive that holds a family volume goes on with the family's next job there.
    let (v, j) = write_volume(s.assign("d1", t0, WAIT, &mut full));
    assert_eq!((v, j), (v1.clone(), 3));
    // Another family is not limited by the first one's width.
    s.enqueue(job(7, "mc", 1, MB), t0);
    let (v3, j) = write_volume(s.assign("d3", t0, WAIT, &mut full));
    assert_eq!(j, 7);
    assert!(v3 != v1 && v3 != v2);
    assert!(full.is_empty());
    assert!(!s.enqueue(job(7, "mc", 1, MB), t0), "a job already held is refused");
}

#[test]
fn volume_choice_prefers_the_mounted_then_the_fullest_appendable_then_blank() {
    let vols = vec![
        volume("A1", 100 * MB, 10 * MB, Some("raw")),
        volume("A2", 100 * MB, 60 * MB, Some("raw")),
        volume("A3", 100 * MB, 99 * MB, Some("raw")),
        volume("B1", 100 * MB, 0, None),
        volume("O1", 100 * MB, 50 * MB, Some("other")),
    ];
    let mut s = schedule(2, vols);
    let t0 = Instant::now();
    s.enqueue(job(1, "raw", 1, 5 * MB), t0);
    let mut full = vec![];
    // A3 cannot hold 5 MB: marked full; A2 is the fullest that fits.
    let (v, _) = write_volume(s.assign("d1", t0, WAIT, &mut full));
    assert_eq!(v, "A2");
    assert_eq!(full, vec!["A3".to_string()]);
    assert_eq!(s.volumes["A3"].state, VolumeState::Full);
    // A job too big for every appendable one of the family goes to a blank.
    s.enqueue(job(2, "raw", 1, 95 * MB), t0);
    s.drives.get_mut("d1").unwrap().mounted = None;
    s.drives.get_mut("d1").unwrap().writing = None;
    let (v, _) = write_volume(s.assign("d2", t0, WAIT, &mut full));
    assert_eq!(v, "B1");
    // Larger than any volume: the job fails at once (width 2: d2 writes B1).
    s.enqueue(job(3, "raw", 2, 200 * MB), t0);
    match s.assign("d1", t0, WAIT, &mut full) {
        Work::Fail { job, reason } => {
            assert_eq!(job.job.id, 3);
            assert!(reason.contains("do not fit"), "{reason}");
        }
        _ => panic!("expected a failure"),
    }
}

#[test]
fn reads_of_a_volume_come_as_one_batch_in_tape_order() {
    let vols = vec![
        volume("A1", 100 * MB, 50 * MB, Some("raw")),
        volume("A2", 100 * MB, 50 * MB, Some("raw")),
    ];
    let mut s = schedule(1, vols);
    let t0 = Instant::now();
    for seq in [7, 2, 9, 1] {
        s.add_read(
            "A1",
            Read {
                seq,
                since: t0,
                abandoned: false,
            },
        );
    }
    s.add_read(
        "A2",
        Read {
            seq: 3,
            since: t0 + Duration::from_secs(1),
            abandoned: false,
        },
    );
    let mut full = vec![];
    match s.assign("d1", t0, WAIT, &mut full) {
        Work::Read { volume, reqs } => {
            assert_eq!(volume, "A1");
            assert_eq!(reqs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 7, 9]);
        }
        _ => panic!("expected the reads of A1"),
    }
    // More reads of the mounted volume are served before the other volume's.
    s.add_read(
        "A1",
        Read {
            seq: 4,
            since: t0 + Duration::from_secs(2),
            abandoned: false,
        },
    );
    match s.assign("d1", t0 + Duration::from_secs(3), WAIT, &mut full) {
        Work::Read { volume, .. } => assert_eq!(volume, "A1", "the mounted volume keeps the drive"),
        _ => panic!("expected a read"),
    }
    match s.assign("d1", t0 + Duration::from_secs(3), WAIT, &mut full) {
        Work::Read { volume, .. } => assert_eq!(volume, "A2"),
        _ => panic!("expected a read"),
    }
}

#[test]
fn a_request_waiting_past_max_wait_takes_the_drive_from_the_mounted_volume() {
    let vols = vec![
        volume("A1", 1000 * MB, 0, Some("raw")),
        volume("B1", 1000 * MB, 50 * MB, Some("mc")),
    ];
    let mut s = schedule(1, vols);
    let t0 = Instant::now();
    let secs = |n| t0 + Duration::from_secs(n);
    s.enqueue(job(1, "raw", 1, MB), t0);
    let mut full = vec![];
    let (v, _) = write_volume(s.assign("d1", t0, WAIT, &mut full));
    assert_eq!(v, "A1");
    // A read of another volume arrives, then a stream of writes for the
    // mounted family: the drive keeps its volume (locality) while the read
    // is younger than max_wait ...
    s.add_read(
        "B1",
        Read {
            seq: 0,
            since: secs(1),
            abandoned: false,
        },
    );
    for id in 2..=50 {
        s.enqueue(job(id, "raw", 1, MB), secs(2));
    }
    let (v, j) = write_volume(s.assign("d1", secs(100), WAIT, &mut full));
    assert_eq!((v.as_str(), j), ("A1", 2));
    let (v, j) = write_volume(s.assign("d1", secs(300), WAIT, &mut full));
    assert_eq!((v.as_str(), j), ("A1", 3));
    // ... and gives the volume up for it once it has waited max_wait.
    match s.assign("d1", secs(302), WAIT, &mut full) {
        Work::Read { volume, .. } => assert_eq!(volume, "B1"),
        _ => panic!("the starving read must be served"),
    }
    // Then the writes go on where they were.
    let (v, j) = write_volume(s.assign("d1", secs(303), WAIT, &mut full));
    assert_eq!((v.as_str(), j), ("A1", 4));
}

#[test]
fn an_offline_drive_or_a_volume_in_another_drive_gets_no_work() {
    let mut s = schedule(2, vec![volume("A1", 100 * MB, 10 * MB, Some("raw"))]);
    let t0 = Instant::now();
    s.add_read(
        "A1",
        Read {
            seq: 0,
            since: t0,
            abandoned: false,
        },
    );
    s.drives.get_mut("d1").unwrap().online = false;
    let mut full = vec![];
    assert!(matches!(s.assign("d1", t0, WAIT, &mut full), Work::Idle));
    s.drives.get_mut("d1").unwrap().online = true;
    s.drives.get_mut("d2").unwrap().mounted = Some("A1".into());
    assert!(
        matches!(s.assign("d1", t0, WAIT, &mut full), Work::Idle),
        "A1 is in d2: d1 leaves its reads to it"
    );
    assert!(matches!(s.assign("d2", t0, WAIT, &mut full), Work::Read { .. }));
}

#[test]
fn reads_nobody_waits_for_are_dropped_before_a_mount() {
    let vols = vec![
        volume("A1", 100 * MB, 50 * MB, Some("raw")),
        volume("A2", 100 * MB, 50 * MB, Some("raw")),
    ];
    let mut s = schedule(1, vols);
    let t0 = Instant::now();
    // A1's reads were all cancelled; A2 has one live read, asked later.
    for seq in [1, 2] {
        s.add_read(
            "A1",
            Read {
                seq,
                since: t0,
                abandoned: true,
            },
        );
    }
    s.add_read(
        "A2",
        Read {
            seq: 5,
            since: t0 + Duration::from_secs(1),
            abandoned: false,
        },
    );
    s.add_read(
        "A2",
        Read {
            seq: 3,
            since: t0,
            abandoned: true,
        },
    );
    let mut full = vec![];
    match s.assign("d1", t0 + Duration::from_secs(2), WAIT, &mut full) {
        Work::Read { volume, reqs } => {
            assert_eq!(volume, "A2", "A1 is not mounted for reads no one waits for");
            assert_eq!(reqs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5]);
        }
        _ => panic!("expected the read of A2"),
    }
    assert!(matches!(s.assign("d1", t0, WAIT, &mut full), Work::Idle));
    assert!(s.reads.is_empty());
}

#[test]
fn a_storage_group_at_its_volume_quota_takes_no_blank_volume() {
    let vols = vec![volume("B1", 100 * MB, 0, None), volume("B2", 100 * MB, 0, None)];
    let mut s = schedule(2, vols);
    s.volume_limits.insert(("lib1".into(), "mu2e".into()), 1);
    let t0 = Instant::now();
    // Width 2: two drives could write the family at once.
    s.enqueue(job(1, "raw", 2, 5 * MB), t0);
    s.enqueue(job(2, "raw", 2, 5 * MB), t0);
    let mut full = vec![];
    let (v, _) = write_volume(s.assign("d1", t0, WAIT, &mut full));
    assert_eq!(v, "B1");
    // B1 is still blank (no tape file yet), but taken for mu2e: its one
    // volume. The second drive gets none, and the queue says why once.
    assert!(matches!(s.assign("d2", t0, WAIT, &mut full), Work::Idle));
    assert_eq!(s.newly_starved.len(), 1);
    let key = s.newly_starved[0].clone();
    assert_eq!(s.at_volume_quota(&key), Some(1));
    // A larger quota: the second drive takes B2.
    s.volume_limits.insert(("lib1".into(), "mu2e".into()), 2);
    let (v, _) = write_volume(s.assign("d2", t0, WAIT, &mut full));
    assert_eq!(v, "B2");
}
