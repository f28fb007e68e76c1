//! Who is asking: bearer tokens and the principal they stand for.
//!
//! A token is `bale_<id>_<secret>`. The catalog stores only the SHA-256 of
//! the whole string; the id is public and names the token for revocation.
//! Lookups are cached briefly; a revocation through this node clears the
//! cache at once, other nodes see it within [`CACHE_TTL`].

use crate::{Error, Result};
use bale_catalog::{DynCatalog, NewToken, TokenInfo};
use bale_util::Timestamp;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a token lookup is trusted without asking the catalog again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub group: String,
    /// Administrators bypass permission bits and may manage tokens.
    pub admin: bool,
    pub token_id: String,
}

/// A user or group name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `-`.
pub fn validate_account_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "invalid {what} name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )))
    }
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub struct Auth {
    catalog: DynCatalog,
    cache: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl Auth {
    pub fn new(catalog: DynCatalog) -> Auth {
        Auth {
            catalog,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The principal of an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal> {
        let header = header.ok_or_else(|| {
            Error::Unauthorized("missing Authorization header: send 'Authorization: Bearer <token>'".into())
        })?;
        // The scheme is case-insensitive (RFC 9110, section 11.1).
        let token = header
            .trim_start()
            .split_once([' ', '\t'])
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Unauthorized("Authorization must use the Bearer scheme".into()))?;
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
            .ok_or_else(|| Error::Unauthorized("invalid or revoked token".into()))?;
        let p = Principal {
            user: info.user,
            group: info.group,
            admin: info.admin,
            token_id: info.id,
        };
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
