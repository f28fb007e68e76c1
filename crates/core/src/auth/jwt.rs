//! WLCG tokens: JWTs of the Common JWT Profile (v1.3), verified against
//! the keys of the issuers `[auth]` trusts.
//!
//! What a token must be, each failure a 401 that says which:
//! - signed with RS256 or ES256 (not `none`, not HMAC), with a `kid` that
//!   names a key of its issuer;
//! - from a configured issuer (`iss`), with `exp`, `aud` (one of the
//!   configured audiences or the profile's "any"), `sub` and `wlcg.ver`
//!   1.x; `exp` and `nbf` are checked with the configured leeway;
//! - every storage scope with a path (see `scope`).
//!
//! Keys come from a JWKS file per issuer, or the WLCG jwks-cache directory
//! layout. They are read at start, and again (at most once per
//! `jwks_reread_s`) when a token names a key id not known; a key that left
//! the file is kept for `key_expiry_s`, so a token signed just before a
//! rotation still passes. A file that does not read keeps the keys known.

use super::scope::{self, Capabilities};
use crate::config::{AuthConfig, IssuerConfig, ANY_AUDIENCE};
use bale_util::NsPath;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token that verified: who issued it, to whom, and what it grants.
#[derive(Clone, Debug)]
pub struct Verified {
    pub issuer: String,
    pub subject: String,
    /// The token's id (`jti`), if any: what the audit log names it by.
    pub jti: Option<String>,
    pub expires: i64,
    /// Its capability scopes; `None` when it has none (groups decide).
    pub caps: Option<Capabilities>,
    pub groups: Vec<String>,
}

struct Key {
    key: DecodingKey,
    alg: Algorithm,
    /// When the key was last in its issuer's key set.
    seen: Instant,
}

struct Keys {
    by_kid: HashMap<String, Key>,
    last_read: Option<Instant>,
}

struct Issuer {
    cfg: IssuerConfig,
    prefix: NsPath,
    keys: Mutex<Keys>,
}

/// The trusted issuers and their keys.
pub struct Issuers {
    issuers: HashMap<String, Issuer>,
    audiences: Vec<String>,
    leeway: u64,
    key_expiry: Duration,
    reread: Duration,
}

/// Whether a bearer credential looks like a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|&b| b == b'.').count() == 2
}

fn b64json(part: &str, what: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| format!("the token's {what} is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(format!("the token's {what} is not a JSON object")),
    }
}

/// The file holding `issuer`'s keys: the configured file, or in a
/// jwks-cache directory the file named the hex SHA-256 of the issuer.
fn key_file(jwks: &Path, issuer: &str) -> PathBuf {
    if jwks.is_dir() {
        let name = hex::encode(Sha256::digest(issuer.as_bytes()));
        let plain = jwks.join(&name);
        if plain.exists() {
            return plain;
        }
        return jwks.join(format!("{name}.json"));
    }
    jwks.to_path_buf()
}

/// The keys of `issuer` in a JWKS document, or a jwks-cache entry
/// (`{"expiration":…, "jwks":{…}}`, or that keyed by the issuer).
fn read_keys(path: &Path, issuer: &str) -> Result<Vec<(String, Algorithm, DecodingKey)>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let set = if doc.get("keys").is_some() {
        &doc
    } else if let Some(j) = doc.get("jwks") {
        j
    } else if let Some(j) = doc.get(issuer).and_then(|e| e.get("jwks")) {
        j
    } else {
        return Err(format!(
            "{} holds no key set (\"keys\", or a jwks-cache entry)",
            path.display()
        ));
    };
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(set.clone()).map_err(|e| format!("{} is not a JWK set: {e}", path.display()))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            tracing::warn!("{}: a key without a kid is skipped", path.display());
            continue;
        };
        let alg = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec)
                if ec.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => {
                tracing::warn!("{}: key {kid} is neither RSA nor P-256: skipped", path.display());
                continue;
            }
        };
        if let Some(stated) = jwk.common.key_algorithm {
            if format!("{stated:?}") != format!("{alg:?}") {
                tracing::warn!(
                    "{}: key {kid} says alg {stated:?}; only RS256 and ES256 are accepted: skipped",
                    path.display()
                );
                continue;
            }
        }
        match DecodingKey::from_jwk(jwk) {
            Ok(k) => keys.push((kid, alg, k)),
            Err(e) => tracing::warn!("{}: key {kid} does not load: {e}", path.display()),
        }
    }
    Ok(keys)
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: Option<String>,
    exp: i64,
    jti: Option<String>,
    scope: Option<String>,
    #[serde(rename = "wlcg.ver")]
    ver: Option<serde_json::Value>,
    #[serde(rename = "wlcg.groups", default)]
    groups: Vec<String>,
}

