//! One error type for the whole API, one variant per refusal, each with its
//! contract code and its HTTP status.
//!
//! Resolvers and domain functions return `Result<_, AppError>`; converting to
//! a GraphQL error sets `extensions.code` and keeps a copy of the error as
//! the GraphQL error's `source`, which the HTTP layer reads to pick the
//! status. A request refused before it runs is answered by the error's
//! [`IntoResponse`]. Unexpected errors are logged once, here, and reach the
//! client as a generic message without SQL or stack.

use std::sync::Arc;

use async_graphql::{ErrorExtensions, FieldError};
use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
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
    /// A POST whose body is not declared as JSON (415).
    UnsupportedMediaType(String),
    /// A body over the size limit (413); it was not read.
    PayloadTooLarge(String),
    /// A mutation sent over GET (405).
    MethodNotAllowed(String),
    Conflict(String),
    /// The client's budget is spent; it may try again in `retry_after`
    /// seconds (429).
    RateLimited {
        message: String,
        retry_after: u64,
    },
    QueryTooComplex(String),
    /// No turn came free in time; nothing was done (503).
    Overloaded,
    /// A persisted query's hash the server does not know (yet).
    PersistedQueryNotFound,
    /// The database took longer than its statement timeout (or waited too
    /// long for a lock), or the request outran its own timeout; it may be
    /// retried.
    Timeout(String),
    /// The database cannot be reached; nothing more was done.
    ServiceUnavailable(String),
    /// Something went wrong on our side; the source stays in the logs.
    Internal(anyhow::Error),
}

/// The message an internal error shows to the client.
pub const INTERNAL_MESSAGE: &str =
    "Something went wrong on our side. It has been logged; please try again later.";

/// Seconds a client is asked to wait when the server is at capacity.
const OVERLOADED_RETRY_SECS: u64 = 1;
/// Seconds a client is asked to wait while the database is away.
const UNAVAILABLE_RETRY_SECS: u64 = 2;

impl AppError {
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::NotFound(what.to_string())
    }

    pub fn bad_input(message: impl std::fmt::Display) -> Self {
        Self::BadUserInput(message.to_string())
    }

    /// A copy of this error, for the callers of one shared computation and
    /// for the `source` of its GraphQL error (an internal error's source
    /// is kept as text).
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Unauthenticated(m) => Self::Unauthenticated(m.clone()),
            Self::Forbidden(m) => Self::Forbidden(m.clone()),
            Self::NotFound(m) => Self::NotFound(m.clone()),
            Self::BadUserInput(m) => Self::BadUserInput(m.clone()),
            Self::UnsupportedMediaType(m) => Self::UnsupportedMediaType(m.clone()),
            Self::PayloadTooLarge(m) => Self::PayloadTooLarge(m.clone()),
            Self::MethodNotAllowed(m) => Self::MethodNotAllowed(m.clone()),
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::RateLimited { message, retry_after } => {
                Self::RateLimited { message: message.clone(), retry_after: *retry_after }
            }
            Self::QueryTooComplex(m) => Self::QueryTooComplex(m.clone()),
            Self::Overloaded => Self::Overloaded,
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
            Self::BadUserInput(_)
            | Self::UnsupportedMediaType(_)
            | Self::PayloadTooLarge(_)
            | Self::MethodNotAllowed(_) => "BAD_USER_INPUT",
            Self::Conflict(_) => "CONFLICT",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::QueryTooComplex(_) => "QUERY_TOO_COMPLEX",
            Self::Overloaded => "OVERLOADED",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::Timeout(_) => "TIMEOUT",
            Self::ServiceUnavailable(_) => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The HTTP status of a request refused as a whole by this error.
    ///
    /// Errors about what a document asked for (validation, a field's
    /// refusal) answer 200 once the request has run, as GraphQL over
    /// `application/json` does; see [`sets_status`](Self::sets_status).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::BadUserInput(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded | Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Forbidden(_)
            | Self::NotFound(_)
            | Self::Conflict(_)
            | Self::QueryTooComplex(_)
            | Self::PersistedQueryNotFound
            | Self::Internal(_) => StatusCode::OK,
        }
    }

    /// Whether this error gives its status to a GraphQL response that has
    /// no data because of it: the ones that tell a client to wait or to
    /// send the request differently, not to change what it asks.
    pub fn sets_status(&self) -> bool {
        matches!(
            self,
            Self::MethodNotAllowed(_)
                | Self::RateLimited { .. }
                | Self::Overloaded
                | Self::ServiceUnavailable(_)
        )
    }

    /// Seconds the client should wait before trying again, when it should.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::Overloaded => Some(OVERLOADED_RETRY_SECS),
            Self::ServiceUnavailable(_) => Some(UNAVAILABLE_RETRY_SECS),
            _ => None,
        }
    }

    /// The headers that go with this error's status.
    pub fn add_headers(&self, headers: &mut HeaderMap) {
        if let Some(seconds) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        match self {
            Self::MethodNotAllowed(_) => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            Self::Unauthenticated(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            // The body was not read, so the connection cannot carry another
            // request: say so, or a client's pool reuses it and fails.
            Self::PayloadTooLarge(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
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

    /// This error as a GraphQL error of the whole request (no path, no
    /// location), as the limits refuse a document.
    pub fn into_server_error(self) -> async_graphql::ServerError {
        let field = self.extend();
        let mut error = async_graphql::ServerError::new(field.message, None);
        error.source = field.source;
        error.extensions = field.extensions;
        error
    }
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
                crate::telemetry::db_connection_error();
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
            Self::Overloaded => format!(
                "the server is at capacity; nothing was done; try again in {OVERLOADED_RETRY_SECS} s"
            ),
            Self::RateLimited { message, .. } => message.clone(),
            Self::Timeout(message)
            | Self::ServiceUnavailable(message)
            | Self::Unauthenticated(message)
            | Self::Forbidden(message)
            | Self::NotFound(message)
            | Self::BadUserInput(message)
            | Self::UnsupportedMediaType(message)
            | Self::PayloadTooLarge(message)
            | Self::MethodNotAllowed(message)
            | Self::Conflict(message)
            | Self::QueryTooComplex(message) => message.clone(),
        };
        let mut error = FieldError::new(message).extend_with(|_, ext| {
            ext.set("code", self.code());
            if let Some(seconds) = self.retry_after() {
                ext.set("retryAfter", seconds);
            }
            if let Self::MethodNotAllowed(_) = self {
                ext.set("allowedMethods", "POST");
            }
        });
        error.source = Some(Arc::new(self.duplicate()));
        error
    }
}

impl From<AppError> for FieldError {
    fn from(err: AppError) -> Self {
        err.extend()
    }
}

/// A GraphQL-shaped answer to a request refused before it ran: no data,
/// one error, with the error's status and headers.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = self.extend();
        let body = serde_json::json!({
            "data": null,
            "errors": [{ "message": error.message, "extensions": error.extensions }],
        });
        let mut response = (status, Json(body)).into_response();
        self.add_headers(response.headers_mut());
        response
    }
}

/// `Result` of the API's own functions.
pub type AppResult<T> = Result<T, AppError>;
