//! What the caches keep is never stale: a write is seen by the next read,
//! on this server and, through Redis, on every replica.
//!
//! Anonymous answers, each signed-in user's answers and the identities of
//! tokens are kept; these tests check first that they really are (a
//! repeated read costs no statement), then that the write in between shows.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{TestApp, TestUser, first_error},
    shop_fixture::{ACCEPT_INVITE, SLOTS, ShopFixture},
};

/// A second server on the same database and Redis; without Redis, the app
/// itself (replicas share what they keep through Redis).
async fn second(app: &TestApp) -> Option<TestApp> {
    match app.state.cache.health().backend {
        "redis" => Some(app.replica().await),
        _ => None,
    }
}

/// POSTs anonymously; the body and the `Cache-Control` header.
async fn anonymous(app: &TestApp, query: &str, variables: Value) -> (Value, Option<String>) {
    let response = app.post_graphql(None, query, variables).await;
    assert_eq!(response.status(), 200);
    let cache_control =
        response.headers().get("cache-control").map(|value| value.to_str().unwrap().to_owned());
    (response.json().await.unwrap(), cache_control)
}

/// The free slots' start times, read twice: the second read is the kept
/// answer, which costs no statement.
async fn slots_kept(app: &TestApp, shop: &ShopFixture, date: &str) -> Vec<DateTime<Utc>> {
    let variables = json!({ "barber": shop.barber_id, "service": shop.service_id, "date": date });
    let (first, cache_control) = anonymous(app, SLOTS, variables.clone()).await;
    assert_eq!(cache_control.as_deref(), Some("max-age=5"), "{first:#}");
    let before = app.statements();
    let (again, _) = anonymous(app, SLOTS, variables).await;
    assert_eq!(app.statements() - before, 0, "the second read is the kept answer");
    assert_eq!(first["data"], again["data"]);
    again["data"]["availableSlots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|slot| slot["startsAt"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// POSTs as `user`; the body and the `Cache-Control` header.
async fn as_user(app: &TestApp, user: &TestUser, query: &str, variables: Value) -> (Value, String) {
    let bearer = format!("Bearer {}", user.token);
    let response = app.post_graphql(Some(&bearer), query, variables).await;
    assert_eq!(response.status(), 200);
    let cache_control = response.headers()["cache-control"].to_str().unwrap().to_owned();
    (response.json().await.unwrap(), cache_control)
}

/// A signed-in read, twice: the second is the kept answer, which costs no
/// statement, and no cache on the way may keep it.
async fn kept_as(app: &TestApp, user: &TestUser, query: &str, variables: Value) -> Value {
    let first = app.data_as(user, query, variables.clone()).await;
    let before = app.statements();
    let (again, cache_control) = as_user(app, user, query, variables).await;
    assert_eq!(cache_control, "no-store");
    assert_eq!(app.statements() - before, 0, "the second read of {query} is the kept answer");
    assert_eq!(first, again["data"], "{again:#}");
    first
}

const SHOP_PAGE: &str = "query($id: ID!) { shop(id: $id) { name barbers { nodes { displayName services { name priceCents } } } } }";

api_test!(
    a_write_shows_in_the_next_public_read_on_every_replica,
    [sqlite, sqlite_redis, postgres_redis],
    |app| {
        let other = second(&app).await;
        let other = other.as_ref().unwrap_or(&app);
        let shop = ShopFixture::open(&app, "fresh", "UTC", "09:00", "17:00").await;
        let date = shop.upcoming_weekday();
        let start = shop.at(date, 10, 0);
        for server in [&app, other] {
            let free = slots_kept(server, &shop, &date.to_string()).await;
            assert!(free.contains(&start), "{start} is free: {free:?}");
        }
        // A booking takes the slot out of the very next answer, everywhere.
        let client = app.register("client@fresh.test", "correct horse battery", "Client").await;
        let booked = shop.book(&app, &client, start).await;
        assert!(booked.get("errors").is_none(), "{booked:#}");
        for server in [&app, other] {
            let free = slots_kept(server, &shop, &date.to_string()).await;
            assert!(!free.contains(&start), "{start} is taken: {free:?}");
        }

        // A shop's page: kept, then a new price shows at once.
        let (page, cache_control) =
            anonymous(other, SHOP_PAGE, json!({ "id": shop.shop_id })).await;
        assert_eq!(cache_control.as_deref(), Some("max-age=10"));
        assert_eq!(page["data"]["shop"]["barbers"]["nodes"][0]["services"][0]["priceCents"], 2500);
        let before = other.statements();
        anonymous(other, SHOP_PAGE, json!({ "id": shop.shop_id })).await;
        assert_eq!(other.statements() - before, 0, "the shop's page is kept");
        app.data_as(
            &shop.owner,
            "mutation($id: ID!) { updateService(id: $id, input: { priceCents: 3100 }) { id } }",
            json!({ "id": shop.service_id }),
        )
        .await;
        let (page, _) = anonymous(other, SHOP_PAGE, json!({ "id": shop.shop_id })).await;
        assert_eq!(page["data"]["shop"]["barbers"]["nodes"][0]["services"][0]["priceCents"], 3100);
        // So does a renamed shop in the list.
        let list = "{ shops(first: 50) { nodes { name } } }";
        let (before_rename, _) = anonymous(other, list, json!({})).await;
        assert!(before_rename.to_string().contains("Shop fresh"));
        shop.policy(&app, json!({ "name": "Fresh Cuts" })).await;
        let (renamed, _) = anonymous(other, list, json!({})).await;
        assert!(renamed.to_string().contains("Fresh Cuts"), "{renamed:#}");
    }
);

api_test!(
    a_new_barber_sees_the_shops_schedule_on_their_very_next_request,
    [sqlite, sqlite_redis, postgres_redis],
    |app| {
        let other = second(&app).await;
        let other = other.as_ref().unwrap_or(&app);
        let shop = ShopFixture::open(&app, "join", "UTC", "09:00", "17:00").await;
        let newcomer = app.register("new@join.test", "correct horse battery", "Newcomer").await;
        let schedule = "query($shop: ID!) { bookings(shopId: $shop) { totalCount } }";
        let roles = "{ viewer { memberships { role shop { name } } } }";
        // Known on the other server, as nobody's barber; the answer kept.
        let data = kept_as(other, &newcomer, roles, json!({})).await;
        assert_eq!(data["viewer"]["memberships"], json!([]));
        let before = other.statements();
        let refused = other.gql_as(&newcomer, schedule, json!({ "shop": shop.shop_id })).await;
        assert_eq!(first_error(&refused).0, "FORBIDDEN", "{refused:#}");
        assert_eq!(other.statements() - before, 0, "the token's identity is kept");
        // Invited and accepted here; there, the very next request sees it.
        let added = app
            .data_as(
                &shop.owner,
                "mutation($input: AddBarberInput!) { addBarber(input: $input) { id } }",
                json!({ "input": { "shopId": shop.shop_id, "displayName": "Nova", "userEmail": newcomer.email } }),
            )
            .await;
        app.data_as(&newcomer, ACCEPT_INVITE, json!({ "id": added["addBarber"]["id"] })).await;
        let data = other.data_as(&newcomer, schedule, json!({ "shop": shop.shop_id })).await;
        assert_eq!(data["bookings"]["totalCount"], 0);
        let data = kept_as(other, &newcomer, roles, json!({})).await;
        assert_eq!(
            data["viewer"]["memberships"],
            json!([{ "role": "BARBER", "shop": { "name": "Shop join" } }])
        );
        // Signing out there ends the token here at once, too.
        let (status, body) = other
            .gql_with_header(
                &format!("Bearer {}", newcomer.token),
                "mutation { logout }",
                json!({}),
            )
            .await;
        assert_eq!((status, &body["data"]["logout"]), (200, &json!(true)), "{body:#}");
        let (status, body) =
            app.gql_with_header(&format!("Bearer {}", newcomer.token), roles, json!({})).await;
        assert_eq!((status, first_error(&body).0.as_str()), (401, "UNAUTHENTICATED"), "{body:#}");
    }
);

api_test!(
    a_booking_shows_in_each_viewers_next_read_on_every_replica,
    [sqlite, sqlite_redis, postgres_redis],
    |app| {
        let other = second(&app).await;
        let other = other.as_ref().unwrap_or(&app);
        let shop = ShopFixture::open(&app, "desk", "UTC", "09:00", "17:00").await;
        let client = app.register("client@desk.test", "correct horse battery", "Client").await;
        // The owner's page of the barber, the barber's schedule, the
        // client's own bookings: each kept for its user.
        let page = "query($id: ID!) { node(id: $id) { ... on Barber { bookings(first: 50) { totalCount nodes { status client { name } service { name priceCents } } } } } }";
        let schedule =
            "query($shop: ID!) { bookings(shopId: $shop) { totalCount nodes { status } } }";
        let own = "{ bookings { totalCount nodes { status } } }";
        let reads = [
            (&shop.owner, page, json!({ "id": shop.barber_id })),
            (&shop.barber_user, schedule, json!({ "shop": shop.shop_id })),
            (&client, own, json!({})),
        ];
        let shows = |data: &Value, text: &str| data.to_string().contains(text);
        for server in [&app, other] {
            for (user, query, variables) in &reads {
                let data = kept_as(server, user, query, variables.clone()).await;
                assert!(shows(&data, "\"totalCount\":0"), "{data:#}");
            }
        }
        // Booked here: the next read of each, on every server, shows it.
        let start = shop.at(shop.upcoming_weekday(), 10, 0);
        let booked = shop.book(&app, &client, start).await;
        let id = booked["data"]["createBooking"]["id"].clone();
        assert!(id.is_string(), "{booked:#}");
        for server in [&app, other] {
            for (user, query, variables) in &reads {
                let data = kept_as(server, user, query, variables.clone()).await;
                assert!(shows(&data, "\"totalCount\":1"), "{data:#}");
                assert!(shows(&data, "CONFIRMED"), "{data:#}");
            }
        }
        // Cancelled by the shop: the client sees it at once too.
        app.data_as(
            &shop.owner,
            "mutation($id: ID!) { cancelBooking(id: $id, reason: \"closed\") { id } }",
            json!({ "id": id }),
        )
        .await;
        for server in [&app, other] {
            for (user, query, variables) in &reads {
                let data = kept_as(server, user, query, variables.clone()).await;
                assert!(shows(&data, "CANCELLED"), "{data:#}");
            }
        }
        // A new price shows in the owner's page, kept or not.
        app.data_as(
            &shop.owner,
            "mutation($id: ID!) { updateService(id: $id, input: { priceCents: 3100 }) { id } }",
            json!({ "id": shop.service_id }),
        )
        .await;
        let data = kept_as(other, &shop.owner, page, json!({ "id": shop.barber_id })).await;
        assert!(shows(&data, "3100"), "{data:#}");
    }
);

api_test!(kept_answers_are_their_users_and_never_what_no_scope_covers, [sqlite], |app| {
    let shop = ShopFixture::open(&app, "mine", "UTC", "09:00", "17:00").await;
    // The same question, each user their own answer.
    let me = "{ viewer { email } shops { totalCount } }";
    for user in [&shop.owner, &shop.barber_user, &shop.owner] {
        let data = kept_as(&app, user, me, json!({})).await;
        assert_eq!(data["viewer"]["email"], user.email.as_str());
    }
    // Invitations follow an email, which no scope covers: never kept, and
    // a new one shows at once.
    let newcomer = app.register("new@mine.test", "correct horse battery", "Newcomer").await;
    let invites = "{ viewer { barberInvites { displayName } } }";
    let data = app.data_as(&newcomer, invites, json!({})).await;
    assert_eq!(data["viewer"]["barberInvites"], json!([]));
    app.data_as(
        &shop.owner,
        "mutation($input: AddBarberInput!) { addBarber(input: $input) { id } }",
        json!({ "input": { "shopId": shop.shop_id, "displayName": "Nova", "userEmail": newcomer.email } }),
    )
    .await;
    let data = app.data_as(&newcomer, invites, json!({})).await;
    assert_eq!(data["viewer"]["barberInvites"], json!([{ "displayName": "Nova" }]));
    // Time off that has not ended yet, relative to now: kept until the
    // first one ends, with no write to say so.
    let now = Utc::now();
    app.data_as(
        &shop.owner,
        "mutation($input: AddTimeOffInput!) { addTimeOff(input: $input) { id } }",
        json!({ "input": { "barberId": shop.barber_id, "startsAt": (now - chrono::Duration::hours(1)).to_rfc3339(), "endsAt": (now + chrono::Duration::milliseconds(1500)).to_rfc3339() } }),
    )
    .await;
    let off = "query($id: ID!) { node(id: $id) { ... on Barber { timeOff { reason } } } }";
    let variables = json!({ "id": shop.barber_id });
    let data = kept_as(&app, &shop.owner, off, variables.clone()).await;
    assert_eq!(data["node"]["timeOff"].as_array().unwrap().len(), 1, "{data:#}");
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let data = app.data_as(&shop.owner, off, variables).await;
    assert_eq!(data["node"]["timeOff"], json!([]), "ended");
    // The rate limit is the client's own: never kept, never cached.
    let query = "{ shops { totalCount } rateLimit { remaining } }";
    let (_, cache_control) = anonymous(&app, query, json!({})).await;
    assert_eq!(cache_control.as_deref(), Some("no-cache"));
    let before = app.statements();
    anonymous(&app, query, json!({})).await;
    assert!(app.statements() > before, "computed again");
    // A document with a mutation in it is never kept, even when its cache
    // hints (weighed over every operation) say public: each login runs.
    let both = "query A { shops { totalCount } } mutation B { login(email: \"owner@mine.test\", password: \"correct horse battery\") { token } }";
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let response = app
            .client
            .post(app.url("/graphql"))
            .json(&json!({ "query": both, "operationName": "B" }))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        tokens.push(body["data"]["login"]["token"].as_str().unwrap().to_owned());
    }
    assert_ne!(tokens[0], tokens[1], "each login ran");
    // An answer with an error is not kept either.
    let missing = "query($id: ID!) { barber(id: $id) { displayName } }";
    let variables = json!({ "id": shop.shop_id });
    let (refused, cache_control) = anonymous(&app, missing, variables.clone()).await;
    assert!(refused.get("errors").is_some());
    assert_eq!(cache_control, None);
});

// A kept answer is the user's, whichever of their sessions asked: one
// ended since is refused, though another computed the answer afresh.
api_test!(a_kept_answer_is_never_served_to_an_ended_session, [sqlite, sqlite_redis], |app| {
    let shop = ShopFixture::open(&app, "ended", "UTC", "09:00", "17:00").await;
    let [phone, tablet, desk] = [
        app.login(&shop.owner.email, "correct horse battery").await,
        app.login(&shop.owner.email, "correct horse battery").await,
        app.login(&shop.owner.email, "correct horse battery").await,
    ];
    let schedule = "query($shop: ID!) { bookings(shopId: $shop) { totalCount } }";
    let variables = json!({ "shop": shop.shop_id });
    for session in [&phone, &tablet, &desk] {
        kept_as(&app, session, schedule, variables.clone()).await;
    }
    // A new password ends every other session.
    app.data_as(
        &desk,
        "mutation { changePassword(current: \"correct horse battery\", new: \"stapled battery horse\") }",
        json!({}),
    )
    .await;
    // The desk's next read computes the answer afresh and keeps it...
    kept_as(&app, &desk, schedule, variables.clone()).await;
    // ...which the tablet's ended session never gets, nor the phone's a
    // persisted query looked up for it.
    let (status, body) =
        app.gql_with_header(&format!("Bearer {}", tablet.token), schedule, variables).await;
    assert_eq!((status, first_error(&body).0.as_str()), (401, "UNAUTHENTICATED"), "{body:#}");
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&phone.token)
        .json(&json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "0".repeat(64) } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
});

