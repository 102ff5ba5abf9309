//! Free slots: what a client can book.

use async_graphql::{Context, ID, Object};
use chrono::Utc;

use crate::graphql::{
    db,
    id::{self, Kind},
    object::TimeSlot,
    public,
    scalar::Date,
};

#[derive(Default)]
pub struct AvailabilityQuery;

#[Object]
impl AvailabilityQuery {
    /// Every start time on the shop-local `date` at which the barber can
    /// take the service: inside working hours, outside time off and other
    /// bookings, on the shop's slot step, and inside its notice and advance
    /// window. Needs no sign-in.
    #[graphql(
        complexity = "crate::graphql::limits::AVAILABLE_SLOTS_WEIGHT + child_complexity",
        cache_control(max_age = 5)
    )]
    async fn available_slots(
        &self,
        ctx: &Context<'_>,
        barber_id: ID,
        service_id: ID,
        date: Date,
    ) -> async_graphql::Result<Vec<TimeSlot>> {
        let barber = id::decode_as(&barber_id, Kind::Barber, "barberId")?;
        let service = id::decode_as(&service_id, Kind::Service, "serviceId")?;
        let db = db(ctx)?;
        // The shop's hours, policy and services shape the slots too.
        let offer = public::offer_for_slots(ctx, db, barber, service).await?;
        let open = offer.open_slots(db, date.0, Utc::now()).await?;
        public::valid_until(ctx, open.until);
        Ok(open
            .slots
            .into_iter()
            .map(|(starts_at, ends_at)| TimeSlot { starts_at, ends_at })
            .collect())
    }
}
