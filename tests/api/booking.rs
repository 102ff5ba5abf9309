//! Availability and booking: every rule, daylight-saving days, and many
//! clients racing for one slot.

use chrono::{Datelike, Duration, NaiveDate, Utc};
use serde_json::json;

use crate::{
    api_test,
    helpers::{first_error, row_id, scalar},
    shop_fixture::{BOOK, SLOTS, ShopFixture},
};

async fn bookings_in_db(app: &crate::helpers::TestApp) -> i64 {
    scalar(app, "SELECT COUNT(*) AS n FROM bookings").await
}

api_test!(slots_follow_hours_step_bookings_and_time_off, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "slots", "Europe/London", "09:00", "12:00").await;
    let date = shop.upcoming_weekday();
    let at = |h, m| shop.at(date, h, m);
    // 30-minute service, 15-minute step, 09:00–12:00: 09:00 … 11:30.
    let slots = shop.slots(&app, date).await;
    assert_eq!(slots.len(), 11);
    assert_eq!(slots[0], at(9, 0));
    assert_eq!(*slots.last().unwrap(), at(11, 30));

    let client = app.register("client@slots.test", "correct horse battery", "Client").await;
    let booked = shop.book(&app, &client, at(10, 0)).await;
    assert!(booked.get("errors").is_none(), "{booked:#}");
    assert_eq!(booked["data"]["createBooking"]["status"], "CONFIRMED");
    assert_eq!(booked["data"]["createBooking"]["priceCents"], 2500);
    assert_eq!(
        booked["data"]["createBooking"]["endsAt"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap(),
        at(10, 30)
    );
    // 09:45, 10:00 and 10:15 would overlap it.
    let slots = shop.slots(&app, date).await;
    assert_eq!(slots.len(), 8);
    for taken in [at(9, 45), at(10, 0), at(10, 15)] {
        assert!(!slots.contains(&taken));
    }

    app.data_as(
        &shop.owner,
        "mutation($input: AddTimeOffInput!) { addTimeOff(input: $input) { startsAt endsAt reason } }",
        json!({ "input": { "barberId": shop.barber_id, "startsAt": at(11, 0).to_rfc3339(), "endsAt": at(12, 0).to_rfc3339(), "reason": "Dentist" } }),
    )
    .await;
    let slots = shop.slots(&app, date).await;
    assert_eq!(slots, vec![at(9, 0), at(9, 15), at(9, 30), at(10, 30)]);

    // A buffer after each appointment narrows what fits.
    shop.policy(&app, json!({ "bufferMinutes": 15 })).await;
    let slots = shop.slots(&app, date).await;
    assert_eq!(slots, vec![at(9, 0), at(9, 15)]);

    // A day off: nothing.
    shop.set_hours(&app, vec![]).await;
    assert!(shop.slots(&app, date).await.is_empty());
});

api_test!(daylight_saving_days, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "dst", "America/New_York", "00:00", "24:00").await;
    shop.policy(&app, json!({ "slotStepMinutes": 60, "maxAdvanceDays": 365 })).await;
    // The next daylight-saving changes in New York (second Sunday of
    // March, first Sunday of November), at least two days ahead.
    let today = Utc::now().with_timezone(&shop.tz).date_naive();
    let next = |month: u32, nth: u8| {
        (today.year()..)
            .map(|year| {
                NaiveDate::from_weekday_of_month_opt(year, month, chrono::Weekday::Sun, nth)
                    .unwrap()
            })
            .find(|date| *date > today + Duration::days(1))
            .unwrap()
    };
    let (spring, fall) = (next(3, 2), next(11, 1));
    // Spring forward: 02:00 does not exist; 23 hours, 23 hourly slots.
    if (spring - today).num_days() < 365 {
        let slots = shop.slots(&app, spring).await;
        assert_eq!(slots.len(), 23);
        let locals: Vec<String> =
            slots.iter().map(|s| s.with_timezone(&shop.tz).format("%H:%M").to_string()).collect();
        assert!(!locals.contains(&"02:00".to_owned()));
        assert!(slots.windows(2).all(|w| w[1] - w[0] == Duration::hours(1)));
    }
    if (fall - today).num_days() < 365 {
        // Fall back: 01:00 happens twice; 25 hours, 25 hourly slots, and
        // the second 01:00 can be booked.
        let slots = shop.slots(&app, fall).await;
        assert_eq!(slots.len(), 25);
        assert!(slots.windows(2).all(|w| w[1] - w[0] == Duration::hours(1)));
        let second_one_am = slots[2];
        assert_eq!(
            second_one_am.with_timezone(&shop.tz).format("%H:%M %Z").to_string(),
            "01:00 EST"
        );
        let client = app.register("client@dst.test", "correct horse battery", "Client").await;
        let booked = shop.book(&app, &client, second_one_am).await;
        assert!(booked.get("errors").is_none(), "{booked:#}");
        assert_eq!(shop.slots(&app, fall).await.len(), 24);
    }
});

