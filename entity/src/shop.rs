//! A barbershop: one location and the tenant boundary.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "shops")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The user who created the shop and manages it.
    pub owner_id: i64,
    pub name: String,
    #[sea_orm(unique)]
    pub slug: String,
    /// IANA time zone name; dates and working hours are read in it.
    pub timezone: String,
    pub address: String,
    /// Granularity of bookable start times.
    pub slot_step_minutes: i32,
    /// How long before its start a booking may still be made.
    pub min_notice_minutes: i32,
    /// How far ahead a booking may be made.
    pub max_advance_days: i32,
    /// Until when before its start a client may cancel.
    pub cancellation_cutoff_minutes: i32,
    /// Kept free after every appointment.
    pub buffer_minutes: i32,
    /// Raised when a write could not make the shop's cached analytics
    /// stale in Redis; part of every analytics cache key.
    pub analytics_mark: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::OwnerId",
        to = "super::user::Column::Id"
    )]
    Owner,
}

impl ActiveModelBehavior for ActiveModel {}
