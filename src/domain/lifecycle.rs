//! A booking's life: booked, moved, cancelled, completed or missed, paid.
//!
//! Every write is one conditional statement, or a transaction that locks the
//! booking first, so concurrent requests cannot both succeed where only one
//! may: the database refuses overlapping bookings, a status changes only
//! from the status it was read in, and payments never exceed the price.

use chrono::{DateTime, Duration, Utc};
use entity::{BookingStatus, PaymentMethod, barber, booking, payment, service, shop};
use sea_orm::{
    ActiveEnum, ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, NotSet, QueryFilter,
    QuerySelect, TransactionTrait,
    sea_query::{Alias, Expr, Func},
};

use super::{
    availability::{self, Rules, offer},
    change::{Change, Changed},
    event_log::{self, Event, EventKind, Fields, NewEvent},
};
use crate::{
    auth::{Viewer, policy},
    db::{Violation, conflict_on},
    error::{AppError, AppResult},
};

/// A valid request for a new booking.
pub struct NewBooking {
    pub barber_id: i64,
    pub service_id: i64,
    pub starts_at: DateTime<Utc>,
    pub notes: Option<String>,
}

/// A valid payment to record: a positive amount.
pub struct NewPayment {
    pub booking_id: i64,
    pub amount_cents: i64,
    pub method: PaymentMethod,
}

/// The answer when a concurrent booking won the slot between our check and
/// our write (the database's overlap guard refused it).
const TAKEN: &str =
    "that time was just booked by someone else; pick another time from `availableSlots`";

/// `booking`, written, with the event it logged; `before` is its start
/// before a reschedule.
fn booked(
    booking: booking::Model,
    before: Option<DateTime<Utc>>,
    event: Event,
) -> Changed<booking::Model> {
    let change = Change::Booking {
        shop: booking.shop_id,
        barber: booking.barber_id,
        client: booking.client_id,
        booking: booking.id,
        starts: before.into_iter().chain([booking.starts_at]).collect(),
    };
    Changed::new(booking, change).logged(event)
}

/// The event of `kind` to log for `booking`, changed by `actor`; `also`
/// is another span whose slots it changed (a reschedule's old time).
fn event_of(
    booking: &booking::Model,
    kind: EventKind,
    actor: i64,
    fields: Fields,
    also: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> NewEvent {
    let spans = also.into_iter().chain([(booking.starts_at, booking.blocks_until)]).collect();
    NewEvent {
        shop: booking.shop_id,
        kind,
        booking: Some(booking.id),
        barber: Some(booking.barber_id),
        client: Some(booking.client_id),
        actor: Some(actor),
        fields,
        spans: Some(spans),
    }
}

/// A status change's fields.
fn status_change(from: BookingStatus, to: BookingStatus) -> Fields {
    Fields::default().changed("status", from.to_value(), to.to_value())
}

/// Checks every rule for a booking of `duration` by `barber` at `start`.
async fn check_slot(
    db: &impl ConnectionTrait,
    rules: &Rules,
    barber_id: i64,
    start: DateTime<Utc>,
    duration: Duration,
    now: DateTime<Utc>,
    ignore: Option<i64>,
) -> AppResult<()> {
    let window = Duration::days(1);
    let calendar =
        availability::load_calendar(db, barber_id, start - window, start + window).await?;
    availability::check(rules, &calendar, start, duration, now, ignore)?;
    Ok(())
}

/// Books a slot for `client`, re-checking every rule; the price is the
/// service's price now. Returns the booking with the barber and the
/// service it was made with, as read for it.
#[tracing::instrument(skip_all, fields(barber.id = new.barber_id, service.id = new.service_id))]
pub async fn create(
    db: &DatabaseConnection,
    client: &Viewer,
    new: NewBooking,
    now: DateTime<Utc>,
) -> AppResult<(Changed<booking::Model>, barber::Model, service::Model)> {
    let (barber, service, shop) = offer(db, new.barber_id, new.service_id).await?;
    if !barber.active {
        return Err(AppError::bad_input("this barber takes no new bookings"));
    }
    let rules = Rules::of(&shop);
    let duration = Duration::minutes(i64::from(service.duration_minutes));
    check_slot(db, &rules, barber.id, new.starts_at, duration, now, None).await?;
    let ends_at = new.starts_at + duration;
    // The booking and its event commit together; a booking the overlap
    // guard refuses leaves no event.
    let txn = db.begin().await?;
    let inserted = booking::ActiveModel {
        id: NotSet,
        shop_id: Set(shop.id),
        barber_id: Set(barber.id),
        client_id: Set(client.id()),
        service_id: Set(service.id),
        starts_at: Set(new.starts_at),
        ends_at: Set(ends_at),
        blocks_until: Set(ends_at + rules.buffer),
        status: Set(BookingStatus::Confirmed),
        price_cents: Set(service.price_cents),
        currency: Set(service.currency.clone()),
        notes: Set(new.notes),
        cancellation_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await;
    let booking = conflict_on(inserted, Violation::Overlap, || TAKEN.to_owned())?;
    let fields = Fields::default()
        .set("status", booking.status.to_value())
        .set("startsAt", booking.starts_at)
        .set("priceCents", booking.price_cents);
    let event = event_of(&booking, EventKind::Created, client.id(), fields, None);
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    Ok((booked(booking, None, event), barber, service))
}

async fn find(db: &impl ConnectionTrait, id: i64) -> AppResult<booking::Model> {
    booking::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("no booking has this id"))
}

/// What the viewer may do with a booking.
enum Actor {
    Client,
    Staff,
}

fn actor(viewer: &Viewer, booking: &booking::Model) -> AppResult<Actor> {
    if policy::manages_booking(viewer, booking) {
        Ok(Actor::Staff)
    } else if booking.client_id == viewer.id() {
        Ok(Actor::Client)
    } else {
        Err(AppError::Forbidden(
            "this booking is neither yours nor in a schedule you manage".to_owned(),
        ))
    }
}

fn not_confirmed(action: &str, status: BookingStatus) -> AppError {
    AppError::bad_input(format!(
        "cannot {action} a booking that is {}; only CONFIRMED bookings can be",
        status.to_value()
    ))
}

/// A client may change or cancel a booking until the shop's cut-off.
async fn check_client_cutoff(
    db: &impl ConnectionTrait,
    booking: &booking::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let shop = shop::Entity::find_by_id(booking.shop_id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("booking {} has no shop", booking.id)))?;
    let cutoff = Duration::minutes(i64::from(shop.cancellation_cutoff_minutes));
    if now > booking.starts_at - cutoff {
        return Err(AppError::bad_input(format!(
            "too late to change this booking yourself: the shop allows it until {} minutes before the start; please contact the shop",
            cutoff.num_minutes()
        )));
    }
    Ok(())
}

