//! Which barbers offer which services.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "barber_services")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub barber_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub service_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::barber::Entity",
        from = "Column::BarberId",
        to = "super::barber::Column::Id"
    )]
    Barber,
    #[sea_orm(
        belongs_to = "super::service::Entity",
        from = "Column::ServiceId",
        to = "super::service::Column::Id"
    )]
    Service,
}

impl ActiveModelBehavior for ActiveModel {}

impl Related<super::barber::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Barber.def()
    }
}

impl Related<super::service::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Service.def()
    }
}
