//! One change to a shop's bookings, staff or policy: the shop's event log.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "booking_events")]
pub struct Model {
    /// Grows with every event; a subscriber asks for what came after one.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub shop_id: i64,
    /// What happened, e.g. `CREATED` or `BARBER_ADDED`.
    pub kind: String,
    pub booking_id: Option<i64>,
    pub barber_id: Option<i64>,
    /// The booking's client, for a booking's event.
    pub client_id: Option<i64>,
    /// The user who made the change.
    pub actor_id: Option<i64>,
    pub at: DateTimeUtc,
    /// The changed fields as JSON: `{"field": {"before": …, "after": …}}`.
    pub changes: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
