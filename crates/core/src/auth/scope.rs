//! Capability scopes of WLCG tokens (Common JWT Profile v1.3, section
//! "Capability-based authorization"): `storage.read:/data` and the like,
//! each path read under the issuer's namespace prefix and matched on
//! whole path components (`/a` covers `/a` and `/a/b`, never `/ab`).
//!
//! What each grants here:
//!
//! | scope | grants |
//! | --- | --- |
//! | `storage.read` | read data, list directories |
//! | `storage.create` | new files and directories; no overwrite, delete or rename |
//! | `storage.modify` | create, plus overwrite, delete, rename, tags and mode |
//! | `storage.stage` | stage, poll, cancel, release and pin; not read (v1.2 on) |
//! | `storage.poll` | poll stage requests |
//! | any of these | stat and archive state of the paths it covers |
//!
//! A token with any capability scope (these, or `compute.*`) is judged on
//! its capabilities alone: they replace the mode bits under the prefix,
//! and grant nothing outside it.

use bale_util::NsPath;
use std::fmt;

/// What a storage scope authorizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Authz {
    Read,
    Create,
    Modify,
    Stage,
    Poll,
}

impl Authz {
    pub fn name(self) -> &'static str {
        match self {
            Authz::Read => "storage.read",
            Authz::Create => "storage.create",
            Authz::Modify => "storage.modify",
            Authz::Stage => "storage.stage",
            Authz::Poll => "storage.poll",
        }
    }

    fn parse(s: &str) -> Option<Authz> {
        Some(match s {
            "storage.read" => Authz::Read,
            "storage.create" => Authz::Create,
            "storage.modify" => Authz::Modify,
            "storage.stage" => Authz::Stage,
            "storage.poll" => Authz::Poll,
            _ => return None,
        })
    }
}

/// Capability scopes the profile defines that say nothing of storage; a
/// token with one is still a capability token.
const COMPUTE: [&str; 4] = ["compute.read", "compute.modify", "compute.create", "compute.cancel"];

/// One storage scope: its authorization, the path as the token wrote it,
/// and the namespace path it covers (under the issuer's prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub authz: Authz,
    /// The path in the token (`/data`).
    pub written: String,
    /// The namespace path it covers (`/atlas/data`).
    pub path: NsPath,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.authz.name(), self.written)
    }
}

/// Whether `path` is `base` or below it, on whole components.
pub fn covers(base: &NsPath, path: &NsPath) -> bool {
    let (b, p) = (base.as_str(), path.as_str());
    base.is_root() || p == b || (p.starts_with(b) && p.as_bytes().get(b.len()) == Some(&b'/'))
}

/// The storage capabilities of a token, resolved under its issuer's prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub prefix: NsPath,
    pub scopes: Vec<Scope>,
}

impl Capabilities {
    /// Whether some scope of one of `kinds` covers `path`.
    pub fn grants(&self, kinds: &[Authz], path: &NsPath) -> bool {
        self.scopes
            .iter()
            .any(|s| kinds.contains(&s.authz) && covers(&s.path, path))
    }

    /// Whether `path` is a directory above a scope of one of `kinds` (the
    /// way to it: visible, and creatable as a directory for create and
    /// modify, as the profile's component matching allows).
    pub fn leads_to(&self, kinds: &[Authz], path: &NsPath) -> bool {
        self.scopes
            .iter()
            .any(|s| kinds.contains(&s.authz) && covers(path, &s.path) && path != &s.path)
    }

    /// Whether the token holds any scope of one of `kinds`, anywhere.
    pub fn has(&self, kinds: &[Authz]) -> bool {
        self.scopes.iter().any(|s| kinds.contains(&s.authz))
    }
}

/// A scope path: absolute, no `.` or `..`, no encoded `/` or NUL, no `%`
/// left over; a trailing `/` is the directory itself.
fn scope_path(written: &str) -> Result<NsPath, String> {
    if !written.starts_with('/') {
        return Err(format!("the scope path {written:?} is not absolute"));
    }
    let lower = written.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%00") || written.contains('\0') {
        return Err(format!("the scope path {written:?} holds an encoded '/' or NUL"));
    }
    let b = written.as_bytes();
    let broken = b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if broken {
        return Err(format!(
            "the scope path {written:?} has a '%' that is not an escape (%XX)"
        ));
    }
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(written).collect();
    let decoded =
        String::from_utf8(bytes).map_err(|_| format!("the scope path {written:?} is not UTF-8 once decoded"))?;
    if decoded.split('/').any(|c| c == ".." || c == ".") {
        return Err(format!("the scope path {written:?} has a '.' or '..' component"));
    }
    NsPath::parse(&decoded).map_err(|e| format!("the scope path {written:?} is not a path: {e}"))
}

