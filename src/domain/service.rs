//! Services: a shop's menu.

use std::collections::HashMap;

use entity::{barber, barber_service, service};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, NotSet, PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
};

use super::{
    change::{Change, Changed},
    event_log::{self, EventKind, Fields, NewEvent},
    invalid::Invalid,
};
use crate::error::{AppError, AppResult};

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

/// A valid new service.
pub struct NewService {
    pub shop_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub duration_minutes: i32,
    pub price_cents: i64,
    pub currency: Option<String>,
    pub barber_ids: Vec<i64>,
}

/// Changes to a service; `None` leaves a field as it is.
#[derive(Default)]
pub struct ServiceChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub duration_minutes: Option<i32>,
    pub price_cents: Option<i64>,
    pub barber_ids: Option<Vec<i64>>,
}

/// A price in cents: 0 to 10 000 000.
pub fn parse_price(cents: i64) -> Result<i64, Invalid> {
    if (0..=10_000_000).contains(&cents) {
        Ok(cents)
    } else {
        Err(Invalid::new("must be between 0 and 10000000"))
    }
}

/// An ISO 4217 code: three letters, upper-cased.
pub fn parse_currency(raw: &str) -> Result<String, Invalid> {
    let code = raw.trim().to_uppercase();
    if code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(code)
    } else {
        Err(Invalid(format!("{raw:?} must be an ISO 4217 code like \"EUR\"")))
    }
}

/// `ids` without repeats, in order.
fn distinct(ids: &[i64]) -> Vec<i64> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Checks that every barber in `barber_ids` (without repeats) works at
/// `shop_id`.
async fn check_barbers(
    db: &impl ConnectionTrait,
    shop_id: i64,
    barber_ids: &[i64],
) -> AppResult<()> {
    let found = barber::Entity::find()
        .filter(barber::Column::Id.is_in(barber_ids.iter().copied()))
        .filter(barber::Column::ShopId.eq(shop_id))
        .count(db)
        .await?;
    if found != barber_ids.len() as u64 {
        return Err(AppError::bad_input("every id in `barberIds` must be a barber of this shop"));
    }
    Ok(())
}

async fn set_offers(
    db: &impl ConnectionTrait,
    service_id: i64,
    barber_ids: &[i64],
) -> AppResult<()> {
    barber_service::Entity::delete_many()
        .filter(barber_service::Column::ServiceId.eq(service_id))
        .exec(db)
        .await?;
    if !barber_ids.is_empty() {
        barber_service::Entity::insert_many(barber_ids.iter().map(|&barber_id| {
            barber_service::ActiveModel { barber_id: Set(barber_id), service_id: Set(service_id) }
        }))
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// Adds a service to a shop's menu, offered by `barber_ids`.
#[tracing::instrument(skip_all, fields(shop.id = new.shop_id))]
pub async fn create(
    db: &DatabaseConnection,
    actor: i64,
    new: NewService,
) -> AppResult<Changed<service::Model>> {
    let barber_ids = distinct(&new.barber_ids);
    check_barbers(db, new.shop_id, &barber_ids).await?;
    let currency = match new.currency {
        Some(currency) => currency,
        // The shop's other services tell its currency.
        None => service::Entity::find()
            .filter(service::Column::ShopId.eq(new.shop_id))
            .one(db)
            .await?
            .map_or_else(|| "USD".to_owned(), |s| s.currency),
    };
    let now = chrono::Utc::now();
    let txn = db.begin().await?;
    let created = service::ActiveModel {
        id: NotSet,
        shop_id: Set(new.shop_id),
        name: Set(new.name),
        description: Set(new.description),
        duration_minutes: Set(new.duration_minutes),
        price_cents: Set(new.price_cents),
        currency: Set(currency),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    set_offers(&txn, created.id, &barber_ids).await?;
    let fields = Fields::default()
        .set("name", &created.name)
        .set("durationMinutes", created.duration_minutes)
        .set("priceCents", created.price_cents)
        .set("barberIds", &barber_ids);
    let event = NewEvent::at_shop(created.shop_id, EventKind::ServiceCreated, actor, fields);
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    let change = Change::Service { shop: created.shop_id, service: created.id };
    Ok(Changed::new(created, change).logged(event))
}

/// Applies `changes` to `service`, all or nothing.
#[tracing::instrument(skip_all, fields(service.id = service.id))]
pub async fn update(
    db: &DatabaseConnection,
    actor: i64,
    service: service::Model,
    changes: ServiceChanges,
) -> AppResult<Changed<service::Model>> {
    let before = service.clone();
    let barber_ids = changes.barber_ids.as_deref().map(distinct);
    if let Some(barber_ids) = &barber_ids {
        check_barbers(db, service.shop_id, barber_ids).await?;
    }
    let service_id = service.id;
    let mut active: service::ActiveModel = service.into();
    if let Some(name) = changes.name {
        active.name = Set(name);
    }
    if let Some(description) = changes.description {
        active.description = Set(description);
    }
    if let Some(minutes) = changes.duration_minutes {
        active.duration_minutes = Set(minutes);
    }
    if let Some(price) = changes.price_cents {
        active.price_cents = Set(price);
    }
    let now = chrono::Utc::now();
    active.updated_at = Set(now);
    let txn = db.begin().await?;
    let updated = active.update(&txn).await?;
    let mut fields = Fields::default()
        .changed("name", &before.name, &updated.name)
        .changed("description", &before.description, &updated.description)
        .changed("durationMinutes", before.duration_minutes, updated.duration_minutes)
        .changed("priceCents", before.price_cents, updated.price_cents);
    if let Some(barber_ids) = &barber_ids {
        set_offers(&txn, service_id, barber_ids).await?;
        fields = fields.set("barberIds", barber_ids);
    }
    let event = NewEvent::at_shop(updated.shop_id, EventKind::ServiceUpdated, actor, fields);
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    let change = Change::Service { shop: updated.shop_id, service: updated.id };
    Ok(Changed::new(updated, change).logged(event))
}

/// A service by id.
pub async fn get(db: &impl ConnectionTrait, id: i64) -> AppResult<Option<service::Model>> {
    Ok(service::Entity::find_by_id(id).one(db).await?)
}
