//! `TimeOff` and `TimeSlot`: when a barber is away, and when they are free.

use async_graphql::{ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::time_off;

use crate::graphql::id::{self, Kind};

/// A period in which a barber takes no bookings.
pub struct TimeOff(pub time_off::Model);

#[Object]
impl TimeOff {
    /// Opaque id.
    async fn id(&self) -> ID {
        id::encode(Kind::TimeOff, self.0.id)
    }

    async fn starts_at(&self) -> DateTime<Utc> {
        self.0.starts_at
    }

    async fn ends_at(&self) -> DateTime<Utc> {
        self.0.ends_at
    }

    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
}

/// A bookable time: the service would run from `startsAt` to `endsAt`.
#[derive(SimpleObject)]
pub struct TimeSlot {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}
