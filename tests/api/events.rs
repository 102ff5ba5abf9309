//! Booking events: live subscriptions over WebSocket, across replicas,
//! replayed after a reconnect, and the shop's audit log.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{TestApp, TestUser, first_error, row_id},
    shop_fixture::{ACCEPT_INVITE, ShopFixture},
    ws::{Socket, hears_redis, listening},
};

pub const BOOKING_CHANGED: &str = "subscription($shop: ID!, $after: ID) { bookingChanged(shopId: $shop, after: $after) { id kind at actor { id } booking { id status startsAt barber { id } } } }";
const MY_BOOKING_CHANGED: &str =
    "subscription { myBookingChanged { id kind actor { id } booking { id status } } }";
const SLOTS_CHANGED: &str = "subscription($barber: ID!, $date: Date!, $service: ID) { slotsChanged(barberId: $barber, date: $date, serviceId: $service) { startsAt } }";
const CANCEL: &str = "mutation($id: ID!) { cancelBooking(id: $id) { id status } }";

/// A second server on the same database and Redis, or the app itself
/// without Redis (where one process is all there is).
async fn other_replica(app: &TestApp) -> Option<TestApp> {
    match app.state.cache.health().backend {
        "redis" => {
            let replica = app.replica().await;
            let deadline = Instant::now() + Duration::from_secs(10);
            while !hears_redis(&replica) || !hears_redis(app) {
                assert!(Instant::now() < deadline, "the replicas never heard Redis");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Some(replica)
        }
        _ => None,
    }
}

/// The global id of event `n`, as `after` takes it.
fn row_id_as_event(n: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("BookingEvent:{n}"))
}

/// Books `start` as `client` and returns the booking's id.
async fn book(
    app: &TestApp,
    shop: &ShopFixture,
    client: &TestUser,
    start: chrono::DateTime<chrono::Utc>,
) -> String {
    let booked = shop.book(app, client, start).await;
    assert!(booked.get("errors").is_none(), "{booked:#}");
    booked["data"]["createBooking"]["id"].as_str().unwrap().to_owned()
}

api_test!(
    a_booking_made_on_one_replica_reaches_a_calendar_on_another_at_once,
    [sqlite, postgres, sqlite_redis, postgres_redis],
    |app| {
        let shop = ShopFixture::open(&app, "live", "Europe/London", "09:00", "17:00").await;
        let client = app.register("client@live.test", "correct horse battery", "Client").await;
        let replica = other_replica(&app).await;
        let calendar_app = replica.as_ref().unwrap_or(&app);
        let mut calendar = Socket::open(calendar_app, Some(&shop.owner)).await;
        let id = calendar.subscribe(BOOKING_CHANGED, json!({ "shop": shop.shop_id })).await;
        listening(calendar_app, 1).await;

        let start = shop.at(shop.upcoming_weekday(), 10, 0);
        let sent = Instant::now();
        let booking = book(&app, &shop, &client, start).await;
        let answered = Instant::now();
        let event = calendar.next(&id).await;
        let (late, since_sent) = (answered.elapsed(), sent.elapsed());
        // The 100 ms promise is timed alone, where the machine is not busy
        // running every other test: `events_reach_another_replica_within_100_ms`.
        println!(
            "EVENT-LATENCY the event arrived {late:?} after the booking's answer, {since_sent:?} after it was sent"
        );
        let event = &event["data"]["bookingChanged"];
        assert_eq!(event["kind"], "CREATED");
        assert_eq!(event["booking"]["id"], booking.as_str());
        assert_eq!(event["booking"]["status"], "CONFIRMED");
        assert_eq!(event["booking"]["startsAt"], start.to_rfc3339());
        assert_eq!(event["actor"]["id"], client.id.as_str(), "the owner sees who booked");

        // The cancellation follows, on the same feed.
        let cancelled = app.gql_as(&client, CANCEL, json!({ "id": booking })).await;
        assert!(cancelled.get("errors").is_none(), "{cancelled:#}");
        let event = calendar.next(&id).await;
        assert_eq!(event["data"]["bookingChanged"]["kind"], "CANCELLED");
        assert_eq!(event["data"]["bookingChanged"]["booking"]["status"], "CANCELLED");
        calendar.close().await;
    }
);

