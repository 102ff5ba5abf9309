//! `Webhook` and `WebhookDelivery`: where a shop's booking events are
//! posted, and how each delivery went.

use async_graphql::{
    Context, Enum, ID, Object,
    connection::{Connection, Edge},
};
use chrono::{DateTime, Utc};
use entity::{webhook, webhook_delivery};

use super::{BookingEvent, BookingEventKind};
use crate::{
    domain::{
        event_log::{self, Event},
        page::Position,
        webhook as hooks,
    },
    error::{AppError, AppResult},
    graphql::{
        db,
        id::{self, Kind},
    },
};

/// A URL a shop's booking events are posted to, signed.
pub struct Webhook {
    pub model: webhook::Model,
    /// Shown once, when the webhook is created.
    pub secret: Option<String>,
}

/// A page of a webhook's deliveries.
pub type DeliveryConnection = Connection<String, WebhookDelivery, DeliveryFields>;

#[Object]
impl Webhook {
    async fn id(&self) -> ID {
        id::encode(Kind::Webhook, self.model.id)
    }

    async fn url(&self) -> &str {
        &self.model.url
    }

    /// The kinds of booking event it receives.
    async fn events(&self) -> Vec<BookingEventKind> {
        hooks::kinds(&self.model).into_iter().filter_map(BookingEventKind::of).collect()
    }

    /// False once deleted.
    async fn active(&self) -> bool {
        self.model.active
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }

    /// The key of its signatures (`BookedBarber-Signature`): shown only in
    /// `createWebhook`'s answer, `null` ever after. Keep it safe.
    async fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    /// Its deliveries, newest first.
    #[graphql(
        complexity = "crate::graphql::limits::page_complexity(first, None, child_complexity)"
    )]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<DeliveryConnection> {
        Ok(deliveries(ctx, self.model.id, first, after).await?)
    }
}

async fn deliveries(
    ctx: &Context<'_>,
    webhook: i64,
    first: Option<i32>,
    after: Option<String>,
) -> AppResult<DeliveryConnection> {
    let page = super::newest_first(first, after)?;
    let db = db(ctx)?;
    let (rows, more) = hooks::deliveries(db, webhook, page).await?;
    let ids: Vec<i64> = rows.iter().map(|row| row.event_id).collect();
    let events = event_log::by_ids(db, &ids).await.map_err(AppError::from)?;
    let mut connection =
        Connection::with_additional_fields(page.before.is_some(), more, DeliveryFields { webhook });
    connection.edges = rows
        .into_iter()
        .map(|row| {
            let event = events.get(&row.event_id).and_then(Event::of_row);
            Edge::new(id::encode_cursor(Position::id(row.id)), WebhookDelivery { row, event })
        })
        .collect();
    Ok(connection)
}

/// Fields of a page of deliveries beyond the page itself.
pub struct DeliveryFields {
    webhook: i64,
}

#[Object]
impl DeliveryFields {
    /// How many deliveries the webhook has had in all.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        Ok(hooks::count_deliveries(db(ctx)?, self.webhook).await.map_err(AppError::from)?)
    }
}

/// Where a delivery stands.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookDeliveryStatus {
    /// Not yet accepted; tried again at `nextAttemptAt`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: tried for 24 hours, or the webhook was deleted.
    Failed,
}

/// One event owed to a webhook, and how its attempts went.
pub struct WebhookDelivery {
    row: webhook_delivery::Model,
    event: Option<Event>,
}

#[Object]
impl WebhookDelivery {
    async fn id(&self) -> ID {
        id::encode(Kind::WebhookDelivery, self.row.id)
    }

    /// The event delivered.
    async fn event(&self) -> Option<BookingEvent> {
        self.event.clone().map(BookingEvent)
    }

    async fn status(&self) -> WebhookDeliveryStatus {
        match self.row.status.as_str() {
            hooks::DELIVERED => WebhookDeliveryStatus::Delivered,
            hooks::FAILED => WebhookDeliveryStatus::Failed,
            _ => WebhookDeliveryStatus::Pending,
        }
    }

    async fn attempts(&self) -> i32 {
        self.row.attempts
    }

    /// The receiver's status code at the last attempt, if it answered.
    async fn last_status_code(&self) -> Option<i32> {
        self.row.last_status_code
    }

    /// Why the last attempt failed, if it did.
    async fn last_error(&self) -> Option<&str> {
        self.row.last_error.as_deref()
    }

    /// When it is tried next, while pending.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.row.status == hooks::PENDING).then_some(self.row.next_attempt_at)
    }

    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.row.delivered_at
    }
}
