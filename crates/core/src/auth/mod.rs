//! Who is asking: credentials and the principal they stand for.
//!
//! Three kinds of credentials reach the same [`Principal`]:
//! - bale's own tokens, `Authorization: Bearer bale_<id>_<secret>`. The
//!   catalog stores only the SHA-256 of the whole string; the id is public
//!   and names the token for revocation. Lookups are cached briefly; a
//!   revocation through this node clears the cache at once, other nodes
//!   see it within [`CACHE_TTL`].
//! - the same token as the password of HTTP Basic, for clients that know
//!   only a user name and a password (cadaver, davfs2, file managers); the
//!   user name must be the token's user.
//! - WLCG tokens (JWTs) of a trusted issuer ([`jwt`]): capability tokens
//!   carry [`scope::Capabilities`], group tokens are mapped to a user.

pub mod jwt;
pub mod scope;

use crate::{Error, Result};
use bale_catalog::{DynCatalog, NewToken, TokenInfo};
use bale_util::Timestamp;
use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a token lookup is trusted without asking the catalog again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// How a principal authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// A bale token as a bearer token.
    Token,
    /// A bale token as the password of HTTP Basic.
    Basic,
    /// A WLCG token.
    Jwt { issuer: String, subject: String },
}

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub group: String,
    /// Administrators bypass permission bits and may manage tokens.
    pub admin: bool,
    /// The bale token's id, or a WLCG token's `jti` (or `-`).
    pub token_id: String,
    pub via: Via,
    /// A capability token's scopes: they, not the mode bits, decide what
    /// it may do on paths (see `perms`).
    pub caps: Option<Arc<scope::Capabilities>>,
    /// The client's address, when it came over the network.
    pub from: Option<IpAddr>,
}

impl Principal {
    /// A principal of one of bale's own tokens.
    pub fn with_token(user: &str, group: &str, admin: bool, token_id: &str) -> Principal {
        Principal {
            user: user.into(),
            group: group.into(),
            admin,
            token_id: token_id.into(),
            via: Via::Token,
            caps: None,
            from: None,
        }
    }

    /// Who this is, for logs: `alice (token 0a1b2c3d)`, `atlas (WLCG
    /// token of https://iss/, sub 1234)`.
    pub fn describe(&self) -> String {
        match &self.via {
            Via::Token => format!("{} (token {})", self.user, self.token_id),
            Via::Basic => format!("{} (Basic, token {})", self.user, self.token_id),
            Via::Jwt { issuer, subject } => format!("{} (WLCG token of {issuer}, sub {subject})", self.user),
        }
    }
}

pub use crate::account::validate_account_name;

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub struct Auth {
    catalog: DynCatalog,
    cache: Mutex<HashMap<String, (Principal, Instant)>>,
    issuers: jwt::Issuers,
}

/// What a 401 without credentials says.
pub const HOW_TO_AUTHENTICATE: &str = "send 'Authorization: Bearer <token>' with a bale token or a WLCG token \
     (gfal2: BEARER_TOKEN), or HTTP Basic with your user name and a bale token as the password";

impl Auth {
    pub fn new(catalog: DynCatalog, issuers: jwt::Issuers) -> Auth {
        Auth {
            catalog,
            cache: Mutex::new(HashMap::new()),
            issuers,
        }
    }

