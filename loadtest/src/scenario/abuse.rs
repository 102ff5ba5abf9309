//! A scraper that ignores think time and hammers free slots from one
//! address: the rate limiter should refuse most of it with 429, and the
//! report counts those refusals apart from errors.

use std::sync::Arc;

use goose::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;

use super::{Run, SCRAPER_PAUSE, SLOTS, aim, call, date_in, op, pick, step};
use crate::api::Identity;

const NAME: &str = "abuse";

/// Asks for a random prepared barber's slots on a random day.
async fn scrape(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let barbers: Vec<_> = run.fixture.barbers().collect();
    if barbers.is_empty() {
        return Ok(());
    }
    let (shop, barber) = barbers[rng.random_range(0..barbers.len())];
    let Some(service) = pick(&mut rng, &shop.services) else { return Ok(()) };
    // One address, its requests spread over every replica in turn, as a
    // load balancer would: its budget is one wherever they land.
    static SENT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    aim(user, SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let who = Identity::anonymous("192.0.2.66".to_owned());
    let variables = json!({ "barber": barber.id, "service": service.id, "date": date_in(rng.random_range(0..14)) });
    call(user, &run, &who, &op(NAME, "availableSlots"), SLOTS, variables).await?;
    Ok(())
}

pub fn scenario(run: &Arc<Run>) -> Result<Scenario, GooseError> {
    scenario!(NAME)
        .register_transaction(step(run, "scrape", |u, r| Box::pin(scrape(u, r))))
        .set_wait_time(SCRAPER_PAUSE.0, SCRAPER_PAUSE.1)
}
