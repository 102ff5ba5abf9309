//! `/graphql` over HTTP: GraphiQL on a plain GET, queries on POST and on GET
//! with a `query` parameter.

use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::{
    extract::{FromRequest, Request, State},
    response::{IntoResponse, Response},
};

use crate::app::AppState;

/// Runs one GraphQL request with fresh loaders.
pub async fn execute(State(state): State<AppState>, request: GraphQLRequest) -> GraphQLResponse {
    let mut response = super::loader::execute(&state.schema, request.into_inner(), &state.db).await;
    super::ensure_error_codes(&mut response);
    response.into()
}

/// GET `/graphql`: the GraphiQL playground, or a query when one is given.
pub async fn get(State(state): State<AppState>, request: Request) -> Response {
    let has_query = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("query=")));
    if !has_query {
        return super::playground::page().await.into_response();
    }
    match GraphQLRequest::from_request(request, &state).await {
        Ok(request) => execute(State(state), request).await.into_response(),
        Err(rejection) => rejection.into_response(),
    }
}
