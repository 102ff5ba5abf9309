//! `/graphql` over HTTP: GraphiQL on a plain GET, queries on POST and on GET
//! with a `query` parameter. Every request is authenticated first.

use std::sync::Arc;

use async_graphql::ErrorExtensions;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse, rejection::GraphQLRejection};
use axum::{
    Json,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    app::AppState,
    auth::{Identity, identity::load_viewer, token::TokenError},
    error::AppError,
};

/// Who sent the request: anonymous without an `Authorization` header, the
/// token's user with a valid one. A malformed, expired or foreign token, or
/// the token of a deleted account, is refused, never taken as anonymous.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Identity, AppError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Identity::Anonymous);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::Unauthenticated(
                "the Authorization header must be `Bearer <token>`, with a token from `login`"
                    .to_owned(),
            )
        })?;
    let user_id = state.tokens.verify(token).map_err(|err| {
        AppError::Unauthenticated(match err {
            TokenError::Expired => "your token has expired; sign in again with `login`".to_owned(),
            TokenError::Invalid => "your token is not valid; sign in again with `login`".to_owned(),
        })
    })?;
    let viewer = load_viewer(&state.db, user_id).await?.ok_or_else(|| {
        AppError::Unauthenticated(
            "the account of this token no longer exists; register or sign in again".to_owned(),
        )
    })?;
    Ok(Identity::User(Arc::new(viewer)))
}

/// A body that is not a GraphQL request: 400 with a JSON error.
fn unreadable(rejection: GraphQLRejection) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{
            "message": format!(
                "the request is not a GraphQL request ({}); send JSON like {{\"query\": \"{{ shops {{ totalCount }} }}\"}}",
                rejection.0
            ),
            "extensions": { "code": "BAD_USER_INPUT" },
        }],
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// The response to a request refused before it ran.
fn refused(error: AppError) -> Response {
    let status = match error {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::BadUserInput(_) => StatusCode::METHOD_NOT_ALLOWED,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let error = error.extend();
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": error.message, "extensions": error.extensions }],
    });
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    response
}

/// Runs one GraphQL request as its sender.
pub async fn execute(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let request = match request {
        Ok(request) => request,
        Err(rejection) => return unreadable(rejection),
    };
    let identity = match authenticate(&state, &headers).await {
        Ok(identity) => identity,
        Err(error) => return refused(error),
    };
    let mut response =
        super::loader::execute(&state.schema, request.into_inner(), &state.db, identity).await;
    super::ensure_error_codes(&mut response);
    GraphQLResponse::from(response).into_response()
}

/// GET `/graphql`: the GraphiQL playground, or a query when one is given.
pub async fn get(State(state): State<AppState>, request: Request) -> Response {
    let has_query =
        request.uri().query().is_some_and(|q| q.split('&').any(|pair| pair.starts_with("query=")));
    if !has_query {
        return super::playground::page().await.into_response();
    }
    let headers = request.headers().clone();
    match GraphQLRequest::from_request(request, &state).await {
        Ok(request) if is_mutation(&request.0) => {
            refused(AppError::bad_input("mutations are not allowed over GET; send them with POST"))
        }
        result => execute(State(state), headers, result).await,
    }
}

/// Whether the operation the request would run is a mutation. GET must not
/// change anything: caches, logs and prefetchers replay GETs.
fn is_mutation(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let chosen = |ty: OperationType| ty == OperationType::Mutation;
    match &document.operations {
        DocumentOperations::Single(operation) => chosen(operation.node.ty),
        DocumentOperations::Multiple(operations) => match &request.operation_name {
            Some(name) => operations.get(name.as_str()).is_some_and(|op| chosen(op.node.ty)),
            None => operations.values().any(|op| chosen(op.node.ty)),
        },
    }
}
