//! A shop's webhooks: where its booking events are posted, and how each
//! delivery went. Delivering is `crate::webhooks`'s work.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use entity::{webhook, webhook_delivery};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, NotSet, PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
    sea_query::Expr,
};

use super::{
    change::{Change, Changed},
    event_log::{self, EventKind, Fields, NewEvent},
    page::NewestFirst,
};
use crate::error::{AppError, AppResult};

/// Webhooks a shop may have at once.
pub const MAX_PER_SHOP: u64 = 10;

/// A delivery still owed (and perhaps being tried).
pub const PENDING: &str = "PENDING";
/// A delivery the receiver accepted (2xx).
pub const DELIVERED: &str = "DELIVERED";
/// A delivery given up on: retried for a day, or its webhook deleted.
pub const FAILED: &str = "FAILED";

/// Whether `ip` is an address anyone on the internet could reach: not
/// loopback, private, link-local (cloud metadata lives there), shared,
/// unspecified, multicast or documentation space.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            // 6to4 carries an IPv4 address, which decides.
            if segments[0] == 0x2002 {
                let [high, low] = [segments[1], segments[2]];
                let v4 = std::net::Ipv4Addr::new(
                    (high >> 8) as u8,
                    high as u8,
                    (low >> 8) as u8,
                    low as u8,
                );
                return is_public(IpAddr::V4(v4));
            }
            // Only global unicast (2000::/3) is public; of it, Teredo
            // (2001::/32, which tunnels to anything), documentation and
            // benchmarking space are not.
            (segments[0] & 0xe000) == 0x2000
                && !(segments[0] == 0x2001 && (segments[1] == 0 || segments[1] == 0x0db8))
                && !(segments[0] == 0x2001 && segments[1] == 0x0002)
        }
    }
}

/// The address a URL's host is, when it is an address (or `localhost`,
/// which is always loopback).
fn host_address(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost"))
                .then_some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        }
    }
}

/// A webhook URL, checked against server-side request forgery: `https`
/// to a public host, or, when `allow_private`, `http`/`https` to a
/// loopback or private address too. A host name's addresses are checked
/// again each time it is delivered to.
pub fn check_url(raw: &str, allow_private: bool) -> AppResult<url::Url> {
    let refuse = |why: &str| {
        AppError::bad_input(format!(
            "`url` {why}; use an https:// URL of a public host, like https://hooks.example.com/bookedbarber"
        ))
    };
    let url = url::Url::parse(raw.trim()).map_err(|_| refuse("is not a URL"))?;
    // As stored: encoding can make it longer than it was sent.
    if url.as_str().len() > 2048 {
        return Err(refuse("is longer than 2048 characters"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not hold credentials; verify the signature instead"));
    }
    if url.host().is_none() {
        return Err(refuse("has no host"));
    }
    let private = host_address(&url).is_some_and(|ip| !is_public(ip));
    match (url.scheme(), private) {
        ("https", false) => Ok(url),
        ("https" | "http", true) if allow_private => Ok(url),
        ("https" | "http", true) => Err(refuse("points to a loopback or private address")),
        ("http", false) => Err(refuse("is plain http")),
        _ => Err(refuse("is not http(s)")),
    }
}

/// A valid webhook to create.
pub struct NewWebhook {
    pub shop_id: i64,
    pub url: url::Url,
    pub events: Vec<EventKind>,
}

/// The kinds a webhook receives as stored: each between commas.
fn stored_kinds(events: &[EventKind]) -> String {
    let names: Vec<&str> = events.iter().map(|kind| kind.as_str()).collect();
    format!(",{},", names.join(","))
}

/// The kinds a stored webhook receives.
pub fn kinds(webhook: &webhook::Model) -> Vec<EventKind> {
    webhook.events.split(',').filter_map(EventKind::parse).collect()
}

/// A new signing secret: 32 random bytes, hex.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("whsec_{hex}")
}

/// Creates a webhook for `new.shop_id`, by `actor`; the audit log records it.
pub async fn create(
    db: &DatabaseConnection,
    actor: i64,
    new: NewWebhook,
) -> AppResult<Changed<webhook::Model>> {
    let now = Utc::now();
    let txn = db.begin().await?;
    // Counted under the shop's lock: concurrent creates cannot pass the cap.
    event_log::lock_shop(&txn, new.shop_id).await?;
    let held = webhook::Entity::find()
        .filter(webhook::Column::ShopId.eq(new.shop_id))
        .filter(webhook::Column::Active.eq(true))
        .count(&txn)
        .await?;
    if held >= MAX_PER_SHOP {
        return Err(AppError::bad_input(format!(
            "a shop has at most {MAX_PER_SHOP} webhooks; delete one first"
        )));
    }
    let created = webhook::ActiveModel {
        id: NotSet,
        shop_id: Set(new.shop_id),
        url: Set(new.url.to_string()),
        events: Set(stored_kinds(&new.events)),
        secret: Set(new_secret()),
        active: Set(true),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let fields = Fields::default()
        .set("url", &created.url)
        .set("events", new.events.iter().map(|kind| kind.as_str()).collect::<Vec<_>>());
    let event = NewEvent::at_shop(created.shop_id, EventKind::WebhookCreated, actor, fields)
        .within(Vec::new());
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    Ok(Changed::new(created.clone(), Change::Webhooks { shop: created.shop_id }).logged(event))
}

/// Deletes `webhook` (it stays, inactive, for its deliveries' history);
/// deliveries still owed are given up.
pub async fn delete(
    db: &DatabaseConnection,
    actor: i64,
    webhook: webhook::Model,
) -> AppResult<Changed<webhook::Model>> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let done = webhook::Entity::update_many()
        .col_expr(webhook::Column::Active, Expr::value(false))
        .filter(webhook::Column::Id.eq(webhook.id))
        .filter(webhook::Column::Active.eq(true))
        .exec(&txn)
        .await?;
    if done.rows_affected == 0 {
        return Err(AppError::not_found("no webhook has this id"));
    }
    webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Status, Expr::value(FAILED))
        .col_expr(webhook_delivery::Column::LastError, Expr::value("the webhook was deleted"))
        .filter(webhook_delivery::Column::WebhookId.eq(webhook.id))
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .exec(&txn)
        .await?;
    let fields = Fields::default().set("url", &webhook.url);
    let event = NewEvent::at_shop(webhook.shop_id, EventKind::WebhookDeleted, actor, fields)
        .within(Vec::new());
    let event = event_log::record(&txn, event, now).await?;
    txn.commit().await?;
    let deleted = webhook::Model { active: false, ..webhook };
    Ok(Changed::new(deleted.clone(), Change::Webhooks { shop: deleted.shop_id }).logged(event))
}

