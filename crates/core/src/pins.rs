//! Pins: named, expiring holds that keep cached files from being purged
//! (SAM's cache locks). A user pins what they may read, under their own
//! name; administrators may pin under any owner name (a service's).

use crate::auth::{validate_account_name, Principal};
use crate::perms::Op;
use crate::service::Service;
use crate::{Error, Result};
use bale_catalog::Pin;
use bale_util::{FileId, NsPath, Timestamp};
use std::time::Duration;

/// The longest pin: ten years.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

impl Service {
    /// The owner a pin is taken or released under.
    fn pin_owner<'a>(&self, who: &'a Principal, owner: Option<&'a str>) -> Result<&'a str> {
        match owner {
            None => Ok(&who.user),
            Some(o) if o == who.user => Ok(o),
            Some(o) if crate::perms::sees_everything(who) => {
                validate_account_name("owner", o)?;
                Ok(o)
            }
            Some(o) => Err(Error::Forbidden(format!(
                "user {} may pin only under their own name, not {o:?}",
                who.user
            ))),
        }
    }

    /// The file ids of `paths`, each a file `who` may stage (`Op::Stage`).
    async fn readable_ids(&self, who: &Principal, paths: &[NsPath]) -> Result<Vec<FileId>> {
        if paths.is_empty() {
            return Err(Error::BadRequest("name at least one file".into()));
        }
        let mut ids = Vec::with_capacity(paths.len());
        for p in paths {
            let node = self.stageable(who, p).await?;
            ids.push(node.file_id.expect("a file"));
        }
        Ok(ids)
    }

    /// Pins `paths` for `lifetime` under `owner` (default: the user); an
    /// owner's existing pin keeps the later expiry. Returns how many
    /// files were pinned.
    pub async fn pin(
        &self,
        who: &Principal,
        paths: &[NsPath],
        lifetime: Duration,
        owner: Option<&str>,
    ) -> Result<usize> {
        let owner = self.pin_owner(who, owner)?;
        if lifetime.is_zero() || lifetime > MAX_LIFETIME {
            return Err(Error::BadRequest(
                "a pin's lifetime is more than 0 s and at most 10 years".into(),
            ));
        }
        let ids = self.readable_ids(who, paths).await?;
        let now = Timestamp::now();
        let expires = Timestamp(now.0 + lifetime.as_nanos() as i64);
        Ok(self.catalog().pin(&ids, owner, now, expires).await?)
    }

    /// Releases `owner`'s pins (default: the user's) on `paths`. Returns
    /// how many pins were removed.
    pub async fn unpin(&self, who: &Principal, paths: &[NsPath], owner: Option<&str>) -> Result<usize> {
        let owner = self.pin_owner(who, owner)?;
        let ids = self.readable_ids(who, paths).await?;
        Ok(self.catalog().unpin(&ids, owner).await?)
    }

    /// The live pins of the file at `path`.
    pub async fn pins(&self, who: &Principal, path: &NsPath) -> Result<Vec<Pin>> {
        let r = self.authorize(who, Op::Stat, path).await?;
        let node = r.node().expect("checked");
        let Some(id) = node.file_id else {
            return Err(Error::IsADirectory(format!("{path} is a directory")));
        };
        Ok(self.catalog().pins(id, Timestamp::now()).await?)
    }
}
