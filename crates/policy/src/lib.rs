//! bale's aggregation policy: which files are packed together, and when.
//!
//! A policy is a TOML file of `[[rule]]`s tried in file order; the first
//! rule whose `match` holds decides. A rule either sends files straight to
//! tape (`action = "direct"`) or aggregates them (`action = "aggregate"`)
//! into pools that close on the FIRST of: bytes reach `target_size`, files
//! reach `max_files`, the oldest member waits `max_wait_s`. Files at or
//! above `max_member_size` go direct even under an aggregate rule.
//!
//! Enstore's and Mu2e's SFA names are accepted as aliases, so that the
//! Mu2e table can be written down as it is: `minimal_file_size` (in kB of
//! 1024 bytes, as the table gives it) for `target_size`,
//! `max_files_in_pack` for `max_files`, `max_waiting_time` (seconds) for
//! `max_wait_s`.
//!
//! The last rule must match everything (an explicit catch-all): what
//! happens to a file no other rule wants is written down, not implied.
//!
//! ```toml
//! [[rule]]
//! name = "raw"
//! match = { storage_group = "mu2e", file_family = "phy-raw", path = "/mu2e/**" }
//! action = "aggregate"
//! max_member_size = "300 MB"
//! target_size = "8 GB"
//! max_files = 2000
//! max_wait_s = 86400
//!
//! [[rule]]
//! name = "everything else"
//! action = "direct"
//! ```

use bale_catalog::{Family, JobTarget, Tags};
use bale_util::human::Bytes;
use bytesize::ByteSize;
use serde::Deserialize;
use std::fmt;

/// Files a rule looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    pub storage_group: Option<String>,
    pub file_family: Option<String>,
    pub wrapper: Option<String>,
    pub library: Option<String>,
    /// A glob on the namespace path: `/mu2e/raw/**` is a directory tree.
    pub path: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Size at least this ...
    pub min_size: Option<ByteSize>,
    /// ... and below this.
    pub max_size: Option<ByteSize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Direct,
    Aggregate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    #[serde(default, rename = "match")]
    matches: MatchSpec,
    action: ActionKind,
    max_member_size: Option<ByteSize>,
    target_size: Option<ByteSize>,
    /// Enstore's name for the target, in kB (1024 bytes).
    minimal_file_size: Option<u64>,
    #[serde(alias = "max_files_in_pack")]
    max_files: Option<u32>,
    #[serde(alias = "max_waiting_time")]
    max_wait_s: Option<f64>,
    group_by: Option<String>,
    /// What a read of a purged file under this rule does (default: the
    /// server's `stage.on_read_miss`).
    on_read_miss: Option<OnReadMiss>,
    /// More tape copies: one in each library named, after the first copy
    /// (Enstore's multiple copies; Mu2e's second copy of raw data).
    #[serde(default)]
    copy_to: Vec<String>,
}

/// What a read of a file whose only copy is on tape does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnReadMiss {
    /// Stage its package and wait (then 503 with Retry-After while the
    /// stage goes on).
    Stage,
    /// Refuse at once: the file must be staged first.
    Error,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleFile>>,
}

/// What splits an aggregate rule's files into pools, on top of the family
/// (storage group, file family, wrapper), which always splits them: a
/// package never mixes families.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// The family alone (the default).
    Family,
    /// The family and the first N directories of the file's path.
    DirDepth(usize),
    /// The family and a directory tag's value.
    Tag(String),
}

/// How an aggregate rule packs.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    /// Files at or above this size go direct.
    pub max_member_size: u64,
    /// A pool closes when its bytes reach this.
    pub target_size: u64,
    /// ... or its files reach this.
    pub max_files: u32,
    /// ... or its oldest member has waited this long.
    pub max_wait_s: f64,
    pub group_by: GroupBy,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Direct,
    Aggregate(Aggregate),
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub matches: MatchSpec,
    glob: Option<globset::GlobMatcher>,
    pub action: Action,
    /// What a read of a purged file under this rule does; `None`: the
    /// server's default.
    pub on_read_miss: Option<OnReadMiss>,
    /// The libraries that get one more tape copy each, in order, after the
    /// copy in the file's own library (several tape copies).
    pub copy_to: Vec<String>,
    /// Line of the rule in its file.
    pub line: usize,
}