/// The webhook `id`, active or not.
pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<Option<webhook::Model>, DbErr> {
    webhook::Entity::find_by_id(id).one(db).await
}

/// A shop's active webhooks, oldest first.
pub async fn of_shop(db: &impl ConnectionTrait, shop: i64) -> Result<Vec<webhook::Model>, DbErr> {
    webhook::Entity::find()
        .filter(webhook::Column::ShopId.eq(shop))
        .filter(webhook::Column::Active.eq(true))
        .order_by_asc(webhook::Column::Id)
        .all(db)
        .await
}

/// A page of `webhook`'s deliveries, newest first; and whether there are
/// more.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    webhook: i64,
    page: NewestFirst,
) -> Result<(Vec<webhook_delivery::Model>, bool), DbErr> {
    let select =
        webhook_delivery::Entity::find().filter(webhook_delivery::Column::WebhookId.eq(webhook));
    let rows = page.apply(select, webhook_delivery::Column::Id).all(db).await?;
    Ok(page.split(rows))
}

/// How many deliveries `webhook` has had.
pub async fn count_deliveries(db: &impl ConnectionTrait, webhook: i64) -> Result<u64, DbErr> {
    webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::WebhookId.eq(webhook))
        .count(db)
        .await
}

/// When a delivery that has failed `attempts` times is tried next, or
/// `None` when it has been tried for a day: `base` doubled per attempt, at
/// most an hour.
pub fn next_attempt(
    attempts: i32,
    base: std::time::Duration,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let doublings = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(20);
    let wait = base.saturating_mul(1 << doublings).min(std::time::Duration::from_secs(3600));
    let next = now + chrono::Duration::from_std(wait).ok()?;
    (next <= created + chrono::Duration::hours(24)).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_to_public_hosts_unless_private_ones_are_allowed() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_url("https://[2606:4700::1111]/x", false).is_ok());
        assert!(check_url("https://[2002:0808:0808::]/x", false).is_ok(), "6to4 of a public v4");
        for refused in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://10.1.2.3/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[::127.0.0.1]/x",
            "https://[64:ff9b::a9fe:a9fe]/x",
            "https://[2002:7f00:1::]/x",
            "https://[2001:0:4136:e378::1]/x",
            "https://[fec0::1]/x",
            "https://[fd00::1]/x",
            "https://user:pass@hooks.example.com/x",
            "ftp://hooks.example.com/x",
            "not a url",
        ] {
            assert!(check_url(refused, false).is_err(), "{refused}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("http://hooks.example.com/x", true).is_err(), "plain http stays private");
    }

    #[test]
    fn retries_double_up_to_an_hour_for_a_day() {
        let base = std::time::Duration::from_secs(10);
        let created = Utc::now();
        let wait = |attempts| next_attempt(attempts, base, created, created).map(|t| t - created);
        assert_eq!(wait(1), Some(chrono::Duration::seconds(10)));
        assert_eq!(wait(2), Some(chrono::Duration::seconds(20)));
        assert_eq!(wait(12), Some(chrono::Duration::hours(1)));
        let late = created + chrono::Duration::hours(23) + chrono::Duration::minutes(30);
        assert_eq!(next_attempt(12, base, created, late), None, "past a day it fails");
    }
}