api_test!(a_barber_sees_only_their_own_bookings, [sqlite, postgres_redis], |app| {
    let shop = ShopFixture::open(&app, "two", "Europe/London", "09:00", "17:00").await;
    let other_user = app.register("other@two.test", "correct horse battery", "Other").await;
    let other = app
        .data_as(
            &shop.owner,
            "mutation($input: AddBarberInput!) { addBarber(input: $input) { id } }",
            json!({ "input": { "shopId": shop.shop_id, "displayName": "Kim", "userEmail": other_user.email } }),
        )
        .await["addBarber"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.data_as(&other_user, ACCEPT_INVITE, json!({ "id": other })).await;
    app.data_as(
        &shop.owner,
        "mutation($id: ID!, $input: UpdateServiceInput!) { updateService(id: $id, input: $input) { id } }",
        json!({ "id": shop.service_id, "input": { "barberIds": [shop.barber_id, other] } }),
    )
    .await;
    app.data_as(
        &shop.owner,
        crate::shop_fixture::SET_HOURS,
        json!({ "barber": other, "hours": (1..=7).map(|d| json!({ "weekday": d, "opensAt": "09:00", "closesAt": "17:00" })).collect::<Vec<_>>() }),
    )
    .await;
    // The user's roles changed: a token issued now carries them.
    let barber = app.login(&shop.barber_user.email, "correct horse battery").await;
    let client = app.register("client@two.test", "correct horse battery", "Client").await;

    let mut own = Socket::open(&app, Some(&barber)).await;
    let id = own.subscribe(BOOKING_CHANGED, json!({ "shop": shop.shop_id })).await;
    listening(&app, 1).await;
    let date = shop.upcoming_weekday();
    let others_booking = app
        .gql_as(
            &client,
            crate::shop_fixture::BOOK,
            json!({ "input": { "barberId": other, "serviceId": shop.service_id, "startsAt": shop.at(date, 10, 0).to_rfc3339() } }),
        )
        .await;
    assert!(others_booking.get("errors").is_none(), "{others_booking:#}");
    let mine = book(&app, &shop, &client, shop.at(date, 11, 0)).await;
    let event = own.next(&id).await;
    assert_eq!(event["data"]["bookingChanged"]["booking"]["id"], mine.as_str(), "{event:#}");
    assert_eq!(event["data"]["bookingChanged"]["booking"]["barber"]["id"], shop.barber_id.as_str());
    assert_eq!(own.message_within(Duration::from_millis(300)).await, None, "nothing of Kim's");
});

api_test!(only_a_shops_staff_may_follow_its_bookings, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "closed", "Europe/London", "09:00", "17:00").await;
    let client = app.register("client@closed.test", "correct horse battery", "Client").await;
    let mut anonymous = Socket::open(&app, None).await;
    let id = anonymous.subscribe(BOOKING_CHANGED, json!({ "shop": shop.shop_id })).await;
    let refused = anonymous.next(&id).await;
    assert_eq!(first_error(&refused).0, "UNAUTHENTICATED", "{refused:#}");
    assert_eq!(anonymous.message_within(Duration::from_secs(5)).await.unwrap()["type"], "complete");
    let id = anonymous.subscribe(MY_BOOKING_CHANGED, json!({})).await;
    assert_eq!(first_error(&anonymous.next(&id).await).0, "UNAUTHENTICATED");

    let mut stranger = Socket::open(&app, Some(&client)).await;
    let id = stranger.subscribe(BOOKING_CHANGED, json!({ "shop": shop.shop_id })).await;
    assert_eq!(first_error(&stranger.next(&id).await).0, "FORBIDDEN");

    // A token that is not one refuses the connection itself.
    let refused = Socket::try_open(&app, json!({ "Authorization": "Bearer not-a-token" })).await;
    let reason = refused.err().expect("a bad token is refused");
    assert!(reason.contains("UNAUTHENTICATED"), "{reason}");
});