/// The CONFIRMED booking `id`, if `viewer` may `action` it now: its shop's
/// staff at any time, its client until the shop's cut-off.
async fn changeable(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: i64,
    action: &str,
    now: DateTime<Utc>,
) -> AppResult<booking::Model> {
    let booking = find(db, id).await?;
    let actor = actor(viewer, &booking)?;
    if booking.status != BookingStatus::Confirmed {
        return Err(not_confirmed(action, booking.status));
    }
    if let Actor::Client = actor {
        check_client_cutoff(db, &booking, now).await?;
    }
    Ok(booking)
}

/// Changes the status of a CONFIRMED booking in one conditional statement,
/// as `actor`, and logs it as `kind`; a concurrent change wins and this one
/// reports the status it found. The change, its event and the read of its
/// result commit together, so a change that committed is always returned
/// (and published).
async fn transition(
    db: &DatabaseConnection,
    booking: &booking::Model,
    to: BookingStatus,
    reason: Option<String>,
    action: &str,
    (kind, actor): (EventKind, i64),
    now: DateTime<Utc>,
) -> AppResult<(booking::Model, Event)> {
    let mut fields = status_change(booking.status, to);
    if let Some(reason) = &reason {
        fields = fields.set("cancellationReason", reason);
    }
    let mut update = booking::Entity::update_many()
        .col_expr(booking::Column::Status, Expr::value(to))
        .col_expr(booking::Column::UpdatedAt, Expr::value(now))
        .filter(booking::Column::Id.eq(booking.id))
        .filter(booking::Column::Status.eq(BookingStatus::Confirmed));
    if reason.is_some() {
        update = update.col_expr(booking::Column::CancellationReason, Expr::value(reason));
    }
    let txn = db.begin().await?;
    let result = update.exec(&txn).await?;
    let current = find(&txn, booking.id).await?;
    if result.rows_affected == 0 {
        // It was CONFIRMED when read: someone changed it in between.
        return Err(AppError::Conflict(format!(
            "cannot {action} this booking: it was changed at the same moment and is now {}",
            current.status.to_value()
        )));
    }
    let event = event_log::record(&txn, event_of(&current, kind, actor, fields, None), now).await?;
    txn.commit().await?;
    Ok((current, event))
}

