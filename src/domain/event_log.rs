//! The shop's event log: one row per change to its bookings, staff and
//! policy, written in the transaction of the change.
//!
//! A change that rolls back leaves no event; one that commits always has
//! its event, so subscribers that reconnect and webhooks read what they
//! missed from here. Event ids only grow. The row is also the outbox of
//! the shop's webhooks: a delivery is owed for each active webhook that
//! asked for the kind, written in the same transaction.

use chrono::{DateTime, Utc};
use entity::booking_event;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, NotSet,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};
use serde::{Deserialize, Serialize};

use super::page::NewestFirst;

/// What happened. The first six are a booking's and reach subscribers and
/// webhooks; the rest are the shop's staff and policy, for its audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    Created,
    Rescheduled,
    Cancelled,
    Completed,
    NoShow,
    Paid,
    BarberAdded,
    BarberJoined,
    BarberUpdated,
    HoursSet,
    TimeOffAdded,
    ShopUpdated,
    ServiceCreated,
    ServiceUpdated,
    WebhookCreated,
    WebhookDeleted,
}

impl EventKind {
    /// Every kind, in the order above.
    pub const ALL: [EventKind; 16] = [
        EventKind::Created,
        EventKind::Rescheduled,
        EventKind::Cancelled,
        EventKind::Completed,
        EventKind::NoShow,
        EventKind::Paid,
        EventKind::BarberAdded,
        EventKind::BarberJoined,
        EventKind::BarberUpdated,
        EventKind::HoursSet,
        EventKind::TimeOffAdded,
        EventKind::ShopUpdated,
        EventKind::ServiceCreated,
        EventKind::ServiceUpdated,
        EventKind::WebhookCreated,
        EventKind::WebhookDeleted,
    ];

    /// Its name in the log, in webhooks and in GraphQL.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "CREATED",
            EventKind::Rescheduled => "RESCHEDULED",
            EventKind::Cancelled => "CANCELLED",
            EventKind::Completed => "COMPLETED",
            EventKind::NoShow => "NO_SHOW",
            EventKind::Paid => "PAID",
            EventKind::BarberAdded => "BARBER_ADDED",
            EventKind::BarberJoined => "BARBER_JOINED",
            EventKind::BarberUpdated => "BARBER_UPDATED",
            EventKind::HoursSet => "HOURS_SET",
            EventKind::TimeOffAdded => "TIME_OFF_ADDED",
            EventKind::ShopUpdated => "SHOP_UPDATED",
            EventKind::ServiceCreated => "SERVICE_CREATED",
            EventKind::ServiceUpdated => "SERVICE_UPDATED",
            EventKind::WebhookCreated => "WEBHOOK_CREATED",
            EventKind::WebhookDeleted => "WEBHOOK_DELETED",
        }
    }

    /// The kind named `name` in the log.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether it is a booking's: subscribers and webhooks get these.
    pub fn is_booking(self) -> bool {
        matches!(
            self,
            EventKind::Created
                | EventKind::Rescheduled
                | EventKind::Cancelled
                | EventKind::Completed
                | EventKind::NoShow
                | EventKind::Paid
        )
    }
}

/// The fields a change changed, before and after, as JSON:
/// `{"field": {"before": …, "after": …}}`. Unchanged fields are left out.
#[derive(Debug, Default)]
pub struct Fields(serde_json::Map<String, serde_json::Value>);

impl Fields {
    /// `field` went from `before` to `after`; kept only when they differ.
    pub fn changed<T: Serialize + PartialEq>(mut self, field: &str, before: T, after: T) -> Self {
        if before != after {
            let pair = serde_json::json!({ "before": before, "after": after });
            self.0.insert(field.to_owned(), pair);
        }
        self
    }

    /// `field` was set to `after` where there was nothing.
    pub fn set<T: Serialize>(mut self, field: &str, after: T) -> Self {
        let pair = serde_json::json!({ "before": null, "after": after });
        self.0.insert(field.to_owned(), pair);
        self
    }

    /// Whether no field changed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One field's change, read back from the log.
#[derive(Clone, Debug)]
pub struct FieldChange {
    pub field: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// The changes of an event as logged, in field order.
pub fn field_changes(event: &booking_event::Model) -> Vec<FieldChange> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&event.changes) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .map(|(field, mut pair)| FieldChange {
            field,
            before: pair.get_mut("before").map(serde_json::Value::take).unwrap_or_default(),
            after: pair.get_mut("after").map(serde_json::Value::take).unwrap_or_default(),
        })
        .collect()
}

