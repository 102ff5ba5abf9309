//! Barbers: who works where and what they offer.

use std::collections::HashMap;

use entity::{barber, barber_service};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, Func},
};

use super::page::{Keyset, Page, PageRequest};

/// Barbers by id.
pub async fn by_ids(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<HashMap<i64, barber::Model>, DbErr> {
    let rows = barber::Entity::find()
        .filter(barber::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(super::index_by(rows, |b| b.id))
}

/// The same page of barbers for each shop, in one statement.
pub async fn pages_by_shop(
    db: &impl ConnectionTrait,
    shop_ids: &[i64],
    page: &PageRequest,
) -> Result<HashMap<i64, Page<barber::Model>>, DbErr> {
    page.load_per_parent::<barber::Entity>(
        db,
        barber::Column::ShopId,
        Keyset::by_id(barber::Column::Id),
        sea_orm::Condition::all(),
        shop_ids,
        |b| b.shop_id,
    )
    .await
}

#[derive(FromQueryResult)]
struct ShopCount {
    shop_id: i64,
    count: i64,
}

/// How many barbers each shop has.
pub async fn counts_by_shop(
    db: &impl ConnectionTrait,
    shop_ids: &[i64],
) -> Result<HashMap<i64, u64>, DbErr> {
    let rows = barber::Entity::find()
        .select_only()
        .column(barber::Column::ShopId)
        .column_as(
            Expr::expr(Func::count(Expr::col(barber::Column::Id))),
            "count",
        )
        .filter(barber::Column::ShopId.is_in(shop_ids.iter().copied()))
        .group_by(barber::Column::ShopId)
        .into_model::<ShopCount>()
        .all(db)
        .await?;
    let mut counts: HashMap<i64, u64> = shop_ids.iter().map(|id| (*id, 0)).collect();
    for row in rows {
        counts.insert(row.shop_id, u64::try_from(row.count).unwrap_or(0));
    }
    Ok(counts)
}

/// The barbers who offer each service, in id order.
pub async fn by_services(
    db: &impl ConnectionTrait,
    service_ids: &[i64],
) -> Result<HashMap<i64, Vec<barber::Model>>, DbErr> {
    let rows = barber_service::Entity::find()
        .filter(barber_service::Column::ServiceId.is_in(service_ids.iter().copied()))
        .find_also_related(barber::Entity)
        .order_by_asc(barber::Column::Id)
        .all(db)
        .await?;
    let mut grouped: HashMap<i64, Vec<barber::Model>> = HashMap::new();
    for (link, barber) in rows {
        if let Some(barber) = barber {
            grouped.entry(link.service_id).or_default().push(barber);
        }
    }
    Ok(grouped)
}
