//! `ShopAnalytics`: a shop's dashboard over a range of shop-local dates.
//!
//! Each section (summary, by day, barbers, services, peak hours) is read
//! through the cache on first use in a request and only then, so a client
//! that asks for one number computes one section.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::OnceCell;

use super::{Barber, Service, load_required};
use crate::{
    cache::{Cache, ShopVersion},
    domain::analytics::{
        self, BarberNumbers, Day, PeakHour as PeakNumbers, Range, Section, ServiceNumbers, Summary,
    },
    error::{AppError, AppResult},
    graphql::{
        db,
        loader::{BarberByIdLoader, ServiceByIdLoader},
        scalar::Date,
    },
};

/// A shop's numbers over `from..=to` (shop-local dates), by booking start.
pub struct ShopAnalytics {
    shop_id: i64,
    range: Range,
    /// The shop's cache version, read once for all sections.
    version: OnceCell<ShopVersion>,
    summary: OnceCell<Summary>,
    by_day: OnceCell<Section<Day>>,
    barbers: OnceCell<Section<BarberNumbers>>,
    services: OnceCell<Section<ServiceNumbers>>,
    peak_hours: OnceCell<Section<PeakNumbers>>,
}

impl ShopAnalytics {
    pub fn new(shop_id: i64, range: Range) -> Self {
        Self {
            shop_id,
            range,
            version: OnceCell::new(),
            summary: OnceCell::new(),
            by_day: OnceCell::new(),
            barbers: OnceCell::new(),
            services: OnceCell::new(),
            peak_hours: OnceCell::new(),
        }
    }

    /// A section through the cache, once per request.
    async fn section<'a, T, F, Fut>(
        &'a self,
        ctx: &Context<'_>,
        cell: &'a OnceCell<T>,
        name: &'static str,
        compute: F,
    ) -> AppResult<&'a T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(sea_orm::DatabaseConnection, i64, Range) -> Fut,
        Fut: Future<Output = Result<T, sea_orm::DbErr>>,
    {
        cell.get_or_try_init(|| async {
            let cache = ctx
                .data::<Cache>()
                .map_err(|_| AppError::Internal(anyhow::anyhow!("schema built without a cache")))?;
            let db = db(ctx)?.clone();
            let version = *self.version.get_or_init(|| cache.shop_version(self.shop_id)).await;
            let computation = async { Ok(compute(db, self.shop_id, self.range).await?) };
            cache.get_or_compute(version, &self.range.key(), name, computation).await
        })
        .await
    }

    async fn summary(&self, ctx: &Context<'_>) -> AppResult<&Summary> {
        self.section(ctx, &self.summary, "summary", |db, shop, range| async move {
            analytics::summary(&db, shop, &range).await
        })
        .await
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
        Date(self.range.from)
    }

    /// Last day of the range (shop-local), included.
    async fn to(&self) -> Date {
        Date(self.range.to)
    }

    /// Bookings starting in the range, in any status.
    async fn bookings_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.summary(ctx).await?.tally.bookings)
    }

    async fn completed_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.summary(ctx).await?.tally.completed)
    }

    async fn cancelled_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.summary(ctx).await?.tally.cancelled)
    }

    async fn no_show_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.summary(ctx).await?.tally.no_show)
    }

    /// Sum of the prices of COMPLETED bookings, in cents.
    async fn revenue_cents(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.summary(ctx).await?.tally.revenue_cents)
    }

    /// Revenue / completed bookings, rounded half away from zero; 0 when none.
    async fn average_ticket_cents(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.summary(ctx).await?.average_ticket_cents())
    }

    /// No-shows / (completed + no-shows).
    async fn no_show_rate(&self, ctx: &Context<'_>) -> async_graphql::Result<f64> {
        Ok(self.summary(ctx).await?.tally.no_show_rate())
    }

    /// Cancelled / all bookings.
    async fn cancellation_rate(&self, ctx: &Context<'_>) -> async_graphql::Result<f64> {
        Ok(self.summary(ctx).await?.cancellation_rate())
    }

    /// Minutes of CONFIRMED and COMPLETED bookings / working minutes less
    /// time off, over every barber.
    async fn utilization(&self, ctx: &Context<'_>) -> async_graphql::Result<f64> {
        Ok(self.summary(ctx).await?.utilization())
    }

    /// Clients with two or more non-cancelled bookings / clients with one
    /// or more.
    async fn repeat_client_rate(&self, ctx: &Context<'_>) -> async_graphql::Result<f64> {
        Ok(self.summary(ctx).await?.repeat_client_rate())
    }

    /// Every day of the range, zeros included.
    async fn revenue_by_day(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<DayRevenue>> {
        let section = self
            .section(ctx, &self.by_day, "by_day", |db, shop, range| async move {
                analytics::by_day(&db, shop, &range).await
            })
            .await?;
        Ok(section
            .rows
            .iter()
            .map(|d| DayRevenue {
                date: Date(d.date),
                bookings_count: d.bookings,
                revenue_cents: d.revenue_cents,
            })
            .collect())
    }

    /// Every barber of the shop.
    async fn barber_performance(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<BarberPerformance>> {
        let section = self
            .section(ctx, &self.barbers, "barbers", |db, shop, range| async move {
                analytics::barbers(&db, shop, &range).await
            })
            .await?;
        Ok(section.rows.iter().cloned().map(BarberPerformance).collect())
    }

    /// Services with bookings in the range, highest revenue first.
    async fn top_services(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ServiceSales>> {
        let section = self
            .section(ctx, &self.services, "services", |db, shop, range| async move {
                analytics::services(&db, shop, &range).await
            })
            .await?;
        Ok(section.rows.iter().cloned().map(ServiceSales).collect())
    }

    /// Bookings per shop-local weekday and hour; non-zero ones only.
    async fn peak_hours(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<PeakHour>> {
        let section = self
            .section(ctx, &self.peak_hours, "peak_hours", |db, shop, range| async move {
                analytics::peak_hours(&db, shop, &range).await
            })
            .await?;
        Ok(section
            .rows
            .iter()
            .map(|p| PeakHour { weekday: p.weekday, hour: p.hour, bookings_count: p.bookings })
            .collect())
    }

    /// When the summary numbers were computed; a cached answer keeps the
    /// original instant.
    async fn generated_at(&self, ctx: &Context<'_>) -> async_graphql::Result<DateTime<Utc>> {
        Ok(self.summary(ctx).await?.generated_at)
    }
}
