//! Conditional requests (RFC 9110 section 13): `If-Match`,
//! `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since` and
//! `If-Range`, evaluated against an entry as the catalog holds it.
//!
//! A file's entity tag is its file id, quoted: strong, since every write of
//! a file (an overwrite too) gives it a new id. Directories have none.
//! Modification times compare at whole seconds, the resolution of an HTTP
//! date.

use crate::{Error, Result};
use bale_catalog::Node;
use std::time::{SystemTime, UNIX_EPOCH};

/// One entity tag of a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityTag {
    pub weak: bool,
    /// The opaque tag without its quotes.
    pub tag: String,
}

/// The value of `If-Match` or `If-None-Match`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagList {
    /// `*`: any current representation.
    Any,
    Tags(Vec<EntityTag>),
}

impl TagList {
    /// Parses `*` or a comma-separated list of entity tags (RFC 9110 8.8.3).
    pub fn parse(header: &str, value: &str) -> Result<TagList> {
        let v = value.trim();
        if v == "*" {
            return Ok(TagList::Any);
        }
        let bad = || {
            Error::BadRequest(format!(
                "{header}: {v:?} is not * or a list of entity tags (\"tag\" or W/\"tag\")"
            ))
        };
        let mut tags = Vec::new();
        let mut rest = v;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let weak = rest.starts_with("W/");
            if weak {
                rest = &rest[2..];
            }
            let body = rest.strip_prefix('"').ok_or_else(bad)?;
            let end = body.find('"').ok_or_else(bad)?;
            tags.push(EntityTag {
                weak,
                tag: body[..end].to_string(),
            });
            rest = &body[end + 1..];
            if !(rest.is_empty() || rest.starts_with([',', ' ', '\t'])) {
                return Err(bad());
            }
        }
        if tags.is_empty() {
            return Err(bad());
        }
        Ok(TagList::Tags(tags))
    }

    /// Strong comparison (If-Match): both tags strong and equal.
    fn matches_strong(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (_, None) => false,
            (TagList::Any, Some(_)) => true,
            (TagList::Tags(ts), Some(c)) => ts.iter().any(|t| !t.weak && t.tag == c),
        }
    }

    /// Weak comparison (If-None-Match): equal tags, weak or not.
    fn matches_weak(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (_, None) => false,
            (TagList::Any, Some(_)) => true,
            (TagList::Tags(ts), Some(c)) => ts.iter().any(|t| t.tag == c),
        }
    }
}

/// The preconditions of one request.
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    pub if_match: Option<TagList>,
    pub if_none_match: Option<TagList>,
    pub if_modified_since: Option<SystemTime>,
    pub if_unmodified_since: Option<SystemTime>,
}

/// What a request does after its preconditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Go on with the method.
    Proceed,
    /// 304: a GET or HEAD whose representation the client has.
    NotModified,
}

/// A file's entity tag, unquoted: its file id.
pub fn etag(node: &Node) -> Option<String> {
    node.file_id.map(|id| id.to_string())
}

/// Seconds since the epoch of a time (before it: 0).
fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    /// Whether the request asks to create only (`If-None-Match: *`).
    pub fn create_only(&self) -> bool {
        self.if_none_match == Some(TagList::Any)
    }

    /// Evaluates the preconditions in RFC 9110's order (13.2.2) against
    /// the entry at the path (`None`: there is none). `read` is a GET or
    /// HEAD, which a failed `If-None-Match` or an unmodified
    /// `If-Modified-Since` answer with 304; every other method gets 412
    /// (`Error::PreconditionFailed`), and changes nothing.
    pub fn evaluate(&self, what: &str, node: Option<&Node>, read: bool) -> Result<Outcome> {
        let tag = node.and_then(etag);
        let tag = match node {
            // `*` matches any entry, a directory too.
            Some(n) if n.is_dir() => Some(String::new()),
            _ => tag,
        };
        let modified = node.map(|n| secs(n.mtime.to_system_time()));
        let failed = |why: String| Err(Error::PreconditionFailed(format!("{what}: {why}; nothing was done")));
        if let Some(m) = &self.if_match {
            let ok = match (m, node) {
                (TagList::Any, Some(_)) => true,
                (TagList::Tags(_), Some(n)) if n.is_dir() => false,
                _ => m.matches_strong(tag.as_deref()),
            };
            if !ok {
                return failed(match node {
                    None => "If-Match, and there is no such entry".into(),
                    Some(_) => format!("If-Match does not match its entity tag ({})", shown(node)),
                });
            }
        } else if let (Some(since), Some(m)) = (self.if_unmodified_since, modified) {
            if m > secs(since) {
                return failed(format!(
                    "modified at {} (If-Unmodified-Since {})",
                    httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(m)),
                    httpdate::fmt_http_date(since)
                ));
            }
        }
        if let Some(m) = &self.if_none_match {
            let matched = match (m, node) {
                (TagList::Tags(_), Some(n)) if n.is_dir() => false,
                _ => m.matches_weak(tag.as_deref()),
            };
            if matched {
                if read {
                    return Ok(Outcome::NotModified);
                }
                return failed(match m {
                    TagList::Any => "it exists and If-None-Match: * asks to create it only".into(),
                    TagList::Tags(_) => format!("If-None-Match matches its entity tag ({})", shown(node)),
                });
            }
        } else if let (true, Some(since), Some(m)) = (read, self.if_modified_since, modified) {
            if m <= secs(since) {
                return Ok(Outcome::NotModified);
            }
        }
        Ok(Outcome::Proceed)
    }
}

fn shown(node: Option<&Node>) -> String {
    match node.and_then(etag) {
        Some(t) => format!("\"{t}\""),
        None => "none: a directory has no entity tag".into(),
    }
}

/// `If-Range` (RFC 9110 13.1.5): whether a Range applies: only with the
/// file's strong entity tag. A date never does: a client may set a file's
/// modification time (X-OC-Mtime, PROPPATCH), so two versions can share
/// one, and a range of the new one spliced onto the old would be wrong
/// data; the whole file is sent instead.
pub fn range_applies(if_range: Option<&str>, node: &Node) -> bool {
    let Some(v) = if_range.map(str::trim) else { return true };
    v.starts_with('"') && etag(node).is_some_and(|t| v == format!("\"{t}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lists_parse() {
        assert_eq!(TagList::parse("If-Match", " * ").unwrap(), TagList::Any);
        let l = TagList::parse("If-Match", "\"a\", W/\"b\",\"c,d\"").unwrap();
        assert_eq!(
            l,
            TagList::Tags(vec![
                EntityTag {
                    weak: false,
                    tag: "a".into()
                },
                EntityTag {
                    weak: true,
                    tag: "b".into()
                },
                EntityTag {
                    weak: false,
                    tag: "c,d".into()
                },
            ])
        );
        for bad in ["nope", "\"a", "\"a\"b", "", ",", "W/b"] {
            assert!(TagList::parse("If-Match", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn strong_and_weak_comparison() {
        let l = TagList::parse("If-Match", "W/\"x\"").unwrap();
        assert!(!l.matches_strong(Some("x")));
        assert!(l.matches_weak(Some("x")));
        assert!(!TagList::Any.matches_strong(None));
    }
}
