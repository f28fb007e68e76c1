//! Catalog errors: structural outcomes a caller acts on, and backend failures
//! that say whether retrying can help.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} is not a directory")]
    NotADirectory(String),
    #[error("{0} is a directory")]
    IsADirectory(String),
    #[error("directory {0} is not empty")]
    NotEmpty(String),
    #[error("{0}")]
    Invalid(String),
    /// A per-user limit would be passed (nothing was recorded).
    #[error("{0}")]
    Limit(String),
    /// A path would be longer than the limit (`bale_util::path::MAX_PATH_LEN`).
    #[error("{0}")]
    TooLong(String),
    /// A storage group's quota would be passed: nothing was recorded.
    #[error("{0}")]
    Quota(String),
    /// The entry a write was checked against was replaced meanwhile.
    #[error("{0} was changed by another request meanwhile")]
    Changed(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The database failed. `retryable` says whether the same call may succeed later
    /// (a lost connection, a serialization failure) or not (a schema problem).
    #[error("catalog backend error: {message}")]
    Backend { message: String, retryable: bool },
    /// The catalog's disk is full: nothing was written; retry once space
    /// is freed.
    #[error("the catalog's disk is full: {0}")]
    Full(String),
}

impl CatalogError {
    pub fn backend(e: impl std::fmt::Display, retryable: bool) -> Self {
        CatalogError::Backend {
            message: e.to_string(),
            retryable,
        }
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

impl From<rusqlite::Error> for CatalogError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return CatalogError::Full(e.to_string());
        }
        let retryable = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        CatalogError::backend(e, retryable)
    }
}

impl From<tokio_postgres::Error> for CatalogError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let retryable = e.is_closed()
            || matches!(
                e.code(),
                Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
            );
        // Show the server's message, not just "db error".
        let msg = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        if e.code() == Some(&SqlState::DISK_FULL) {
            return CatalogError::Full(msg);
        }
        CatalogError::Backend {
            message: msg,
            retryable,
        }
    }
}

impl From<deadpool_postgres::PoolError> for CatalogError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        CatalogError::backend(format!("connection pool: {e}"), true)
    }
}

impl From<tokio::task::JoinError> for CatalogError {
    fn from(e: tokio::task::JoinError) -> Self {
        CatalogError::backend(format!("catalog task failed: {e}"), false)
    }
}

#[cfg(test)]
mod tests {
    use super::CatalogError;

    #[test]
    fn a_full_disk_is_told_apart() {
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        assert!(matches!(CatalogError::from(full), CatalogError::Full(_)));
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert!(matches!(
            CatalogError::from(busy),
            CatalogError::Backend { retryable: true, .. }
        ));
    }
}
