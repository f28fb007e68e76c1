//! How long reads will take, from the timing model: the basis of a stage
//! request's "time left".
//!
//! Per volume: a robot move and a load unless a drive holds it already,
//! then, in position order from the beginning of the tape, a locate over
//! the gap to each package and its bytes at the media's rate. The work
//! queued ahead in the same library (other volumes' reads: a mount each;
//! queued archive jobs: their bytes and a file mark) shares the drives.
//! A library's time is the larger of its longest volume (one volume is
//! read by one drive) and all its work divided among its online drives.
//! Libraries work in parallel. The model's seconds are what a real library
//! would take; times `time_scale` they are what this one takes.

use crate::media::MediaProfile;
use crate::schedule::estimate as job_bytes;
use crate::system::TapeSystem;
use std::collections::{BTreeMap, HashSet};

/// A package still to read: its volume, position and size.
#[derive(Clone, Debug)]
pub struct PendingPackage {
    pub volume: String,
    pub position: u64,
    pub size: u64,
}

/// The modelled time of reads still to do.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReadEstimate {
    /// Seconds a real library of these media would take.
    pub modelled_s: f64,
    /// Seconds this one takes (modelled × time_scale; 0 when unpaced).
    pub wall_s: f64,
    /// Volumes to mount (not in a drive now).
    pub mounts: usize,
}

/// Seconds to read `packages` of one volume, head at the beginning.
pub(crate) fn volume_s(p: &MediaProfile, mounted: bool, packages: &mut [(u64, u64)]) -> f64 {
    packages.sort_unstable();
    let mut s = if mounted { 0.0 } else { p.robot_s + p.load_s };
    let mut head = 0u64;
    for &(position, size) in packages.iter() {
        s += p.locate_s(position.abs_diff(head)) + p.transfer_s(size);
        head = position + size;
    }
    s
}

/// One library's time: its volumes' reads and the work ahead, on `drives`.
pub(crate) fn library_s(volumes: &[f64], ahead_s: f64, drives: usize) -> f64 {
    let longest = volumes.iter().copied().fold(0.0, f64::max);
    let total: f64 = volumes.iter().sum::<f64>() + ahead_s;
    longest.max(total / drives.max(1) as f64)
}

impl TapeSystem {
    /// The modelled time until `packages` are read, with what is queued
    /// ahead of them (see the module's model).
    pub fn estimate_reads(&self, packages: &[PendingPackage]) -> ReadEstimate {
        let st = self.inner.sched.lock().unwrap();
        let mut by_volume: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
        for p in packages {
            by_volume.entry(&p.volume).or_default().push((p.position, p.size));
        }
        let mounted: HashSet<&str> = st.drives.values().filter_map(|d| d.mounted.as_deref()).collect();
        // Per library: its volumes' times and the work queued ahead.
        let mut libs: BTreeMap<&str, (Vec<f64>, f64)> = BTreeMap::new();
        let mut mounts = 0;
        for (label, list) in by_volume.iter_mut() {
            let Some(v) = st.volumes.get(*label) else { continue };
            let Some(lib) = self.inner.libs.get(&v.library) else {
                continue;
            };
            let here = mounted.contains(label);
            mounts += usize::from(!here);
            libs.entry(&v.library)
                .or_default()
                .0
                .push(volume_s(&lib.profile, here, list));
        }
        for (label, reqs) in &st.reads {
            if by_volume.contains_key(label.as_str()) || reqs.is_empty() {
                continue;
            }
            let Some(v) = st.volumes.get(label) else { continue };
            if let (Some(lib), Some(e)) = (self.inner.libs.get(&v.library), libs.get_mut(v.library.as_str())) {
                let p = &lib.profile;
                e.1 += 2.0 * p.robot_s + p.load_s + p.unload_s;
            }
        }
        for (key, q) in &st.writes {
            if let (Some(lib), Some(e)) = (self.inner.libs.get(&key.library), libs.get_mut(key.library.as_str())) {
                let p = &lib.profile;
                e.1 += q
                    .iter()
                    .map(|j| p.transfer_s(job_bytes(&j.job)) + p.file_mark_s)
                    .sum::<f64>();
            }
        }
        let modelled_s = libs
            .iter()
            .map(|(lib, (vols, ahead))| {
                let drives = st.drives.values().filter(|d| d.online && d.library == *lib).count();
                library_s(vols, *ahead, drives)
            })
            .fold(0.0, f64::max);
        ReadEstimate {
            modelled_s,
            wall_s: modelled_s * self.inner.cfg.time_scale,
            mounts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytesize::ByteSize;

    fn lto() -> MediaProfile {
        MediaProfile {
            capacity: ByteSize(18_000_000_000_000),
            rate: ByteSize(400_000_000),
            load_s: 15.0,
            unload_s: 20.0,
            robot_s: 10.0,
            full_locate_s: 100.0,
            file_mark_s: 2.0,
        }
    }

    #[test]
    fn a_volume_costs_a_mount_locates_and_its_bytes() {
        let p = lto();
        // Two 4 GB packages, one at 9 TB (half the tape), one at 0.
        let mut pk = vec![(9_000_000_000_000, 4_000_000_000), (0, 4_000_000_000)];
        let s = volume_s(&p, false, &mut pk);
        let want = 10.0 + 15.0 + 0.0 + 10.0 + p.locate_s(9_000_000_000_000 - 4_000_000_000) + 10.0;
        assert!((s - want).abs() < 1e-6, "{s} vs {want}");
        assert!(
            (volume_s(&p, true, &mut pk) - (want - 25.0)).abs() < 1e-6,
            "mounted: no robot, no load"
        );
    }

    #[test]
    fn drives_share_volumes_but_one_volume_is_one_drive() {
        assert_eq!(library_s(&[100.0, 100.0], 0.0, 2), 100.0);
        assert_eq!(library_s(&[100.0, 100.0], 0.0, 1), 200.0);
        assert_eq!(library_s(&[300.0, 10.0], 0.0, 4), 300.0, "the longest volume bounds it");
        assert_eq!(library_s(&[100.0], 300.0, 2), 200.0, "work ahead shares the drives");
    }
}
