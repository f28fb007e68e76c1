//! adler32 as zlib defines it (seed 1), computed with a SIMD implementation,
//! and its RFC 3230 `Digest: adler32=<8 hex digits>` spelling.

use std::fmt;
use std::str::FromStr;

/// A finished adler32 value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Adler32(pub u32);

impl Adler32 {
    /// The checksum of `data` in one call.
    pub fn of(data: &[u8]) -> Adler32 {
        let mut h = Adler32Hasher::new();
        h.update(data);
        h.finish()
    }

    /// Parses a `Digest`/`Want-Digest` style header value and returns the
    /// adler32 it carries, if any. Several digests may be listed
    /// (`md5=..., adler32=...`); algorithm names are case-insensitive.
    /// Returns `Err` if an adler32 entry is present but malformed.
    pub fn from_digest_header(value: &str) -> Result<Option<Adler32>, String> {
        for part in value.split(',') {
            let part = part.trim();
            let Some((alg, val)) = part.split_once('=') else {
                continue;
            };
            if alg.trim().eq_ignore_ascii_case("adler32") {
                return val
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("malformed adler32 digest {:?}: expected 8 hex digits", val.trim()));
            }
        }
        Ok(None)
    }

    /// The RFC 3230 instance digest, `adler32=0a1b2c3d`.
    pub fn digest_header(self) -> String {
        format!("adler32={self}")
    }
}

impl fmt::Display for Adler32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for Adler32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Adler32({self})")
    }
}

/// An adler32 spelled as anything but exactly 8 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an adler32 is exactly 8 hex digits")]
pub struct InvalidAdler32;

impl FromStr for Adler32 {
    type Err = InvalidAdler32;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidAdler32);
        }
        u32::from_str_radix(s, 16).map(Adler32).map_err(|_| InvalidAdler32)
    }
}

impl serde::Serialize for Adler32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Adler32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental adler32.
#[derive(Clone)]
pub struct Adler32Hasher(simd_adler32::Adler32);

impl Adler32Hasher {
    pub fn new() -> Self {
        Adler32Hasher(simd_adler32::Adler32::new())
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.write(data);
    }
    pub fn finish(&self) -> Adler32 {
        Adler32(self.0.finish())
    }
}

impl Default for Adler32Hasher {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // zlib: adler32 of "" is 1, of "Wikipedia" is 0x11E60398.
        assert_eq!(Adler32::of(b""), Adler32(1));
        assert_eq!(Adler32::of(b"Wikipedia"), Adler32(0x11E6_0398));
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut h = Adler32Hasher::new();
        for chunk in data.chunks(4093) {
            h.update(chunk);
        }
        assert_eq!(h.finish(), Adler32::of(&data));
    }

    #[test]
    fn digest_header_round_trip() {
        let a = Adler32(0x0a1b2c3d);
        assert_eq!(a.digest_header(), "adler32=0a1b2c3d");
        assert_eq!(Adler32::from_digest_header("ADLER32=0a1b2c3d"), Ok(Some(a)));
        assert_eq!(Adler32::from_digest_header("md5=abc, adler32=0a1b2c3d"), Ok(Some(a)));
        assert_eq!(Adler32::from_digest_header("md5=abc"), Ok(None));
        assert!(Adler32::from_digest_header("adler32=xyz").is_err());
        assert!(Adler32::from_digest_header("adler32=123").is_err());
    }
}
