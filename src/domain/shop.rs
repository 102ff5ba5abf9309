//! Shops: finding and listing them.

use std::collections::HashMap;

use entity::shop;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Select,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};

use super::page::{Keyset, Page, PageRequest};

/// Shops by id.
pub async fn by_ids(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<HashMap<i64, shop::Model>, DbErr> {
    let rows = shop::Entity::find()
        .filter(shop::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(super::index_by(rows, |s| s.id))
}

/// The shop with this slug.
pub async fn by_slug(db: &impl ConnectionTrait, slug: &str) -> Result<Option<shop::Model>, DbErr> {
    shop::Entity::find()
        .filter(shop::Column::Slug.eq(slug.trim().to_lowercase()))
        .one(db)
        .await
}

/// Shops whose name contains `search` (case-insensitive), or all shops.
fn matching(search: Option<&str>) -> Select<shop::Entity> {
    let select = shop::Entity::find();
    match search.map(str::trim).filter(|s| !s.is_empty()) {
        None => select,
        Some(search) => {
            let escaped = search
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            select.filter(
                Expr::expr(Func::lower(Expr::col(shop::Column::Name)))
                    .like(LikeExpr::new(format!("%{escaped}%")).escape('\\')),
            )
        }
    }
}

/// One page of shops, in creation order.
pub async fn list(
    db: &impl ConnectionTrait,
    search: Option<&str>,
    page: &PageRequest,
) -> Result<Page<shop::Model>, DbErr> {
    let rows = page
        .apply(matching(search), Keyset::by_id(shop::Column::Id))
        .all(db)
        .await?;
    Ok(Page::from_rows(rows, page))
}

/// How many shops match `search`.
pub async fn count(db: &impl ConnectionTrait, search: Option<&str>) -> Result<u64, DbErr> {
    matching(search).count(db).await
}