/// The free slots `server` shows anonymously on `date`, as (start, end).
async fn open_slots(
    server: &TestApp,
    shop: &ShopFixture,
    date: &str,
) -> Result<Vec<(String, String)>, String> {
    let variables = json!({ "barber": shop.barber_id, "service": shop.service_id, "date": date });
    let response = server.gql(SLOTS, variables).await;
    if response.get("errors").is_some() {
        return Err(first_error(&response).0);
    }
    Ok(response["data"]["availableSlots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|slot| {
            (
                slot["startsAt"].as_str().unwrap().to_owned(),
                slot["endsAt"].as_str().unwrap().to_owned(),
            )
        })
        .collect())
}

// What a barber offers (the barber, the service, the shop's policy, the
// hours) is kept in each process while the shop's version stands: every
// kind of write to it shows in the very next free slots, on every replica.
api_test!(
    free_slots_follow_every_change_to_what_the_barber_offers,
    [sqlite, postgres, sqlite_redis, postgres_redis],
    |app| {
        let other = second(&app).await;
        let other = other.as_ref().unwrap_or(&app);
        let shop = ShopFixture::open(&app, "offer", "UTC", "09:00", "17:00").await;
        let date = shop.upcoming_weekday().to_string();
        let starts = |slots: &[(String, String)]| -> Vec<String> {
            slots.iter().map(|(start, _)| start[11..16].to_owned()).collect()
        };
        for server in [&app, other] {
            let slots = open_slots(server, &shop, &date).await.unwrap();
            assert_eq!(slots.len(), 31, "09:00 to 16:30 every 15 minutes: {slots:?}");
        }
        // Hours.
        shop.set_hours(&app, (1..=7).map(|d| (d, "09:00", "11:00")).collect()).await;
        for server in [&app, other] {
            let slots = open_slots(server, &shop, &date).await.unwrap();
            assert_eq!(
                starts(&slots),
                ["09:00", "09:15", "09:30", "09:45", "10:00", "10:15", "10:30"]
            );
        }
        // The shop's policy: its slot step.
        shop.policy(&app, json!({ "slotStepMinutes": 60 })).await;
        for server in [&app, other] {
            assert_eq!(
                starts(&open_slots(server, &shop, &date).await.unwrap()),
                ["09:00", "10:00"]
            );
        }
        // The service's duration.
        app.data_as(
            &shop.owner,
            "mutation($id: ID!) { updateService(id: $id, input: { durationMinutes: 90 }) { id } }",
            json!({ "id": shop.service_id }),
        )
        .await;
        for server in [&app, other] {
            let slots = open_slots(server, &shop, &date).await.unwrap();
            assert_eq!(slots.len(), 1, "only 09:00 fits 90 minutes: {slots:?}");
            assert_eq!(&slots[0].1[11..16], "10:30");
        }
        // Whether the barber takes bookings.
        let update_barber = "mutation($id: ID!, $active: Boolean!) { updateBarber(id: $id, input: { active: $active }) { id } }";
        app.data_as(&shop.owner, update_barber, json!({ "id": shop.barber_id, "active": false }))
            .await;
        for server in [&app, other] {
            assert_eq!(open_slots(server, &shop, &date).await.unwrap(), []);
        }
        app.data_as(&shop.owner, update_barber, json!({ "id": shop.barber_id, "active": true }))
            .await;
        for server in [&app, other] {
            assert_eq!(open_slots(server, &shop, &date).await.unwrap().len(), 1);
        }
        // Who offers the service.
        app.data_as(
            &shop.owner,
            "mutation($id: ID!) { updateService(id: $id, input: { barberIds: [] }) { id } }",
            json!({ "id": shop.service_id }),
        )
        .await;
        for server in [&app, other] {
            assert_eq!(open_slots(server, &shop, &date).await, Err("BAD_USER_INPUT".to_owned()));
        }
    }
);

