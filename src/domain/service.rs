//! Services: a shop's menu.

use std::collections::HashMap;

use entity::{barber_service, service};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

/// Services by id.
pub async fn by_ids(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<HashMap<i64, service::Model>, DbErr> {
    let rows = service::Entity::find()
        .filter(service::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(super::index_by(rows, |s| s.id))
}

/// Each shop's services, in id order.
pub async fn by_shops(
    db: &impl ConnectionTrait,
    shop_ids: &[i64],
) -> Result<HashMap<i64, Vec<service::Model>>, DbErr> {
    let rows = service::Entity::find()
        .filter(service::Column::ShopId.is_in(shop_ids.iter().copied()))
        .order_by_asc(service::Column::Id)
        .all(db)
        .await?;
    Ok(super::group_by(rows, |s| s.shop_id))
}

/// The services each barber offers, in id order.
pub async fn by_barbers(
    db: &impl ConnectionTrait,
    barber_ids: &[i64],
) -> Result<HashMap<i64, Vec<service::Model>>, DbErr> {
    let rows = barber_service::Entity::find()
        .filter(barber_service::Column::BarberId.is_in(barber_ids.iter().copied()))
        .find_also_related(service::Entity)
        .order_by_asc(service::Column::Id)
        .all(db)
        .await?;
    let mut grouped: HashMap<i64, Vec<service::Model>> = HashMap::new();
    for (link, service) in rows {
        if let Some(service) = service {
            grouped.entry(link.barber_id).or_default().push(service);
        }
    }
    Ok(grouped)
}
