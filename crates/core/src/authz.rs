//! The authorization table: every operation the service offers is an
//! [`Action`] with one declared requirement ([`Need`]), checked before the
//! operation runs. bale tokens, HTTP Basic, WLCG capability tokens and
//! WLCG group tokens all reach the same checks:
//!
//! - [`Need::Path`]: the POSIX bits on the path and search on every
//!   directory above it, or for a capability token the scope covering the
//!   path ([`crate::perms::check`], the one check of paths);
//! - [`Need::Admin`]: an administrator (a bale token made with `--admin`;
//!   a WLCG token never is) ([`allow`]);
//! - [`Need::RequestOwner`]: the stage request's requester or an
//!   administrator; a capability token needs `storage.stage` (or, to
//!   poll, `storage.poll`) besides ([`allow_request`]);
//! - [`Need::Anyone`]: any authenticated caller; these views name no path.
//!
//! The table is printed into docs/SECURITY.md ([`markdown`]), and a test
//! walks it over HTTP: for every action, a caller without the requirement
//! is refused and nothing changes.

use crate::auth::scope::Authz;
use crate::auth::Principal;
use crate::perms::Op;
use crate::{Error, Result};

/// What an action requires of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Anyone,
    Admin,
    /// Each of these on its path (in order: the source, then the target).
    Path(&'static [Op]),
    RequestOwner,
}

macro_rules! actions {
    ($($variant:ident $name:literal $need:expr, $http:literal, $what:literal;)*) => {
        /// Every operation of the service.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action { $($variant,)* }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The action's name in docs and the audit log.
            pub fn name(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }

            pub fn need(self) -> Need {
                match self { $(Action::$variant => $need,)* }
            }

            /// The HTTP requests that perform it.
            pub fn http(self) -> &'static str {
                match self { $(Action::$variant => $http,)* }
            }

            /// What it does, as the end of "may not ...".
            pub fn what(self) -> &'static str {
                match self { $(Action::$variant => $what,)* }
            }
        }
    };
}

use Need::{Admin, Anyone, Path, RequestOwner};

