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

/// A span of time in words, its two largest units: "2 days", "1 day 3
/// hours", "30 minutes", "5 seconds".
pub fn duration(d: std::time::Duration) -> String {
    let mut left = d.as_secs();
    let mut parts = Vec::new();
    for (size, word) in [(86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")] {
        if left >= size && parts.len() < 2 {
            parts.push(plural(left / size, word));
            left %= size;
        } else if !parts.is_empty() {
            break;
        }
    }
    match parts.is_empty() {
        true => "0 seconds".into(),
        false => parts.join(" "),
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
        let d = std::time::Duration::from_secs;
        assert_eq!(duration(d(2 * 86_400)), "2 days");
        assert_eq!(duration(d(86_400 + 3 * 3_600 + 5)), "1 day 3 hours");
        assert_eq!(duration(d(1_800)), "30 minutes");
        assert_eq!(duration(d(1)), "1 second");
    }
}
