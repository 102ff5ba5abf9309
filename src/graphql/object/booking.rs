//! `Booking`: an appointment, and lists of them.

use async_graphql::{Context, ID, Object, connection::Connection};
use chrono::{DateTime, Utc};
use entity::booking;
use futures_util::FutureExt;

use super::{
    Barber, BookingStatus, Payment, PaymentStatus, Service, Shop, User, connection_from_page,
    load_one, load_required, page_request_in,
};
use crate::{
    auth::policy,
    domain::{
        self,
        booking::{BookingFilter, Owner},
        page::Page,
    },
    error::{AppError, AppResult},
    graphql::{
        guard::identity,
        id::{self, Kind},
        loader::{
            BarberByIdLoader, BookingCountLoader, BookingPageKey, BookingPageLoader,
            PaymentsByBookingLoader, ServiceByIdLoader, ShopByIdLoader, UserByIdLoader,
        },
        read_route,
    },
};

/// An appointment: a client, a barber, a service and a time.
pub struct Booking(pub booking::Model);

/// A page of bookings.
pub type BookingConnection = Connection<String, Booking, BookingConnectionFields>;

#[Object]
impl Booking {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        id::encode(Kind::Booking, self.0.id)
    }

    async fn shop(&self, ctx: &Context<'_>) -> async_graphql::Result<Shop> {
        Ok(Shop(load_required::<ShopByIdLoader, _>(ctx, self.0.shop_id, "shop").await?))
    }

    async fn barber(&self, ctx: &Context<'_>) -> async_graphql::Result<Barber> {
        Ok(Barber(load_required::<BarberByIdLoader, _>(ctx, self.0.barber_id, "barber").await?))
    }

    /// Who booked; their email is seen by themselves and the shop's staff.
    async fn client(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let model = load_required::<UserByIdLoader, _>(ctx, self.0.client_id, "client").await?;
        let identity = identity(ctx);
        let own = identity.viewer().is_some_and(|viewer| viewer.id() == self.0.client_id);
        let email_visible = policy::can_see_client(identity, self.0.client_id, self.0.shop_id);
        Ok(User { model, own, email_visible })
    }

    async fn service(&self, ctx: &Context<'_>) -> async_graphql::Result<Service> {
        Ok(Service(load_required::<ServiceByIdLoader, _>(ctx, self.0.service_id, "service").await?))
    }

    async fn starts_at(&self) -> DateTime<Utc> {
        self.0.starts_at
    }

    async fn ends_at(&self) -> DateTime<Utc> {
        self.0.ends_at
    }

    async fn status(&self) -> BookingStatus {
        self.0.status.into()
    }

    /// The price when the booking was made, in cents.
    async fn price_cents(&self) -> i64 {
        self.0.price_cents
    }

    /// ISO 4217 currency code of the price.
    async fn currency(&self) -> &str {
        &self.0.currency
    }

    async fn notes(&self) -> Option<&str> {
        self.0.notes.as_deref()
    }

    /// Why the booking was cancelled, when it was.
    async fn cancellation_reason(&self) -> Option<&str> {
        self.0.cancellation_reason.as_deref()
    }

    /// How much of the price has been paid.
    async fn payment_status(&self, ctx: &Context<'_>) -> async_graphql::Result<PaymentStatus> {
        let payments = load_one::<PaymentsByBookingLoader, _>(ctx, self.0.id).await?;
        let status =
            domain::booking::payment_status(self.0.price_cents, &payments.unwrap_or_default());
        Ok(status.into())
    }

    /// Payments received, oldest first.
    async fn payments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Payment>> {
        let payments = load_one::<PaymentsByBookingLoader, _>(ctx, self.0.id).await?;
        Ok(payments.unwrap_or_default().into_iter().map(Payment).collect())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Filters and page arguments of a booking list, as the client sent them.
pub struct BookingArgs {
    pub status: Option<BookingStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

impl BookingArgs {
    /// The filter these arguments describe.
    pub fn filter(&self) -> AppResult<BookingFilter> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(AppError::bad_input("`from` must not be after `to`"));
        }
        Ok(BookingFilter {
            status: self.status.map(Into::into),
            from: self.from,
            to: self.to,
            ..BookingFilter::default()
        })
    }

    /// The bookings of one shop, barber or client (optionally only of
    /// `barber`), through the batched page loader.
    pub async fn load_for(
        self,
        ctx: &Context<'_>,
        owner: Owner,
        id: i64,
        barber: Option<i64>,
    ) -> AppResult<BookingConnection> {
        let mut filter = self.filter()?;
        filter.barber_id = barber;
        let page = page_request_in(self.first, self.after, self.last, self.before, true)?;
        let key = BookingPageKey { owner, id, filter: filter.clone(), page };
        let rows =
            load_one::<BookingPageLoader, _>(ctx, key).await?.unwrap_or_else(|| Page::empty(&page));
        Ok(connection_from_page(
            rows,
            domain::booking::position,
            Booking,
            BookingConnectionFields(CountScope::Of(owner, id, filter)),
        ))
    }

    /// The bookings `filter` selects, in one statement.
    pub async fn load_filtered(
        self,
        ctx: &Context<'_>,
        filter: BookingFilter,
    ) -> AppResult<BookingConnection> {
        let page = page_request_in(self.first, self.after, self.last, self.before, true)?;
        let for_read = filter.clone();
        let own = filter.client_id.is_some();
        let rows = read_route(ctx)?
            .run_list(own, move |db| {
                let filter = for_read.clone();
                async move { domain::booking::list(&db, &filter, &page).await }.boxed()
            })
            .await?;
        Ok(connection_from_page(
            rows,
            domain::booking::position,
            Booking,
            BookingConnectionFields(CountScope::Filter(filter)),
        ))
    }
}

/// What a booking list counts over.
enum CountScope {
    Of(Owner, i64, BookingFilter),
    Filter(BookingFilter),
}

/// Fields of a page of bookings beyond the page itself.
pub struct BookingConnectionFields(CountScope);

#[Object]
impl BookingConnectionFields {
    /// How many bookings the list has in all.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        Ok(match &self.0 {
            CountScope::Of(owner, id, filter) => {
                load_one::<BookingCountLoader, _>(ctx, (*owner, *id, filter.clone()))
                    .await?
                    .unwrap_or(0)
            }
            CountScope::Filter(filter) => {
                let for_read = filter.clone();
                read_route(ctx)?
                    .run_list(filter.client_id.is_some(), move |db| {
                        let filter = for_read.clone();
                        async move { domain::booking::count(&db, &filter).await }.boxed()
                    })
                    .await
                    .map_err(AppError::from)?
            }
        })
    }
}
