//! `Barber`: a person who cuts hair at one shop.

use async_graphql::{Context, ID, Object};
use entity::barber;

use chrono::{DateTime, Utc};

use super::{
    BookingArgs, BookingConnection, BookingStatus, Service, Shop, TimeOff, WorkingHours, load_one,
    load_required,
};
use crate::{
    auth::policy,
    domain::{self, booking::Owner},
    error::AppError,
    graphql::{
        db,
        guard::{ShopStaff, SignedIn, identity},
        id::{self, Kind},
        loader::{ServicesByBarberLoader, ShopByIdLoader, WorkingHoursByBarberLoader},
        public,
    },
};

/// A barber working at one shop.
pub struct Barber(pub barber::Model);

#[Object]
impl Barber {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        id::encode(Kind::Barber, self.0.id)
    }

    async fn display_name(&self) -> &str {
        &self.0.display_name
    }

    async fn bio(&self) -> Option<&str> {
        self.0.bio.as_deref()
    }

    /// Inactive barbers take no new bookings.
    async fn active(&self) -> bool {
        self.0.active
    }

    /// The shop the barber works at.
    async fn shop(&self, ctx: &Context<'_>) -> async_graphql::Result<Shop> {
        Ok(Shop(load_required::<ShopByIdLoader, _>(ctx, self.0.shop_id, "shop").await?))
    }

    /// The services the barber offers.
    async fn services(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<super::Service>> {
        let services = load_one::<ServicesByBarberLoader, _>(ctx, self.0.id).await?;
        Ok(services.unwrap_or_default().into_iter().map(Service).collect())
    }

    /// The barber's bookings, by start time: for the barber and the shop's
    /// owner.
    #[graphql(
        guard = "SignedIn",
        complexity = "crate::graphql::limits::page_complexity(first, last, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn bookings(
        &self,
        ctx: &Context<'_>,
        status: Option<BookingStatus>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<BookingConnection> {
        let viewer = policy::require_viewer(identity(ctx))?;
        policy::check_barber_bookings(viewer, &self.0)?;
        let args = BookingArgs { status, from, to, first, after, last, before };
        Ok(args.load_for(ctx, Owner::Barber, self.0.id, None).await?)
    }

    /// Time off that has not ended yet (or ends after `from`); for the
    /// shop's staff.
    #[graphql(guard = "ShopStaff(self.0.shop_id)")]
    async fn time_off(
        &self,
        ctx: &Context<'_>,
        from: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<Vec<TimeOff>> {
        let rows = domain::barber::time_off(db(ctx)?, self.0.id, from.unwrap_or_else(Utc::now))
            .await
            .map_err(AppError::from)?;
        if from.is_none() {
            // Relative to now: the list holds until its first entry ends.
            public::valid_until(ctx, rows.iter().map(|row| row.ends_at).min());
        }
        Ok(rows.into_iter().map(TimeOff).collect())
    }

    /// The barber's week, in the shop's local time.
    async fn working_hours(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<WorkingHours>> {
        let hours = load_one::<WorkingHoursByBarberLoader, _>(ctx, self.0.id).await?;
        Ok(hours.unwrap_or_default().into_iter().map(WorkingHours).collect())
    }
}
