//! Numbers for people, one way everywhere: sizes in decimal units (kB, MB,
//! GB, TB, as disks and tapes are sold and as `bale` prints them in every
//! table and message), plurals.

use std::fmt;

/// A byte count in decimal units: "512 B", "1.50 MB", "9.10 TB" (the
/// format of the CLI's tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
        if self.0 < 1000 {
            return write!(f, "{} B", self.0);
        }
        let mut v = self.0 as f64 / 1000.0;
        let mut unit = 0;
        while v >= 1000.0 && unit + 1 < UNITS.len() {
            v /= 1000.0;
            unit += 1;
        }
        write!(f, "{v:.2} {}", UNITS[unit])
    }
}

/// "1 file", "2 files", "0 files".
pub fn plural(n: u64, word: &str) -> String {
    match n {
        1 => format!("1 {word}"),
        n => format!("{n} {word}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_decimal() {
        assert_eq!(Bytes(0).to_string(), "0 B");
        assert_eq!(Bytes(999).to_string(), "999 B");
        assert_eq!(Bytes(1500).to_string(), "1.50 kB");
        assert_eq!(Bytes(10_000_000_000_000).to_string(), "10.00 TB");
        assert_eq!(plural(1, "file"), "1 file");
        assert_eq!(plural(3, "volume"), "3 volumes");
    }
}
