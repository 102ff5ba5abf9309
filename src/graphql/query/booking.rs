//! Reading bookings.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use crate::{
    auth::policy,
    domain::booking::BookingFilter,
    error::AppError,
    graphql::{
        guard::{SignedIn, identity},
        id::{self, Kind},
        loader::{BarberByIdLoader, BookingByIdLoader},
        object::{Booking, BookingArgs, BookingConnection, BookingStatus, load_one},
    },
};

#[derive(Default)]
pub struct BookingQuery;

#[Object]
impl BookingQuery {
    /// One booking: for its client, its barber and its shop's owner.
    #[graphql(guard = "SignedIn", cache_control(private))]
    async fn booking(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Booking>> {
        let booking_id = id::decode_as(&id, Kind::Booking, "id")?;
        Ok(Some(load_readable_booking(ctx, booking_id).await?))
    }

    /// Bookings by start time. With `shopId`: the shop's (its owner sees
    /// all, a barber their own). With `barberId` alone: that barber's (for
    /// the barber and the shop's owner). With neither: your own as a client.
    /// `from` is inclusive and `to` exclusive, on the booking's start.
    #[graphql(
        cache_control(private),
        guard = "SignedIn",
        complexity = "crate::graphql::limits::page_complexity(first, last, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn bookings(
        &self,
        ctx: &Context<'_>,
        shop_id: Option<ID>,
        barber_id: Option<ID>,
        status: Option<BookingStatus>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<BookingConnection> {
        let viewer = policy::require_viewer(identity(ctx))?;
        let shop = shop_id.map(|id| id::decode_as(&id, Kind::Shop, "shopId")).transpose()?;
        let barber =
            barber_id.map(|id| id::decode_as(&id, Kind::Barber, "barberId")).transpose()?;
        let args = BookingArgs { status, from, to, first, after, last, before };
        let mut filter: BookingFilter = args.filter()?;
        match (shop, barber) {
            (Some(shop), barber) => {
                filter.shop_id = Some(shop);
                filter.barber_id = policy::shop_bookings_scope(viewer, shop, barber)?;
            }
            (None, Some(barber)) => {
                let model = load_one::<BarberByIdLoader, _>(ctx, barber)
                    .await?
                    .ok_or_else(|| AppError::not_found("no barber has this `barberId`"))?;
                policy::check_barber_bookings(viewer, &model)?;
                filter.barber_id = Some(barber);
            }
            (None, None) => filter.client_id = Some(viewer.id()),
        }
        Ok(args.load_filtered(ctx, filter).await?)
    }
}

/// The booking `booking_id` if the viewer may read it: `NOT_FOUND` when it
/// does not exist, `FORBIDDEN` when it is someone else's.
pub async fn load_readable_booking(
    ctx: &Context<'_>,
    booking_id: i64,
) -> async_graphql::Result<Booking> {
    let viewer = policy::require_viewer(identity(ctx))?;
    let booking = load_one::<BookingByIdLoader, _>(ctx, booking_id)
        .await?
        .ok_or_else(|| AppError::not_found("no booking has this id"))?;
    policy::check_booking(viewer, &booking)?;
    Ok(Booking(booking))
}
