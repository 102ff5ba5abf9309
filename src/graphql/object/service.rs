//! `Service`: an item on a shop's menu.

use async_graphql::{Context, ID, Object};
use entity::service;

use super::{Barber, Shop, load_one, load_required};
use crate::graphql::{
    id::{self, Kind},
    loader::{BarbersByServiceLoader, ShopByIdLoader},
};

/// Something a client can book: how long it takes and what it costs.
pub struct Service(pub service::Model);

#[Object]
impl Service {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        id::encode(Kind::Service, self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    async fn duration_minutes(&self) -> i32 {
        self.0.duration_minutes
    }

    /// Price in the currency's minor unit (cents).
    async fn price_cents(&self) -> i64 {
        self.0.price_cents
    }

    /// ISO 4217 currency code.
    async fn currency(&self) -> &str {
        &self.0.currency
    }

    /// The shop whose menu this is.
    async fn shop(&self, ctx: &Context<'_>) -> async_graphql::Result<Shop> {
        Ok(Shop(load_required::<ShopByIdLoader, _>(ctx, self.0.shop_id, "shop").await?))
    }

    /// The barbers who offer this service.
    async fn barbers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Barber>> {
        let barbers = load_one::<BarbersByServiceLoader, _>(ctx, self.0.id).await?;
        Ok(barbers.unwrap_or_default().into_iter().map(Barber).collect())
    }
}
