//! One error type for the whole API, one variant per contract code.
//!
//! Resolvers and domain functions return `Result<_, AppError>`; converting to
//! a GraphQL error sets `extensions.code`. Unexpected errors are logged once,
//! here, and reach the client as a generic message without SQL or stack.

use std::sync::Arc;

use async_graphql::{ErrorExtensions, FieldError};
use sea_orm::DbErr;

/// Every way a request can fail, as the client sees it.
///
/// It deliberately does not implement `Display`: async-graphql converts any
/// `Display` type into an error without a code, and this way `?` in a
/// resolver always goes through [`ErrorExtensions`] instead.
#[derive(Debug)]
pub enum AppError {
    Unauthenticated(String),
    Forbidden(String),
    NotFound(String),
    BadUserInput(String),
    Conflict(String),
    RateLimited(String),
    QueryTooComplex(String),
    /// A persisted query's hash the server does not know (yet).
    PersistedQueryNotFound,
    /// The database took longer than its statement timeout (or waited too
    /// long for a lock); the request may be retried.
    Timeout(String),
    /// The database cannot be reached; nothing more was done.
    ServiceUnavailable(String),
    /// Something went wrong on our side; the source stays in the logs.
    Internal(anyhow::Error),
}

/// The message an internal error shows to the client.
pub const INTERNAL_MESSAGE: &str =
    "Something went wrong on our side. It has been logged; please try again later.";

impl AppError {
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::NotFound(what.to_string())
    }

    pub fn bad_input(message: impl std::fmt::Display) -> Self {
        Self::BadUserInput(message.to_string())
    }

    /// A copy of an error shared between the callers of one computation.
    pub fn to_shared(self: Arc<Self>) -> Self {
        match self.as_ref() {
            Self::Unauthenticated(m) => Self::Unauthenticated(m.clone()),
            Self::Forbidden(m) => Self::Forbidden(m.clone()),
            Self::NotFound(m) => Self::NotFound(m.clone()),
            Self::BadUserInput(m) => Self::BadUserInput(m.clone()),
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::RateLimited(m) => Self::RateLimited(m.clone()),
            Self::QueryTooComplex(m) => Self::QueryTooComplex(m.clone()),
            Self::PersistedQueryNotFound => Self::PersistedQueryNotFound,
            Self::Timeout(m) => Self::Timeout(m.clone()),
            Self::ServiceUnavailable(m) => Self::ServiceUnavailable(m.clone()),
            Self::Internal(source) => Self::Internal(anyhow::anyhow!("{source:#}")),
        }
    }

    /// The contract's `extensions.code` of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::Conflict(_) => "CONFLICT",
            Self::RateLimited(_) => "RATE_LIMITED",
            Self::QueryTooComplex(_) => "QUERY_TOO_COMPLEX",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::Timeout(_) => "TIMEOUT",
            Self::ServiceUnavailable(_) => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl AppError {
    /// What kind of error this is, without its message.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Timeout(_) => ErrorKind::Timeout,
            Self::ServiceUnavailable(_) => ErrorKind::Unavailable,
            Self::Internal(_) => ErrorKind::Internal,
            _ => ErrorKind::Refused,
        }
    }

    fn database_timeout() -> Self {
        Self::Timeout(
            "the database took too long to answer (a statement timeout or a lock wait); try again"
                .to_owned(),
        )
    }

    /// The answer while the database cannot be reached.
    pub fn database_unavailable() -> Self {
        Self::ServiceUnavailable(
            "the database is unavailable; try again in a few seconds".to_owned(),
        )
    }
}

/// What kind of error a GraphQL error is, kept as its `source` so that the
/// HTTP layer reads it typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request was refused for what it asked: the client's to fix.
    Refused,
    Timeout,
    Unavailable,
    Internal,
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        Self::Internal(err)
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        match crate::db::classify(&err) {
            crate::db::Failure::Timeout => Self::database_timeout(),
            crate::db::Failure::Unavailable => {
                tracing::warn!(error = %err, "the database is unavailable");
                Self::database_unavailable()
            }
            crate::db::Failure::Other => Self::Internal(anyhow::Error::new(err)),
        }
    }
}

impl From<std::sync::Arc<DbErr>> for AppError {
    fn from(err: std::sync::Arc<DbErr>) -> Self {
        match crate::db::classify(&err) {
            crate::db::Failure::Other => Self::Internal(anyhow::anyhow!("{err}")),
            _ => Self::from(DbErr::clone(&err)),
        }
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> FieldError {
        let message = match self {
            Self::Internal(source) => {
                // The request span carries the request id.
                tracing::error!(error = format!("{source:#}"), "internal error");
                INTERNAL_MESSAGE.to_owned()
            }
            // Apollo clients look for exactly this message.
            Self::PersistedQueryNotFound => "PersistedQueryNotFound".to_owned(),
            Self::Timeout(message) | Self::ServiceUnavailable(message) => message.clone(),
            Self::Unauthenticated(message)
            | Self::Forbidden(message)
            | Self::NotFound(message)
            | Self::BadUserInput(message)
            | Self::Conflict(message)
            | Self::RateLimited(message)
            | Self::QueryTooComplex(message) => message.clone(),
        };
        let mut error = FieldError::new(message).extend_with(|_, ext| ext.set("code", self.code()));
        error.source = Some(std::sync::Arc::new(self.kind()));
        error
    }
}

impl From<AppError> for FieldError {
    fn from(err: AppError) -> Self {
        err.extend()
    }
}

/// `Result` of the API's own functions.
pub type AppResult<T> = Result<T, AppError>;
