//! One working interval of a barber on one weekday, in the shop's local time.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "working_hours")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub barber_id: i64,
    /// ISO weekday: 1 = Monday … 7 = Sunday.
    pub weekday: i16,
    /// Minutes after local midnight.
    pub opens_minute: i32,
    /// Minutes after local midnight; greater than `opens_minute`.
    pub closes_minute: i32,
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
