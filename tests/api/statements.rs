//! DataLoaders keep a nested page at a small, constant number of statements.

use serde_json::json;

use crate::{api_test, helpers::TestApp, shop_fixture::ShopFixture};

const NESTED: &str = r#"
query($first: Int!) {
  shops(first: $first) {
    nodes {
      name
      barbers(first: 10) {
        nodes {
          displayName
          services { name priceCents }
          workingHours { weekday opensAt closesAt }
        }
      }
    }
  }
}"#;

/// Statements one run of the nested query costs, and how many shops it saw.
async fn cost(app: &TestApp, shops: i64) -> (u64, usize) {
    let before = app.statements();
    let data = app.data(NESTED, json!({ "first": shops })).await;
    let after = app.statements();
    let nodes = data["shops"]["nodes"].as_array().unwrap();
    for shop in nodes {
        let barbers = shop["barbers"]["nodes"].as_array().unwrap();
        assert_eq!(barbers.len(), 3);
        for barber in barbers {
            assert!(!barber["services"].as_array().unwrap().is_empty());
            assert!(!barber["workingHours"].as_array().unwrap().is_empty());
        }
    }
    (after - before, nodes.len())
}

api_test!(nested_page_costs_a_constant_number_of_statements, [sqlite, postgres], |app| {
    app.seed(20, 60, 1, 0).await;
    let (for_two, seen) = cost(&app, 2).await;
    assert_eq!(seen, 2);
    let (for_twenty, seen) = cost(&app, 20).await;
    assert_eq!(seen, 20);
    eprintln!("{:?}: 2 shops: {for_two} statements, 20 shops: {for_twenty}", app.backend);
    assert!(for_twenty <= 6, "20 shops cost {for_twenty} statements");
    assert_eq!(for_two, for_twenty, "the cost must not grow with the page");
});

const BOOKING_PAGE: &str = r#"
query($shop: ID!, $first: Int!) {
  bookings(shopId: $shop, first: $first) {
    nodes {
      id startsAt status priceCents paymentStatus
      payments { amountCents method }
      barber { displayName }
      client { name email }
      service { name durationMinutes }
      shop { name }
    }
  }
}"#;

api_test!(a_page_of_bookings_with_every_relation_costs_the_same, [sqlite, postgres], |app| {
    app.seed(1, 4, 30, 400).await;
    let owner = app.login_seeded("owner@demo.test").await;
    let shops = app.data("{ shops { nodes { id } } }", json!({})).await;
    let shop = shops["shops"]["nodes"][0]["id"].clone();
    // The token's identity is kept from its first request on.
    app.data_as(&owner, "{ viewer { id } }", json!({})).await;
    let mut costs = Vec::new();
    for first in [10, 100] {
        let before = app.statements();
        let data = app.data_as(&owner, BOOKING_PAGE, json!({ "shop": shop, "first": first })).await;
        costs.push(app.statements() - before);
        let nodes = data["bookings"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), first as usize);
        assert!(nodes.iter().all(
                |b| b["client"]["email"].is_string() && b["barber"]["displayName"].is_string()
            ));
        assert!(nodes.iter().any(|b| !b["payments"].as_array().unwrap().is_empty()));
    }
    eprintln!(
        "{:?}: 10 bookings: {} statements, 100 bookings: {}",
        app.backend, costs[0], costs[1]
    );
    // The page, barbers, clients, services, payments and the shop.
    assert_eq!(costs, [6, 6], "statements for 10 and 100 bookings");
});

const OWN_BOOKINGS: &str = r#"
query($first: Int!) {
  bookings(first: $first) {
    totalCount
    nodes {
      id startsAt status priceCents paymentStatus
      shop { id name } barber { id displayName } service { id name priceCents }
    }
  }
}"#;

const ONE_BOOKING: &str = r#"
query($id: ID!) {
  booking(id: $id) {
    id startsAt status priceCents paymentStatus
    shop { id name } barber { id displayName } service { id name priceCents }
  }
}"#;