// A booking is checked against what the database holds, though free slots
// keep the offer in each process: every kind of write to what the barber
// offers binds the very next booking or move, on every replica, each of
// which had kept the offer for its free slots.
api_test!(
    bookings_follow_every_change_to_what_the_barber_offers,
    [sqlite, postgres, sqlite_redis, postgres_redis],
    |app| {
        let other = second(&app).await;
        let other = other.as_ref().unwrap_or(&app);
        let shop = ShopFixture::open(&app, "booked", "UTC", "09:00", "17:00").await;
        let client = app.register("client@booked.test", "correct horse battery", "Client").await;
        let date = shop.upcoming_weekday();
        let servers = [&app, other];
        // Each server keeps the offer for its free slots, and books once.
        let mut ids = Vec::new();
        for (server, hour) in servers.iter().zip([9, 10]) {
            open_slots(server, &shop, &date.to_string()).await.unwrap();
            let made = shop.book(server, &client, shop.at(date, hour, 0)).await;
            assert_eq!(made["data"]["createBooking"]["priceCents"], 2500, "{made:#}");
            ids.push(made["data"]["createBooking"]["id"].clone());
        }
        let code = |made: &Value| first_error(made).0;
        // The price and the duration: what the next booking is made with.
        app.data_as(
            &shop.owner,
            "mutation($id: ID!) { updateService(id: $id, input: { priceCents: 3100, durationMinutes: 45 }) { id } }",
            json!({ "id": shop.service_id }),
        )
        .await;
        for (server, hour) in servers.iter().zip([11, 12]) {
            let made = shop.book(server, &client, shop.at(date, hour, 0)).await;
            let booking = &made["data"]["createBooking"];
            assert_eq!(booking["priceCents"], 3100, "{made:#}");
            assert_eq!(&booking["endsAt"].as_str().unwrap()[11..16], format!("{hour}:45"));
        }
        // The hours: 13:00 is outside them now, for a booking and a move.
        shop.set_hours(&app, (1..=7).map(|d| (d, "09:00", "13:00")).collect()).await;
        let moved = "mutation($id: ID!, $at: DateTime!) { rescheduleBooking(id: $id, startsAt: $at) { id } }";
        for server in servers {
            let made = shop.book(server, &client, shop.at(date, 13, 0)).await;
            assert_eq!(code(&made), "BAD_USER_INPUT", "{made:#}");
            assert!(first_error(&made).1.contains("working hours"), "{made:#}");
        }
        for (server, id) in servers.into_iter().zip(&ids) {
            let at = shop.at(date, 13, 0).to_rfc3339();
            let response = server.gql_as(&client, moved, json!({ "id": id, "at": at })).await;
            assert_eq!(code(&response), "BAD_USER_INPUT", "{response:#}");
            assert!(first_error(&response).1.contains("working hours"), "{response:#}");
        }
        // The shop's slot step: 09:30 is off the hourly grid.
        shop.policy(&app, json!({ "slotStepMinutes": 60 })).await;
        let next_week = |hour, minute| shop.at(date, hour, minute) + chrono::Duration::days(7);
        for server in servers {
            let made = shop.book(server, &client, next_week(9, 30)).await;
            assert_eq!(code(&made), "BAD_USER_INPUT", "{made:#}");
        }
        // Whether the barber takes bookings.
        let update_barber = "mutation($id: ID!, $active: Boolean!) { updateBarber(id: $id, input: { active: $active }) { id } }";
        let barber = |active| json!({ "id": shop.barber_id, "active": active });
        app.data_as(&shop.owner, update_barber, barber(false)).await;
        for server in servers {
            let made = shop.book(server, &client, next_week(9, 0)).await;
            assert_eq!(code(&made), "BAD_USER_INPUT", "{made:#}");
            assert!(first_error(&made).1.contains("no new bookings"), "{made:#}");
        }
        app.data_as(&shop.owner, update_barber, barber(true)).await;
        // Who offers the service.
        app.data_as(
            &shop.owner,
            "mutation($id: ID!) { updateService(id: $id, input: { barberIds: [] }) { id } }",
            json!({ "id": shop.service_id }),
        )
        .await;
        for server in servers {
            let made = shop.book(server, &client, next_week(9, 0)).await;
            assert_eq!(code(&made), "BAD_USER_INPUT", "{made:#}");
            assert!(first_error(&made).1.contains("does not offer"), "{made:#}");
        }
    }
);