api_test!(every_booking_rule_and_nothing_half_written, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "rules", "Europe/Berlin", "09:00", "17:00").await;
    let client = app.register("client@rules.test", "correct horse battery", "Client").await;
    let date = shop.upcoming_weekday();
    let now = Utc::now();
    let input = |start: chrono::DateTime<Utc>| json!({ "input": { "barberId": shop.barber_id, "serviceId": shop.service_id, "startsAt": start.to_rfc3339() } });
    let expect = |response: &serde_json::Value, code: &str, words: &[&str]| {
        let (found, message) = first_error(response);
        assert_eq!(found, code, "{message}");
        for word in words {
            assert!(message.contains(word), "{word:?} not in {message:?}");
        }
    };

    let anonymous = app.gql(BOOK, input(shop.at(date, 10, 0))).await;
    expect(&anonymous, "UNAUTHENTICATED", &[]);
    expect(&shop.book(&app, &client, now - Duration::hours(1)).await, "BAD_USER_INPUT", &["past"]);
    expect(
        &shop.book(&app, &client, now + Duration::minutes(30)).await,
        "BAD_USER_INPUT",
        &["60 minutes"],
    );
    expect(
        &shop.book(&app, &client, shop.at(date + Duration::days(90), 10, 0)).await,
        "BAD_USER_INPUT",
        &["60 days"],
    );
    expect(&shop.book(&app, &client, shop.at(date, 10, 5)).await, "BAD_USER_INPUT", &["15-minute"]);
    expect(
        &shop.book(&app, &client, shop.at(date, 8, 0)).await,
        "BAD_USER_INPUT",
        &["working hours"],
    );
    expect(
        &shop.book(&app, &client, shop.at(date, 16, 45)).await,
        "BAD_USER_INPUT",
        &["working hours"],
    );

    app.data_as(
        &shop.barber_user,
        "mutation($input: AddTimeOffInput!) { addTimeOff(input: $input) { id } }",
        json!({ "input": { "barberId": shop.barber_id, "startsAt": shop.at(date, 13, 0).to_rfc3339(), "endsAt": shop.at(date, 14, 0).to_rfc3339() } }),
    )
    .await;
    expect(&shop.book(&app, &client, shop.at(date, 13, 15)).await, "BAD_USER_INPUT", &["off"]);

    let long_note = json!({ "input": { "barberId": shop.barber_id, "serviceId": shop.service_id,
        "startsAt": shop.at(date, 10, 0).to_rfc3339(), "notes": "x".repeat(1001) } });
    expect(&app.gql_as(&client, BOOK, long_note).await, "BAD_USER_INPUT", &["notes"]);

    // A service the barber does not offer.
    let other = app
        .data_as(
            &shop.owner,
            "mutation($input: CreateServiceInput!) { createService(input: $input) { id } }",
            json!({ "input": { "shopId": shop.shop_id, "name": "Shave", "durationMinutes": 20, "priceCents": 1000 } }),
        )
        .await;
    let not_offered = json!({ "input": { "barberId": shop.barber_id, "serviceId": other["createService"]["id"],
        "startsAt": shop.at(date, 10, 0).to_rfc3339() } });
    expect(&app.gql_as(&client, BOOK, not_offered).await, "BAD_USER_INPUT", &["does not offer"]);
    use base64::Engine;
    let ghost = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("Barber:999999");
    let unknown = json!({ "input": { "barberId": ghost, "serviceId": shop.service_id, "startsAt": shop.at(date, 10, 0).to_rfc3339() } });
    expect(&app.gql_as(&client, BOOK, unknown).await, "NOT_FOUND", &["barberId"]);
    let ghost = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("Service:999999");
    let unknown = json!({ "input": { "barberId": shop.barber_id, "serviceId": ghost, "startsAt": shop.at(date, 10, 0).to_rfc3339() } });
    expect(&app.gql_as(&client, BOOK, unknown).await, "NOT_FOUND", &["serviceId"]);
    let malformed = json!({ "input": { "barberId": "nope", "serviceId": shop.service_id, "startsAt": shop.at(date, 10, 0).to_rfc3339() } });
    expect(&app.gql_as(&client, BOOK, malformed).await, "BAD_USER_INPUT", &["barberId"]);
    assert_eq!(bookings_in_db(&app).await, 0, "no refused request wrote anything");

    // The good one, with a note; the price is the price at booking time.
    let good = json!({ "input": { "barberId": shop.barber_id, "serviceId": shop.service_id,
        "startsAt": shop.at(date, 10, 0).to_rfc3339(), "notes": "  Scissors only  " } });
    let booked = app.data_as(&client, BOOK, good).await;
    assert_eq!(booked["createBooking"]["notes"], "Scissors only");
    assert_eq!(booked["createBooking"]["client"]["email"], "client@rules.test");
    let id = booked["createBooking"]["id"].clone();
    app.data_as(
        &shop.owner,
        "mutation($id: ID!) { updateService(id: $id, input: { priceCents: 9900 }) { priceCents } }",
        json!({ "id": shop.service_id }),
    )
    .await;
    let seen = app
        .data_as(
            &client,
            "query($id: ID!) { booking(id: $id) { priceCents currency } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(seen["booking"], json!({ "priceCents": 2500, "currency": "EUR" }));
    // The same slot again is taken; so is an overlapping one.
    expect(&shop.book(&app, &client, shop.at(date, 10, 0)).await, "CONFLICT", &["booked"]);
    expect(&shop.book(&app, &shop.owner, shop.at(date, 10, 15)).await, "CONFLICT", &[]);

    // An inactive barber takes no bookings and shows no slots.
    app.data_as(
        &shop.owner,
        "mutation($id: ID!) { updateBarber(id: $id, input: { active: false }) { active } }",
        json!({ "id": shop.barber_id }),
    )
    .await;
    assert!(shop.slots(&app, date).await.is_empty());
    expect(
        &shop.book(&app, &client, shop.at(date, 11, 0)).await,
        "BAD_USER_INPUT",
        &["no new bookings"],
    );
    assert_eq!(bookings_in_db(&app).await, 1);
});

