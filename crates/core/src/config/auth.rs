//! `[auth]`: the audit log and the WLCG token issuers bale trusts.

use crate::account::validate_account_name;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The audience every WLCG service accepts (Common JWT Profile).
pub const ANY_AUDIENCE: &str = "https://wlcg.cern.ch/jwt/v1/any";

/// Authentication beyond bale's own tokens, and the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Where the audit log goes: a file (appended to; a relative path is
    /// under data_dir), or "-" for the server's log.
    pub audit_log: String,
    /// Audiences a WLCG token must name one of (exact strings, e.g.
    /// "https://tape.example.org"); the profile's "any" audience is always
    /// accepted besides.
    pub audiences: Vec<String>,
    /// Seconds of clock skew forgiven on a token's exp and nbf.
    pub leeway_s: u64,
    /// Seconds a key that left its issuer's key set is still accepted
    /// (the profile's key expiry: 2 days).
    pub key_expiry_s: u64,
    /// A token naming a key id that is not known makes bale read the
    /// issuer's keys again, at most once in this many seconds.
    pub jwks_reread_s: u64,
    /// The token issuers trusted ([[auth.issuers]]).
    pub issuers: Vec<IssuerConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            audit_log: "audit.log".into(),
            audiences: Vec::new(),
            leeway_s: 60,
            key_expiry_s: 2 * 86_400,
            jwks_reread_s: 60,
            issuers: Vec::new(),
        }
    }
}

/// One trusted token issuer (one VO).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer's `iss`, exactly as in its tokens.
    pub issuer: String,
    /// The namespace directory the issuer's scope paths are read under
    /// (`storage.read:/data` with prefix "/atlas" is /atlas/data). "/"
    /// hands the issuer the whole namespace and must be written as such.
    pub prefix: String,
    /// The issuer's public keys: a JWKS file, or a directory in the WLCG
    /// jwks-cache layout (one file per issuer, named the hex SHA-256 of
    /// `iss`).
    pub jwks: PathBuf,
    /// The bale user and group that files and directories created with a
    /// capability token of this issuer belong to, and whose stage
    /// requests and pins its tokens share.
    pub user: String,
    pub group: String,
    /// Subjects (`sub`) given a bale user of their own instead of `user`.
    #[serde(default)]
    pub subjects: BTreeMap<String, String>,
    /// Tokens without capability scopes: their `wlcg.groups`, in the
    /// token's order, are mapped to a bale user and group by the first
    /// mapping that names one; a token none maps is refused.
    #[serde(default)]
    pub groups: Vec<GroupMapping>,
}

/// A WLCG group (`/atlas/production`) and the bale user and group its
/// members act as. A child group does not match its parent's mapping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    pub wlcg_group: String,
    pub user: String,
    pub group: String,
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.audit_log.is_empty() {
            return Err("auth.audit_log is empty: name a file, or \"-\" for the server's log".into());
        }
        if self.leeway_s > 600 {
            return Err(format!("auth.leeway_s is {}; at most 600", self.leeway_s));
        }
        if self.jwks_reread_s == 0 {
            return Err("auth.jwks_reread_s must be at least 1".into());
        }
        for a in &self.audiences {
            if a.is_empty() || a.len() > 1024 {
                return Err(format!("auth.audiences: {a:?} is not an audience"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, iss) in self.issuers.iter().enumerate() {
            let at = format!("auth.issuers[{i}] ({:?})", iss.issuer);
            if iss.issuer.is_empty() {
                return Err(format!("{at}: issuer is empty"));
            }
            if !seen.insert(&iss.issuer) {
                return Err(format!("{at}: the issuer is listed twice"));
            }
            let p = bale_util::NsPath::parse(&iss.prefix)
                .map_err(|e| format!("{at}: prefix {:?} is not a namespace path: {e}", iss.prefix))?;
            if p.as_str() != iss.prefix.trim_end_matches('/') && !(p.is_root() && iss.prefix == "/") {
                return Err(format!("{at}: write the prefix as {p}, not {:?}", iss.prefix));
            }
            validate_account_name("user", &iss.user).map_err(|e| format!("{at}: {e}"))?;
            validate_account_name("group", &iss.group).map_err(|e| format!("{at}: {e}"))?;
            for u in iss.subjects.values() {
                validate_account_name("user", u).map_err(|e| format!("{at}: subjects: {e}"))?;
            }
            for g in &iss.groups {
                if !g.wlcg_group.starts_with('/') {
                    return Err(format!(
                        "{at}: groups: {:?} is not a WLCG group (/vo or /vo/name)",
                        g.wlcg_group
                    ));
                }
                validate_account_name("user", &g.user).map_err(|e| format!("{at}: groups: {e}"))?;
                validate_account_name("group", &g.group).map_err(|e| format!("{at}: groups: {e}"))?;
            }
        }
        Ok(())
    }
}