// Computing free slots, with the barber's offer kept: one statement, and
// four calls to Redis (the charge, of the whole cost the document is known
// to have; the kept answer not there, with the versions the computation
// starts from; the versions of the shop and of the barber's slots; keeping
// the answer).
api_test!(
    computed_free_slots_cost_one_statement_and_four_calls_to_redis,
    [sqlite_redis, postgres_redis],
    |app| {
        let shop = ShopFixture::open(&app, "trips", "UTC", "09:00", "17:00").await;
        let date = shop.upcoming_weekday();
        assert_eq!(open_slots(&app, &shop, &date.to_string()).await.unwrap().len(), 31);
        for weeks in 1..=2 {
            let date = (date + chrono::Duration::days(7 * weeks)).to_string();
            let (statements, trips) = (app.statements(), app.state.cache.round_trips());
            assert_eq!(open_slots(&app, &shop, &date).await.unwrap().len(), 31);
            assert_eq!(app.statements() - statements, 1, "the day's bookings and time off");
            assert_eq!(app.state.cache.round_trips() - trips, 4, "calls to Redis, computed");
            let (statements, trips) = (app.statements(), app.state.cache.round_trips());
            assert_eq!(open_slots(&app, &shop, &date).await.unwrap().len(), 31);
            assert_eq!(app.statements() - statements, 0, "kept");
            assert_eq!(app.state.cache.round_trips() - trips, 1, "the charge, with the versions");
        }
    }
);

