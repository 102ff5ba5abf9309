//! The webhook delivery worker, one per replica.
//!
//! Deliveries are rows written with their events (see `event_log`), so
//! none is lost between a commit and its delivery. A worker claims due
//! rows for a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas
//! never claim the same row; SQLite has one writer at a time), posts each
//! event signed with its webhook's secret, and records how it went. A
//! worker that dies mid-delivery leaves its claim to expire, and another
//! tries again: delivery is at least once, and receivers deduplicate by
//! `BookedBarber-Event-Id`. Failures are retried with exponential backoff
//! for 24 hours; after that a delivery is marked failed.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::{booking_event, webhook, webhook_delivery};
use futures_util::future::join_all;
use hmac::{Hmac, Mac};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    Statement, sea_query::Expr,
};
use tokio::sync::Notify;

use crate::{
    config::Config,
    domain::{
        event_log,
        webhook::{self as hooks, DELIVERED, FAILED, PENDING, check_url, is_public},
    },
    graphql::id::{self, Kind},
};

/// Deliveries one worker claims at once.
const BATCH: u32 = 16;
/// How often an idle worker looks for due deliveries.
const POLL: Duration = Duration::from_secs(1);
/// How much of a receiver's error is kept.
const ERROR_KEPT: usize = 500;

/// Resolves webhook hosts to public addresses only (unless private ones
/// are allowed): a name that points inside the network is refused at
/// every delivery, not only when the webhook was made.
struct PublicOnly {
    allow_private: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|address| allow_private || is_public(address.ip()))
                .collect();
            if addresses.is_empty() {
                return Err("the webhook's host has no public address".into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// One replica's delivery worker.
pub struct Worker {
    db: DatabaseConnection,
    client: reqwest::Client,
    timeout: Duration,
    retry_base: Duration,
    allow_private: bool,
    wake: Arc<Notify>,
}

/// A delivery this worker claimed.
#[derive(Debug, FromQueryResult)]
struct Claimed {
    id: i64,
    webhook_id: i64,
    event_id: i64,
    attempts: i32,
    created_at: DateTime<Utc>,
}

/// How one attempt went: the receiver's status, or why there was none.
type Attempt = Result<u16, String>;

/// The `BookedBarber-Signature` of `body` sent at `t` (Unix seconds):
/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the secret>`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The JSON body of `event`'s delivery.
pub fn body(event: &booking_event::Model) -> Vec<u8> {
    let global = |kind, id: Option<i64>| id.map(|id| id::encode(kind, id).0);
    let changes: serde_json::Map<String, serde_json::Value> = event_log::field_changes(event)
        .into_iter()
        .map(|c| (c.field, serde_json::json!({ "before": c.before, "after": c.after })))
        .collect();
    serde_json::json!({
        "id": id::encode(Kind::Event, event.id).0,
        "kind": event.kind,
        "at": event.at.to_rfc3339(),
        "shopId": id::encode(Kind::Shop, event.shop_id).0,
        "bookingId": global(Kind::Booking, event.booking_id),
        "barberId": global(Kind::Barber, event.barber_id),
        "changes": changes,
    })
    .to_string()
    .into_bytes()
}

impl Worker {
    /// A worker for `config`'s settings, woken by `wake` when events were
    /// published here.
    pub fn new(db: DatabaseConnection, config: &Config, wake: Arc<Notify>) -> anyhow::Result<Self> {
        let allow_private = config.webhook_allow_private_addresses;
        let timeout = Duration::from_secs(config.webhook_timeout_secs.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the host itself, past `PublicOnly`.
            .no_proxy()
            .user_agent("BookedBarber-Webhooks/1")
            .dns_resolver(Arc::new(PublicOnly { allow_private }))
            .build()?;
        Ok(Self {
            db,
            client,
            timeout,
            retry_base: Duration::from_millis(config.webhook_retry_base_ms.max(1)),
            allow_private,
            wake,
        })
    }

    /// Delivers until the process ends.
    pub async fn run(self) {
        loop {
            match self.claim().await {
                Ok(claimed) if !claimed.is_empty() => {
                    self.deliver_all(claimed).await;
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not claim webhook deliveries"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// How long a claim holds: an attempt's timeout, and time to record it.
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.timeout + Duration::from_secs(5))
            .unwrap_or_else(|_| chrono::Duration::seconds(15))
    }

    /// Claims up to [`BATCH`] due deliveries that no live claim holds.
    async fn claim(&self) -> Result<Vec<Claimed>, DbErr> {
        let now = Utc::now();
        let backend = self.db.get_database_backend();
        let (p1, p2, p3, locking) = match backend {
            DbBackend::Postgres => ("$1", "$2", "$3", "FOR UPDATE SKIP LOCKED"),
            _ => ("?1", "?2", "?3", ""),
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET claimed_until = {p1}, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM webhook_deliveries \
                 WHERE status = {p3} AND next_attempt_at <= {p2} \
                 AND (claimed_until IS NULL OR claimed_until < {p2}) \
                 ORDER BY next_attempt_at LIMIT {BATCH} {locking}) \
             RETURNING id, webhook_id, event_id, attempts, created_at"
        );
        let values = vec![(now + self.lease()).into(), now.into(), PENDING.into()];
        Claimed::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(&self.db)
            .await
    }

    async fn deliver_all(&self, claimed: Vec<Claimed>) {
        // Every attempt ends before the claim does (less a margin for
        // recording it), so no other worker takes a delivery still being
        // sent.
        let lease = self.lease().to_std().unwrap_or(self.timeout);
        let must_end = tokio::time::Instant::now() + lease.saturating_sub(Duration::from_secs(3));
        let event_ids: Vec<i64> = claimed.iter().map(|c| c.event_id).collect();
        let webhook_ids: Vec<i64> = claimed.iter().map(|c| c.webhook_id).collect();
        let loaded = async {
            let events = booking_event::Entity::find()
                .filter(booking_event::Column::Id.is_in(event_ids))
                .all(&self.db)
                .await?;
            let webhooks = webhook::Entity::find()
                .filter(webhook::Column::Id.is_in(webhook_ids))
                .all(&self.db)
                .await?;
            Ok::<_, DbErr>((events, webhooks))
        };
        let (events, webhooks) = match loaded.await {
            Ok(loaded) => loaded,
            // The claims expire and are tried again.
            Err(error) => return tracing::warn!(%error, "could not load webhook deliveries"),
        };
        join_all(claimed.into_iter().map(|claim| {
            let event = events.iter().find(|e| e.id == claim.event_id);
            let webhook = webhooks.iter().find(|w| w.id == claim.webhook_id);
            async move {
                let attempt = match (event, webhook) {
                    (Some(event), Some(webhook)) if webhook.active => {
                        tokio::time::timeout_at(must_end, self.attempt(webhook, event))
                            .await
                            .unwrap_or_else(|_| Err("the attempt outran its claim".to_owned()))
                    }
                    (Some(_), Some(_)) => Err("the webhook was deleted".to_owned()),
                    _ => Err("the event or its webhook is gone".to_owned()),
                };
                if let Err(error) = self.record(&claim, attempt).await {
                    tracing::warn!(%error, delivery.id = claim.id, "could not record a webhook delivery");
                }
            }
        }))
        .await;
    }

    /// Posts `event` to `webhook` once.
    async fn attempt(&self, webhook: &webhook::Model, event: &booking_event::Model) -> Attempt {
        let url = check_url(&webhook.url, self.allow_private).map_err(|_| {
            "the URL is no longer allowed (a private address, or plain http)".to_owned()
        })?;
        let body = body(event);
        let sent_at = Utc::now().timestamp();
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("BookedBarber-Signature", signature(&webhook.secret, sent_at, &body))
            .header("BookedBarber-Event-Id", id::encode(Kind::Event, event.id).0)
            .body(body)
            .send()
            .await
            .map_err(|error| {
                let mut text = format!("{error:#}");
                if error.is_timeout() {
                    text = format!("no answer within {} s", self.timeout.as_secs());
                }
                text
            })?;
        Ok(response.status().as_u16())
    }

    /// Records how `claim`'s attempt went, unless its claim was lost (a
    /// later claim counted another attempt).
    async fn record(&self, claim: &Claimed, attempt: Attempt) -> Result<(), DbErr> {
        use webhook_delivery::Column;
        let now = Utc::now();
        let (code, error) = match &attempt {
            Ok(status) => (Some(i32::from(*status)), None),
            Err(error) => (None, Some(error.chars().take(ERROR_KEPT).collect::<String>())),
        };
        let delivered = matches!(attempt, Ok(status) if (200..300).contains(&status));
        let mut update = webhook_delivery::Entity::update_many()
            .col_expr(Column::LastStatusCode, Expr::value(code))
            .col_expr(Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(Column::Id.eq(claim.id))
            .filter(Column::Attempts.eq(claim.attempts))
            .filter(Column::Status.eq(PENDING));
        let outcome = if delivered {
            update = update
                .col_expr(Column::Status, Expr::value(DELIVERED))
                .col_expr(Column::DeliveredAt, Expr::value(now))
                .col_expr(Column::LastError, Expr::value(Option::<String>::None));
            "delivered"
        } else {
            let error = error.or_else(|| code.map(|code| format!("the receiver answered {code}")));
            update = update.col_expr(Column::LastError, Expr::value(error));
            match hooks::next_attempt(claim.attempts, self.retry_base, claim.created_at, now) {
                Some(next) => {
                    update = update.col_expr(Column::NextAttemptAt, Expr::value(next));
                    "retrying"
                }
                None => {
                    update = update.col_expr(Column::Status, Expr::value(FAILED));
                    "failed"
                }
            }
        };
        update.exec(&self.db).await?;
        metrics::counter!("bookedbarber_webhook_attempts_total", "outcome" => outcome).increment(1);
        Ok(())
    }
}