actions! {
    // Namespace: POSIX bits, or a capability scope.
    Stat "stat" Path(&[Op::Stat]), "GET /api/v1/stat, GET /api/v1/tags, PROPFIND (depth 0)", "look up an entry";
    List "list" Path(&[Op::List]), "GET /api/v1/list, PROPFIND (depth 1)", "list a directory";
    Read "read" Path(&[Op::Read]), "GET, HEAD", "read a file's data";
    Create "create" Path(&[Op::Create]), "PUT (a new file), MKCOL, POST /api/v1/mkdir", "create a file or directory";
    CreateAs "create-as" Path(&[Op::CreateAs]), "POST /api/v1/mkdir with owner or group", "create a directory for another owner";
    Overwrite "overwrite" Path(&[Op::Overwrite]), "PUT (onto an existing file)", "overwrite a file";
    Proppatch "proppatch" Path(&[Op::Overwrite]), "PROPPATCH", "set an entry's dead properties or modification time";
    Delete "delete" Path(&[Op::Remove]), "DELETE", "delete an entry";
    Move "move" Path(&[Op::Remove, Op::Create]), "MOVE (the destination: create, or replace if it exists)", "move an entry";
    Copy "copy" Path(&[Op::Read, Op::Create]), "COPY (the destination: create, or replace if it exists)", "copy an entry";
    Tag "tag" Path(&[Op::Tag]), "POST /api/v1/tags", "set an entry's tags";
    Chmod "chmod" Path(&[Op::Chmod]), "POST /api/v1/attrs with mode", "change an entry's mode";
    Chown "chown" Path(&[Op::Chown]), "POST /api/v1/attrs with owner or group", "change an entry's owner or group";
    ArchiveState "archive-state" Path(&[Op::Stat]), "GET /api/v1/stat?archive, POST /api/v1/archiveinfo, POST /api/tape/v1/archiveinfo, GET /api/v1/pins", "read where a file stands on its way to tape";
    History "history" Path(&[Op::Stat]), "GET /api/v1/history?path= (the file's owner and administrators)", "read a file's history";
    PolicyCheck "policy-check" Path(&[Op::Stat]), "GET /api/v1/policy/check (the nearest existing directory)", "ask how the policy routes a path";
    Stage "stage" Path(&[Op::Stage]), "POST /api/v1/stage, POST /api/tape/v1/stage", "stage files";
    Pin "pin" Path(&[Op::Stage]), "POST /api/v1/pins, POST /api/v1/pins/release, POST /api/tape/v1/release/ (by path)", "pin or unpin files";
    // Stage requests: their requester.
    StageStatus "stage-status" RequestOwner, "GET /api/v1/stage/{id}, GET /api/v1/stage/{id}/progress, GET /api/tape/v1/stage/{id}", "see a stage request";
    StageCancel "stage-cancel" RequestOwner, "POST /api/v1/stage/{id}/cancel, POST /api/tape/v1/stage/{id}/cancel", "cancel a stage request";
    StageRelease "stage-release" RequestOwner, "POST /api/v1/stage/{id}/release, POST /api/tape/v1/release/{id}", "release a stage request's files";
    StageDelete "stage-delete" RequestOwner, "DELETE /api/v1/stage/{id}, DELETE /api/tape/v1/stage/{id}", "delete a stage request";
    // Views without paths: anyone authenticated.
    Status "status" Anyone, "GET /api/v1/status, GET /ui/data/overview (workers and alarms for administrators only; stage requests and pins: the caller's own)", "read the node's status";
    WhoAmI "whoami" Anyone, "GET /api/v1/whoami", "ask who they are";
    Metrics "metrics" Anyone, "GET /metrics (without a token from [server] metrics_open_to, empty by default), GET /ui/data/chart/{name}", "read the metrics";
    Volumes "volumes" Anyone, "GET /api/v1/volumes, GET /api/v1/volumes/{label}, GET /ui/data/volumes", "list volumes";
    Drives "drives" Anyone, "GET /api/v1/drives, GET /ui/data/overview", "list drives";
    Libraries "libraries" Anyone, "GET /api/v1/libraries", "list libraries";
    TapeEvents "tape-events" Anyone, "GET /api/v1/tape/events", "read the tape event log";
    PolicyShow "policy-show" Anyone, "GET /api/v1/policy", "read the policy";
    QueueShow "queue-show" Anyone, "GET /api/v1/queue, GET /ui/data/overview", "read the queue";
    CacheUsage "cache-usage" Anyone, "GET /api/v1/cache", "read the cache's usage";
    Quotas "quotas" Anyone, "GET /api/v1/quotas", "read the storage groups' quotas and use";
    Packages "packages" Anyone, "GET /api/v1/packages, GET /api/v1/packages/{id} (member paths: those the caller may stat)", "list packages";
    // Administration.
    VolumesAdd "volumes-add" Admin, "POST /api/v1/volumes", "add volumes";
    VolumeState "volume-state" Admin, "POST /api/v1/volumes/{label}/state", "change a volume's state";
    DriveState "drive-state" Admin, "POST /api/v1/drives/{name}/online, POST /api/v1/drives/{name}/offline", "take drives online or offline";
    Faults "faults" Admin, "POST /api/v1/tape/faults", "inject faults";
    Workers "workers" Admin, "GET /api/v1/workers", "list background workers";
    Alarms "alarms" Admin, "GET /api/v1/alarms", "read alarms";
    AlarmAck "alarm-ack" Admin, "POST /api/v1/alarms/{id}/ack, POST /ui/data/alarms/{id}/ack (with the page's cookie, also its X-CSRF-Token)", "acknowledge alarms";
    PolicyLoad "policy-load" Admin, "PUT /api/v1/policy", "load a policy";
    QueueFlush "queue-flush" Admin, "POST /api/v1/queue/flush", "flush pools";
    QueueRetry "queue-retry" Admin, "POST /api/v1/queue/retry", "retry archive jobs";
    Tokens "tokens" Admin, "GET /api/v1/tokens", "list tokens";
    TokenCreate "token-create" Admin, "POST /api/v1/tokens", "create tokens";
    TokenRevoke "token-revoke" Admin, "DELETE /api/v1/tokens/{id}", "revoke tokens";
    Purge "purge" Admin, "POST /api/v1/cache/purge", "purge the cache";
    Fsck "fsck" Admin, "POST /api/v1/fsck", "check the catalog against the cache";
    Verify "verify" Admin, "POST /api/v1/verify", "verify tape copies";
    HistoryById "history-by-id" Admin, "GET /api/v1/history?file_id=", "read the history of any file by its id, deleted ones too";
    QuotaSet "quota-set" Admin, "POST /api/v1/quotas", "set quotas";
}

