//! User and group names: what bale accepts as an account name (tokens,
//! owners, groups, the issuers' mappings in the configuration).

use crate::{Error, Result};

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
