//! Booking a slot, and running a booking's life.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::BookingStatus;

use crate::{
    auth::policy,
    domain::{
        change::Changed,
        invalid::At,
        lifecycle::{self, NewBooking, NewPayment},
        text,
    },
    error::AppResult,
    graphql::{
        db,
        guard::{SignedIn, identity},
        id::{self, Kind},
        input::{CreateBookingInput, RecordPaymentInput},
        loader::{BarberByIdLoader, BookingByIdLoader, PaymentsByBookingLoader, ServiceByIdLoader},
        object::{Booking, loader},
        publish,
    },
};

/// Publishes what a booking's write changed, and refreshes the request's
/// copy of the booking.
async fn changed(
    ctx: &Context<'_>,
    changed: Changed<entity::booking::Model>,
) -> AppResult<Booking> {
    let booking = publish(ctx, changed).await?;
    loader::<BookingByIdLoader>(ctx)?.feed_one(booking.id, booking.clone()).await;
    Ok(Booking(booking))
}

#[derive(Default)]
pub struct BookingMutation;

#[Object]
impl BookingMutation {
    /// Books a slot for yourself. Every rule is checked again; when two
    /// clients race for one slot, one gets it and the others `CONFLICT`.
    #[graphql(guard = "SignedIn")]
    async fn create_booking(
        &self,
        ctx: &Context<'_>,
        input: CreateBookingInput,
    ) -> async_graphql::Result<Booking> {
        let viewer = policy::require_viewer(identity(ctx))?;
        let new = NewBooking::try_from(input)?;
        let (booking, barber, service) =
            lifecycle::create(db(ctx)?, viewer, new, Utc::now()).await?;
        // The answer shows them as the booking was made with them, unread.
        loader::<BarberByIdLoader>(ctx)?.feed_one(barber.id, barber).await;
        loader::<ServiceByIdLoader>(ctx)?.feed_one(service.id, service).await;
        Ok(changed(ctx, booking).await?)
    }

    /// Moves a booking under the same rules as booking it; the old time
    /// frees at once. Clients may until the shop's cancellation cut-off.
    #[graphql(guard = "SignedIn")]
    async fn reschedule_booking(
        &self,
        ctx: &Context<'_>,
        id: ID,
        starts_at: DateTime<Utc>,
    ) -> async_graphql::Result<Booking> {
        let booking_id = id::decode_as(&id, Kind::Booking, "id")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let booking =
            lifecycle::reschedule(db(ctx)?, viewer, booking_id, starts_at, Utc::now()).await?;
        Ok(changed(ctx, booking).await?)
    }

    /// Cancels a booking: clients until the shop's cut-off, the shop's
    /// owner and the booking's barber at any time.
    #[graphql(guard = "SignedIn")]
    async fn cancel_booking(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
    ) -> async_graphql::Result<Booking> {
        let booking_id = id::decode_as(&id, Kind::Booking, "id")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let reason = text::optional(reason, text::CANCELLATION_REASON).at("reason")?;
        let booking = lifecycle::cancel(db(ctx)?, viewer, booking_id, reason, Utc::now()).await?;
        Ok(changed(ctx, booking).await?)
    }

    /// Marks a booking that has started as completed; for the shop's owner
    /// and the booking's barber.
    #[graphql(guard = "SignedIn")]
    async fn complete_booking(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Booking> {
        let booking_id = id::decode_as(&id, Kind::Booking, "id")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let booking =
            lifecycle::close(db(ctx)?, viewer, booking_id, BookingStatus::Completed, Utc::now())
                .await?;
        Ok(changed(ctx, booking).await?)
    }

    /// Marks a booking whose client did not come; for the shop's owner and
    /// the booking's barber, once the start has passed.
    #[graphql(guard = "SignedIn")]
    async fn mark_no_show(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Booking> {
        let booking_id = id::decode_as(&id, Kind::Booking, "id")?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let booking =
            lifecycle::close(db(ctx)?, viewer, booking_id, BookingStatus::NoShow, Utc::now())
                .await?;
        Ok(changed(ctx, booking).await?)
    }

    /// Records money received for a booking; for the shop's owner and the
    /// booking's barber. More than the price in all is refused.
    #[graphql(guard = "SignedIn")]
    async fn record_payment(
        &self,
        ctx: &Context<'_>,
        input: RecordPaymentInput,
    ) -> async_graphql::Result<Booking> {
        let new = NewPayment::try_from(input)?;
        let viewer = policy::require_viewer(identity(ctx))?;
        let booking = lifecycle::record_payment(db(ctx)?, viewer, new, Utc::now()).await?;
        loader::<PaymentsByBookingLoader>(ctx)?.clear::<i64>();
        Ok(changed(ctx, booking).await?)
    }
}
