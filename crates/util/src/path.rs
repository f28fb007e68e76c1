//! Namespace paths.
//!
//! An [`NsPath`] is absolute, normalized (no empty components, no trailing
//! slash) and validated: valid UTF-8, no NUL or other control characters,
//! no `.` or `..` components, at most [`MAX_COMPONENT_LEN`] bytes per
//! component and [`MAX_PATH_LEN`] bytes in all. Once constructed it can be
//! trusted everywhere below the API layer.

use std::fmt;

/// Longest accepted path, in bytes (POSIX `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;
/// Longest accepted name of one entry, in bytes (POSIX `NAME_MAX`).
pub const MAX_COMPONENT_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must be absolute (start with '/'): {0:?}")]
    NotAbsolute(String),
    #[error("path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("path component is longer than {MAX_COMPONENT_LEN} bytes: {0:?}")]
    ComponentTooLong(String),
    #[error("path components '.' and '..' are not allowed")]
    DotComponent,
    #[error("path contains a NUL or control character")]
    ControlCharacter,
    #[error("path is not valid UTF-8")]
    NotUtf8,
    #[error("invalid name {0:?}: a name is one non-empty path component")]
    InvalidName(String),
}

/// A validated, normalized absolute namespace path. The root is `/`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NsPath(String);

impl NsPath {
    pub fn root() -> NsPath {
        NsPath("/".to_string())
    }

    /// Validates and normalizes `s`: duplicate and trailing slashes are removed.
    pub fn parse(s: &str) -> Result<NsPath, PathError> {
        if !s.starts_with('/') {
            return Err(PathError::NotAbsolute(s.chars().take(80).collect()));
        }
        if s.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let mut out = String::with_capacity(s.len());
        for comp in s.split('/').filter(|c| !c.is_empty()) {
            validate_name(comp)?;
            out.push('/');
            out.push_str(comp);
        }
        if out.is_empty() {
            out.push('/');
        }
        Ok(NsPath(out))
    }

    /// Like [`NsPath::parse`] for raw bytes (for example a percent-decoded URL).
    pub fn parse_bytes(b: &[u8]) -> Result<NsPath, PathError> {
        let s = std::str::from_utf8(b).map_err(|_| PathError::NotUtf8)?;
        NsPath::parse(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path's components, root first; empty for `/`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// Number of components (`/` is 0, `/a/b` is 2).
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// The parent directory; `None` for the root.
    pub fn parent(&self) -> Option<NsPath> {
        if self.is_root() {
            return None;
        }
        let i = self.0.rfind('/').expect("absolute path");
        Some(if i == 0 {
            NsPath::root()
        } else {
            NsPath(self.0[..i].to_string())
        })
    }

    /// The last component; `None` for the root.
    pub fn name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.0.rsplit('/').next()
        }
    }

    /// The child `name` of this path; `name` must be a single valid component.
    pub fn join(&self, name: &str) -> Result<NsPath, PathError> {
        if name.contains('/') || name.is_empty() {
            return Err(PathError::InvalidName(name.to_string()));
        }
        validate_name(name)?;
        let mut s = self.0.clone();
        if !self.is_root() {
            s.push('/');
        }
        s.push_str(name);
        if s.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        Ok(NsPath(s))
    }

    /// True if `self` is `other` or lies beneath it.
    pub fn starts_with(&self, other: &NsPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes()[other.0.len()] == b'/')
    }
}

/// Bytes kept as they are in a URL path segment: RFC 3986's unreserved set.
const URL_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The URL path of a namespace path: each component percent-encoded, `/`
/// kept; `"/"` for the root. Servers write hrefs with it, clients build URLs.
pub fn url_path(path: &str) -> String {
    let mut s = String::with_capacity(path.len() + 8);
    for c in path.split('/').filter(|c| !c.is_empty()) {
        s.push('/');
        s.extend(percent_encoding::utf8_percent_encode(c, URL_SEGMENT));
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// Checks one path component.
pub fn validate_name(name: &str) -> Result<(), PathError> {
    if name.is_empty() || name.contains('/') {
        return Err(PathError::InvalidName(name.to_string()));
    }
    if name == "." || name == ".." {
        return Err(PathError::DotComponent);
    }
    if name.len() > MAX_COMPONENT_LEN {
        return Err(PathError::ComponentTooLong(
            name.chars().take(40).collect::<String>() + "...",
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(PathError::ControlCharacter);
    }
    Ok(())
}

impl fmt::Display for NsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NsPath({:?})", self.0)
    }
}

impl serde::Serialize for NsPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for NsPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NsPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(NsPath::parse("//a///b/").unwrap().as_str(), "/a/b");
        assert_eq!(NsPath::parse("/").unwrap().as_str(), "/");
        assert_eq!(NsPath::parse("///").unwrap().as_str(), "/");
    }

    #[test]
    fn rejects_bad_paths() {
        assert!(matches!(NsPath::parse("a/b"), Err(PathError::NotAbsolute(_))));
        assert_eq!(NsPath::parse("/a/../b"), Err(PathError::DotComponent));
        assert_eq!(NsPath::parse("/a/./b"), Err(PathError::DotComponent));
        assert_eq!(NsPath::parse("/a\0b"), Err(PathError::ControlCharacter));
        assert_eq!(NsPath::parse("/a\nb"), Err(PathError::ControlCharacter));
        assert!(matches!(
            NsPath::parse(&format!("/{}", "x".repeat(256))),
            Err(PathError::ComponentTooLong(_))
        ));
        assert!(NsPath::parse(&format!("/{}", "x".repeat(255))).is_ok());
        let long = "/abcdefgh".repeat(500);
        assert_eq!(NsPath::parse(&long), Err(PathError::TooLong));
        assert_eq!(NsPath::parse_bytes(b"/\xff"), Err(PathError::NotUtf8));
    }

    #[test]
    fn parent_name_join() {
        let p = NsPath::parse("/a/b/c").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "/a/b");
        assert_eq!(p.name(), Some("c"));
        assert_eq!(NsPath::parse("/a").unwrap().parent(), Some(NsPath::root()));
        assert_eq!(NsPath::root().parent(), None);
        assert_eq!(NsPath::root().join("x").unwrap().as_str(), "/x");
        assert_eq!(p.join("d").unwrap().as_str(), "/a/b/c/d");
        assert!(p.join("..").is_err());
        assert!(p.join("x/y").is_err());
        assert_eq!(p.depth(), 3);
        assert!(p.starts_with(&NsPath::parse("/a/b").unwrap()));
        assert!(!NsPath::parse("/a/bc")
            .unwrap()
            .starts_with(&NsPath::parse("/a/b").unwrap()));
        assert!(p.starts_with(&NsPath::root()));
    }

    #[test]
    fn url_paths_encode_each_component() {
        assert_eq!(url_path("/a b/c%d/é&x"), "/a%20b/c%25d/%C3%A9%26x");
        assert_eq!(url_path("/"), "/");
        assert_eq!(url_path("//x//y/"), "/x/y");
    }

    #[test]
    fn unicode_is_fine() {
        assert_eq!(NsPath::parse("/données/ファイル").unwrap().name(), Some("ファイル"));
    }
}
