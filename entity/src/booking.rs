//! An appointment: a client, a barber, a service and a time.

use sea_orm::entity::prelude::*;

/// Where a booking is in its life. Only `Confirmed` holds the barber's time
/// in the future; `Completed` and `NoShow` are set once the start has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum BookingStatus {
    #[sea_orm(string_value = "CONFIRMED")]
    Confirmed,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    #[sea_orm(string_value = "NO_SHOW")]
    NoShow,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bookings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub shop_id: i64,
    pub barber_id: i64,
    pub client_id: i64,
    pub service_id: i64,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    /// The barber is busy until then: the end plus the shop's buffer at
    /// booking time. No two active bookings of a barber overlap in
    /// `starts_at..blocks_until` (enforced by the database).
    pub blocks_until: DateTimeUtc,
    pub status: BookingStatus,
    /// The service's price when the booking was made.
    pub price_cents: i64,
    pub currency: String,
    pub notes: Option<String>,
    pub cancellation_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::shop::Entity",
        from = "Column::ShopId",
        to = "super::shop::Column::Id"
    )]
    Shop,
    #[sea_orm(
        belongs_to = "super::barber::Entity",
        from = "Column::BarberId",
        to = "super::barber::Column::Id"
    )]
    Barber,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::ClientId",
        to = "super::user::Column::Id"
    )]
    Client,
    #[sea_orm(
        belongs_to = "super::service::Entity",
        from = "Column::ServiceId",
        to = "super::service::Column::Id"
    )]
    Service,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Client.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
