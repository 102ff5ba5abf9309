//! `rateLimit`: the caller's budget, as GitHub and Shopify report it.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{graphql::limits::OperationInfo, protect::RequestBudget};

/// The caller's rate-limit budget after this request.
#[derive(SimpleObject)]
pub struct RateLimit {
    /// Points replenished per minute.
    pub limit: u32,
    /// Points that may be spent at once now.
    pub remaining: u32,
    /// When the budget is full again.
    pub reset_at: DateTime<Utc>,
    /// Points this request cost.
    pub cost: u32,
}

#[derive(Default)]
pub struct RateLimitQuery;

#[Object]
impl RateLimitQuery {
    /// Your budget after this request: every operation costs its complexity
    /// (a hundred to the point, at least one).
    #[graphql(cache_control(no_cache))]
    async fn rate_limit(&self, ctx: &Context<'_>) -> Option<RateLimit> {
        let budget = ctx.data_opt::<RequestBudget>()?.get();
        let cost = ctx.data_opt::<OperationInfo>().map_or(1, OperationInfo::cost);
        Some(RateLimit {
            limit: budget.limit,
            remaining: budget.remaining,
            reset_at: budget.reset_at,
            cost,
        })
    }
}
