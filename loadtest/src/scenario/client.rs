//! Clients: sign up or sign in, open a prepared shop, find a free slot,
//! book it, look at their bookings, and now and then cancel or move one.
//! Every booking the server confirms goes into the run's ledger.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use goose::prelude::*;
use rand::Rng;
use serde_json::{Value, json};

use super::{
    Run, SHOP_PAGE, SLOTS, Visitor, address_of, call, date_in, lost_answer, offers, op, pick, step,
};
use crate::{
    api::Identity,
    fixture::{BOOKING_HORIZON_DAYS, PASSWORD},
    gql::Reply,
    ledger::Status,
};

const NAME: &str = "book";

#[derive(Default)]
struct Journey {
    registered: bool,
    /// `(barber, service)` the client chose.
    choice: Option<(String, String)>,
    slots: Vec<DateTime<Utc>>,
    /// The client's confirmed bookings: `(id, barber, service)`.
    mine: Vec<(String, String, String)>,
}

fn visitor(user: &mut GooseUser) -> &mut Visitor<Journey> {
    Visitor::of(user, |index| (Identity::anonymous(address_of(index)), Journey::default()))
}

fn email_of(run: &Run, index: usize) -> String {
    format!("client-{index}@{}.loadtest.test", run.fixture.run_id)
}

const REGISTER: &str =
    "mutation Register($input: RegisterInput!) { register(input: $input) { token user { id } } }";
const LOGIN: &str = "mutation SignIn($email: String!, $password: String!) { login(email: $email, password: $password) { token } }";

/// Signs up once; a returning client (one visit in ten) signs in again.
async fn sign_in(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let index = user.weighted_users_index;
    let (mut who, registered, again) = {
        let v = visitor(user);
        let again = v.rng.random_bool(0.1);
        (v.who.clone(), v.journey.registered, again)
    };
    if registered && who.token.is_some() && !again {
        return Ok(());
    }
    who.token = None;
    let email = email_of(&run, index);
    let reply = if registered {
        let variables = json!({ "email": email, "password": PASSWORD });
        call(user, &run, &who, &op(NAME, "login"), LOGIN, variables).await?
    } else {
        let variables = json!({ "input": {
            "email": email, "password": PASSWORD, "name": format!("Client {index}"),
        }});
        call(user, &run, &who, &op(NAME, "register"), REGISTER, variables).await?
    };
    let v = visitor(user);
    match reply {
        Reply::Data(data) => {
            let field = if registered { "login" } else { "register" };
            v.journey.registered = true;
            v.who.token = data[field]["token"].as_str().map(str::to_owned);
        }
        // An earlier sign-up whose answer was lost: the account exists.
        Reply::Failed(code) if code == "CONFLICT" => v.journey.registered = true,
        Reply::Failed(_) => {}
    }
    Ok(())
}

/// Opens one of the prepared shops and chooses a barber and a service.
async fn shop(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let (who, slug) = {
        let v = visitor(user);
        let slug = pick(&mut v.rng, &run.fixture.shops).map(|shop| shop.slug.clone());
        (v.who.clone(), slug)
    };
    let Some(slug) = slug else { return Ok(()) };
    let reply =
        call(user, &run, &who, &op(NAME, "shop"), SHOP_PAGE, json!({ "slug": slug })).await?;
    let offered = reply.data().map(|data| offers(&data["shop"])).unwrap_or_default();
    let v = visitor(user);
    v.journey.choice = pick(&mut v.rng, &offered).cloned();
    Ok(())
}

fn starts(slots: &Value) -> Vec<DateTime<Utc>> {
    slots
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|slot| slot["startsAt"].as_str())
        .filter_map(|raw| DateTime::parse_from_rfc3339(raw).ok())
        .map(|at| at.with_timezone(&Utc))
        .collect()
}

/// Free slots of the chosen barber on a day of the next three weeks.
async fn slots(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let (who, choice, days) = {
        let v = visitor(user);
        v.journey.slots.clear();
        let days = v.rng.random_range(1..=BOOKING_HORIZON_DAYS);
        (v.who.clone(), v.journey.choice.clone(), days)
    };
    let Some((barber, service)) = choice else { return Ok(()) };
    let variables = json!({ "barber": barber, "service": service, "date": date_in(days) });
    let reply = call(user, &run, &who, &op(NAME, "availableSlots"), SLOTS, variables).await?;
    visitor(user).journey.slots =
        reply.data().map(|data| starts(&data["availableSlots"])).unwrap_or_default();
    Ok(())
}

const CREATE: &str = "mutation CreateBooking($input: CreateBookingInput!) {
  createBooking(input: $input) { id startsAt endsAt status priceCents service { name } barber { displayName } }
}";