api_test!(reconnecting_with_after_replays_what_was_missed, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "again", "Europe/London", "09:00", "17:00").await;
    let client = app.register("client@again.test", "correct horse battery", "Client").await;
    let date = shop.upcoming_weekday();
    let mut calendar = Socket::open(&app, Some(&shop.owner)).await;
    let id = calendar.subscribe(BOOKING_CHANGED, json!({ "shop": shop.shop_id })).await;
    listening(&app, 1).await;
    let first = book(&app, &shop, &client, shop.at(date, 10, 0)).await;
    let seen =
        calendar.next(&id).await["data"]["bookingChanged"]["id"].as_str().unwrap().to_owned();
    calendar.close().await;

    // While away: a cancellation and a new booking.
    app.data_as(&client, CANCEL, json!({ "id": first })).await;
    let second = book(&app, &shop, &client, shop.at(date, 12, 0)).await;

    let mut calendar = Socket::open(&app, Some(&shop.owner)).await;
    let id =
        calendar.subscribe(BOOKING_CHANGED, json!({ "shop": shop.shop_id, "after": seen })).await;
    let missed: Vec<Value> = [calendar.next(&id).await, calendar.next(&id).await]
        .into_iter()
        .map(|payload| payload["data"]["bookingChanged"].clone())
        .collect();
    assert_eq!(missed[0]["kind"], "CANCELLED");
    assert_eq!(missed[0]["booking"]["id"], first.as_str());
    assert_eq!(missed[1]["kind"], "CREATED");
    assert_eq!(missed[1]["booking"]["id"], second.as_str());
    assert!(row_id(missed[0]["id"].as_str().unwrap()) > row_id(&seen));
    // Then live again, nothing twice.
    listening(&app, 1).await;
    app.data_as(&client, CANCEL, json!({ "id": second })).await;
    let live = calendar.next(&id).await;
    assert_eq!(live["data"]["bookingChanged"]["kind"], "CANCELLED");
    assert_eq!(live["data"]["bookingChanged"]["booking"]["id"], second.as_str());
    assert_eq!(calendar.message_within(Duration::from_millis(300)).await, None);
});

api_test!(
    slots_changed_follows_a_booking_and_its_cancellation,
    [sqlite, postgres, postgres_redis],
    |app| {
        let shop = ShopFixture::open(&app, "phone", "Europe/London", "09:00", "17:00").await;
        let client = app.register("client@phone.test", "correct horse battery", "Client").await;
        let date = shop.upcoming_weekday();
        let start = shop.at(date, 10, 0);
        let starts = |payload: &Value| -> Vec<String> {
            payload["data"]["slotsChanged"]
                .as_array()
                .unwrap_or_else(|| panic!("{payload:#}"))
                .iter()
                .map(|slot| slot["startsAt"].as_str().unwrap().to_owned())
                .collect()
        };
        let at = start.to_rfc3339();
        let mut phone = Socket::open(&app, None).await;
        let variables = json!({ "barber": shop.barber_id, "date": date.to_string(), "service": shop.service_id });
        let id = phone.subscribe(SLOTS_CHANGED, variables).await;
        let now = starts(&phone.next(&id).await);
        assert!(now.contains(&at), "the slot is free at first: {now:?}");

        let booking = book(&app, &shop, &client, start).await;
        let after_booking = starts(&phone.next(&id).await);
        assert!(!after_booking.contains(&at), "the booked slot is gone: {after_booking:?}");
        assert_eq!(
            after_booking,
            shop.slots(&app, date)
                .await
                .iter()
                .map(chrono::DateTime::to_rfc3339)
                .collect::<Vec<_>>()
        );

        app.data_as(&client, CANCEL, json!({ "id": booking })).await;
        let after_cancel = starts(&phone.next(&id).await);
        assert_eq!(after_cancel, now, "the cancellation frees it again");

        // Another day's booking changes nothing here.
        book(&app, &shop, &client, shop.at(date + chrono::Duration::days(1), 10, 0)).await;
        assert_eq!(phone.message_within(Duration::from_millis(600)).await, None);
    }
);