/// `1.x`: a major version 1 and a numeric minor (profile 1.1 on: a newer
/// minor is accepted, another major refused).
fn version_ok(v: &str) -> bool {
    let mut parts = v.splitn(2, '.');
    parts.next() == Some("1")
        && parts
            .next()
            .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
}

impl Issuers {
    /// The issuers of `[auth]`, each with its keys read; a key file that
    /// does not read is an error at start (a typo is found then, not at the
    /// first token).
    pub fn load(cfg: &AuthConfig) -> Result<Issuers, String> {
        let mut issuers = HashMap::new();
        for ic in &cfg.issuers {
            let prefix = NsPath::parse(&ic.prefix).map_err(|e| format!("issuer {}: prefix: {e}", ic.issuer))?;
            let file = key_file(&ic.jwks, &ic.issuer);
            let keys = read_keys(&file, &ic.issuer).map_err(|e| format!("issuer {}: {e}", ic.issuer))?;
            if keys.is_empty() {
                tracing::warn!("issuer {}: {} holds no usable key yet", ic.issuer, file.display());
            }
            let now = Instant::now();
            let by_kid = keys
                .into_iter()
                .map(|(kid, alg, key)| (kid, Key { key, alg, seen: now }))
                .collect();
            issuers.insert(
                ic.issuer.clone(),
                Issuer {
                    cfg: ic.clone(),
                    prefix,
                    keys: Mutex::new(Keys {
                        by_kid,
                        last_read: Some(now),
                    }),
                },
            );
        }
        Ok(Issuers {
            issuers,
            audiences: cfg.audiences.clone(),
            leeway: cfg.leeway_s,
            key_expiry: Duration::from_secs(cfg.key_expiry_s),
            reread: Duration::from_secs(cfg.jwks_reread_s),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// The configuration of a trusted issuer.
    pub fn config(&self, issuer: &str) -> Option<&IssuerConfig> {
        self.issuers.get(issuer).map(|i| &i.cfg)
    }

    /// Reads the issuer's keys again if the last read is `reread` old.
    fn refresh(&self, issuer: &Issuer) {
        let mut keys = issuer.keys.lock().expect("keys");
        if keys.last_read.is_some_and(|t| t.elapsed() < self.reread) {
            return;
        }
        keys.last_read = Some(Instant::now());
        let file = key_file(&issuer.cfg.jwks, &issuer.cfg.issuer);
        match read_keys(&file, &issuer.cfg.issuer) {
            Ok(fresh) => {
                let now = Instant::now();
                for (kid, alg, key) in fresh {
                    keys.by_kid.insert(kid, Key { key, alg, seen: now });
                }
                let expiry = self.key_expiry;
                keys.by_kid.retain(|_, k| k.seen.elapsed() < expiry);
            }
            Err(e) => tracing::warn!(
                "issuer {}: keys not reread, the known ones stay: {e}",
                issuer.cfg.issuer
            ),
        }
    }

    /// Verifies a JWT; the error says why it is refused.
    pub fn verify(&self, token: &str) -> Result<Verified, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("the token is not a JWT (three base64url parts)".into());
        };
        let header = b64json(h, "header")?;
        let alg = match header.get("alg").and_then(|a| a.as_str()) {
            None => return Err("the token's header names no alg".into()),
            Some("RS256") => Algorithm::RS256,
            Some("ES256") => Algorithm::ES256,
            Some(a) if a.eq_ignore_ascii_case("none") => {
                return Err("an unsigned token (alg none) is refused: tokens are signed with RS256 or ES256".into())
            }
            Some(a) if a.starts_with("HS") => {
                return Err(format!(
                    "alg {} (a shared secret) is refused: tokens are signed with RS256 or ES256",
                    super::shown(a)
                ))
            }
            Some(a) => {
                return Err(format!(
                    "alg {} is not accepted: tokens are signed with RS256 or ES256",
                    super::shown(a)
                ))
            }
        };
        if header.contains_key("crit") {
            return Err("the token's header has crit extensions, which bale does not understand".into());
        }
        let kid = header
            .get("kid")
            .and_then(|k| k.as_str())
            .ok_or("the token's header names no key (kid)")?
            .to_string();
        let payload = b64json(p, "payload")?;
        let iss = payload
            .get("iss")
            .and_then(|i| i.as_str())
            .ok_or("the token has no issuer (iss)")?;
        let issuer = self
            .issuers
            .get(iss)
            .ok_or_else(|| format!("the token's issuer {} is not trusted here", super::shown(iss)))?;
        let has_key = issuer.keys.lock().expect("keys").by_kid.contains_key(&kid);
        if !has_key {
            self.refresh(issuer);
        }
        let keys = issuer.keys.lock().expect("keys");
        let key = keys
            .by_kid
            .get(&kid)
            .ok_or_else(|| format!("issuer {iss:?} has no key {}", super::shown(&kid)))?;
        if key.alg != alg {
            return Err(format!("key {kid:?} is an {:?} key; the token says {alg:?}", key.alg));
        }
        let mut v = Validation::new(alg);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        v.validate_exp = true;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.set_issuer(&[iss]);
        let mut auds: Vec<&str> = self.audiences.iter().map(String::as_str).collect();
        auds.push(ANY_AUDIENCE);
        v.set_audience(&auds);
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => "the token has expired".to_string(),
                K::ImmatureSignature => "the token is not valid yet (nbf)".to_string(),
                K::InvalidAudience => format!(
                    "the token's audience is not this server's (accepted: {})",
                    auds.join(", ")
                ),
                K::InvalidSignature => "the token's signature does not verify".to_string(),
                K::MissingRequiredClaim(c) => format!("the token has no {c} claim"),
                K::InvalidIssuer => format!("the token's issuer {iss:?} is not trusted here"),
                _ => format!("the token does not verify: {e}"),
            }
        })?;
        drop(keys);
        let c = data.claims;
        let ver = c.ver.ok_or("the token has no wlcg.ver claim: it is not a WLCG token")?;
        match ver.as_str() {
            Some(v) if version_ok(v) => {}
            Some(v) => return Err(format!("the token's wlcg.ver {} is not 1.x", super::shown(v))),
            None => return Err(format!("the token's wlcg.ver is {ver}, not a string such as \"1.0\"")),
        }
        let subject = c.sub.filter(|s| !s.is_empty()).ok_or("the token has no sub claim")?;
        let caps = scope::parse(c.scope.as_deref().unwrap_or(""), &issuer.prefix)?;
        Ok(Verified {
            issuer: c.iss,
            subject,
            jti: c.jti,
            expires: c.exp,
            caps,
            groups: c.groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for ok in ["1.0", "1.3", "1.10"] {
            assert!(version_ok(ok), "{ok}");
        }
        for bad in ["2.0", "1", "1.", "1.x", "11.0", "", "scitoken:2.0"] {
            assert!(!version_ok(bad), "{bad}");
        }
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJhbGciOi.eyJ.sig"));
        assert!(!looks_like_jwt("bale_0011_abcd"));
    }
}