/// The check of the actions that name no path: [`Need::Anyone`] and
/// [`Need::Admin`]. (Path actions go through `perms::check`, request
/// actions through [`allow_request`].)
pub fn allow(who: &Principal, action: Action) -> Result<()> {
    match action.need() {
        Anyone => Ok(()),
        Admin if who.admin => Ok(()),
        Admin if who.caps.is_some() || matches!(who.via, crate::auth::Via::Jwt { .. }) => {
            Err(Error::Forbidden(format!(
                "only administrators may {}: a WLCG token never is one; use a bale administrator's token",
                action.what()
            )))
        }
        Admin => Err(Error::Forbidden(format!(
            "user {} is not an administrator: only administrators may {}",
            who.user,
            action.what()
        ))),
        Path(_) | RequestOwner => Err(Error::Internal(format!(
            "{} is checked on its paths or its request, not here",
            action.name()
        ))),
    }
}

/// The check of a stage request's actions: its requester (or an
/// administrator); a capability token needs `storage.stage` besides (or
/// `storage.poll` to see it).
pub fn allow_request(who: &Principal, action: Action, id: i64, owner: &str) -> Result<()> {
    debug_assert_eq!(action.need(), RequestOwner, "{action:?}");
    if let Some(caps) = &who.caps {
        let kinds: &[Authz] = match action {
            Action::StageStatus => &[Authz::Stage, Authz::Poll],
            _ => &[Authz::Stage],
        };
        if !caps.has(kinds) {
            return Err(Error::InsufficientScope {
                scope: format!("{}:/", kinds[0].name()),
                detail: format!(
                    "the token may not {} {id}: that needs a {} scope",
                    action.what(),
                    kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(" or ")
                ),
            });
        }
    }
    if owner != who.user && !who.admin {
        return Err(Error::Forbidden(format!(
            "stage request {id} is {owner}'s: only its requester or an administrator may {}",
            action.what()
        )));
    }
    Ok(())
}

/// What a requirement is, in words (for the table in the docs).
pub fn describe(need: Need) -> String {
    match need {
        Anyone => "any authenticated caller".into(),
        Admin => "an administrator (a bale token made with --admin)".into(),
        RequestOwner => "the request's requester, or an administrator".into(),
        Path(ops) => ops
            .iter()
            .map(|op| crate::perms::describe(*op))
            .collect::<Vec<_>>()
            .join("; then, on the destination: "),
    }
}

/// The scope a capability token needs for an action, in words.
pub fn scopes(need: Need, action: Action) -> String {
    let names = |ks: &[Authz]| {
        if ks.is_empty() {
            "never (administrators only)".to_string()
        } else {
            ks.iter().map(|k| k.name()).collect::<Vec<_>>().join(" or ")
        }
    };
    match need {
        Anyone => "any token".into(),
        Admin => "never".into(),
        RequestOwner if action == Action::StageStatus => "storage.stage or storage.poll".into(),
        RequestOwner => "storage.stage".into(),
        Path(ops) => ops
            .iter()
            .map(|op| names(op.scopes()))
            .collect::<Vec<_>>()
            .join("; then: "),
    }
}

/// The table as Markdown, one row per action.
pub fn markdown() -> String {
    let mut out = String::from(
        "| action | HTTP | requirement (bale tokens, Basic, WLCG group tokens) | WLCG capability token |\n\
         | --- | --- | --- | --- |\n",
    );
    for a in Action::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            a.name(),
            a.http(),
            describe(a.need()),
            scopes(a.need(), *a)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_op_has_an_action() {
        let mut names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate action names");
        for op in Op::ALL {
            let used = Action::ALL
                .iter()
                .any(|a| matches!(a.need(), Need::Path(ops) if ops.contains(&op)));
            // Replace is the destination of MOVE and COPY onto an entry.
            assert!(used || op == Op::Replace, "{op:?} is in no action");
        }
    }

    /// docs/SECURITY.md holds the table as generated; BALE_BLESS=1
    /// rewrites it.
    #[test]
    fn the_docs_hold_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/SECURITY.md");
        bale_util::docs::keep_section(&path, "authz-table", &markdown(), "cargo test -p bale-core authz");
    }

    #[test]
    fn admin_actions_refuse_everyone_else() {
        let bob = Principal::with_token("bob", "phys", false, "t");
        let root = Principal::with_token("root", "root", true, "t");
        for a in Action::ALL.iter().filter(|a| a.need() == Need::Admin) {
            assert!(matches!(allow(&bob, *a), Err(Error::Forbidden(_))), "{a:?}");
            assert!(allow(&root, *a).is_ok());
        }
        assert!(allow_request(&bob, Action::StageCancel, 1, "alice").is_err());
        assert!(allow_request(&bob, Action::StageCancel, 1, "bob").is_ok());
        assert!(allow_request(&root, Action::StageCancel, 1, "alice").is_ok());
    }
}
