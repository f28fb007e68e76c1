//! The errors bale's services report. The API layer maps each kind to one
//! HTTP status; the message is written for a person.

use bale_catalog::CatalogError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed: a bad path, an unknown tag, a short body.
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or credentials in a form bale does not take.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials that do not authenticate: an unknown or revoked token,
    /// a JWT that does not verify (RFC 6750 `invalid_token`).
    #[error("{0}")]
    InvalidToken(String),
    /// Valid credentials, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// A capability token without the scope an operation needs (RFC 6750
    /// `insufficient_scope`): `scope` is the one that would do.
    #[error("{detail}")]
    InsufficientScope { scope: String, detail: String },
    #[error("{0}")]
    NotFound(String),
    /// The target already exists.
    #[error("{0}")]
    Exists(String),
    /// The namespace is not in a state that allows this (missing parent, not empty, ...).
    #[error("{0}")]
    Conflict(String),
    /// A file operation named a directory (a conflict, kept apart so that
    /// callers can say which path without matching message text).
    #[error("{0}")]
    IsADirectory(String),
    /// A precondition of the request (`If-Match`, create-only) does not
    /// hold: nothing was done.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The data does not match the checksum the client sent.
    #[error("{0}")]
    ChecksumMismatch(String),
    /// A temporary failure: retrying later can succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The file's only copy is on tape and reads do not stage it.
    #[error("{0}")]
    OnTapeOnly(String),
    /// The cache's filesystem is full (or the user's quota spent): nothing
    /// was kept; the same request can succeed once space is freed.
    #[error("{0}")]
    InsufficientStorage(String),
    /// The request is larger than bale can ever take (a body larger than
    /// the whole cache): retrying does not help.
    #[error("{0}")]
    TooLarge(String),
    /// A per-user limit would be passed (open stage files): nothing was
    /// done; the same request can succeed once some of the user's work
    /// finished.
    #[error("{0}")]
    TooMany(String),
    /// A failure on our side that retrying will not fix.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Whether the same request may succeed if retried unchanged.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::InsufficientStorage(_) | Error::TooMany(_)
        )
    }
}

impl From<CatalogError> for Error {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound(m) => Error::NotFound(format!("{m} not found")),
            CatalogError::AlreadyExists(m) => Error::Exists(format!("{m} already exists")),
            CatalogError::NotADirectory(m) => Error::Conflict(format!("{m} is not a directory")),
            CatalogError::IsADirectory(m) => Error::IsADirectory(format!("{m} is a directory")),
            CatalogError::NotEmpty(m) => Error::Conflict(format!("directory {m} is not empty")),
            CatalogError::Invalid(m) => Error::Conflict(m),
            CatalogError::TooLong(m) => Error::BadRequest(m),
            CatalogError::Limit(m) => Error::TooMany(m),
            CatalogError::Quota(m) => Error::InsufficientStorage(m),
            CatalogError::Changed(m) => Error::Conflict(format!(
                "{m} was changed by another request while this one ran: nothing was changed; retry"
            )),
            CatalogError::PermissionDenied(m) => Error::Forbidden(format!("permission denied: {m}")),
            CatalogError::Backend {
                message,
                retryable: true,
            } => Error::Unavailable(format!("catalog temporarily unavailable: {message}")),
            CatalogError::Backend { message, .. } => Error::Internal(format!("catalog error: {message}")),
            e @ CatalogError::Full(_) => Error::InsufficientStorage(e.to_string()),
        }
    }
}

impl From<bale_tape::TapeError> for Error {
    fn from(e: bale_tape::TapeError) -> Self {
        use bale_tape::TapeError as T;
        match e {
            T::NotFound(m) => Error::NotFound(m),
            T::Invalid(m) => Error::BadRequest(m),
            T::Failed(m) | T::BadData(m) => Error::Internal(m),
            T::NoSpace(m) => Error::InsufficientStorage(m),
            T::Catalog(c) => c.into(),
        }
    }
}

impl From<bale_util::PathError> for Error {
    fn from(e: bale_util::PathError) -> Self {
        Error::BadRequest(format!("invalid path: {e}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether an I/O error says the filesystem is full (ENOSPC, EDQUOT).
pub(crate) fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// An I/O failure while doing `what`, as an internal error.
pub(crate) fn io_err(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Internal(format!("{what}: {e}"))
}
