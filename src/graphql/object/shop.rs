//! `Shop`: a barbershop, its staff and its menu.

use async_graphql::{Context, ID, Object, connection::Connection};
use entity::shop;

use chrono::{DateTime, Utc};

use super::{
    AuditEventKind, AuditLogConnection, Barber, BookingArgs, BookingConnection, BookingStatus,
    Service, ShopAnalytics, Webhook, connection_from_page, load_one, page_request,
};
use crate::{
    auth::policy,
    domain::booking::Owner,
    domain::{self, page::Position},
    graphql::{
        guard::{ShopStaff, SignedIn, identity},
        id::{self, Kind},
        loader::{BarberCountByShopLoader, BarbersByShopLoader, ServicesByShopLoader},
        scalar::Date,
    },
};

/// A barbershop: one location with its own time zone, staff and menu.
pub struct Shop(pub shop::Model);

/// A page of a shop's barbers.
pub type BarberConnection = Connection<String, Barber, BarberConnectionFields>;
/// A page of shops.
pub type ShopConnection = Connection<String, Shop, ShopConnectionFields>;

#[Object]
impl Shop {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        id::encode(Kind::Shop, self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Unique, URL-friendly name.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    /// IANA time zone; dates and working hours are read in it.
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }

    async fn address(&self) -> &str {
        &self.0.address
    }

    /// Bookable start times are on this step, in minutes.
    async fn slot_step_minutes(&self) -> i32 {
        self.0.slot_step_minutes
    }

    /// A booking must be made at least this many minutes before its start.
    async fn min_notice_minutes(&self) -> i32 {
        self.0.min_notice_minutes
    }

    /// Bookings may be made at most this many days ahead.
    async fn max_advance_days(&self) -> i32 {
        self.0.max_advance_days
    }

    /// Clients may cancel until this many minutes before the start.
    async fn cancellation_cutoff_minutes(&self) -> i32 {
        self.0.cancellation_cutoff_minutes
    }

    /// Minutes kept free after every appointment.
    async fn buffer_minutes(&self) -> i32 {
        self.0.buffer_minutes
    }

    /// The shop's barbers, in the order they joined.
    #[graphql(
        complexity = "crate::graphql::limits::page_complexity(first, last, child_complexity)"
    )]
    async fn barbers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<BarberConnection> {
        let request = page_request(first, after, last, before)?;
        let page = load_one::<BarbersByShopLoader, _>(ctx, (self.0.id, request))
            .await?
            .unwrap_or_else(|| domain::page::Page::from_rows(Vec::new(), &request));
        Ok(connection_from_page(
            page,
            |b| Position::id(b.id),
            Barber,
            BarberConnectionFields { shop_id: self.0.id },
        ))
    }

    /// The shop's bookings, by start time: all of them for the owner, their
    /// own schedule for a barber.
    #[graphql(
        guard = "ShopStaff(self.0.id)",
        complexity = "crate::graphql::limits::page_complexity(first, last, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn bookings(
        &self,
        ctx: &Context<'_>,
        barber_id: Option<ID>,
        status: Option<BookingStatus>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<BookingConnection> {
        let barber =
            barber_id.map(|id| id::decode_as(&id, Kind::Barber, "barberId")).transpose()?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let only = policy::shop_bookings_scope(viewer, self.0.id, barber)?;
        let args = BookingArgs { status, from, to, first, after, last, before };
        Ok(args.load_for(ctx, Owner::Shop, self.0.id, only).await?)
    }

    /// The shop's dashboard over the shop-local dates `from..=to` (at most
    /// 366 days); for its owner.
    #[graphql(
        guard = "SignedIn",
        complexity = "crate::graphql::limits::ANALYTICS_WEIGHT + child_complexity"
    )]
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        from: Date,
        to: Date,
    ) -> async_graphql::Result<ShopAnalytics> {
        let viewer = policy::require_viewer(identity(ctx))?;
        policy::check_owner(viewer, self.0.id)?;
        let range = domain::analytics::Range::new(&self.0, from.0, to.0)?;
        Ok(ShopAnalytics::new(ctx, &self.0, range)?)
    }

    /// The shop's audit log, newest first: who changed its bookings,
    /// staff, hours, policy and menu, when, and what changed; for its
    /// owner. `kind` keeps one kind of event.
    #[graphql(
        guard = "SignedIn",
        complexity = "crate::graphql::limits::page_complexity(first, None, child_complexity)",
        cache_control(no_cache)
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        kind: Option<AuditEventKind>,
    ) -> async_graphql::Result<AuditLogConnection> {
        let viewer = policy::require_viewer(identity(ctx))?;
        policy::check_owner(viewer, self.0.id)?;
        Ok(super::event::audit_log(ctx, self.0.id, first, after, kind).await?)
    }

    /// The shop's webhooks; for its owner.
    #[graphql(guard = "SignedIn", cache_control(no_cache))]
    async fn webhooks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Webhook>> {
        let viewer = policy::require_viewer(identity(ctx))?;
        policy::check_owner(viewer, self.0.id)?;
        let db = crate::graphql::db(ctx)?;
        let webhooks =
            domain::webhook::of_shop(db, self.0.id).await.map_err(crate::error::AppError::from)?;
        Ok(webhooks.into_iter().map(|model| Webhook { model, secret: None }).collect())
    }

    /// The shop's menu.
    async fn services(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Service>> {
        let services = load_one::<ServicesByShopLoader, _>(ctx, self.0.id).await?;
        Ok(services.unwrap_or_default().into_iter().map(Service).collect())
    }
}

/// Fields of a page of barbers beyond the page itself.
pub struct BarberConnectionFields {
    shop_id: i64,
}

#[Object]
impl BarberConnectionFields {
    /// How many barbers the shop has in all.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        Ok(load_one::<BarberCountByShopLoader, _>(ctx, self.shop_id).await?.unwrap_or(0))
    }
}

/// Fields of a page of shops beyond the page itself.
pub struct ShopConnectionFields {
    pub search: Option<String>,
}

#[Object]
impl ShopConnectionFields {
    /// How many shops match the search in all.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        let db = crate::graphql::db(ctx)?;
        Ok(domain::shop::count(db, self.search.as_deref())
            .await
            .map_err(crate::error::AppError::from)?)
    }
}
