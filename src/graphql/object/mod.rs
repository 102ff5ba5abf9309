//! GraphQL object types: thin wrappers around entity models whose relation
//! fields go through the request's DataLoaders.

mod analytics;
mod barber;
mod booking;
mod connection;
mod enums;
mod event;
mod payment;
mod service;
mod shop;
mod time_off;
mod user;
mod webhook;
mod working_hours;

use std::hash::Hash;

use async_graphql::{Context, ID, Interface, dataloader::Loader as LoaderTrait};
use sea_orm::DbErr;

pub use analytics::ShopAnalytics;
pub use barber::Barber;
pub use booking::{Booking, BookingArgs, BookingConnection, BookingConnectionFields};
pub use connection::{connection_from_page, newest_first, page_request, page_request_in};
pub use enums::{
    AuditEventKind, BookingEventKind, BookingStatus, PaymentMethod, PaymentStatus, Role,
};
pub use event::{AuditEvent, AuditLogConnection, BookingEvent, FieldChange};
pub use payment::Payment;
pub use service::Service;
pub use shop::{Shop, ShopConnection, ShopConnectionFields};
pub use time_off::{TimeOff, TimeSlot};
pub use user::{Membership, User};
pub use webhook::{Webhook, WebhookDelivery, WebhookDeliveryStatus};
pub use working_hours::WorkingHours;

use crate::{
    error::{AppError, AppResult},
    graphql::loader::{Lazy, Loader, Loaders},
};

/// An object with a global id, fetchable with `node(id:)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque global id."))]
pub enum Node {
    Shop(Shop),
    Barber(Barber),
    Service(Service),
    User(User),
    Booking(Booking),
    Payment(Payment),
}

/// The request's loader of type `T`.
pub(crate) fn loader<'a, T: Lazy>(ctx: &'a Context<'_>) -> AppResult<&'a Loader<T>> {
    let loaders = ctx.data::<Loaders>().map_err(|_| {
        AppError::Internal(anyhow::anyhow!("the request was run without its loaders"))
    })?;
    Ok(loaders.get::<T>())
}

/// Loads one value through the request's loader of type `T`.
pub(crate) async fn load_one<T, K>(ctx: &Context<'_>, key: K) -> AppResult<Option<T::Value>>
where
    T: LoaderTrait<K, Error = std::sync::Arc<DbErr>> + Lazy,
    K: Send + Sync + Hash + Eq + Clone + 'static,
{
    Ok(loader::<T>(ctx)?.load_one(key).await?)
}

/// Loads a value that must exist (a foreign key's target).
pub(crate) async fn load_required<T, K>(
    ctx: &Context<'_>,
    key: K,
    what: &str,
) -> AppResult<T::Value>
where
    T: LoaderTrait<K, Error = std::sync::Arc<DbErr>> + Lazy,
    K: Send + Sync + Hash + Eq + Clone + std::fmt::Debug + 'static,
{
    load_one::<T, K>(ctx, key.clone())
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("{what} {key:?} is missing")))
}