// A booking, once its document is known: four calls to Redis: the charge,
// with the token's identity; after the commit, the shop's analytics days;
// every kept answer it changes, at one instant (the barber's free slots,
// the shop's staff's answers, the client's own); its event to subscribers.
// No kept answer is looked for, since a mutation's never is.
api_test!(a_booking_costs_four_calls_to_redis, [sqlite_redis, postgres_redis], |app| {
    let shop = ShopFixture::open(&app, "booking-trips", "UTC", "09:00", "17:00").await;
    let client = app.register("client@booking-trips.test", "correct horse battery", "Client").await;
    let date = shop.upcoming_weekday();
    let starts = async || -> Vec<String> {
        let slots = open_slots(&app, &shop, &date.to_string()).await.unwrap();
        slots.into_iter().map(|(start, _)| start[11..16].to_owned()).collect()
    };
    let mut trips = Vec::new();
    for hour in [10, 11, 12] {
        let at = format!("{hour}:00");
        starts().await;
        let statements = app.statements();
        assert!(starts().await.contains(&at));
        assert_eq!(app.statements() - statements, 0, "kept before the booking");
        let before = app.state.cache.round_trips();
        let made = shop.book(&app, &client, shop.at(date, hour, 0)).await;
        assert_eq!(made["data"]["createBooking"]["status"], "CONFIRMED", "{made:#}");
        trips.push(app.state.cache.round_trips() - before);
        // The free slots kept before show the booking at once.
        assert!(!starts().await.contains(&at), "{hour}");
    }
    assert_eq!(trips[1..], [4, 4], "{trips:?}");
});