/// Books one of the free slots it was shown.
async fn book(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let (who, choice, start) = {
        let v = visitor(user);
        let start = pick(&mut v.rng, &v.journey.slots).copied();
        (v.who.clone(), v.journey.choice.clone(), start)
    };
    let (Some((barber, service)), Some(start), Some(_)) = (choice, start, &who.token) else {
        return Ok(());
    };
    let variables = json!({ "input": {
        "barberId": barber, "serviceId": service, "startsAt": start.to_rfc3339(),
        "notes": "booked by the load test",
    }});
    match call(user, &run, &who, &op(NAME, "createBooking"), CREATE, variables).await? {
        Reply::Data(data) => {
            let booking = &data["createBooking"];
            if let Some(id) = booking["id"].as_str() {
                run.ledger.booked(id, start);
                visitor(user).journey.mine.push((id.to_owned(), barber, service));
            }
        }
        Reply::Failed(code) if lost_answer(&code) => run.ledger.create_unknown(),
        Reply::Failed(_) => {}
    }
    visitor(user).journey.slots.clear();
    Ok(())
}

const MINE: &str = "query MyBookings {
  bookings(status: CONFIRMED, first: 10) {
    totalCount
    nodes { id startsAt endsAt status paymentStatus shop { name } barber { id displayName } service { id name } }
  }
}";

/// Looks at their upcoming bookings.
async fn my_bookings(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let who = visitor(user).who.clone();
    if who.token.is_none() {
        return Ok(());
    }
    call(user, &run, &who, &op(NAME, "myBookings"), MINE, json!({})).await?;
    Ok(())
}

const CANCEL: &str = "mutation CancelBooking($id: ID!, $reason: String) { cancelBooking(id: $id, reason: $reason) { id status } }";
const RESCHEDULE: &str = "mutation RescheduleBooking($id: ID!, $at: DateTime!) { rescheduleBooking(id: $id, startsAt: $at) { id startsAt status } }";

/// One visit in seven cancels a booking, one in ten moves one.
async fn change(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let (who, target, roll, days) = {
        let v = visitor(user);
        let target = pick(&mut v.rng, &v.journey.mine).cloned();
        (v.who.clone(), target, v.rng.random::<f64>(), v.rng.random_range(1..=BOOKING_HORIZON_DAYS))
    };
    let Some((id, barber, service)) = target else { return Ok(()) };
    if roll < 0.15 {
        let variables = json!({ "id": id, "reason": "plans changed" });
        match call(user, &run, &who, &op(NAME, "cancelBooking"), CANCEL, variables).await? {
            Reply::Data(_) => {
                run.ledger.set_status(&id, Status::Cancelled);
                visitor(user).journey.mine.retain(|(mine, ..)| *mine != id);
            }
            Reply::Failed(code) if lost_answer(&code) => run.ledger.uncertain(&id),
            Reply::Failed(_) => {}
        }
    } else if roll < 0.25 {
        let variables = json!({ "barber": barber, "service": service, "date": date_in(days) });
        let reply = call(user, &run, &who, &op(NAME, "availableSlots"), SLOTS, variables).await?;
        let free = reply.data().map(|data| starts(&data["availableSlots"])).unwrap_or_default();
        let Some(at) = pick(&mut visitor(user).rng, &free).copied() else { return Ok(()) };
        let variables = json!({ "id": id, "at": at.to_rfc3339() });
        match call(user, &run, &who, &op(NAME, "rescheduleBooking"), RESCHEDULE, variables).await? {
            Reply::Data(_) => run.ledger.rescheduled(&id, at),
            Reply::Failed(code) if lost_answer(&code) => run.ledger.uncertain(&id),
            Reply::Failed(_) => {}
        }
    }
    Ok(())
}

pub fn scenario(run: &Arc<Run>) -> Scenario {
    scenario!(NAME)
        .register_transaction(step(run, "sign in", |u, r| Box::pin(sign_in(u, r))).set_sequence(1))
        .register_transaction(step(run, "shop", |u, r| Box::pin(shop(u, r))).set_sequence(2))
        .register_transaction(step(run, "slots", |u, r| Box::pin(slots(u, r))).set_sequence(3))
        .register_transaction(step(run, "book", |u, r| Box::pin(book(u, r))).set_sequence(4))
        .register_transaction(
            step(run, "my bookings", |u, r| Box::pin(my_bookings(u, r))).set_sequence(5),
        )
        .register_transaction(step(run, "change", |u, r| Box::pin(change(u, r))).set_sequence(6))
}