/// An event to write.
#[derive(Debug)]
pub struct NewEvent {
    pub shop: i64,
    pub kind: EventKind,
    pub booking: Option<i64>,
    pub barber: Option<i64>,
    pub client: Option<i64>,
    /// The user who made the change.
    pub actor: Option<i64>,
    pub fields: Fields,
    /// The instants whose free slots the change may have changed; `None`
    /// when any day's may have.
    pub spans: Option<Vec<(DateTime<Utc>, DateTime<Utc>)>>,
}

impl NewEvent {
    /// An event of `kind` at `shop` by `actor`, with no booking or barber.
    pub fn at_shop(shop: i64, kind: EventKind, actor: i64, fields: Fields) -> Self {
        Self {
            shop,
            kind,
            booking: None,
            barber: None,
            client: None,
            actor: Some(actor),
            fields,
            spans: None,
        }
    }

    /// The same event about `barber`, whose slots on any day it may change.
    pub fn of_barber(self, barber: i64) -> Self {
        Self { barber: Some(barber), ..self }
    }

    /// The same event, changing only the slots within `spans`.
    pub fn within(self, spans: Vec<(DateTime<Utc>, DateTime<Utc>)>) -> Self {
        Self { spans: Some(spans), ..self }
    }
}

/// A committed event as subscribers receive it, on this replica and
/// through Redis on the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub shop: i64,
    pub kind: EventKind,
    pub booking: Option<i64>,
    pub barber: Option<i64>,
    pub client: Option<i64>,
    pub actor: Option<i64>,
    pub at: DateTime<Utc>,
    /// See [`NewEvent::spans`].
    pub spans: Option<Vec<(DateTime<Utc>, DateTime<Utc>)>>,
}

impl Event {
    /// The event a logged row is, read back (its spans are not logged).
    pub fn of_row(row: &booking_event::Model) -> Option<Self> {
        Some(Self {
            id: row.id,
            shop: row.shop_id,
            kind: EventKind::parse(&row.kind)?,
            booking: row.booking_id,
            barber: row.barber_id,
            client: row.client_id,
            actor: row.actor_id,
            at: row.at,
            spans: None,
        })
    }

    /// Whether it may change `barber`'s free slots between `from` and
    /// `until` at `shop`.
    pub fn touches_slots(
        &self,
        shop: i64,
        barber: i64,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> bool {
        if self.shop != shop || self.barber.is_some_and(|own| own != barber) {
            return false;
        }
        match &self.spans {
            None => true,
            Some(spans) => spans.iter().any(|(start, end)| *start < until && *end >= from),
        }
    }
}

/// Locks `shop`'s row to the end of the caller's transaction (PostgreSQL;
/// SQLite has one writer at a time anyway).
///
/// `FOR NO KEY UPDATE`, not `FOR UPDATE`: a transaction that inserted a
/// booking or an event holds `KEY SHARE` on its shop (the foreign key), and
/// two of them each asking for `FOR UPDATE` would deadlock.
pub async fn lock_shop(db: &impl ConnectionTrait, shop: i64) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    if backend == sea_orm::DbBackend::Postgres {
        let sql = "SELECT id FROM shops WHERE id = $1 FOR NO KEY UPDATE";
        db.execute_raw(Statement::from_sql_and_values(backend, sql, [shop.into()])).await?;
    }
    Ok(())
}

/// Writes `event` at `at` inside the caller's transaction, and the
/// deliveries owed to the shop's webhooks that asked for its kind.
///
/// The shop's row is locked first, so a shop's events take their ids in
/// the order they commit: a subscriber that read event N from the log has
/// read every earlier event of that shop, and `after: N` misses nothing.
/// (A sequence alone hands out ids at insert, and transactions commit in
/// any order.) The lock is held only for the rest of the transaction:
/// this insert, the deliveries' and the commit.
pub async fn record(
    db: &impl ConnectionTrait,
    event: NewEvent,
    at: DateTime<Utc>,
) -> Result<Event, DbErr> {
    let changes = serde_json::Value::Object(event.fields.0).to_string();
    let id = match db.get_database_backend() {
        // One round trip: the lock, the event and its deliveries. A booking
        // racing for the same slot waits for this transaction to end, so
        // it is kept short.
        sea_orm::DbBackend::Postgres => {
            let sql = "WITH locked AS (SELECT id FROM shops WHERE id = $1 FOR NO KEY UPDATE), \
                 logged AS (INSERT INTO booking_events \
                     (shop_id, kind, booking_id, barber_id, client_id, actor_id, at, changes) \
                     SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM locked RETURNING id, shop_id, at), \
                 owed AS (INSERT INTO webhook_deliveries \
                     (webhook_id, event_id, status, attempts, next_attempt_at, created_at) \
                     SELECT w.id, logged.id, 'PENDING', 0, logged.at, logged.at \
                     FROM webhooks w JOIN logged ON w.shop_id = logged.shop_id \
                     WHERE $9 AND w.active AND w.events LIKE $10) \
                 SELECT id FROM logged";
            let values: Vec<Value> = vec![
                event.shop.into(),
                event.kind.as_str().into(),
                event.booking.into(),
                event.barber.into(),
                event.client.into(),
                event.actor.into(),
                at.into(),
                changes.into(),
                event.kind.is_booking().into(),
                format!("%,{},%", event.kind.as_str()).into(),
            ];
            let backend = sea_orm::DbBackend::Postgres;
            let row = db
                .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?
                .ok_or_else(|| DbErr::RecordNotFound(format!("shop {}", event.shop)))?;
            row.try_get::<i64>("", "id")?
        }
        // One writer at a time: no lock needed, nothing to wait for.
        _ => {
            let row = booking_event::ActiveModel {
                id: NotSet,
                shop_id: Set(event.shop),
                kind: Set(event.kind.as_str().to_owned()),
                booking_id: Set(event.booking),
                barber_id: Set(event.barber),
                client_id: Set(event.client),
                actor_id: Set(event.actor),
                at: Set(at),
                changes: Set(changes),
            }
            .insert(db)
            .await?;
            if event.kind.is_booking() {
                owe_deliveries(db, &row).await?;
            }
            row.id
        }
    };
    Ok(Event {
        id,
        shop: event.shop,
        kind: event.kind,
        booking: event.booking,
        barber: event.barber,
        client: event.client,
        actor: event.actor,
        at,
        spans: event.spans,
    })
}

