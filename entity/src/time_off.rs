//! A period in which a barber takes no bookings.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "time_off")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub barber_id: i64,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    pub reason: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::barber::Entity",
        from = "Column::BarberId",
        to = "super::barber::Column::Id"
    )]
    Barber,
}

impl ActiveModelBehavior for ActiveModel {}
