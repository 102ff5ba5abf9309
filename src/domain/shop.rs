//! Shops: finding and listing them.

use std::collections::HashMap;

use entity::shop;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, NotSet, PaginatorTrait,
    QueryFilter, Select, TransactionTrait,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};

use super::{
    change::{Change, Changed},
    event_log::{self, EventKind, Fields, NewEvent},
    invalid::Invalid,
    page::{Keyset, Page, PageRequest},
};
use crate::{
    db::{Violation, conflict_on},
    error::AppResult,
};

/// Shops by id.
pub async fn by_ids(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<HashMap<i64, shop::Model>, DbErr> {
    let rows =
        shop::Entity::find().filter(shop::Column::Id.is_in(ids.iter().copied())).all(db).await?;
    Ok(super::index_by(rows, |s| s.id))
}

/// The shop with this slug.
pub async fn by_slug(db: &impl ConnectionTrait, slug: &str) -> Result<Option<shop::Model>, DbErr> {
    shop::Entity::find().filter(shop::Column::Slug.eq(slug.trim().to_lowercase())).one(db).await
}

/// Shops whose name contains `search` (case-insensitive), or all shops.
fn matching(search: Option<&str>) -> Select<shop::Entity> {
    let select = shop::Entity::find();
    match search.map(str::trim).filter(|s| !s.is_empty()) {
        None => select,
        Some(search) => {
            let escaped =
                search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
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
    let rows = page.apply(matching(search), Keyset::by_id(shop::Column::Id)).all(db).await?;
    Ok(Page::from_rows(rows, page))
}

/// How many shops match `search`.
pub async fn count(db: &impl ConnectionTrait, search: Option<&str>) -> Result<u64, DbErr> {
    matching(search).count(db).await
}

/// A shop's unique URL name: 2 to 100 lower-case letters, digits and dashes.
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let slug = raw.trim().to_lowercase();
        let valid = (2..=100).contains(&slug.len())
            && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !slug.starts_with('-')
            && !slug.ends_with('-');
        if valid {
            Ok(Self(slug))
        } else {
            Err(Invalid(format!(
                "{raw:?} must be 2 to 100 lower-case letters, digits and dashes, like `downtown-cuts`"
            )))
        }
    }
}

pub use super::local_time::parse_zone as parse_timezone;

/// A valid new shop.
pub struct NewShop {
    pub name: String,
    pub slug: Slug,
    pub timezone: chrono_tz::Tz,
    pub address: String,
}

/// Changes to a shop; `None` leaves a field as it is.
#[derive(Default)]
pub struct ShopChanges {
    pub name: Option<String>,
    pub address: Option<String>,
    pub timezone: Option<chrono_tz::Tz>,
    pub slot_step_minutes: Option<i32>,
    pub min_notice_minutes: Option<i32>,
    pub max_advance_days: Option<i32>,
    pub cancellation_cutoff_minutes: Option<i32>,
    pub buffer_minutes: Option<i32>,
}

/// A new shop row with the default booking policy: 15-minute slots, an
/// hour's notice, 60 days ahead, clients cancel until 2 hours before, no
/// buffer.
pub fn with_default_policy(
    owner_id: i64,
    name: String,
    slug: String,
    timezone: chrono_tz::Tz,
    address: String,
    now: chrono::DateTime<chrono::Utc>,
) -> shop::ActiveModel {
    shop::ActiveModel {
        id: NotSet,
        owner_id: Set(owner_id),
        name: Set(name),
        slug: Set(slug),
        timezone: Set(timezone.name().to_owned()),
        address: Set(address),
        slot_step_minutes: Set(15),
        min_notice_minutes: Set(60),
        max_advance_days: Set(60),
        cancellation_cutoff_minutes: Set(120),
        buffer_minutes: Set(0),
        analytics_mark: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// Opens a shop owned by `owner_id`, with the default booking policy.
#[tracing::instrument(skip_all)]
pub async fn create(
    db: &impl ConnectionTrait,
    owner_id: i64,
    new: NewShop,
) -> AppResult<Changed<shop::Model>> {
    let inserted = with_default_policy(
        owner_id,
        new.name,
        new.slug.0,
        new.timezone,
        new.address,
        chrono::Utc::now(),
    )
    .insert(db)
    .await;
    let shop = conflict_on(inserted, Violation::Unique, || {
        "`slug` is taken by another shop; choose another".to_owned()
    })?;
    let change = Change::Membership { user: owner_id, shop: shop.id };
    Ok(Changed::new(shop, change))
}

/// Applies `changes` to `shop`.
#[tracing::instrument(skip_all, fields(shop.id = shop.id))]
pub async fn update(
    db: &DatabaseConnection,
    actor: i64,
    shop: shop::Model,
    changes: ShopChanges,
) -> AppResult<Changed<shop::Model>> {
    let before = shop.clone();
    let mut active: shop::ActiveModel = shop.into();
    if let Some(name) = changes.name {
        active.name = Set(name);
    }
    if let Some(address) = changes.address {
        active.address = Set(address);
    }
    if let Some(timezone) = changes.timezone {
        active.timezone = Set(timezone.name().to_owned());
    }
    if let Some(step) = changes.slot_step_minutes {
        active.slot_step_minutes = Set(step);
    }
    if let Some(notice) = changes.min_notice_minutes {
        active.min_notice_minutes = Set(notice);
    }
    if let Some(days) = changes.max_advance_days {
        active.max_advance_days = Set(days);
    }
    if let Some(cutoff) = changes.cancellation_cutoff_minutes {
        active.cancellation_cutoff_minutes = Set(cutoff);
    }
    if let Some(buffer) = changes.buffer_minutes {
        active.buffer_minutes = Set(buffer);
    }
    let now = chrono::Utc::now();
    active.updated_at = Set(now);
    let txn = db.begin().await?;
    let updated = active.update(&txn).await?;
    let (b, a) = (&before, &updated);
    let fields = Fields::default()
        .changed("name", &b.name, &a.name)
        .changed("address", &b.address, &a.address)
        .changed("timezone", &b.timezone, &a.timezone)
        .changed("slotStepMinutes", b.slot_step_minutes, a.slot_step_minutes)
        .changed("minNoticeMinutes", b.min_notice_minutes, a.min_notice_minutes)
        .changed("maxAdvanceDays", b.max_advance_days, a.max_advance_days)
        .changed(
            "cancellationCutoffMinutes",
            b.cancellation_cutoff_minutes,
            a.cancellation_cutoff_minutes,
        )
        .changed("bufferMinutes", b.buffer_minutes, a.buffer_minutes);
    let event = NewEvent::at_shop(updated.id, EventKind::ShopUpdated, actor, fields);
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    let change = Change::Shop { shop: updated.id };
    Ok(Changed::new(updated, change).logged(event))
}