api_test!(a_client_follows_their_own_bookings_at_any_shop, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "mine", "Europe/London", "09:00", "17:00").await;
    let client = app.register("client@mine.test", "correct horse battery", "Client").await;
    let other = app.register("other@mine.test", "correct horse battery", "Other").await;
    let mut socket = Socket::open(&app, Some(&client)).await;
    let id = socket.subscribe(MY_BOOKING_CHANGED, json!({})).await;
    listening(&app, 1).await;
    let date = shop.upcoming_weekday();
    book(&app, &shop, &other, shop.at(date, 9, 0)).await;
    let mine = book(&app, &shop, &client, shop.at(date, 10, 0)).await;
    let event = socket.next(&id).await;
    assert_eq!(event["data"]["myBookingChanged"]["booking"]["id"], mine.as_str());
    assert_eq!(event["data"]["myBookingChanged"]["kind"], "CREATED");
    // The shop cancels it: the client hears of it, not who on the staff did.
    app.data_as(&shop.owner, CANCEL, json!({ "id": mine })).await;
    let event = socket.next(&id).await;
    assert_eq!(event["data"]["myBookingChanged"]["kind"], "CANCELLED");
    assert_eq!(event["data"]["myBookingChanged"]["actor"], Value::Null);
});

api_test!(a_subscription_ends_when_its_session_does, [sqlite, postgres_redis], |app| {
    let shop = ShopFixture::open(&app, "ended", "Europe/London", "09:00", "17:00").await;
    let client = app.register("client@ended.test", "correct horse battery", "Client").await;
    // The calendar runs on a session of its own, which the password change
    // made in another ends.
    let desk = app.login(&shop.owner.email, "correct horse battery").await;
    let mut calendar = Socket::open(&app, Some(&desk)).await;
    let id = calendar.subscribe(BOOKING_CHANGED, json!({ "shop": shop.shop_id })).await;
    listening(&app, 1).await;
    let changed = app
        .gql_as(
            &shop.owner,
            "mutation { changePassword(current: \"correct horse battery\", new: \"another horse battery\") }",
            json!({}),
        )
        .await;
    assert!(changed.get("errors").is_none(), "{changed:#}");
    book(&app, &shop, &client, shop.at(shop.upcoming_weekday(), 10, 0)).await;
    let ended = calendar.next(&id).await;
    assert_eq!(first_error(&ended).0, "UNAUTHENTICATED", "the booking is not shown: {ended:#}");
    assert_eq!(ended["data"], Value::Null);
    assert_eq!(calendar.message_within(Duration::from_secs(5)).await.unwrap()["type"], "complete");
    // The connection stays, signed in as it was; a new subscription on it,
    // replay included, is checked as the session is now.
    let again = calendar
        .subscribe(BOOKING_CHANGED, json!({ "shop": shop.shop_id, "after": row_id_as_event(1) }))
        .await;
    let refused = calendar.next(&again).await;
    assert_eq!(first_error(&refused).0, "UNAUTHENTICATED", "nothing replayed: {refused:#}");
});

const AUDIT: &str = "query($shop: ID!, $first: Int, $after: String, $kind: AuditEventKind) { shop(id: $shop) { auditLog(first: $first, after: $after, kind: $kind) { totalCount pageInfo { hasNextPage endCursor } nodes { kind actor { id } barber { id } booking { id } changes { field before after } } } } }";

