//! Media profiles: what a cartridge holds and how fast a drive moves it.

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A kind of modelled work, charged to a drive and a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Charge {
    Robot,
    Load,
    Locate,
    Write,
    Read,
    Mark,
    Unload,
}

/// The performance model of one media type in its drive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaProfile {
    /// Native (uncompressed) capacity of a cartridge.
    pub capacity: ByteSize,
    /// Native streaming rate, bytes per second.
    pub rate: ByteSize,
    /// Seconds to load and thread a cartridge in a drive.
    pub load_s: f64,
    /// Seconds to unload (after rewinding) and eject it.
    pub unload_s: f64,
    /// Seconds for one robot move (slot to drive or back).
    pub robot_s: f64,
    /// Seconds to locate over the whole tape length; a locate costs its
    /// distance's share of it.
    pub full_locate_s: f64,
    /// Seconds of a synchronous file mark (the back-hitch after a flush).
    pub file_mark_s: f64,
}

impl MediaProfile {
    /// Bytes and rate divided by `factor`, times unchanged: production ratios
    /// of transfer time to fixed costs with `factor` times less data.
    pub fn scaled(&self, factor: f64) -> MediaProfile {
        let f = factor.max(1e-9);
        MediaProfile {
            capacity: ByteSize((self.capacity.0 as f64 / f) as u64),
            rate: ByteSize(((self.rate.0 as f64 / f) as u64).max(1)),
            ..self.clone()
        }
    }

    /// Seconds to move the head over `bytes` of tape.
    pub fn locate_s(&self, bytes: u64) -> f64 {
        if self.capacity.0 == 0 {
            return 0.0;
        }
        self.full_locate_s * (bytes as f64 / self.capacity.0 as f64).min(1.0)
    }

    /// Seconds to stream `bytes` at the native rate.
    pub fn transfer_s(&self, bytes: u64) -> f64 {
        bytes as f64 / self.rate.0 as f64
    }
}

/// The built-in profiles, from the vendors' data sheets (native figures).
/// A config may override any of them or add others.
pub fn builtin() -> BTreeMap<String, MediaProfile> {
    let p = |tb: u64, mb_s: u64, load_s, unload_s, full_locate_s| MediaProfile {
        capacity: ByteSize::tb(tb),
        rate: ByteSize::mb(mb_s),
        load_s,
        unload_s,
        robot_s: 10.0,
        full_locate_s,
        file_mark_s: 3.0,
    };
    BTreeMap::from([
        ("LTO-8".to_string(), p(12, 360, 15.0, 17.0, 110.0)),
        ("LTO-9".to_string(), p(18, 400, 15.0, 17.0, 120.0)),
        ("LTO-10".to_string(), p(30, 400, 15.0, 17.0, 130.0)),
        (
            "T10000D".to_string(),
            MediaProfile {
                capacity: ByteSize::gb(8500),
                ..p(0, 252, 13.0, 23.0, 97.0)
            },
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_keeps_times_and_ratios() {
        let lto9 = &builtin()["LTO-9"];
        let s = lto9.scaled(100.0);
        assert_eq!(s.capacity.0, 180_000_000_000);
        assert_eq!(s.rate.0, 4_000_000);
        assert_eq!((s.load_s, s.file_mark_s), (lto9.load_s, lto9.file_mark_s));
        // 1 GB on the real drive takes as long as 10 MB on the scaled one.
        assert!((lto9.transfer_s(1_000_000_000) - s.transfer_s(10_000_000)).abs() < 1e-9);
        assert!((lto9.locate_s(lto9.capacity.0 / 2) - 60.0).abs() < 1e-9);
    }
}
