//! GraphQL object types: thin wrappers around entity models whose relation
//! fields go through the request's DataLoaders.

mod barber;
mod connection;
mod service;
mod shop;
mod working_hours;

use std::hash::Hash;

use async_graphql::{
    Context, ID, Interface,
    dataloader::{DataLoader, Loader},
};
use sea_orm::DbErr;

pub use barber::Barber;
pub use connection::{connection_from_page, page_request};
pub use service::Service;
pub use shop::{Shop, ShopConnection, ShopConnectionFields};
pub use working_hours::WorkingHours;

use crate::error::{AppError, AppResult};

/// An object with a global id, fetchable with `node(id:)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque global id."))]
pub enum Node {
    Shop(Shop),
    Barber(Barber),
    Service(Service),
}

/// The request's loader of type `T`.
fn loader<'a, T: Send + Sync + 'static>(ctx: &'a Context<'_>) -> AppResult<&'a DataLoader<T>> {
    ctx.data::<DataLoader<T>>().map_err(|_| {
        AppError::Internal(anyhow::anyhow!(
            "loader {} not registered",
            std::any::type_name::<T>()
        ))
    })
}

/// Loads one value through the request's loader of type `T`.
pub(crate) async fn load_one<T, K>(ctx: &Context<'_>, key: K) -> AppResult<Option<T::Value>>
where
    T: Loader<K, Error = std::sync::Arc<DbErr>>,
    K: Send + Sync + Hash + Eq + Clone + 'static,
{
    Ok(loader::<T>(ctx)?.load_one(key).await?)
}