/// The capabilities in a token's `scope` claim (space-separated), under
/// `prefix`; `None` when the token has no capability scope at all (then
/// its groups decide). A storage scope without a path, or with a path that
/// is not one, makes the whole token invalid.
pub fn parse(scope: &str, prefix: &NsPath) -> Result<Option<Capabilities>, String> {
    let mut scopes = Vec::new();
    let mut capability = false;
    for item in scope.split_ascii_whitespace() {
        let (name, path) = match item.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (item, None),
        };
        if COMPUTE.contains(&name) {
            capability = true;
            continue;
        }
        let Some(authz) = Authz::parse(name) else {
            // openid, offline_access, wlcg, eduperson_*: not capabilities.
            continue;
        };
        capability = true;
        let written = match path {
            Some(p) if !p.is_empty() => p,
            _ => {
                return Err(format!(
                    "the scope {item:?} has no path (write {name}:/ for everything)"
                ))
            }
        };
        let rel = scope_path(written)?;
        let path = if rel.is_root() {
            prefix.clone()
        } else {
            let joined = format!("{}{}", prefix.as_str().trim_end_matches('/'), rel.as_str());
            NsPath::parse(&joined).map_err(|e| format!("the scope {item:?} does not fit under {prefix}: {e}"))?
        };
        scopes.push(Scope {
            authz,
            written: written.to_string(),
            path,
        });
    }
    Ok(capability.then(|| Capabilities {
        prefix: prefix.clone(),
        scopes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> NsPath {
        NsPath::parse(s).unwrap()
    }

    #[test]
    fn paths_match_on_whole_components_under_the_prefix() {
        let c = parse("openid storage.create:/a storage.read:/ storage.stage:/t/", &p("/vo"))
            .unwrap()
            .unwrap();
        assert!(c.grants(&[Authz::Create], &p("/vo/a")));
        assert!(c.grants(&[Authz::Create], &p("/vo/a/b/c")));
        assert!(!c.grants(&[Authz::Create], &p("/vo/ab")));
        assert!(!c.grants(&[Authz::Create], &p("/vo/b")));
        assert!(!c.grants(&[Authz::Create], &p("/a")));
        assert!(c.grants(&[Authz::Read], &p("/vo/anything")));
        assert!(!c.grants(&[Authz::Read], &p("/other")));
        assert!(!c.grants(&[Authz::Read], &p("/vox")));
        assert!(c.grants(&[Authz::Stage], &p("/vo/t/x")));
        assert!(c.leads_to(&[Authz::Create], &p("/vo")));
        assert!(!c.leads_to(&[Authz::Create], &p("/vo/a")));
        assert_eq!(c.scopes[0].to_string(), "storage.create:/a");
    }

    #[test]
    fn bad_scopes_make_the_token_invalid() {
        let root = NsPath::root();
        for bad in [
            "storage.read",
            "storage.read:",
            "storage.modify:a/b",
            "storage.read:/a/../b",
            "storage.read:/a/./b",
            "storage.read:/a%2Fb",
            "storage.read:/a%00",
            "storage.read:/a\0",
            "storage.read:/a%2",
            "storage.read:/a%zz/b",
            "storage.read:/a%",
        ] {
            assert!(parse(bad, &root).is_err(), "{bad:?}");
        }
        // Groups only, or nothing of storage: not a capability token.
        assert_eq!(parse("openid wlcg.groups", &root).unwrap(), None);
        // A compute scope alone: a capability token that grants no storage.
        let c = parse("compute.read", &root).unwrap().unwrap();
        assert!(c.scopes.is_empty());
        // An encoded space is a space.
        let c = parse("storage.read:/a%20b", &root).unwrap().unwrap();
        assert_eq!(c.scopes[0].path.as_str(), "/a b");
    }
}
