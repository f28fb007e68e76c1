//! Each file's history: what happened to it, from its write to its
//! deletion (`bale history`), read back from the catalog's events
//! (written by `events`).

use crate::auth::Principal;
use crate::authz::{allow, Action};
use crate::perms::Op;
use crate::service::Service;
use crate::{Error, Result};
use bale_catalog::{EventKind, FileEvent};
use bale_util::{FileId, NsPath, Timestamp};

/// A file's history as `bale history` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct History {
    pub path: Option<String>,
    pub file_id: FileId,
    pub events: Vec<FileEvent>,
    /// Only the newest events are shown (there were more).
    pub truncated: bool,
}

impl Service {
    /// The history of the file at `path`: for its owner (who must reach
    /// it: search on every ancestor) and for administrators.
    pub async fn history(&self, who: &Principal, path: &NsPath) -> Result<History> {
        let node = self.entry(who, Op::Stat, path).await?;
        if node.is_dir() {
            return Err(Error::IsADirectory(format!(
                "{path} is a directory; history is kept for files"
            )));
        }
        if !who.admin && node.owner != who.user {
            return Err(Error::Forbidden(format!(
                "the history of {path} is for its owner ({}) and administrators",
                node.owner
            )));
        }
        let id = node
            .file_id
            .ok_or_else(|| Error::Internal(format!("{path} has no file id")))?;
        let mut h = self.history_of(id, Some(path.to_string())).await?;
        if !who.admin {
            redact(&mut h.events, &who.user);
        }
        Ok(h)
    }

    /// The history of a file by its id, deleted ones too: administrators.
    pub async fn history_by_id(&self, who: &Principal, id: FileId) -> Result<History> {
        allow(who, Action::HistoryById)?;
        self.history_of(id, None).await
    }

    async fn history_of(&self, id: FileId, path: Option<String>) -> Result<History> {
        // What waits in memory first, so a history asked for right after
        // an event shows it.
        self.events
            .write_to(self.catalog(), false)
            .await
            .map_err(Error::Internal)?;
        let limit = bale_catalog::ops::HISTORY_LIMIT;
        let mut events = self.catalog().file_history(id, limit).await?;
        let truncated = events.len() == limit;
        // Reads counted but not yet written (they are, every few minutes).
        let reads = self.events.pending_reads(id);
        if reads > 0 {
            let mut e = FileEvent::new(id, EventKind::Read, Timestamp::now());
            e.count = reads;
            e.detail = Some("counted since the last write of the read counts".into());
            events.push(e);
        }
        if events.is_empty() && path.is_none() {
            return Err(Error::NotFound(format!("no history of file id {id}")));
        }
        Ok(History {
            path,
            file_id: id,
            events,
            truncated,
        })
    }
}

/// What a file's owner does not see of what others did to it: their
/// names, addresses, request ids and the paths and words of their
/// events (a move by an administrator from a directory the owner cannot
/// search, another user's stage request).
fn redact(events: &mut [FileEvent], user: &str) {
    for e in events {
        if e.who.as_deref().is_some_and(|w| w != user) {
            e.who = Some("(another user)".into());
            e.path = None;
            e.request = None;
            e.detail = None;
        }
    }
}