api_test!(fifty_clients_race_for_one_slot, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "race", "Europe/London", "09:00", "17:00").await;
    let date = shop.upcoming_weekday();
    let start = shop.at(date, 11, 0);
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(
            app.register(&format!("racer{i}@race.test"), "correct horse battery", "Racer").await,
        );
    }
    let attempts = (0..50).map(|i| {
        let client = &clients[i % clients.len()];
        let app = &app;
        let shop = &shop;
        async move { shop.book(app, client, start).await }
    });
    let results = futures_util::future::join_all(attempts).await;
    let won = results.iter().filter(|r| r.get("errors").is_none()).count();
    let conflicts = results
        .iter()
        .filter(|r| r.get("errors").is_some() && first_error(r).0 == "CONFLICT")
        .count();
    let codes: Vec<String> = results
        .iter()
        .filter(|r| r.get("errors").is_some())
        .map(|r| format!("{}: {}", first_error(r).0, first_error(r).1))
        .collect();
    assert_eq!(won, 1, "exactly one booking wins; errors: {codes:?}");
    assert_eq!(conflicts, 49, "every other attempt is a CONFLICT: {codes:?}");
    let barber = row_id(&shop.barber_id);
    let stored = scalar(
        &app,
        &format!("SELECT COUNT(*) AS n FROM bookings WHERE barber_id = {barber} AND status <> 'CANCELLED'"),
    )
    .await;
    assert_eq!(stored, 1, "exactly one booking in the database");
    // The 49 refused bookings rolled back with their events; the winner
    // logged exactly one.
    let events = scalar(
        &app,
        &format!("SELECT COUNT(*) AS n FROM booking_events WHERE barber_id = {barber} AND kind = 'CREATED'"),
    )
    .await;
    assert_eq!(events, 1, "exactly one event, the winner's");
    let winner = scalar(
        &app,
        &format!("SELECT e.booking_id AS n FROM booking_events e JOIN bookings b ON b.id = e.booking_id WHERE e.barber_id = {barber} AND b.status = 'CONFIRMED'"),
    )
    .await;
    let won_id =
        results.iter().find(|r| r.get("errors").is_none()).unwrap()["data"]["createBooking"]["id"]
            .as_str()
            .map(row_id)
            .unwrap();
    assert_eq!(winner, won_id, "the event is the winning booking's");
    let slots = app
        .data(SLOTS, json!({ "barber": shop.barber_id, "service": shop.service_id, "date": date.to_string() }))
        .await;
    assert!(
        !slots["availableSlots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["startsAt"] == start.to_rfc3339())
    );
});