    /// The principal of an `Authorization` header value: `Bearer` with a
    /// bale token or a WLCG token, or `Basic` with a user name and a bale
    /// token.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal> {
        let header = header
            .ok_or_else(|| Error::Unauthorized(format!("missing Authorization header: {HOW_TO_AUTHENTICATE}")))?;
        // The scheme is case-insensitive (RFC 9110, section 11.1).
        let (scheme, credentials) = header
            .trim_start()
            .split_once([' ', '\t'])
            .map(|(s, c)| (s, c.trim()))
            .filter(|(_, c)| !c.is_empty())
            .ok_or_else(|| {
                Error::Unauthorized(format!(
                    "the Authorization header has no credentials: {HOW_TO_AUTHENTICATE}"
                ))
            })?;
        if scheme.eq_ignore_ascii_case("basic") {
            return self.basic(credentials).await;
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::Unauthorized(format!(
                "Authorization must use the Bearer or Basic scheme, not {scheme:?}"
            )));
        }
        if !credentials.starts_with("bale_") && jwt::looks_like_jwt(credentials) {
            return self.wlcg(credentials);
        }
        self.bale_token(credentials).await
    }

    /// HTTP Basic: the password is a bale token, the user name its user's.
    async fn basic(&self, credentials: &str) -> Result<Principal> {
        let bad = || Error::InvalidToken("Basic credentials are not base64 of 'user:token'".into());
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, token) = decoded.split_once(':').ok_or_else(bad)?;
        let mut p = self.bale_token(token).await?;
        if p.user != user {
            return Err(Error::InvalidToken(format!(
                "the user name {} is not the token's user",
                shown(user)
            )));
        }
        p.via = Via::Basic;
        Ok(p)
    }

    /// A WLCG token: verified, then mapped to a bale user (see `jwt`).
    fn wlcg(&self, token: &str) -> Result<Principal> {
        if self.issuers.is_empty() {
            return Err(Error::InvalidToken(
                "this server trusts no token issuer ([auth] issuers): use a bale token".into(),
            ));
        }
        let v = self.issuers.verify(token).map_err(Error::InvalidToken)?;
        let ic = self.issuers.config(&v.issuer).expect("verified by a configured issuer");
        let via = Via::Jwt {
            issuer: v.issuer.clone(),
            subject: v.subject.clone(),
        };
        let token_id = v.jti.clone().unwrap_or_else(|| "-".into());
        if let Some(caps) = v.caps {
            let user = ic.subjects.get(&v.subject).unwrap_or(&ic.user);
            return Ok(Principal {
                user: user.clone(),
                group: ic.group.clone(),
                admin: false,
                token_id,
                via,
                caps: Some(Arc::new(caps)),
                from: None,
            });
        }
        // No capability scope: the first of its groups that maps.
        let m = v
            .groups
            .iter()
            .find_map(|g| ic.groups.iter().find(|m| &m.wlcg_group == g))
            .ok_or_else(|| {
                Error::Forbidden(format!(
                    "the token has no storage scope, and none of its groups ({}) is mapped to a bale user here",
                    if v.groups.is_empty() {
                        "none".to_string()
                    } else {
                        v.groups.join(", ")
                    }
                ))
            })?;
        Ok(Principal {
            user: m.user.clone(),
            group: m.group.clone(),
            admin: false,
            token_id,
            via,
            caps: None,
            from: None,
        })
    }

    /// One of bale's own tokens.
    async fn bale_token(&self, token: &str) -> Result<Principal> {
        let hash = hash_token(token);
        if let Some((p, at)) = self.cache.lock().unwrap().get(&hash) {
            if at.elapsed() < CACHE_TTL {
                return Ok(p.clone());
            }
        }
        let info = self
            .catalog
            .token_by_hash(&hash)
            .await?
            .ok_or_else(|| Error::InvalidToken("invalid or revoked token".into()))?;
        let p = Principal::with_token(&info.user, &info.group, info.admin, &info.id);
        let mut cache = self.cache.lock().unwrap();
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(hash, (p.clone(), Instant::now()));
        Ok(p)
    }

    /// Issues a new token; returns the secret (shown once) and its record.
    pub async fn create(&self, user: &str, group: &str, admin: bool, comment: &str) -> Result<(String, TokenInfo)> {
        validate_account_name("user", user)?;
        validate_account_name("group", group)?;
        let (id, secret) = {
            let mut rng = rand::rng();
            (
                hex::encode(rng.random::<[u8; 4]>()),
                hex::encode(rng.random::<[u8; 24]>()),
            )
        };
        let token = format!("bale_{id}_{secret}");
        let info = self
            .catalog
            .create_token(&NewToken {
                id,
                hash: hash_token(&token),
                user: user.to_string(),
                group: group.to_string(),
                admin,
                created: Timestamp::now(),
                comment: comment.to_string(),
            })
            .await?;
        Ok((token, info))
    }

    pub async fn revoke(&self, id: &str) -> Result<()> {
        let found = self.catalog.revoke_token(id, Timestamp::now()).await?;
        self.cache.lock().unwrap().clear();
        if found {
            Ok(())
        } else {
            Err(Error::NotFound(format!("no live token with id {id:?}")))
        }
    }

    pub async fn list(&self) -> Result<Vec<TokenInfo>> {
        Ok(self.catalog.list_tokens().await?)
    }
}

/// A value the client sent, quoted for a message: cut to 64 characters so
/// that a hostile value does not grow the answer and the audit log.
pub(crate) fn shown(v: &str) -> String {
    const MAX: usize = 64;
    if v.chars().count() <= MAX {
        return format!("{v:?}");
    }
    let cut: String = v.chars().take(MAX).collect();
    format!("{cut:?}… ({} bytes)", v.len())
}
