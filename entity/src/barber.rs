//! A barber working at one shop, optionally linked to a user account.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "barbers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub shop_id: i64,
    /// The account that signs in as this barber, if any.
    pub user_id: Option<i64>,
    pub display_name: String,
    pub bio: Option<String>,
    /// Lower-cased email of the person invited to sign in as this barber,
    /// until they accept (then `user_id` is set and this is cleared).
    pub invited_email: Option<String>,
    /// Inactive barbers stay in the history but take no new bookings.
    pub active: bool,
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
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl Related<super::shop::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Shop.def()
    }
}

impl Related<super::service::Entity> for Entity {
    fn to() -> RelationDef {
        super::barber_service::Relation::Service.def()
    }
    fn via() -> Option<RelationDef> {
        Some(super::barber_service::Relation::Barber.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}
