//! `Authorization: Bearer <token>`: who sent a request.

use axum::http::{HeaderMap, header};
use sea_orm::DatabaseConnection;

use super::{Identity, known::KnownTokens, token::TokenKeys};
use crate::error::{AppError, AppResult};

/// The token of the `Authorization` header; `None` without the header.
pub fn bearer_token(headers: &HeaderMap) -> AppResult<Option<&str>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .map(Some)
        .ok_or_else(|| {
            AppError::Unauthenticated(
                "the Authorization header must be `Bearer <token>`, with a token from `login`"
                    .to_owned(),
            )
        })
}

/// Who sent the request: anonymous without an `Authorization` header, the
/// token's user with a valid one. A malformed, expired or foreign token, or
/// the token of a deleted account or an ended session, is refused, never
/// taken as anonymous.
pub async fn authenticate(
    db: &DatabaseConnection,
    keys: &TokenKeys,
    known: &KnownTokens,
    headers: &HeaderMap,
) -> AppResult<Identity> {
    let Some(token) = bearer_token(headers)? else {
        return Ok(Identity::Anonymous);
    };
    Ok(Identity::User(known.viewer(db, keys, token).await?))
}
