//! The user journeys, as goose scenarios: each step is a transaction, a
//! user pauses for its think time between steps and starts over at the end.

mod abuse;
mod browse;
mod client;
pub(crate) mod dashboard;
mod staff;

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use goose::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::Value;

use crate::{
    api::Identity,
    cli::Options,
    fixture::Fixture,
    gql::{self, Reply, Tally},
    ledger::Ledger,
    mix::Mix,
};

/// What every virtual user of one run shares.
#[derive(Debug)]
pub struct Run {
    pub fixture: Fixture,
    pub ledger: Ledger,
    pub tally: Tally,
    /// Hands out the prepared barbers' and owners' accounts in turn, so
    /// that two users share one only when there are more users than
    /// accounts.
    pub seats: Seats,
}

/// Turn counters for handing out accounts.
#[derive(Debug, Default)]
pub struct Seats {
    barbers: std::sync::atomic::AtomicUsize,
    owners: std::sync::atomic::AtomicUsize,
}

impl Seats {
    fn next_barber(&self) -> usize {
        self.barbers.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn next_owner(&self) -> usize {
        self.owners.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// A virtual user's own state between steps: who it is, its dice, and what
/// its journey has seen so far.
struct Visitor<S> {
    who: Identity,
    rng: StdRng,
    journey: S,
}

/// The servers of the run (several for replicas behind no balancer):
/// each user talks to one, in turn by its index.
static TARGETS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// Points `user` at the `n`th target, in turn (nothing with one target).
fn aim(user: &mut GooseUser, n: usize) {
    let targets = TARGETS.read().unwrap_or_else(|e| e.into_inner());
    if targets.len() > 1 {
        // A target that parsed once (`Options::validate`) parses.
        let _ = user.set_base_url(&targets[n % targets.len()]);
    }
}

impl<S: Send + Sync + 'static> Visitor<S> {
    /// The state of `user`, made on first use from its index.
    fn of(user: &mut GooseUser, start: impl FnOnce(usize) -> (Identity, S)) -> &mut Self {
        if user.get_session_data::<Self>().is_none() {
            let index = user.weighted_users_index;
            aim(user, index);
            let rng = StdRng::seed_from_u64(index as u64 ^ 0x5EED);
            let (who, journey) = start(index);
            user.set_session_data(Self { who, rng, journey });
        }
        user.get_session_data_unchecked_mut::<Self>()
    }
}

/// The address a virtual user sends from (in `X-Forwarded-For`): one of its
/// own in 10.0.0.0/8.
fn address_of(index: usize) -> String {
    let n = index + 1;
    format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

/// Calls the server as `who` and measures it under `scenario op`.
async fn call(
    user: &mut GooseUser,
    run: &Run,
    who: &Identity,
    name: &str,
    query: &str,
    variables: Value,
) -> Result<Reply, Box<TransactionError>> {
    gql::call(user, &run.tally, who, name, query, variables).await
}

type StepFuture<'r> = Pin<Box<dyn Future<Output = TransactionResult> + Send + 'r>>;

/// A named step that gets the run's shared state.
fn step<F>(run: &Arc<Run>, name: &str, f: F) -> Transaction
where
    F: for<'r> Fn(&'r mut GooseUser, Arc<Run>) -> StepFuture<'r> + Send + Sync + 'static,
{
    let run = Arc::clone(run);
    Transaction::new(Arc::new(move |user: &mut GooseUser| f(user, Arc::clone(&run)))).set_name(name)
}

/// The scenarios of a run, each weighted by its number of users so that
/// goose's round robin gives every part exactly its share.
pub fn scenarios(
    mix: &Mix,
    options: &Options,
    run: &Arc<Run>,
) -> Result<Vec<Scenario>, GooseError> {
    options.target.clone_into(&mut TARGETS.write().unwrap_or_else(|e| e.into_inner()));
    let think = |scenario: Scenario| scenario.set_wait_time(options.think_min, options.think_max);
    let parts = [
        (mix.browsers, think(browse::scenario(run))?),
        (mix.clients, think(client::scenario(run))?),
        (mix.owners, think(dashboard::scenario(run))?),
        (mix.barbers, think(staff::scenario(run))?),
        (mix.scrapers, abuse::scenario(run)?),
    ];
    parts
        .into_iter()
        .filter(|(users, _)| *users > 0)
        .map(|(users, scenario)| scenario.set_weight(users))
        .collect()
}

/// A uniformly chosen element.
fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[rng.random_range(0..items.len())])
}

/// The name under which goose measures an operation of a scenario.
fn op(scenario: &str, operation: &str) -> String {
    format!("{scenario} {operation}")
}

/// Whether a failed write may still have happened: only a refusal with one
/// of the API's own codes for "not done" says for sure that it did not (a
/// lost answer, a cut-off request or an internal error does not).
fn lost_answer(code: &str) -> bool {
    !matches!(
        code,
        "OVERLOADED"
            | "RATE_LIMITED"
            | "CONFLICT"
            | "BAD_USER_INPUT"
            | "NOT_FOUND"
            | "FORBIDDEN"
            | "UNAUTHENTICATED"
            | "QUERY_TOO_COMPLEX"
    )
}

const SLOTS: &str = "query FreeSlots($barber: ID!, $service: ID!, $date: Date!) {
  availableSlots(barberId: $barber, serviceId: $service, date: $date) { startsAt endsAt }
}";

/// A shop's page: its menu, who offers what, and the barbers' weeks.
const SHOP_PAGE: &str = "query ShopPage($slug: String!) {
  shop(slug: $slug) {
    id name address timezone
    services { id name durationMinutes priceCents currency barbers { id } }
    barbers(first: 20) { totalCount nodes { id displayName bio workingHours { weekday opensAt closesAt } } }
  }
}";

/// `(barber, service)` pairs a shop page offers.
fn offers(shop: &Value) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for service in shop["services"].as_array().into_iter().flatten() {
        let Some(service_id) = service["id"].as_str() else { continue };
        for barber in service["barbers"].as_array().into_iter().flatten() {
            if let Some(barber_id) = barber["id"].as_str() {
                pairs.push((barber_id.to_owned(), service_id.to_owned()));
            }
        }
    }
    pairs
}

/// A date `days` from today (UTC, the prepared shops' zone).
fn date_in(days: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Days::new(days.max(0) as u64)).to_string()
}

/// How long the abusive scraper waits between requests.
const SCRAPER_PAUSE: (Duration, Duration) = (Duration::from_millis(25), Duration::from_millis(40));