api_test!(the_audit_log_shows_who_did_what_newest_first, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "audit", "Europe/London", "09:00", "17:00").await;
    let client = app.register("client@audit.test", "correct horse battery", "Client").await;
    shop.policy(&app, json!({ "bufferMinutes": 10, "name": "Renamed" })).await;
    let booking = book(&app, &shop, &client, shop.at(shop.upcoming_weekday(), 10, 0)).await;

    let log = app.data_as(&shop.owner, AUDIT, json!({ "shop": shop.shop_id, "first": 3 })).await;
    let log = &log["shop"]["auditLog"];
    let kinds: Vec<&str> =
        log["nodes"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["CREATED", "SHOP_UPDATED", "HOURS_SET"], "newest first");
    // Barber added, joined, service created, hours set, shop updated, booked.
    assert_eq!(log["totalCount"], 6);
    assert_eq!(log["pageInfo"]["hasNextPage"], true);
    let created = &log["nodes"][0];
    assert_eq!(created["actor"]["id"], client.id.as_str());
    assert_eq!(created["booking"]["id"], booking.as_str());
    let updated = &log["nodes"][1];
    assert_eq!(updated["actor"]["id"], shop.owner.id.as_str());
    let changes = updated["changes"].as_array().unwrap();
    assert!(
        changes.contains(&json!({ "field": "bufferMinutes", "before": "0", "after": "10" })),
        "{changes:?}"
    );
    assert!(
        changes.contains(
            &json!({ "field": "name", "before": "\"Shop audit\"", "after": "\"Renamed\"" })
        ),
        "{changes:?}"
    );
    assert_eq!(changes.len(), 2, "only what changed: {changes:?}");

    let rest = app
        .data_as(
            &shop.owner,
            AUDIT,
            json!({ "shop": shop.shop_id, "first": 10, "after": log["pageInfo"]["endCursor"] }),
        )
        .await;
    let kinds: Vec<&str> = rest["shop"]["auditLog"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["SERVICE_CREATED", "BARBER_JOINED", "BARBER_ADDED"]);
    assert_eq!(rest["shop"]["auditLog"]["pageInfo"]["hasNextPage"], false);

    let only = app
        .data_as(&shop.owner, AUDIT, json!({ "shop": shop.shop_id, "kind": "BARBER_ADDED" }))
        .await;
    assert_eq!(only["shop"]["auditLog"]["totalCount"], 1);
    assert_eq!(only["shop"]["auditLog"]["nodes"][0]["barber"]["id"], shop.barber_id.as_str());

    for outsider in [&shop.barber_user, &client] {
        let refused = app.gql_as(outsider, AUDIT, json!({ "shop": shop.shop_id })).await;
        assert_eq!(first_error(&refused).0, "FORBIDDEN", "{refused:#}");
    }
});

api_test!(a_connection_holds_a_bounded_number_of_subscriptions, [sqlite], |app| {
    let shop = ShopFixture::open(&app, "many", "Europe/London", "09:00", "17:00").await;
    let variables =
        json!({ "barber": shop.barber_id, "date": shop.upcoming_weekday().to_string() });
    let mut phone = Socket::open(&app, None).await;
    let mut ids = Vec::new();
    for _ in 0..bookedbarber::graphql::ws::MAX_SUBSCRIPTIONS_PER_CONNECTION {
        let id = phone.subscribe(SLOTS_CHANGED, variables.clone()).await;
        assert!(phone.next(&id).await.get("errors").is_none());
        ids.push(id);
    }
    let refused = phone.subscribe(SLOTS_CHANGED, variables.clone()).await;
    let answer = phone.next(&refused).await;
    assert_eq!(first_error(&answer).0, "BAD_USER_INPUT", "{answer:#}");
    assert!(first_error(&answer).1.contains("at most"), "{answer:#}");
    // Stopping one makes room for another.
    phone.stop(&ids[0]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let id = phone.subscribe(SLOTS_CHANGED, variables.clone()).await;
        let answer = loop {
            let message = phone.message_within(Duration::from_secs(10)).await.unwrap();
            if message["id"] == id.as_str() && message["type"] == "next" {
                break message["payload"].clone();
            }
        };
        if answer.get("errors").is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "no room after a stop: {answer:#}");
    }
});

