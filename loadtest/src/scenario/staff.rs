//! Barbers running their day: their schedule, payments taken at the chair,
//! and closing bookings that have started. Each signs in with the account
//! of a prepared barber (several devices may share one).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use goose::prelude::*;
use rand::Rng;
use serde_json::json;

use super::{Run, Visitor, address_of, call, lost_answer, op, pick, step};
use crate::{api::Identity, gql::Reply, ledger::Status};

const NAME: &str = "staff";

struct Journey {
    barber: Option<String>,
    /// Confirmed bookings of the schedule: `(id, starts, price, unpaid)`.
    schedule: Vec<(String, DateTime<Utc>, i64, bool)>,
}

fn visitor<'u>(user: &'u mut GooseUser, run: &Run) -> &'u mut Visitor<Journey> {
    Visitor::of(user, |index| {
        let barbers: Vec<_> = run.fixture.barbers_with_accounts().collect();
        let seat = run.seats.next_barber();
        let chosen = (!barbers.is_empty()).then(|| barbers[seat % barbers.len()].1);
        let who = Identity {
            ip: address_of(index),
            token: chosen.and_then(|barber| barber.account.as_ref()?.token.clone()),
        };
        (who, Journey { barber: chosen.map(|b| b.id.clone()), schedule: Vec::new() })
    })
}

const SCHEDULE: &str = "query Schedule($barber: ID!, $from: DateTime!, $to: DateTime!) {
  bookings(barberId: $barber, status: CONFIRMED, from: $from, to: $to, first: 20) {
    totalCount
    nodes { id startsAt endsAt priceCents paymentStatus notes client { name } service { name } }
  }
}";

/// The coming week, and what is still open from today.
async fn schedule(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let (who, barber) = {
        let v = visitor(user, &run);
        (v.who.clone(), v.journey.barber.clone())
    };
    let Some(barber) = barber else { return Ok(()) };
    let now = Utc::now();
    let variables = json!({
        "barber": barber,
        "from": (now - Duration::hours(12)).to_rfc3339(),
        "to": (now + Duration::days(7)).to_rfc3339(),
    });
    let reply = call(user, &run, &who, &op(NAME, "schedule"), SCHEDULE, variables).await?;
    let schedule = reply
        .data()
        .map(|data| {
            data["bookings"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|node| {
                    let starts = DateTime::parse_from_rfc3339(node["startsAt"].as_str()?).ok()?;
                    Some((
                        node["id"].as_str()?.to_owned(),
                        starts.with_timezone(&Utc),
                        node["priceCents"].as_i64()?,
                        node["paymentStatus"].as_str() == Some("UNPAID"),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    visitor(user, &run).journey.schedule = schedule;
    Ok(())
}

const PAY: &str = "mutation RecordPayment($input: RecordPaymentInput!) { recordPayment(input: $input) { id paymentStatus } }";

/// Takes the full price of an unpaid booking (a deposit, before the chair).
async fn take_payment(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let (who, due, cash) = {
        let v = visitor(user, &run);
        let unpaid: Vec<_> = v.journey.schedule.iter().filter(|b| b.3).cloned().collect();
        (v.who.clone(), pick(&mut v.rng, &unpaid).cloned(), v.rng.random_bool(0.3))
    };
    let Some((id, _, price, _)) = due else { return Ok(()) };
    let method = if cash { "CASH" } else { "CARD" };
    let variables = json!({ "input": { "bookingId": id, "amountCents": price, "method": method } });
    match call(user, &run, &who, &op(NAME, "recordPayment"), PAY, variables).await? {
        Reply::Data(_) => {
            run.ledger.paid(&id, price);
            let v = visitor(user, &run);
            v.journey.schedule.retain(|b| b.0 != id);
        }
        Reply::Failed(code) if lost_answer(&code) => run.ledger.uncertain(&id),
        Reply::Failed(_) => {}
    }
    Ok(())
}

const COMPLETE: &str =
    "mutation CompleteBooking($id: ID!) { completeBooking(id: $id) { id status } }";

/// Closes a booking that has started.
async fn complete(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let now = Utc::now();
    let (who, started) = {
        let v = visitor(user, &run);
        let started = v.journey.schedule.iter().find(|b| b.1 <= now).map(|b| b.0.clone());
        (v.who.clone(), started)
    };
    let Some(id) = started else { return Ok(()) };
    let variables = json!({ "id": id });
    match call(user, &run, &who, &op(NAME, "completeBooking"), COMPLETE, variables).await? {
        Reply::Data(_) => {
            run.ledger.set_status(&id, Status::Completed);
            visitor(user, &run).journey.schedule.retain(|b| b.0 != id);
        }
        Reply::Failed(code) if lost_answer(&code) => run.ledger.uncertain(&id),
        Reply::Failed(_) => {}
    }
    Ok(())
}

pub fn scenario(run: &Arc<Run>) -> Scenario {
    scenario!(NAME)
        .register_transaction(
            step(run, "schedule", |u, r| Box::pin(schedule(u, r))).set_sequence(1),
        )
        .register_transaction(
            step(run, "take payment", |u, r| Box::pin(take_payment(u, r))).set_sequence(2),
        )
        .register_transaction(
            step(run, "complete", |u, r| Box::pin(complete(u, r))).set_sequence(3),
        )
}
