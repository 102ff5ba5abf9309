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

/// The schemas requests run on: the same types, resolvers and data, with
/// the query limits' extension and without it.
pub struct Schemas {
    /// With the query limits' extension, which checks and charges a
    /// document as async-graphql runs it: subscriptions, and every request
    /// whose cost is not known and paid on arrival.
    pub checked: AppSchema,
    /// Without any extension. With one, async-graphql builds resolve info
    /// for every field and every item of a list (two type names formatted
    /// for each item, the field looked up in the registry), though ours
    /// looks at none of it (a page of many objects costs about a sixth
    /// less without it; see the README's "Lean execution"). For a
    /// document the limits passed before whose whole, fixed, cost was paid
    /// on arrival; [`limits::QueryLimits::prepare`] checks it first.
    pub lean: AppSchema,
    /// The limits both share.
    pub limits: limits::QueryLimits,
}

/// Builds the schemas. Per-request data (identity, loaders) is added by
/// the handler.
pub fn build_schemas(
    db: DatabaseConnection,
    tokens: TokenKeys,
    effects: Effects,
    limits: Arc<Limits>,
    config: &Config,
) -> Schemas {
    let build = || {
        Schema::build(
            query::Query::default(),
            mutation::Mutation::default(),
            subscription::Subscription::default(),
        )
        .data(db.clone())
        .data(tokens.clone())
        .data(effects.analytics().clone())
        .data(effects.public().clone())
        .data(mutation::PrivateWebhooks(config.webhook_allow_private_addresses))
        .data(effects.known().clone())
        .data(effects.events().clone())
        .data(effects.clone())
        .data(limits.clone())
    };
    let query_limits = limits::QueryLimits::new(
        config.max_query_depth,
        config.max_query_complexity,
        config.max_query_fields,
    );
    Schemas {
        checked: build().extension(query_limits.clone()).finish(),
        lean: build().finish(),
        limits: query_limits,
    }
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
