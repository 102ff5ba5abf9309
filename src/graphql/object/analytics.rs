//! `ShopAnalytics`: a shop's dashboard over a range of shop-local dates.
//!
//! The sections and their caching are the domain's [`Dashboard`]; this
//! object only shapes them for GraphQL.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{Barber, Service, load_required};
use crate::{
    db::replica::ReadRoute,
    domain::{
        analytics::{BarberNumbers, Range, ServiceNumbers},
        dashboard::{AnalyticsCache, Dashboard},
    },
    error::{AppError, AppResult},
    graphql::{
        loader::{BarberByIdLoader, ServiceByIdLoader},
        scalar::Date,
    },
};

/// A shop's numbers over `from..=to` (shop-local dates), by booking start.
pub struct ShopAnalytics(Dashboard);

impl ShopAnalytics {
    pub fn new(ctx: &Context<'_>, shop: &entity::shop::Model, range: Range) -> AppResult<Self> {
        let cache = ctx.data::<AnalyticsCache>().map_err(|_| {
            AppError::Internal(anyhow::anyhow!("schema built without an analytics cache"))
        })?;
        let route = ctx.data::<std::sync::Arc<ReadRoute>>().map_err(|_| {
            AppError::Internal(anyhow::anyhow!("request run without its read route"))
        })?;
        Ok(Self(Dashboard::new(route.clone(), cache.clone(), shop, range)))
    }
}

/// One day of the range.
#[derive(SimpleObject)]
pub struct DayRevenue {
    /// Shop-local date.
    pub date: Date,
    pub bookings_count: i64,
    /// Prices of the day's COMPLETED bookings, in cents.
    pub revenue_cents: i64,
}

/// One barber's numbers.
pub struct BarberPerformance(BarberNumbers);

#[Object]
impl BarberPerformance {
    async fn barber(&self, ctx: &Context<'_>) -> async_graphql::Result<Barber> {
        Ok(Barber(load_required::<BarberByIdLoader, _>(ctx, self.0.barber_id, "barber").await?))
    }

    async fn bookings_count(&self) -> i64 {
        self.0.tally.bookings
    }

    async fn completed_count(&self) -> i64 {
        self.0.tally.completed
    }

    async fn revenue_cents(&self) -> i64 {
        self.0.tally.revenue_cents
    }

    /// No-shows / (completed + no-shows); 0 when there are none.
    async fn no_show_rate(&self) -> f64 {
        self.0.tally.no_show_rate()
    }

    /// Minutes of CONFIRMED and COMPLETED bookings / working minutes less
    /// time off; 0 without working minutes.
    async fn utilization(&self) -> f64 {
        self.0.utilization()
    }
}

/// One service's sales.
pub struct ServiceSales(ServiceNumbers);

#[Object]
impl ServiceSales {
    async fn service(&self, ctx: &Context<'_>) -> async_graphql::Result<Service> {
        Ok(Service(load_required::<ServiceByIdLoader, _>(ctx, self.0.service_id, "service").await?))
    }

    async fn bookings_count(&self) -> i64 {
        self.0.bookings
    }

    /// Prices of its COMPLETED bookings, in cents.
    async fn revenue_cents(&self) -> i64 {
        self.0.revenue_cents
    }
}

/// Bookings starting in one shop-local weekday and hour.
#[derive(SimpleObject)]
pub struct PeakHour {
    /// 1 = Monday … 7 = Sunday.
    pub weekday: u32,
    /// 0–23.
    pub hour: u32,
    pub bookings_count: i64,
}

#[Object]
impl ShopAnalytics {
    /// First day of the range (shop-local).
    async fn from(&self) -> Date {
        Date(self.0.range().from)
    }

    /// Last day of the range (shop-local), included.
    async fn to(&self) -> Date {
        Date(self.0.range().to)
    }

    /// Bookings starting in the range, in any status.
    async fn bookings_count(&self) -> async_graphql::Result<i64> {
        Ok(self.0.summary().await?.tally.bookings)
    }

    async fn completed_count(&self) -> async_graphql::Result<i64> {
        Ok(self.0.summary().await?.tally.completed)
    }

    async fn cancelled_count(&self) -> async_graphql::Result<i64> {
        Ok(self.0.summary().await?.tally.cancelled)
    }

    async fn no_show_count(&self) -> async_graphql::Result<i64> {
        Ok(self.0.summary().await?.tally.no_show)
    }

    /// Sum of the prices of COMPLETED bookings, in cents.
    async fn revenue_cents(&self) -> async_graphql::Result<i64> {
        Ok(self.0.summary().await?.tally.revenue_cents)
    }

    /// Revenue / completed bookings, rounded half away from zero; 0 when none.
    async fn average_ticket_cents(&self) -> async_graphql::Result<i64> {
        Ok(self.0.summary().await?.average_ticket_cents())
    }

    /// No-shows / (completed + no-shows).
    async fn no_show_rate(&self) -> async_graphql::Result<f64> {
        Ok(self.0.summary().await?.tally.no_show_rate())
    }

    /// Cancelled / all bookings.
    async fn cancellation_rate(&self) -> async_graphql::Result<f64> {
        Ok(self.0.summary().await?.cancellation_rate())
    }

    /// Minutes of CONFIRMED and COMPLETED bookings / working minutes less
    /// time off, over every barber.
    async fn utilization(&self) -> async_graphql::Result<f64> {
        Ok(self.0.summary().await?.utilization())
    }

    /// Clients with two or more non-cancelled bookings / clients with one
    /// or more.
    async fn repeat_client_rate(&self) -> async_graphql::Result<f64> {
        Ok(self.0.summary().await?.repeat_client_rate())
    }

    /// Every day of the range, zeros included.
    async fn revenue_by_day(&self) -> async_graphql::Result<Vec<DayRevenue>> {
        Ok(self
            .0
            .by_day()
            .await?
            .iter()
            .map(|d| DayRevenue {
                date: Date(d.date),
                bookings_count: d.bookings,
                revenue_cents: d.revenue_cents,
            })
            .collect())
    }

    /// Every barber of the shop.
    async fn barber_performance(&self) -> async_graphql::Result<Vec<BarberPerformance>> {
        Ok(self.0.barbers().await?.iter().cloned().map(BarberPerformance).collect())
    }

    /// Services with bookings in the range, highest revenue first.
    async fn top_services(&self) -> async_graphql::Result<Vec<ServiceSales>> {
        Ok(self.0.services().await?.iter().cloned().map(ServiceSales).collect())
    }

    /// Bookings per shop-local weekday and hour; non-zero ones only.
    async fn peak_hours(&self) -> async_graphql::Result<Vec<PeakHour>> {
        Ok(self
            .0
            .peak_hours()
            .await?
            .iter()
            .map(|p| PeakHour { weekday: p.weekday, hour: p.hour, bookings_count: p.bookings })
            .collect())
    }

    /// When the summary numbers were computed; a cached answer keeps the
    /// original instant.
    async fn generated_at(&self) -> async_graphql::Result<DateTime<Utc>> {
        Ok(self.0.summary().await?.generated_at)
    }
}