// A client's own bookings with their shop, barber, service and payment
// status (what the app's "my bookings" shows) cost six statements whatever
// the page holds: the count, the page, and one for each relation. Each
// booking reads as it does alone.
api_test!(a_clients_own_bookings_cost_six_statements, [sqlite, postgres], |app| {
    app.seed(1, 4, 30, 400).await;
    let client = app.login_seeded("client@demo.test").await;
    app.data_as(&client, "{ viewer { id } }", json!({})).await;
    let mut costs = Vec::new();
    let mut data = json!(null);
    for first in [2, 50] {
        let before = app.statements();
        data = app.data_as(&client, OWN_BOOKINGS, json!({ "first": first })).await;
        costs.push(app.statements() - before);
    }
    assert_eq!(costs, [6, 6], "statements for 2 and 50 bookings");
    let nodes = data["bookings"]["nodes"].as_array().unwrap();
    let total = data["bookings"]["totalCount"].as_u64().unwrap();
    assert!(nodes.len() > 1, "{data:#}");
    assert_eq!(nodes.len() as u64, total.min(50));
    let statuses: std::collections::HashSet<_> =
        nodes.iter().map(|b| b["paymentStatus"].as_str().unwrap()).collect();
    assert!(statuses.len() > 1, "the seed pays some bookings, not all: {statuses:?}");
    for node in nodes {
        let alone = app.data_as(&client, ONE_BOOKING, json!({ "id": node["id"] })).await;
        assert_eq!(&alone["booking"], node);
    }
});

// Free slots on another day of an offer already read take one statement:
// the day's bookings and time off. The barber, the service, the shop and
// the hours are kept while the shop's version stands.
api_test!(
    free_slots_of_a_known_offer_cost_one_statement,
    [sqlite, postgres, sqlite_redis],
    |app| {
        let shop = ShopFixture::open(&app, "slots", "UTC", "09:00", "17:00").await;
        let date = shop.upcoming_weekday();
        assert_eq!(shop.slots(&app, date).await.len(), 31);
        for days in 1..=3 {
            let before = app.statements();
            let slots = shop.slots(&app, date + chrono::Duration::days(7 * days)).await;
            assert_eq!(slots.len(), 31);
            assert_eq!(app.statements() - before, 1, "another day, {days} weeks on");
        }
    }
);

// Requests that find an offer missing together wait for one read of it:
// sixteen first reads of a barber's days cost their sixteen days and one
// read of the offer, not sixteen.
api_test!(first_reads_together_read_the_offer_once, [sqlite, postgres, sqlite_redis], |app| {
    let shop = ShopFixture::open(&app, "herd", "UTC", "09:00", "17:00").await;
    let date = shop.upcoming_weekday();
    let before = app.statements();
    let reads: Vec<_> = (0..16)
        .map(|days| {
            let (app, shop) = (&app, &shop);
            async move { shop.slots(app, date + chrono::Duration::days(days)).await }
        })
        .collect();
    let answers = futures_util::future::join_all(reads).await;
    assert!(answers.iter().all(|slots| slots.len() == 31));
    let spent = app.statements() - before;
    // 16 days, the barber's shop, and the offer: the barber, the service
    // and its shop in one statement, the hours in another.
    assert_eq!(spent, 16 + 1 + 2, "{spent} statements");
});

// A booking costs a fixed number of statements: the offer (the barber, the
// service and the shop together), the barber's hours, the days around the
// slot, in its transaction the booking and its event with its deliveries
// (two statements on SQLite), and after it the shop's time zone, for the
// analytics. Its answer shows the barber and the service as the booking
// was made with them, without reading them again. What the barber offers
// is read from the database every time, though free slots keep it: a
// booking is checked against what the database holds.
api_test!(a_booking_costs_a_fixed_number_of_statements, [sqlite, postgres], |app| {
    let shop = ShopFixture::open(&app, "cost", "UTC", "09:00", "17:00").await;
    let client = app.register("client@cost.test", "correct horse battery", "Client").await;
    app.data_as(&client, "{ viewer { id } }", json!({})).await;
    let book = "mutation($input: CreateBookingInput!) { createBooking(input: $input) { id status barber { displayName } service { name priceCents } } }";
    let date = shop.upcoming_weekday();
    let mut costs = Vec::new();
    for hour in [10, 11, 12] {
        let input = json!({ "barberId": shop.barber_id, "serviceId": shop.service_id, "startsAt": shop.at(date, hour, 0).to_rfc3339() });
        let before = app.statements();
        let data = app.data_as(&client, book, json!({ "input": input })).await;
        costs.push(app.statements() - before);
        assert_eq!(data["createBooking"]["status"], "CONFIRMED", "{data:#}");
        assert!(data["createBooking"]["barber"]["displayName"].is_string(), "{data:#}");
        assert_eq!(data["createBooking"]["service"]["priceCents"], 2500, "{data:#}");
    }
    let expected = match app.backend {
        crate::helpers::Backend::Postgres => 6,
        _ => 7,
    };
    assert_eq!(costs, [expected; 3]);
});
