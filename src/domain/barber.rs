//! Barbers: who works where and what they offer.

use std::collections::HashMap;

use entity::{barber, barber_service, time_off, working_hours};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, NotSet,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Expr, Func},
};

use super::{
    change::{Change, Changed, StaffChange},
    event_log::{self, EventKind, Fields, NewEvent},
    page::{Keyset, Page, PageRequest},
};
use crate::{
    db::{Violation, conflict_on},
    error::{AppError, AppResult},
};

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
        .column_as(Expr::expr(Func::count(Expr::col(barber::Column::Id))), "count")
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

/// A valid new barber.
pub struct NewBarber {
    pub shop_id: i64,
    pub display_name: String,
    pub bio: Option<String>,
    /// Whom to invite to sign in as this barber (they accept with
    /// `acceptBarberInvite`); lower-cased.
    pub invited_email: Option<String>,
}

/// Changes to a barber; `None` leaves a field as it is.
#[derive(Default)]
pub struct BarberChanges {
    pub display_name: Option<String>,
    /// `Some(None)` clears the bio.
    pub bio: Option<Option<String>>,
    pub active: Option<bool>,
}

/// Adds a barber to a shop, inviting `invited_email` to sign in as them.
#[tracing::instrument(skip_all, fields(shop.id = new.shop_id))]
pub async fn add(
    db: &DatabaseConnection,
    actor: i64,
    new: NewBarber,
) -> AppResult<Changed<barber::Model>> {
    let now = chrono::Utc::now();
    let txn = db.begin().await?;
    let inserted = barber::ActiveModel {
        id: NotSet,
        shop_id: Set(new.shop_id),
        user_id: Set(None),
        invited_email: Set(new.invited_email),
        display_name: Set(new.display_name),
        bio: Set(new.bio),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await;
    let barber = conflict_on(inserted, Violation::Unique, || {
        "this person already is a barber at this shop".to_owned()
    })?;
    let fields = Fields::default()
        .set("displayName", &barber.display_name)
        .set("invitedEmail", &barber.invited_email);
    let event = NewEvent::at_shop(barber.shop_id, EventKind::BarberAdded, actor, fields)
        .of_barber(barber.id);
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    let change =
        Change::Staff { shop: barber.shop_id, barber: barber.id, kind: StaffChange::Added };
    Ok(Changed::new(barber, change).logged(event))
}

/// Links `user` (whose email was invited) to barber `barber_id`. An
/// invitation that is not theirs is `NOT_FOUND`, as one that does not exist
/// is; a user who already is a barber of that shop is `CONFLICT`.
#[tracing::instrument(skip_all, fields(barber.id = barber_id, user.id = user.id))]
pub async fn accept_invite(
    db: &DatabaseConnection,
    barber_id: i64,
    user: &entity::user::Model,
) -> AppResult<Changed<barber::Model>> {
    // The link and the read of its result commit together.
    let txn = db.begin().await?;
    let accepted = barber::Entity::update_many()
        .col_expr(barber::Column::UserId, sea_orm::sea_query::Expr::value(user.id))
        .col_expr(
            barber::Column::InvitedEmail,
            sea_orm::sea_query::Expr::value(Option::<String>::None),
        )
        .col_expr(barber::Column::UpdatedAt, sea_orm::sea_query::Expr::value(chrono::Utc::now()))
        .filter(barber::Column::Id.eq(barber_id))
        .filter(barber::Column::InvitedEmail.eq(user.email.as_str()))
        .exec(&txn)
        .await;
    let done = conflict_on(accepted, Violation::Unique, || {
        "you already are a barber at this shop".to_owned()
    })?;
    let barber = match get(&txn, barber_id).await? {
        Some(barber) if done.rows_affected == 1 => barber,
        _ => {
            return Err(AppError::not_found(
                "you have no invitation with this `id`; see `viewer { barberInvites }`",
            ));
        }
    };
    let fields = Fields::default().set("userId", user.id);
    let event = NewEvent::at_shop(barber.shop_id, EventKind::BarberJoined, user.id, fields)
        .within(Vec::new());
    let event = event_log::record(&txn, event, chrono::Utc::now()).await?;
    txn.commit().await?;
    let change = Change::Membership { user: user.id, shop: barber.shop_id };
    Ok(Changed::new(barber, change).logged(event))
}

/// The barbers `email` is invited to be, by id.
pub async fn invites_for(db: &impl ConnectionTrait, email: &str) -> AppResult<Vec<barber::Model>> {
    Ok(barber::Entity::find()
        .filter(barber::Column::InvitedEmail.eq(email))
        .order_by_asc(barber::Column::Id)
        .all(db)
        .await?)
}

/// Applies `changes` to `barber`.
#[tracing::instrument(skip_all, fields(barber.id = barber.id))]
pub async fn update(
    db: &DatabaseConnection,
    actor: i64,
    barber: barber::Model,
    changes: BarberChanges,
) -> AppResult<Changed<barber::Model>> {
    let before = barber.clone();
    let mut active: barber::ActiveModel = barber.into();
    if let Some(name) = changes.display_name {
        active.display_name = Set(name);
    }
    if let Some(bio) = changes.bio {
        active.bio = Set(bio);
    }
    if let Some(is_active) = changes.active {
        active.active = Set(is_active);
    }
    let now = chrono::Utc::now();
    active.updated_at = Set(now);
    let txn = db.begin().await?;
    let updated = active.update(&txn).await?;
    let fields = Fields::default()
        .changed("displayName", &before.display_name, &updated.display_name)
        .changed("bio", &before.bio, &updated.bio)
        .changed("active", before.active, updated.active);
    let event = NewEvent::at_shop(updated.shop_id, EventKind::BarberUpdated, actor, fields)
        .of_barber(updated.id);
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    let change =
        Change::Staff { shop: updated.shop_id, barber: updated.id, kind: StaffChange::Updated };
    Ok(Changed::new(updated, change).logged(event))
}

/// A barber by id.
pub async fn get(db: &impl ConnectionTrait, id: i64) -> AppResult<Option<barber::Model>> {
    Ok(barber::Entity::find_by_id(id).one(db).await?)
}

/// Replaces a barber's week with `hours`, all or nothing.
#[tracing::instrument(skip_all, fields(barber.id = barber.id))]
pub async fn set_working_hours(
    db: &DatabaseConnection,
    actor: i64,
    barber: &barber::Model,
    hours: Vec<super::working_hours::Interval>,
) -> AppResult<Changed<()>> {
    let barber_id = barber.id;
    let now = chrono::Utc::now();
    let txn = db.begin().await?;
    // Lock the barber first, so two concurrent saves of the week replace it
    // one after the other instead of adding up.
    barber::Entity::update_many()
        .col_expr(barber::Column::UpdatedAt, sea_orm::sea_query::Expr::value(now))
        .filter(barber::Column::Id.eq(barber_id))
        .exec(&txn)
        .await?;
    let before = working_hours::Entity::find()
        .filter(working_hours::Column::BarberId.eq(barber_id))
        .order_by_asc(working_hours::Column::Weekday)
        .order_by_asc(working_hours::Column::OpensMinute)
        .all(&txn)
        .await?;
    let mut after = hours.clone();
    after.sort_by_key(|h| (h.weekday, h.opens_minute));
    let fields = Fields::default().changed(
        "hours",
        week(before.iter().map(|h| (h.weekday, h.opens_minute, h.closes_minute))),
        week(after.iter().map(|h| (h.weekday, h.opens_minute, h.closes_minute))),
    );
    working_hours::Entity::delete_many()
        .filter(working_hours::Column::BarberId.eq(barber_id))
        .exec(&txn)
        .await?;
    if !hours.is_empty() {
        working_hours::Entity::insert_many(hours.into_iter().map(|h| working_hours::ActiveModel {
            id: NotSet,
            barber_id: Set(barber_id),
            weekday: Set(h.weekday),
            opens_minute: Set(h.opens_minute),
            closes_minute: Set(h.closes_minute),
        }))
        .exec_without_returning(&txn)
        .await?;
    }
    let event =
        NewEvent::at_shop(barber.shop_id, EventKind::HoursSet, actor, fields).of_barber(barber_id);
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    Ok(Changed::new(
        (),
        Change::Hours { shop: barber.shop_id, barber: barber_id, from: now, until: None },
    )
    .logged(event))
}

/// A week as the log shows it: `"1 09:00-17:00"` per interval.
fn week(intervals: impl Iterator<Item = (i16, i32, i32)>) -> Vec<String> {
    let time = |minute: i32| format!("{:02}:{:02}", minute / 60, minute % 60);
    intervals
        .map(|(weekday, opens, closes)| format!("{weekday} {}-{}", time(opens), time(closes)))
        .collect()
}

/// Records a period in which the barber takes no bookings.
#[tracing::instrument(skip_all, fields(barber.id = barber.id))]
pub async fn add_time_off(
    db: &DatabaseConnection,
    actor: i64,
    barber: &barber::Model,
    new: NewTimeOff,
) -> AppResult<Changed<time_off::Model>> {
    let NewTimeOff { starts_at, ends_at, reason } = new;
    let now = chrono::Utc::now();
    let txn = db.begin().await?;
    let added = time_off::ActiveModel {
        id: NotSet,
        barber_id: Set(barber.id),
        starts_at: Set(starts_at),
        ends_at: Set(ends_at),
        reason: Set(reason),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let fields = Fields::default()
        .set("startsAt", added.starts_at)
        .set("endsAt", added.ends_at)
        .set("reason", &added.reason);
    let event = NewEvent::at_shop(barber.shop_id, EventKind::TimeOffAdded, actor, fields)
        .of_barber(barber.id)
        .within(vec![(starts_at, ends_at)]);
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    let change = Change::Hours {
        shop: barber.shop_id,
        barber: barber.id,
        from: starts_at,
        until: Some(ends_at),
    };
    Ok(Changed::new(added, change).logged(event))
}

/// A valid period of time off: it starts before it ends.
pub struct NewTimeOff {
    pub starts_at: chrono::DateTime<chrono::Utc>,
    pub ends_at: chrono::DateTime<chrono::Utc>,
    pub reason: Option<String>,
}

/// A barber's time off that ends after `from`, by start.
pub async fn time_off(
    db: &impl ConnectionTrait,
    barber_id: i64,
    from: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<time_off::Model>, DbErr> {
    time_off::Entity::find()
        .filter(time_off::Column::BarberId.eq(barber_id))
        .filter(time_off::Column::EndsAt.gt(from))
        .order_by_asc(time_off::Column::StartsAt)
        .all(db)
        .await
}