api_test!(the_database_itself_refuses_overlapping_bookings, [sqlite, postgres], |app| {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, NotSet};
    let shop = ShopFixture::open(&app, "guard", "UTC", "00:00", "24:00").await;
    let client = app.register("client@guard.test", "correct horse battery", "Client").await;
    let start = shop.at(shop.upcoming_weekday(), 10, 0);
    let booked = shop.book(&app, &client, start).await;
    assert!(booked.get("errors").is_none(), "{booked:#}");
    // Written past every check of the application, straight into the table.
    let row = |status, offset: i64| entity::booking::ActiveModel {
        id: NotSet,
        shop_id: Set(row_id(&shop.shop_id)),
        barber_id: Set(row_id(&shop.barber_id)),
        client_id: Set(row_id(&client.id)),
        service_id: Set(row_id(&shop.service_id)),
        starts_at: Set(start + Duration::minutes(offset)),
        ends_at: Set(start + Duration::minutes(offset + 30)),
        blocks_until: Set(start + Duration::minutes(offset + 30)),
        status: Set(status),
        price_cents: Set(2500),
        currency: Set("EUR".to_owned()),
        notes: Set(None),
        cancellation_reason: Set(None),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    };
    let overlapping = row(entity::BookingStatus::Confirmed, 15).insert(&app.state.db).await;
    assert!(overlapping.unwrap_err().to_string().contains("bookings_no_overlap"));
    // Cancelled bookings hold no time, and back-to-back ones do not overlap.
    row(entity::BookingStatus::Cancelled, 15).insert(&app.state.db).await.unwrap();
    row(entity::BookingStatus::Confirmed, 30).insert(&app.state.db).await.unwrap();
    row(entity::BookingStatus::Confirmed, -30).insert(&app.state.db).await.unwrap();
    assert_eq!(bookings_in_db(&app).await, 4);
});

api_test!(concurrent_bookings_of_distinct_slots_all_succeed, [sqlite, postgres], |app| {
    // Each booking's transaction locks its shop to log its event in order;
    // bookings at one shop at once must queue there, never deadlock.
    let shop = ShopFixture::open(&app, "busy", "Europe/London", "08:00", "20:00").await;
    let date = shop.upcoming_weekday();
    let mut clients = Vec::new();
    for i in 0..4 {
        clients.push(
            app.register(&format!("busy{i}@busy.test"), "correct horse battery", "Busy").await,
        );
    }
    let attempts = (0..20u32).map(|i| {
        let client = &clients[i as usize % clients.len()];
        let (app, shop) = (&app, &shop);
        async move { shop.book(app, client, shop.at(date, 8 + i / 2, (i % 2) * 30)).await }
    });
    let results = futures_util::future::join_all(attempts).await;
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.get("errors").is_some())
        .map(|r| format!("{}: {}", first_error(r).0, first_error(r).1))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let barber = row_id(&shop.barber_id);
    let events = scalar(
        &app,
        &format!("SELECT COUNT(*) AS n FROM booking_events WHERE barber_id = {barber} AND kind = 'CREATED'"),
    )
    .await;
    assert_eq!(events, 20);
});