/// Cancels a booking: the client until the shop's cut-off, the shop's
/// owner and the booking's barber at any time.
#[tracing::instrument(skip_all, fields(booking.id = id))]
pub async fn cancel(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: i64,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> AppResult<Changed<booking::Model>> {
    let booking = changeable(db, viewer, id, "cancel", now).await?;
    let to = BookingStatus::Cancelled;
    let logged = (EventKind::Cancelled, viewer.id());
    let (cancelled, event) = transition(db, &booking, to, reason, "cancel", logged, now).await?;
    Ok(booked(cancelled, None, event))
}

/// Marks a booking whose start has passed as completed or as a no-show;
/// for the shop's owner and the booking's barber.
#[tracing::instrument(skip_all, fields(booking.id = id))]
pub async fn close(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: i64,
    to: BookingStatus,
    now: DateTime<Utc>,
) -> AppResult<Changed<booking::Model>> {
    let booking = find(db, id).await?;
    policy::check_manages_booking(viewer, &booking)?;
    let action = if to == BookingStatus::Completed { "complete" } else { "mark as no-show" };
    if booking.status != BookingStatus::Confirmed {
        return Err(not_confirmed(action, booking.status));
    }
    if booking.starts_at > now {
        return Err(AppError::bad_input(format!(
            "cannot {action} a booking before it starts ({})",
            booking.starts_at.to_rfc3339()
        )));
    }
    let logged =
        if to == BookingStatus::Completed { EventKind::Completed } else { EventKind::NoShow };
    let (closed, event) =
        transition(db, &booking, to, None, action, (logged, viewer.id()), now).await?;
    Ok(booked(closed, None, event))
}

/// Moves a booking to a new start, under the same rules as booking it; the
/// old time frees at once. The client may do so until the cut-off.
#[tracing::instrument(skip_all, fields(booking.id = id))]
pub async fn reschedule(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: i64,
    starts_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AppResult<Changed<booking::Model>> {
    let booking = changeable(db, viewer, id, "reschedule", now).await?;
    let (_, service, shop) = offer(db, booking.barber_id, booking.service_id).await?;
    let rules = Rules::of(&shop);
    let duration = Duration::minutes(i64::from(service.duration_minutes));
    check_slot(db, &rules, booking.barber_id, starts_at, duration, now, Some(booking.id)).await?;
    let ends_at = starts_at + duration;
    // The move and the read of its result commit together.
    let txn = db.begin().await?;
    let result = booking::Entity::update_many()
        .col_expr(booking::Column::StartsAt, Expr::value(starts_at))
        .col_expr(booking::Column::EndsAt, Expr::value(ends_at))
        .col_expr(booking::Column::BlocksUntil, Expr::value(ends_at + rules.buffer))
        .col_expr(booking::Column::UpdatedAt, Expr::value(now))
        .filter(booking::Column::Id.eq(booking.id))
        .filter(booking::Column::Status.eq(BookingStatus::Confirmed))
        .exec(&txn)
        .await;
    let done = conflict_on(result, Violation::Overlap, || TAKEN.to_owned())?;
    let moved = find(&txn, booking.id).await?;
    if done.rows_affected != 1 {
        return Err(not_confirmed("reschedule", moved.status));
    }
    let fields = Fields::default().changed("startsAt", booking.starts_at, moved.starts_at).changed(
        "endsAt",
        booking.ends_at,
        moved.ends_at,
    );
    let old = Some((booking.starts_at, booking.blocks_until));
    let event = event_of(&moved, EventKind::Rescheduled, viewer.id(), fields, old);
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    Ok(booked(moved, Some(booking.starts_at), event))
}

/// Records a payment for a booking, for the shop's owner and the booking's
/// barber. The booking is locked first, so concurrent payments cannot
/// together exceed its price.
#[tracing::instrument(skip_all, fields(booking.id = new.booking_id))]
pub async fn record_payment(
    db: &DatabaseConnection,
    viewer: &Viewer,
    new: NewPayment,
    now: DateTime<Utc>,
) -> AppResult<Changed<booking::Model>> {
    let NewPayment { booking_id, amount_cents, method } = new;
    let booking = find(db, booking_id).await?;
    policy::check_manages_booking(viewer, &booking)?;
    let txn = db.begin().await?;
    // Touching the row first takes its lock (PostgreSQL) or the write lock
    // (SQLite) before the sum is read.
    booking::Entity::update_many()
        .col_expr(booking::Column::UpdatedAt, Expr::value(now))
        .filter(booking::Column::Id.eq(booking_id))
        .exec(&txn)
        .await?;
    let booking = find(&txn, booking_id).await?;
    if booking.status == BookingStatus::Cancelled {
        return Err(AppError::bad_input("cannot record a payment for a CANCELLED booking"));
    }
    let paid: Option<i64> = payment::Entity::find()
        .select_only()
        // SUM of a bigint is a numeric on PostgreSQL; bring it back.
        .column_as(
            Expr::expr(Func::cast_as(
                Func::sum(Expr::col(payment::Column::AmountCents)),
                Alias::new("BIGINT"),
            )),
            "paid",
        )
        .filter(payment::Column::BookingId.eq(booking_id))
        .into_tuple()
        .one(&txn)
        .await?
        .flatten();
    let remaining = booking.price_cents - paid.unwrap_or(0);
    if amount_cents > remaining {
        return Err(AppError::bad_input(format!(
            "`amountCents` {amount_cents} is more than the {remaining} cents still owed on this booking"
        )));
    }
    payment::ActiveModel {
        id: NotSet,
        booking_id: Set(booking_id),
        amount_cents: Set(amount_cents),
        method: Set(method),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let fields = Fields::default()
        .set("amountCents", amount_cents)
        .set("method", method.to_value())
        .changed("paidCents", paid.unwrap_or(0), paid.unwrap_or(0) + amount_cents);
    // A payment takes or frees no time.
    let event = NewEvent {
        spans: Some(Vec::new()),
        ..event_of(&booking, EventKind::Paid, viewer.id(), fields, None)
    };
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    Ok(booked(booking, None, event))
}