// What everyone sees is one answer, whoever asks: a signed-in user reads
// the one a browser left, and a browser the one a signed-in user left;
// a booking shows in both at once, and an answer that asks who is asking
// stays each one's own.
api_test!(
    a_signed_in_read_of_what_everyone_sees_is_everyones_answer,
    [sqlite, sqlite_redis, postgres_redis],
    |app| {
        let other = second(&app).await;
        let other = other.as_ref().unwrap_or(&app);
        let shop = ShopFixture::open(&app, "shared", "UTC", "09:00", "17:00").await;
        let client = app.register("client@shared.test", "correct horse battery", "Client").await;
        // The client's token known on both servers.
        for server in [&app, other] {
            server.data_as(&client, "{ viewer { name } }", json!({})).await;
        }
        // Browsed anonymously here; the client's read there is that answer.
        let page = json!({ "id": shop.shop_id });
        let (browsed, _) = anonymous(&app, SHOP_PAGE, page.clone()).await;
        let before = other.statements();
        let (read, cache_control) = as_user(other, &client, SHOP_PAGE, page.clone()).await;
        assert_eq!(other.statements() - before, 0, "everyone's answer: {read:#}");
        assert_eq!(read["data"], browsed["data"]);
        assert_eq!(cache_control, "no-store", "served to one person");

        // Free slots the client computed first are everyone's too.
        let date = shop.upcoming_weekday();
        let start = shop.at(date, 10, 0);
        let slots = json!({ "barber": shop.barber_id, "service": shop.service_id, "date": date.to_string() });
        let starts = |answer: &Value| -> Vec<DateTime<Utc>> {
            let slots = answer["data"]["availableSlots"].as_array().unwrap();
            slots.iter().map(|slot| slot["startsAt"].as_str().unwrap().parse().unwrap()).collect()
        };
        let (computed, _) = as_user(&app, &client, SLOTS, slots.clone()).await;
        assert!(starts(&computed).contains(&start), "{computed:#}");
        let before = other.statements();
        let (browsed, cache_control) = anonymous(other, SLOTS, slots.clone()).await;
        assert_eq!(other.statements() - before, 0, "kept for everyone: {browsed:#}");
        assert_eq!(browsed["data"], computed["data"]);
        assert_eq!(cache_control.as_deref(), Some("max-age=5"));

        // The client books it: the next read of either, anywhere, shows it.
        let booked = shop.book(&app, &client, start).await;
        assert!(booked.get("errors").is_none(), "{booked:#}");
        let taken = |answer: &Value| !starts(answer).contains(&start);
        for server in [&app, other] {
            let (read, _) = as_user(server, &client, SLOTS, slots.clone()).await;
            assert!(taken(&read), "{read:#}");
            let (browsed, _) = anonymous(server, SLOTS, slots.clone()).await;
            assert!(taken(&browsed), "{browsed:#}");
        }

        // An answer that asks who is asking is each one's own.
        let who = "{ viewer { name } shops { totalCount } }";
        let (nobody, _) = anonymous(&app, who, json!({})).await;
        assert_eq!(nobody["data"]["viewer"], Value::Null);
        for server in [&app, other] {
            let (read, _) = as_user(server, &client, who, json!({})).await;
            assert_eq!(read["data"]["viewer"]["name"], "Client", "{read:#}");
        }
        let (read, _) = as_user(other, &shop.owner, who, json!({})).await;
        assert_ne!(read["data"]["viewer"]["name"], "Client", "{read:#}");
        // So is one with what only some may see, though its hints say
        // public: the owner's count of bookings is never anyone else's.
        let staff_only = "query($id: ID!) { shop(id: $id) { name bookings { totalCount } } }";
        let (owners, _) = as_user(&app, &shop.owner, staff_only, page.clone()).await;
        assert_eq!(owners["data"]["shop"]["bookings"]["totalCount"], 1, "{owners:#}");
        for server in [&app, other] {
            let (read, _) = as_user(server, &client, staff_only, page.clone()).await;
            assert_eq!(first_error(&read).0, "FORBIDDEN", "{read:#}");
            let (browsed, _) = anonymous(server, staff_only, page.clone()).await;
            assert_eq!(first_error(&browsed).0, "UNAUTHENTICATED", "{browsed:#}");
        }

        // A token whose session ended is refused, though everyone's answer
        // would serve what it asks.
        let (status, body) = app
            .gql_with_header(&format!("Bearer {}", client.token), "mutation { logout }", json!({}))
            .await;
        assert_eq!((status, &body["data"]["logout"]), (200, &json!(true)), "{body:#}");
        for server in [&app, other] {
            let (status, body) = server
                .gql_with_header(&format!("Bearer {}", client.token), SHOP_PAGE, page.clone())
                .await;
            assert_eq!(
                (status, first_error(&body).0.as_str()),
                (401, "UNAUTHENTICATED"),
                "{body:#}"
            );
        }
    }
);