api_test!(a_connection_that_never_signs_in_is_closed, [sqlite], |app| {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("closed within 20 s");
    assert_eq!(closed, Some(4408), "the protocol's initialisation timeout");
});

/// The cross-replica promise, timed: 20 bookings made on one server, each
/// seen by a calendar subscribed on another that shares PostgreSQL and
/// Redis: 19 of 20 (the 95th percentile) within 100 ms of the booking's
/// answer, on a machine shared with PostgreSQL and Redis. Ignored in the
/// normal suite (timing on a machine busy with every other test measures
/// the machine); `.ci/run` runs it alone:
/// `cargo test --test api -- --ignored events_reach_another_replica_within_100_ms --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a timing; run alone (needs TEST_DATABASE_URL and TEST_REDIS_URL)"]
async fn events_reach_another_replica_within_100_ms() {
    let app = TestApp::postgres().with_redis().start().await;
    let shop = ShopFixture::open(&app, "timed", "Europe/London", "08:00", "20:00").await;
    let client = app.register("client@timed.test", "correct horse battery", "Client").await;
    let replica = other_replica(&app).await.expect("Redis makes a second replica");
    let mut calendar = Socket::open(&replica, Some(&shop.owner)).await;
    let id = calendar.subscribe(BOOKING_CHANGED, json!({ "shop": shop.shop_id })).await;
    listening(&replica, 1).await;
    let date = shop.upcoming_weekday();
    let mut after_answer = Vec::new();
    for n in 0..20u32 {
        let start = shop.at(date, 8 + n / 2, (n % 2) * 30);
        let booking = book(&app, &shop, &client, start).await;
        let answered = Instant::now();
        let event = calendar.next(&id).await;
        after_answer.push(answered.elapsed());
        assert_eq!(event["data"]["bookingChanged"]["booking"]["id"], booking.as_str());
    }
    after_answer.sort();
    println!(
        "EVENT-LATENCY over 20 bookings, after the answer: median {:?}, 95th percentile {:?}, slowest {:?}",
        after_answer[10], after_answer[18], after_answer[19]
    );
    assert!(after_answer[18] < Duration::from_millis(100), "{after_answer:?}");
}

api_test!(
    an_event_carries_the_shops_dashboard_and_bookings_to_its_owner,
    [sqlite, postgres_redis],
    |app| {
        let shop = ShopFixture::open(&app, "deep", "Europe/London", "09:00", "17:00").await;
        let client = app.register("client@deep.test", "correct horse battery", "Client").await;
        let day = shop.upcoming_weekday();
        let mut calendar = Socket::open(&app, Some(&shop.owner)).await;
        // What a dashboard asks of each event: the shop's numbers for the
        // day and its bookings list, read as every subscription reads.
        let query = "subscription($shop: ID!, $day: Date!) { bookingChanged(shopId: $shop) { kind booking { shop { analytics(from: $day, to: $day) { bookingsCount } bookings(first: 5) { totalCount } } } } }";
        let id = calendar
            .subscribe(query, json!({ "shop": shop.shop_id, "day": day.to_string() }))
            .await;
        listening(&app, 1).await;
        book(&app, &shop, &client, shop.at(day, 10, 0)).await;
        let event = calendar.next(&id).await;
        assert!(event.get("errors").is_none(), "{event:#}");
        let shown = &event["data"]["bookingChanged"]["booking"]["shop"];
        assert_eq!(shown["analytics"]["bookingsCount"], 1, "{event:#}");
        assert_eq!(shown["bookings"]["totalCount"], 1, "{event:#}");
        calendar.close().await;
    }
);
