//! Owners watching their shop: the analytics dashboard over a range they
//! pick, and today's bookings. Each signs in as a prepared shop's owner.

use std::sync::Arc;

use chrono::{Datelike, Days, Utc};
use goose::prelude::*;
use rand::Rng;
use serde_json::json;

use super::{Run, Visitor, address_of, call, op, step};
use crate::api::Identity;

const NAME: &str = "dashboard";

struct Journey {
    shop: Option<String>,
}

fn visitor<'u>(user: &'u mut GooseUser, run: &Run) -> &'u mut Visitor<Journey> {
    Visitor::of(user, |index| {
        let shops = &run.fixture.shops;
        let seat = run.seats.next_owner();
        let shop = (!shops.is_empty()).then(|| &shops[seat % shops.len()]);
        let who = Identity {
            ip: address_of(index),
            token: shop.and_then(|shop| shop.owner.token.clone()),
        };
        (who, Journey { shop: shop.map(|shop| shop.id.clone()) })
    })
}

/// The whole dashboard, as the owner's analytics page asks for it.
pub const DASHBOARD: &str = "query Dashboard($shop: ID!, $from: Date!, $to: Date!) {
  analytics(shopId: $shop, from: $from, to: $to) {
    from to bookingsCount completedCount cancelledCount noShowCount revenueCents averageTicketCents
    noShowRate cancellationRate utilization repeatClientRate
    revenueByDay { date bookingsCount revenueCents }
    barberPerformance { barber { id displayName } bookingsCount completedCount revenueCents noShowRate utilization }
    topServices { service { id name } bookingsCount revenueCents }
    peakHours { weekday hour bookingsCount }
    generatedAt
  }
}";

/// Today, the last week, month, quarter or year, this month, or the
/// coming two weeks.
async fn analytics(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let today = Utc::now().date_naive();
    let (who, shop, range) = {
        let v = visitor(user, &run);
        let back = |days| today.checked_sub_days(Days::new(days)).unwrap_or(today);
        let ranges = [
            (today, today),
            (back(6), today),
            (back(29), today),
            (back(89), today),
            (back(364), today),
            (today.with_day(1).unwrap_or(today), today),
            (today, today.checked_add_days(Days::new(13)).unwrap_or(today)),
        ];
        let range = ranges[v.rng.random_range(0..ranges.len())];
        (v.who.clone(), v.journey.shop.clone(), range)
    };
    let Some(shop) = shop else { return Ok(()) };
    let variables = json!({ "shop": shop, "from": range.0.to_string(), "to": range.1.to_string() });
    call(user, &run, &who, &op(NAME, "analytics"), DASHBOARD, variables).await?;
    Ok(())
}

const TODAY: &str = "query ShopDay($shop: ID!, $from: DateTime!, $to: DateTime!) {
  shop(id: $shop) {
    bookings(from: $from, to: $to, first: 20) {
      totalCount
      nodes { id startsAt endsAt status paymentStatus priceCents client { name } barber { displayName } service { name } }
    }
  }
}";

/// The day's bookings across the shop.
async fn day(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let (who, shop) = {
        let v = visitor(user, &run);
        (v.who.clone(), v.journey.shop.clone())
    };
    let Some(shop) = shop else { return Ok(()) };
    let from = Utc::now();
    let variables = json!({
        "shop": shop,
        "from": from.to_rfc3339(),
        "to": (from + chrono::Duration::days(1)).to_rfc3339(),
    });
    call(user, &run, &who, &op(NAME, "shopBookings"), TODAY, variables).await?;
    Ok(())
}

pub fn scenario(run: &Arc<Run>) -> Scenario {
    scenario!(NAME)
        .register_transaction(
            step(run, "analytics", |u, r| Box::pin(analytics(u, r))).set_sequence(1),
        )
        .register_transaction(step(run, "day", |u, r| Box::pin(day(u, r))).set_sequence(2))
}
