//! Anonymous visitors: the shop list, a shop's page, free slots for a date.

use std::sync::Arc;

use goose::prelude::*;
use rand::Rng;
use serde_json::json;

use super::{Run, SHOP_PAGE, SLOTS, Visitor, address_of, call, date_in, offers, op, pick, step};
use crate::api::Identity;

const NAME: &str = "browse";

#[derive(Default)]
struct Journey {
    slug: Option<String>,
    offers: Vec<(String, String)>,
}

fn visitor(user: &mut GooseUser) -> &mut Visitor<Journey> {
    Visitor::of(user, |index| (Identity::anonymous(address_of(index)), Journey::default()))
}

const SHOPS: &str = "query ShopList($search: String) {
  shops(first: 20, search: $search) { totalCount nodes { id slug name address } }
}";

/// Lists shops, now and then searching by part of a name.
async fn shops(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let (who, search) = {
        let v = visitor(user);
        let search = v
            .rng
            .random_bool(0.25)
            .then(|| ["shop", "barber", "cut", "1"][v.rng.random_range(0..4)]);
        (v.who.clone(), search)
    };
    let reply =
        call(user, &run, &who, &op(NAME, "shops"), SHOPS, json!({ "search": search })).await?;
    let Some(data) = reply.data() else { return Ok(()) };
    let slugs: Vec<String> = data["shops"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|shop| shop["slug"].as_str().map(str::to_owned))
        .collect();
    let v = visitor(user);
    // Mostly a listed shop; sometimes one of the prepared ones, as if from
    // a link.
    v.journey.slug = if slugs.is_empty() || v.rng.random_bool(0.3) {
        pick(&mut v.rng, &run.fixture.shops).map(|shop| shop.slug.clone())
    } else {
        pick(&mut v.rng, &slugs).cloned()
    };
    Ok(())
}

/// Opens the chosen shop's page.
async fn shop(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let (who, slug) = {
        let v = visitor(user);
        (v.who.clone(), v.journey.slug.clone())
    };
    let Some(slug) = slug else { return Ok(()) };
    let reply =
        call(user, &run, &who, &op(NAME, "shop"), SHOP_PAGE, json!({ "slug": slug })).await?;
    visitor(user).journey.offers =
        reply.data().map(|data| offers(&data["shop"])).unwrap_or_default();
    Ok(())
}

/// Looks at free slots of a barber for a service on a day this week.
async fn slots(user: &mut GooseUser, run: Arc<Run>) -> TransactionResult {
    let (who, choice) = {
        let v = visitor(user);
        let choice = pick(&mut v.rng, &v.journey.offers).cloned();
        let days = v.rng.random_range(0..7);
        (v.who.clone(), choice.map(|c| (c, days)))
    };
    let Some(((barber, service), days)) = choice else { return Ok(()) };
    let variables = json!({ "barber": barber, "service": service, "date": date_in(days) });
    call(user, &run, &who, &op(NAME, "availableSlots"), SLOTS, variables).await?;
    Ok(())
}

pub fn scenario(run: &Arc<Run>) -> Scenario {
    scenario!(NAME)
        .register_transaction(step(run, "shops", |u, r| Box::pin(shops(u, r))).set_sequence(1))
        .register_transaction(step(run, "shop", |u, r| Box::pin(shop(u, r))).set_sequence(2))
        .register_transaction(step(run, "slots", |u, r| Box::pin(slots(u, r))).set_sequence(3))
}