impl Rule {
    /// A direct rule that takes files smaller than `direct_min` (the size
    /// from which every file is written alone anyway): each such file costs
    /// a tape file and a synchronous file mark. The warning, if so.
    pub fn small_direct_warning(&self, direct_min: u64) -> Option<String> {
        if !matches!(self.action, Action::Direct) {
            return None;
        }
        let from = self.matches.min_size.map_or(0, |s| s.0);
        if from >= direct_min {
            return None;
        }
        Some(format!(
            "rule {:?} (line {}) writes files {} to tape one by one: each file below tape.direct_min_size \
             ({}) costs a tape file and a file mark of seconds; give it min_size = {direct_min} \
             and an aggregate rule for the smaller ones",
            self.name,
            self.line,
            match from {
                0 => "of any size".to_string(),
                n => format!("from {}", Bytes(n)),
            },
            Bytes(direct_min)
        ))
    }
}

/// A loaded policy: its rules and the text they came from.
#[derive(Clone, Debug)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {message}")]
pub struct PolicyError {
    /// 1-based line and column, where known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// What is known of a file when it is routed.
#[derive(Clone, Debug)]
pub struct FileFacts<'a> {
    pub path: &'a str,
    pub size: u64,
    pub owner: &'a str,
    pub group: &'a str,
    pub tags: &'a Tags,
}

/// Where a file goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    /// Its own tape file.
    Direct,
    /// The pool `pool` of the rule.
    Aggregate { pool: String },
}

/// The outcome of routing one file, with the reasons.
#[derive(Clone, Debug)]
pub struct Decision<'a> {
    pub index: usize,
    pub rule: &'a Rule,
    pub route: Route,
    /// Why the route within the rule (e.g. above max_member_size).
    pub why: String,
    /// Every earlier rule and why it did not match.
    pub skipped: Vec<(&'a str, String)>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn parse_group_by(s: &str) -> Result<GroupBy, String> {
    if s == "family" {
        return Ok(GroupBy::Family);
    }
    if let Some(n) = s.strip_prefix("dir:") {
        return match n.parse::<usize>() {
            Ok(n) if (1..=64).contains(&n) => Ok(GroupBy::DirDepth(n)),
            _ => Err(format!("group_by {s:?}: the depth after dir: is 1 to 64")),
        };
    }
    if let Some(t) = s.strip_prefix("tag:") {
        if bale_catalog::TAG_NAMES.contains(&t) {
            return Ok(GroupBy::Tag(t.to_string()));
        }
        return Err(format!(
            "group_by {s:?}: unknown tag; known: {}",
            bale_catalog::TAG_NAMES.join(", ")
        ));
    }
    Err(format!(
        "group_by {s:?}: expected \"family\", \"dir:N\" or \"tag:NAME\""
    ))
}

