//! A shop's dashboard.

use async_graphql::{Context, ID, Object};

use crate::{
    auth::policy,
    domain,
    error::AppError,
    graphql::{
        guard::{SignedIn, identity},
        id::{self, Kind},
        loader::ShopByIdLoader,
        object::{ShopAnalytics, load_one},
        scalar::Date,
    },
};

#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// A shop's numbers over the shop-local dates `from..=to` (at most 366
    /// days), by booking start; for the shop's owner. Cached per section and
    /// fresh after every change to the shop's bookings, payments, hours or
    /// time off.
    #[graphql(
        cache_control(private),
        guard = "SignedIn",
        complexity = "crate::graphql::limits::ANALYTICS_WEIGHT + child_complexity"
    )]
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        shop_id: ID,
        from: Date,
        to: Date,
    ) -> async_graphql::Result<ShopAnalytics> {
        let shop_id = id::decode_as(&shop_id, Kind::Shop, "shopId")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        policy::check_owner(viewer, shop_id)?;
        let shop = load_one::<ShopByIdLoader, _>(ctx, shop_id)
            .await?
            .ok_or_else(|| AppError::not_found("no shop has this `shopId`"))?;
        let range = domain::analytics::Range::new(&shop, from.0, to.0)?;
        Ok(ShopAnalytics::new(ctx, &shop, range)?)
    }
}