/// One delivery per active webhook of the event's shop that asked for its
/// kind, due now (SQLite; PostgreSQL does it in `record`'s statement).
async fn owe_deliveries(
    db: &impl ConnectionTrait,
    event: &booking_event::Model,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let p = |n: usize| match backend {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    };
    let sql = format!(
        "INSERT INTO webhook_deliveries (webhook_id, event_id, status, attempts, next_attempt_at, created_at) \
         SELECT id, {event}, 'PENDING', 0, {at}, {at} FROM webhooks \
         WHERE shop_id = {shop} AND active = {active} AND events LIKE {kind}",
        event = p(1),
        at = p(2),
        shop = p(3),
        active = p(4),
        kind = p(5),
    );
    let values: Vec<Value> = vec![
        event.id.into(),
        event.at.into(),
        event.shop_id.into(),
        true.into(),
        format!("%,{},%", event.kind).into(),
    ];
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
    Ok(())
}

/// The most events one replay or page reads.
pub const MAX_READ: u64 = 500;

/// Booking events of `shop` after event `after`, oldest first, at most
/// [`MAX_READ`]: what a subscriber that saw `after` missed.
pub async fn booking_events_after(
    db: &impl ConnectionTrait,
    shop: i64,
    after: i64,
) -> Result<Vec<Event>, DbErr> {
    let booking_kinds: Vec<&str> =
        EventKind::ALL.into_iter().filter(|k| k.is_booking()).map(EventKind::as_str).collect();
    let rows = booking_event::Entity::find()
        .filter(booking_event::Column::ShopId.eq(shop))
        .filter(booking_event::Column::Id.gt(after))
        .filter(booking_event::Column::Kind.is_in(booking_kinds))
        .order_by_asc(booking_event::Column::Id)
        .limit(MAX_READ)
        .all(db)
        .await?;
    Ok(rows.iter().filter_map(Event::of_row).collect())
}

/// A page of `shop`'s log, newest first, of `kind` if given; and whether
/// there are more.
pub async fn audit_page(
    db: &impl ConnectionTrait,
    shop: i64,
    page: NewestFirst,
    kind: Option<EventKind>,
) -> Result<(Vec<booking_event::Model>, bool), DbErr> {
    let mut select = booking_event::Entity::find().filter(booking_event::Column::ShopId.eq(shop));
    if let Some(kind) = kind {
        select = select.filter(booking_event::Column::Kind.eq(kind.as_str()));
    }
    let rows = page.apply(select, booking_event::Column::Id).all(db).await?;
    Ok(page.split(rows))
}

/// How many events of `shop` (of `kind`, if given) the log holds.
pub async fn count(
    db: &impl ConnectionTrait,
    shop: i64,
    kind: Option<EventKind>,
) -> Result<u64, DbErr> {
    let mut select = booking_event::Entity::find().filter(booking_event::Column::ShopId.eq(shop));
    if let Some(kind) = kind {
        select = select.filter(booking_event::Column::Kind.eq(kind.as_str()));
    }
    select.count(db).await
}

/// The logged events `ids`, by id.
pub async fn by_ids(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, booking_event::Model>, DbErr> {
    let rows = booking_event::Entity::find()
        .filter(booking_event::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|row| (row.id, row)).collect())
}