impl Policy {
    /// Parses and checks a policy; errors name the line and column.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            let (line, column) = match e.span() {
                Some(s) => {
                    let (l, c) = line_col(text, s.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            PolicyError {
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        let mut rules = Vec::with_capacity(file.rule.len());
        let mut names = std::collections::BTreeSet::new();
        for spanned in &file.rule {
            let (line, column) = line_col(text, spanned.span().start);
            let at = |message: String| PolicyError {
                line: Some(line),
                column: Some(column),
                message,
            };
            let r = spanned.get_ref();
            if r.name.trim().is_empty() {
                return Err(at("a rule needs a name".into()));
            }
            if !names.insert(r.name.clone()) {
                return Err(at(format!("rule {:?} is defined twice", r.name)));
            }
            let m = &r.matches;
            if let (Some(lo), Some(hi)) = (m.min_size, m.max_size) {
                if lo >= hi {
                    return Err(at(format!(
                        "rule {:?}: min_size {lo} is not below max_size {hi}",
                        r.name
                    )));
                }
            }
            let glob = match &m.path {
                None => None,
                Some(p) => {
                    if !p.starts_with('/') {
                        return Err(at(format!("rule {:?}: path {p:?} must start with /", r.name)));
                    }
                    let g = globset::GlobBuilder::new(p)
                        .literal_separator(true)
                        .build()
                        .map_err(|e| at(format!("rule {:?}: path {p:?}: {e}", r.name)))?;
                    Some(g.compile_matcher())
                }
            };
            let action = match r.action {
                ActionKind::Direct => {
                    let extra = [
                        ("max_member_size", r.max_member_size.is_some()),
                        ("target_size", r.target_size.is_some()),
                        ("minimal_file_size", r.minimal_file_size.is_some()),
                        ("max_files", r.max_files.is_some()),
                        ("max_wait_s", r.max_wait_s.is_some()),
                        ("group_by", r.group_by.is_some()),
                    ];
                    if let Some((k, _)) = extra.iter().find(|e| e.1) {
                        return Err(at(format!(
                            "rule {:?} is direct; {k} belongs to aggregate rules",
                            r.name
                        )));
                    }
                    Action::Direct
                }
                ActionKind::Aggregate => {
                    let target = match (r.target_size, r.minimal_file_size) {
                        (Some(_), Some(_)) => {
                            return Err(at(format!(
                                "rule {:?}: give target_size or minimal_file_size, not both",
                                r.name
                            )))
                        }
                        (Some(t), None) => t.0,
                        (None, Some(kb)) => kb.saturating_mul(1024),
                        (None, None) => {
                            return Err(at(format!(
                                "rule {:?}: an aggregate rule needs target_size (or minimal_file_size in kB)",
                                r.name
                            )))
                        }
                    };
                    let need = |k: &str| at(format!("rule {:?}: an aggregate rule needs {k}", r.name));
                    let max_member_size = r.max_member_size.ok_or_else(|| need("max_member_size"))?.0;
                    let max_files = r.max_files.ok_or_else(|| need("max_files (or max_files_in_pack)"))?;
                    let max_wait_s = r.max_wait_s.ok_or_else(|| need("max_wait_s (or max_waiting_time)"))?;
                    if target == 0 || max_member_size == 0 || max_files == 0 {
                        return Err(at(format!(
                            "rule {:?}: target_size, max_member_size and max_files must be positive",
                            r.name
                        )));
                    }
                    if max_wait_s.is_nan() || max_wait_s <= 0.0 {
                        return Err(at(format!("rule {:?}: max_wait_s must be positive", r.name)));
                    }
                    let group_by = match &r.group_by {
                        None => GroupBy::Family,
                        Some(g) => parse_group_by(g).map_err(|e| at(format!("rule {:?}: {e}", r.name)))?,
                    };
                    Action::Aggregate(Aggregate {
                        max_member_size,
                        target_size: target,
                        max_files,
                        max_wait_s,
                        group_by,
                    })
                }
            };
            let mut seen = std::collections::BTreeSet::new();
            for l in &r.copy_to {
                if l.trim().is_empty() || l.contains(',') {
                    return Err(at(format!(
                        "rule {:?}: copy_to names a library {l:?} that is not a name",
                        r.name
                    )));
                }
                if !seen.insert(l) {
                    return Err(at(format!(
                        "rule {:?}: copy_to names library {l:?} twice; each copy is in its own library",
                        r.name
                    )));
                }
            }
            rules.push(Rule {
                name: r.name.clone(),
                copy_to: r.copy_to.clone(),
                matches: r.matches.clone(),
                glob,
                action,
                on_read_miss: r.on_read_miss,
                line,
            });
        }
        match rules.last() {
            None => {
                return Err(PolicyError {
                    line: None,
                    column: None,
                    message: "a policy needs at least one [[rule]], the last one matching every file".into(),
                })
            }
            Some(last) if last.matches != MatchSpec::default() => {
                return Err(PolicyError {
                    line: Some(last.line),
                    column: Some(1),
                    message: format!(
                        "the last rule ({:?}) must match every file (no match table): write the catch-all out",
                        last.name
                    ),
                })
            }
            Some(_) => {}
        }
        Ok(Policy {
            rules,
            source: text.to_string(),
        })
    }

    /// A library some rule's `copy_to` names that is not among the
    /// configured `libraries`, with the rule's name.
    pub fn unknown_copy_library(&self, libraries: &[String]) -> Option<(String, String)> {
        self.rules.iter().find_map(|r| {
            r.copy_to
                .iter()
                .find(|l| !libraries.contains(l))
                .map(|l| (r.name.clone(), l.clone()))
        })
    }

    /// The rule a file gets, and why every earlier rule did not match.
    pub fn route(&self, f: &FileFacts<'_>) -> Decision<'_> {
        let mut skipped = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            match rule.mismatch(f) {
                Some(why) => skipped.push((rule.name.as_str(), why)),
                None => {
                    let (route, why) = match &rule.action {
                        Action::Direct => (Route::Direct, "the rule writes files directly".to_string()),
                        Action::Aggregate(a) if f.size >= a.max_member_size => (
                            Route::Direct,
                            format!(
                                "size {} is at or above max_member_size {}: direct",
                                Bytes(f.size),
                                Bytes(a.max_member_size)
                            ),
                        ),
                        Action::Aggregate(a) => (
                            Route::Aggregate {
                                pool: pool_key(&rule.name, a, f),
                            },
                            format!(
                                "size {} is below max_member_size {}: aggregated",
                                Bytes(f.size),
                                Bytes(a.max_member_size)
                            ),
                        ),
                    };
                    return Decision {
                        index,
                        rule,
                        route,
                        why,
                        skipped,
                    };
                }
            }
        }
        unreachable!("the last rule matches every file (checked at parse)")
    }
}

/// The family a file's tags put it in; tags not set take the defaults:
/// storage group and file family "default", wrapper "tar".
pub fn family(tags: &Tags) -> Family {
    Family {
        storage_group: tags.storage_group.clone().unwrap_or_else(|| "default".into()),
        file_family: tags.file_family.clone().unwrap_or_else(|| "default".into()),
        wrapper: tags.wrapper.clone().unwrap_or_else(|| "tar".into()),
    }
}

/// [`family`] as `storage_group.file_family.wrapper`.
pub fn family_of(tags: &Tags) -> String {
    family(tags).to_string()
}

/// Where files with these tags are written: their library (the tag, else
/// the first of `libraries`, the configured ones), family and width (the
/// tag, else 1). A library tag that names no configured library is an error.
pub fn target_for(tags: &Tags, libraries: &[String]) -> Result<JobTarget, String> {
    let library = match &tags.library {
        Some(l) => l.clone(),
        None => libraries.first().cloned().ok_or("no tape library is configured")?,
    };
    if !libraries.contains(&library) {
        return Err(format!(
            "the directory's library tag names {library:?}, which is not a configured library ({})",
            libraries.join(", ")
        ));
    }
    Ok(JobTarget {
        library,
        family: family(tags),
        width: tags.file_family_width.unwrap_or(1),
        copies: Vec::new(),
    })
}

fn pool_key(rule: &str, a: &Aggregate, f: &FileFacts<'_>) -> String {
    let family = family_of(f.tags);
    match &a.group_by {
        GroupBy::Family => format!("{rule}/{family}"),
        GroupBy::DirDepth(n) => {
            let dirs: Vec<&str> = f.path.trim_start_matches('/').split('/').collect();
            let parent = &dirs[..dirs.len().saturating_sub(1)];
            let take = (*n).min(parent.len());
            format!("{rule}/{family}/{}", parent[..take].join("/"))
        }
        GroupBy::Tag(t) => format!("{rule}/{family}/{}", f.tags.get(t).unwrap_or_else(|| "-".into())),
    }
}

impl Rule {
    /// Why the rule does not match the file, or `None` if it does.
    fn mismatch(&self, f: &FileFacts<'_>) -> Option<String> {
        let m = &self.matches;
        let tag = |want: &Option<String>, have: &Option<String>, name: &str| match want {
            Some(w) if have.as_deref() != Some(w.as_str()) => Some(format!(
                "{name} is {}, the rule wants {w:?}",
                have.as_deref().map_or("not set".to_string(), |h| format!("{h:?}"))
            )),
            _ => None,
        };
        tag(&m.storage_group, &f.tags.storage_group, "storage_group")
            .or_else(|| tag(&m.file_family, &f.tags.file_family, "file_family"))
            .or_else(|| tag(&m.wrapper, &f.tags.wrapper, "wrapper"))
            .or_else(|| tag(&m.library, &f.tags.library, "library"))
            .or_else(|| {
                let g = self.glob.as_ref()?;
                (!g.is_match(f.path)).then(|| {
                    format!(
                        "path {} is not under {:?}",
                        f.path,
                        m.path.as_deref().unwrap_or_default()
                    )
                })
            })
            .or_else(|| {
                let o = m.owner.as_ref()?;
                (o != f.owner).then(|| format!("owner is {:?}, the rule wants {o:?}", f.owner))
            })
            .or_else(|| {
                let g = m.group.as_ref()?;
                (g != f.group).then(|| format!("group is {:?}, the rule wants {g:?}", f.group))
            })
            .or_else(|| {
                let lo = m.min_size?;
                (f.size < lo.0).then(|| format!("size {} is below min_size {}", Bytes(f.size), Bytes(lo.0)))
            })
            .or_else(|| {
                let hi = m.max_size?;
                (f.size >= hi.0).then(|| format!("size {} is not below max_size {}", Bytes(f.size), Bytes(hi.0)))
            })
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, why) in &self.skipped {
            writeln!(f, "rule {name:?}: no match: {why}")?;
        }
        writeln!(
            f,
            "rule {:?} (line {}) matches: {}",
            self.rule.name, self.rule.line, self.why
        )?;
        match &self.route {
            Route::Direct => write!(f, "route: direct to tape"),
            Route::Aggregate { pool } => write!(f, "route: pool {pool}"),
        }
    }
}

#[cfg(test)]
mod tests;
