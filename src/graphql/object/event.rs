//! `BookingEvent` and `AuditEvent`: entries of a shop's event log, as
//! subscribers and the shop's owner see them.

use async_graphql::{
    Context, ID, Object, SimpleObject,
    connection::{Connection, Edge},
};
use chrono::{DateTime, Utc};
use entity::booking_event;

use super::{AuditEventKind, Barber, Booking, BookingEventKind, User, load_one};
use crate::{
    auth::policy,
    domain::{
        event_log::{self, Event},
        page::Position,
    },
    error::{AppError, AppResult},
    graphql::{
        db,
        guard::identity,
        id::{self, Kind},
        loader::{BarberByIdLoader, BookingByIdLoader, UserByIdLoader},
    },
};

/// Something that happened to a booking.
pub struct BookingEvent(pub Event);

/// The user who made a change, for the shop's staff only: a client sees
/// that their booking changed, not who on the staff changed it.
async fn actor_for_staff(
    ctx: &Context<'_>,
    shop: i64,
    actor: Option<i64>,
) -> async_graphql::Result<Option<User>> {
    let identity = identity(ctx);
    let staff = identity.viewer().is_some_and(|v| v.owns(shop) || v.barber_at(shop).is_some());
    let Some(actor) = actor.filter(|_| staff) else {
        return Ok(None);
    };
    let Some(model) = load_one::<UserByIdLoader, _>(ctx, actor).await? else {
        return Ok(None);
    };
    let own = identity.viewer().is_some_and(|v| v.id() == actor);
    let email_visible = policy::can_see_client(identity, actor, shop);
    Ok(Some(User { model, own, email_visible }))
}

#[Object]
impl BookingEvent {
    /// The event's id; pass the last one seen as `after` to replay what
    /// came after it.
    async fn id(&self) -> ID {
        id::encode(Kind::Event, self.0.id)
    }

    async fn kind(&self) -> Option<BookingEventKind> {
        BookingEventKind::of(self.0.kind)
    }

    /// The booking as it is now.
    async fn booking(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Booking>> {
        let Some(booking) = self.0.booking else {
            return Ok(None);
        };
        Ok(load_one::<BookingByIdLoader, _>(ctx, booking).await?.map(Booking))
    }

    /// Who made the change; seen by the shop's staff only.
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        actor_for_staff(ctx, self.0.shop, self.0.actor).await
    }

    /// When it happened.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

/// One changed field of an audited change. Values are JSON, as they were
/// before and after (`null` when there was none).
#[derive(SimpleObject)]
pub struct FieldChange {
    pub field: String,
    pub before: String,
    pub after: String,
}

/// An entry of a shop's audit log: who did what, and when.
pub struct AuditEvent(pub booking_event::Model);

#[Object]
impl AuditEvent {
    async fn id(&self) -> ID {
        id::encode(Kind::Event, self.0.id)
    }

    async fn kind(&self) -> Option<AuditEventKind> {
        event_log::EventKind::parse(&self.0.kind).map(AuditEventKind::from)
    }

    /// Who did it.
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        actor_for_staff(ctx, self.0.shop_id, self.0.actor_id).await
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    /// The booking it is about, if any.
    async fn booking(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Booking>> {
        let Some(booking) = self.0.booking_id else {
            return Ok(None);
        };
        Ok(load_one::<BookingByIdLoader, _>(ctx, booking).await?.map(Booking))
    }

    /// The barber it is about, if any.
    async fn barber(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Barber>> {
        let Some(barber) = self.0.barber_id else {
            return Ok(None);
        };
        Ok(load_one::<BarberByIdLoader, _>(ctx, barber).await?.map(Barber))
    }

    /// What changed, field by field.
    async fn changes(&self) -> Vec<FieldChange> {
        event_log::field_changes(&self.0)
            .into_iter()
            .map(|change| FieldChange {
                field: change.field,
                before: change.before.to_string(),
                after: change.after.to_string(),
            })
            .collect()
    }
}

/// A page of a shop's audit log.
pub type AuditLogConnection = Connection<String, AuditEvent, AuditLogFields>;

/// Fields of a page of the audit log beyond the page itself.
pub struct AuditLogFields {
    shop: i64,
    kind: Option<event_log::EventKind>,
}

#[Object]
impl AuditLogFields {
    /// How many events (of the kind asked for) the log holds in all.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        Ok(event_log::count(db(ctx)?, self.shop, self.kind).await.map_err(AppError::from)?)
    }
}

/// The page of `shop`'s log, newest first, `first` events after the cursor
/// `after`, of `kind` if given.
pub async fn audit_log(
    ctx: &Context<'_>,
    shop: i64,
    first: Option<i32>,
    after: Option<String>,
    kind: Option<AuditEventKind>,
) -> AppResult<AuditLogConnection> {
    let page = super::newest_first(first, after)?;
    let kind = kind.map(event_log::EventKind::from);
    let (rows, more) = event_log::audit_page(db(ctx)?, shop, page, kind).await?;
    let mut connection = Connection::with_additional_fields(
        page.before.is_some(),
        more,
        AuditLogFields { shop, kind },
    );
    connection.edges = rows
        .into_iter()
        .map(|row| Edge::new(id::encode_cursor(Position::id(row.id)), AuditEvent(row)))
        .collect();
    Ok(connection)
}
