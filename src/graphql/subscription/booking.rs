//! Live booking events: a shop's calendar, and a client's own bookings.

use async_graphql::{Context, ID, Subscription};
use futures_util::Stream;

use super::{Replay, booking_events};
use crate::{
    auth::{Identity, policy},
    domain::event_log::Event,
    error::AppError,
    graphql::{
        db,
        id::{self, Kind},
        object::BookingEvent,
        ws::Session,
    },
};

#[derive(Default)]
pub struct BookingSubscription;

/// Whether the viewer may follow `shop`'s bookings: its owner (all of
/// them) or one of its barbers (their own).
fn staff_of(identity: &Identity, shop: i64) -> Result<(), AppError> {
    let viewer = policy::require_viewer(identity)?;
    policy::shop_bookings_scope(viewer, shop, None)?;
    Ok(())
}

/// A signed-in viewer.
fn signed_in(identity: &Identity) -> Result<(), AppError> {
    policy::require_viewer(identity).map(|_| ())
}

#[Subscription]
impl BookingSubscription {
    /// Every change to the shop's bookings as it commits: all of them for
    /// the owner, their own for a barber. With `after` (the id of the last
    /// event seen), what came after it is sent first, from the event log.
    async fn booking_changed(
        &self,
        ctx: &Context<'_>,
        shop_id: ID,
        after: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<BookingEvent>> + use<>>
    {
        let shop = id::decode_as(&shop_id, Kind::Shop, "shopId")?;
        let after = after.map(|after| id::decode_as(&after, Kind::Event, "after")).transpose()?;
        let session = Session::of(ctx)?;
        let place = session.take_slot()?;
        // As the viewer is now, not as they signed in.
        let identity = session.check().await?;
        staff_of(&identity, shop)?;
        // Listening before reading the log: nothing falls in between.
        let live = session.events().subscribe();
        let db = db(ctx)?.clone();
        let replay = after.map(|after| Replay { db, shop, after });
        let wanted = move |identity: &Identity, event: &Event| {
            event.shop == shop
                && event.kind.is_booking()
                && identity.viewer().is_some_and(|viewer| {
                    viewer.owns(shop)
                        || (viewer.barber_at(shop).is_some()
                            && viewer.barber_at(shop) == event.barber)
                })
        };
        let access = move |identity: &Identity| staff_of(identity, shop);
        Ok(booking_events(session, place, identity, replay, live, access, wanted))
    }

    /// Every change to the signed-in client's own bookings, at any shop.
    async fn my_booking_changed(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<BookingEvent>> + use<>>
    {
        let session = Session::of(ctx)?;
        let place = session.take_slot()?;
        let identity = session.check().await?;
        let me = policy::require_viewer(&identity)?.id();
        let live = session.events().subscribe();
        let wanted =
            move |_: &Identity, event: &Event| event.kind.is_booking() && event.client == Some(me);
        Ok(booking_events(session, place, identity, None, live, signed_in, wanted))
    }
}
