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
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The database failed. `retryable` says whether the same call may succeed later
    /// (a lost connection, a serialization failure) or not (a schema problem).
    #[error("catalog backend error: {message}")]
    Backend { message: String, retryable: bool },
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
