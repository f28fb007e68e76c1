//! One module per command group.

pub mod archive;
pub mod bench;
pub mod cache;
pub mod demo;
pub mod fs;
pub mod quota;
pub mod serve;
pub mod stage;
pub mod status;
pub mod tape;
pub mod token;
pub mod transfer;

pub(crate) use bale_util::human::plural;

/// A size given on the command line: bytes ("12345") or with a unit ("10
/// GB" is 10,000,000,000 bytes, "10 GiB" 10,737,418,240), as exact bytes.
pub(crate) fn parse_size(s: &str) -> anyhow::Result<u64> {
    if let Ok(n) = s.trim().parse::<u64>() {
        return Ok(n);
    }
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| anyhow::anyhow!("not a byte size (such as 12345, \"10 GB\" or \"500 MiB\"): {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_are_exact_bytes() {
        assert_eq!(super::parse_size("10 GB").unwrap(), 10_000_000_000);
        assert_eq!(super::parse_size("10 GiB").unwrap(), 10 << 30);
        assert_eq!(super::parse_size("12345").unwrap(), 12345);
        assert!(super::parse_size("lots").is_err());
    }
}
