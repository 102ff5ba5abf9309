//! The GraphQL API: schema, objects, loaders and the HTTP handlers.
//!
//! Types here are thin: they decode arguments at the edge, call `domain`
//! functions and wrap the entity models they get back.

pub mod expansion;
pub mod guard;
pub mod http;
pub mod id;
pub mod input;
pub mod limits;
pub mod loader;
pub mod mutation;
pub mod object;
pub mod persisted;
pub mod playground;
pub mod public;
pub mod query;
pub mod scalar;
pub mod subscription;
pub mod ws;

use std::sync::Arc;

use async_graphql::{Context, Response, Schema, ServerError};
use sea_orm::DatabaseConnection;

use crate::{
    auth::token::TokenKeys,
    config::Config,
    db::replica::ReadRoute,
    domain::change::{Changed, Effects},
    error::{AppError, AppResult},
    protect::Limits,
};

/// The API's schema type.
pub type AppSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Builds the schema. Per-request data (identity, loaders) is added by the
/// handler.
pub fn build_schema(
    db: DatabaseConnection,
    tokens: TokenKeys,
    effects: Effects,
    limits: Arc<Limits>,
    config: &Config,
) -> AppSchema {
    Schema::build(
        query::Query::default(),
        mutation::Mutation::default(),
        subscription::Subscription::default(),
    )
    .extension(limits::QueryLimits::new(
        config.max_query_depth,
        config.max_query_complexity,
        config.max_query_fields,
    ))
    .data(db)
    .data(tokens)
    .data(effects.analytics().clone())
    .data(effects.public().clone())
    .data(mutation::PrivateWebhooks(config.webhook_allow_private_addresses))
    .data(effects.known().clone())
    .data(effects.events().clone())
    .data(effects)
    .data(limits)
    .finish()
}

/// The schema in SDL, as `bookedbarber schema` prints it.
pub fn sdl() -> String {
    Schema::build(
        query::Query::default(),
        mutation::Mutation::default(),
        subscription::Subscription::default(),
    )
    .finish()
    .sdl()
}

/// The database connection of the schema.
pub(crate) fn db<'a>(ctx: &'a Context<'_>) -> AppResult<&'a DatabaseConnection> {
    ctx.data::<DatabaseConnection>()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("schema built without a database")))
}

/// Where the request's reads that may use the replica go.
pub(crate) fn read_route<'a>(ctx: &'a Context<'_>) -> AppResult<&'a ReadRoute> {
    ctx.data::<Arc<ReadRoute>>()
        .map(|route| route.as_ref())
        .map_err(|_| AppError::Internal(anyhow::anyhow!("request run without its read route")))
}

/// Acts on what a committed write changed (see [`Effects`]) and returns
/// its value. The writer's reads go to the primary from now on, for a
/// while, so they see it.
pub(crate) async fn publish<T>(ctx: &Context<'_>, changed: Changed<T>) -> AppResult<T> {
    let effects = ctx
        .data::<Effects>()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("schema built without effects")))?;
    if let Ok(route) = ctx.data::<Arc<ReadRoute>>() {
        route.wrote().await;
    }
    Ok(effects.publish(changed).await)
}

/// Gives every error a contract code. Errors from our resolvers have one;
/// those without come from parsing, validation or argument coercion, which
/// is to say from what the client sent.
pub fn ensure_error_codes(response: &mut Response) {
    for error in &mut response.errors {
        set_default_code(error, "BAD_USER_INPUT");
    }
}

fn set_default_code(error: &mut ServerError, code: &str) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
}
