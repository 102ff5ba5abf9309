//! The shops a run books into, made through the API before the load
//! starts: an owner per shop, barbers with accounts of their own, a menu and
//! long opening hours, so a run works against any fresh server.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use chrono::Days;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

use crate::api::{Api, Identity};

/// The password of every account the suite opens.
pub const PASSWORD: &str = "loadtest-password";
/// Barbers per prepared shop.
const BARBERS_PER_SHOP: usize = 4;
/// Minutes kept free after every appointment in prepared shops.
pub const BUFFER_MINUTES: i64 = 5;
/// How far ahead clients look for a slot, in days (the shops allow 30).
pub const BOOKING_HORIZON_DAYS: i64 = 21;

/// The prepared shops of one run.
#[derive(Debug)]
pub struct Fixture {
    pub run_id: String,
    pub shops: Vec<Shop>,
}

#[derive(Debug)]
pub struct Shop {
    pub id: String,
    pub slug: String,
    pub owner: Identity,
    pub barbers: Vec<Barber>,
    pub services: Vec<Service>,
}

#[derive(Debug)]
pub struct Barber {
    pub id: String,
    /// Signed in, for the barbers who have an account.
    pub account: Option<Identity>,
}

#[derive(Debug)]
pub struct Service {
    pub id: String,
}

impl Fixture {
    /// Every prepared barber with an account, with their shop.
    pub fn barbers_with_accounts(&self) -> impl Iterator<Item = (&Shop, &Barber)> {
        self.barbers().filter(|(_, barber)| barber.account.is_some())
    }

    /// Every prepared barber with their shop.
    pub fn barbers(&self) -> impl Iterator<Item = (&Shop, &Barber)> {
        self.shops.iter().flat_map(|shop| shop.barbers.iter().map(move |barber| (shop, barber)))
    }
}

/// Distinct source addresses for the accounts made while preparing, so the
/// per-IP sign-up limit sees many clients (as it would in production).
static NEXT_PREP_ADDRESS: AtomicU32 = AtomicU32::new(1);

fn prep_address() -> String {
    let n = NEXT_PREP_ADDRESS.fetch_add(1, Ordering::Relaxed);
    format!("172.16.{}.{}", (n / 250) % 250, n % 250 + 1)
}

/// Makes `count` shops, eight at a time, with `accounts` of their barbers
/// able to sign in; with `warm`, each owner has opened the dashboard.
pub async fn prepare(
    api: &Api,
    run_id: &str,
    count: usize,
    accounts: usize,
    warm: bool,
) -> anyhow::Result<Fixture> {
    let shops = stream::iter(0..count)
        .map(|n| prepare_shop(api, run_id, n, accounts, warm))
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(Fixture { run_id: run_id.to_owned(), shops })
}

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token } }";

/// Opens an account and returns it signed in.
pub async fn register(api: &Api, email: &str, name: &str) -> anyhow::Result<Identity> {
    let mut who = Identity::anonymous(prep_address());
    let data = api
        .gql(
            &who,
            REGISTER,
            json!({ "input": { "email": email, "password": PASSWORD, "name": name } }),
        )
        .await
        .with_context(|| format!("registering {email}"))?;
    who.token = Some(token_of(&data["register"])?);
    Ok(who)
}

fn token_of(payload: &Value) -> anyhow::Result<String> {
    payload["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("an AuthPayload without a token"))
}

fn id_of(value: &Value) -> anyhow::Result<String> {
    value["id"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("an answer without id"))
}

async fn prepare_shop(
    api: &Api,
    run_id: &str,
    n: usize,
    accounts: usize,
    warm: bool,
) -> anyhow::Result<Shop> {
    let domain = format!("{run_id}.loadtest.test");
    let owner = register(api, &format!("owner-{n}@{domain}"), &format!("Owner {n}")).await?;
    let slug = format!("lt-{run_id}-{n}");
    let data = api
        .gql(
            &owner,
            "mutation($input: CreateShopInput!) { createShop(input: $input) { id } }",
            json!({ "input": {
                "name": format!("Loadtest {run_id} shop {n}"),
                "slug": slug,
                "timezone": "UTC",
                "address": format!("{n} Benchmark Street"),
            }}),
        )
        .await
        .with_context(|| format!("creating shop {slug}"))?;
    let shop_id = id_of(&data["createShop"])?;
    api.gql(
        &owner,
        "mutation($id: ID!, $input: UpdateShopInput!) { updateShop(id: $id, input: $input) { id } }",
        json!({ "id": shop_id, "input": {
            "slotStepMinutes": 15,
            "minNoticeMinutes": 60,
            "maxAdvanceDays": 30,
            "cancellationCutoffMinutes": 60,
            "bufferMinutes": BUFFER_MINUTES,
        }}),
    )
    .await
    .context("setting the shop's booking policy")?;

    let mut barbers = Vec::with_capacity(BARBERS_PER_SHOP);
    for k in 0..BARBERS_PER_SHOP {
        let email = format!("barber-{n}-{k}@{domain}");
        let account = if k < accounts {
            Some(register(api, &email, &format!("Barber {n}-{k}")).await?)
        } else {
            None
        };
        let data = api
            .gql(
                &owner,
                "mutation($input: AddBarberInput!) { addBarber(input: $input) { id } }",
                json!({ "input": {
                    "shopId": shop_id,
                    "displayName": format!("Barber {k}"),
                    "userEmail": account.as_ref().map(|_| email),
                }}),
            )
            .await
            .context("adding a barber")?;
        let id = id_of(&data["addBarber"])?;
        if let Some(account) = &account {
            api.gql(
                account,
                "mutation($id: ID!) { acceptBarberInvite(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await
            .context("accepting the barber invitation")?;
        }
        let hours: Vec<Value> = (1..=7)
            .map(|weekday| json!({ "weekday": weekday, "opensAt": "08:00", "closesAt": "20:00" }))
            .collect();
        api.gql(
            &owner,
            "mutation($barber: ID!, $hours: [WorkingHoursInput!]!) { setWorkingHours(barberId: $barber, hours: $hours) { id } }",
            json!({ "barber": id, "hours": hours }),
        )
        .await
        .context("setting working hours")?;
        barbers.push(Barber { id, account });
    }

    let barber_ids: Vec<&str> = barbers.iter().map(|b| b.id.as_str()).collect();
    let mut services = Vec::new();
    for (name, minutes, price) in
        [("Haircut", 30, 2_500), ("Beard trim", 15, 1_500), ("Cut and beard", 45, 3_800)]
    {
        let data = api
            .gql(
                &owner,
                "mutation($input: CreateServiceInput!) { createService(input: $input) { id } }",
                json!({ "input": {
                    "shopId": shop_id,
                    "name": name,
                    "durationMinutes": minutes,
                    "priceCents": price,
                    "currency": "USD",
                    "barberIds": barber_ids,
                }}),
            )
            .await
            .context("adding a service")?;
        services.push(Service { id: id_of(&data["createService"])? });
    }
    if warm {
        // The widest ranges the owners ask for cover every other one's days.
        let today = chrono::Utc::now().date_naive();
        for (from, to) in [(today - Days::new(364), today), (today, today + Days::new(13))] {
            api.gql(
                &owner,
                crate::scenario::dashboard::DASHBOARD,
                json!({ "shop": shop_id, "from": from.to_string(), "to": to.to_string() }),
            )
            .await
            .context("opening the dashboard")?;
        }
    }
    Ok(Shop { id: shop_id, slug, owner, barbers, services })
}
