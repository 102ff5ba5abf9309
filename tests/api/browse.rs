//! The public read API: shops, barbers, services and nodes, without a login.

use serde_json::{Value, json};

use crate::api_test;

const SHOP_PAGE: &str = r#"
query Shops($first: Int, $after: String, $last: Int, $before: String, $search: String) {
  shops(first: $first, after: $after, last: $last, before: $before, search: $search) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name slug } }
    nodes { slug }
  }
}"#;

fn slugs(page: &Value) -> Vec<String> {
    page["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["slug"].as_str().unwrap().to_owned())
        .collect()
}

api_test!(shops_page_forwards_and_backwards, [sqlite, postgres], |app| {
    app.seed(7, 7, 1, 0).await;
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app.data(SHOP_PAGE, json!({ "first": 3, "after": after })).await;
        let page = &data["shops"];
        assert_eq!(page["totalCount"], 7);
        assert_eq!(
            page["edges"].as_array().unwrap().len(),
            page["nodes"].as_array().unwrap().len()
        );
        seen.extend(slugs(page));
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len(), 7, "every shop exactly once: {seen:?}");
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique.len(), 7);

    // The last two, then the two before them.
    let data = app.data(SHOP_PAGE, json!({ "last": 2 })).await;
    assert_eq!(slugs(&data["shops"]), seen[5..7].to_vec());
    assert!(data["shops"]["pageInfo"]["hasPreviousPage"].as_bool().unwrap());
    let before = data["shops"]["pageInfo"]["startCursor"].clone();
    let data = app.data(SHOP_PAGE, json!({ "last": 2, "before": before })).await;
    assert_eq!(slugs(&data["shops"]), seen[3..5].to_vec());
    assert!(data["shops"]["pageInfo"]["hasNextPage"].as_bool().unwrap());
});

api_test!(shops_search_by_name_ignoring_case, [sqlite, postgres], |app| {
    app.seed(7, 7, 1, 0).await;
    // Seeded names: "<shop name> <city>"; two of seven shops are in London
    // (the locations repeat every six shops).
    let data = app.data(SHOP_PAGE, json!({ "search": "lONDon" })).await;
    assert_eq!(data["shops"]["totalCount"], 2);
    assert_eq!(data["shops"]["nodes"].as_array().unwrap().len(), 2);
    // Wildcards are plain characters, not patterns.
    let data = app.data(SHOP_PAGE, json!({ "search": "%" })).await;
    assert_eq!(data["shops"]["totalCount"], 0);
});

api_test!(shop_by_slug_and_id_with_its_barbers_and_menu, [sqlite, postgres], |app| {
    app.seed(2, 6, 1, 0).await;
    let query = r#"
      query($slug: String, $id: ID) {
        shop(slug: $slug, id: $id) {
          id name slug timezone address slotStepMinutes minNoticeMinutes maxAdvanceDays
          barbers(first: 10) {
            totalCount
            nodes { id displayName active shop { slug } services { name } workingHours { weekday opensAt closesAt } }
          }
          services { id name durationMinutes priceCents currency barbers { id } }
        }
      }"#;
    let data = app.data(query, json!({ "slug": "sharp-co-london" })).await;
    let shop = &data["shop"];
    assert_eq!(shop["timezone"], "Europe/London");
    assert_eq!(shop["slotStepMinutes"], 15);
    assert_eq!(shop["barbers"]["totalCount"], 3);
    let barbers = shop["barbers"]["nodes"].as_array().unwrap();
    assert_eq!(barbers.len(), 3);
    for barber in barbers {
        assert_eq!(barber["shop"]["slug"], "sharp-co-london");
        assert!(barber["services"].as_array().unwrap().iter().any(|s| s["name"] == "Classic Cut"));
        let hours = barber["workingHours"].as_array().unwrap();
        assert_eq!(hours.len(), 10, "five days, two intervals each");
        assert!(hours[0]["opensAt"].as_str().unwrap().len() == 5);
    }
    let services = shop["services"].as_array().unwrap();
    assert_eq!(services.len(), 6);
    assert_eq!(services[0]["priceCents"], 2500);
    assert_eq!(services[0]["currency"], "GBP");
    // Every barber offers the classic cut, so its barbers are the shop's.
    assert_eq!(services[0]["barbers"].as_array().unwrap().len(), 3);

    let by_id = app.data(query, json!({ "id": shop["id"] })).await;
    assert_eq!(by_id["shop"]["slug"], "sharp-co-london");
});

api_test!(barber_service_and_node_by_id, [sqlite, postgres], |app| {
    app.seed(1, 2, 1, 0).await;
    let data = app
        .data(
            "{ shops { nodes { id barbers { nodes { id displayName } } services { id name } } } }",
            json!({}),
        )
        .await;
    let shop = &data["shops"]["nodes"][0];
    let barber = &shop["barbers"]["nodes"][0];
    let service = &shop["services"][0];

    let found = app
        .data(
            "query($id: ID!) { barber(id: $id) { displayName shop { id } } }",
            json!({ "id": barber["id"] }),
        )
        .await;
    assert_eq!(found["barber"]["displayName"], barber["displayName"]);
    assert_eq!(found["barber"]["shop"]["id"], shop["id"]);

    let found = app
        .data("query($id: ID!) { service(id: $id) { name } }", json!({ "id": service["id"] }))
        .await;
    assert_eq!(found["service"]["name"], service["name"]);

    let node = "query($id: ID!) { node(id: $id) { __typename id } }";
    for (id, typename) in
        [(&shop["id"], "Shop"), (&barber["id"], "Barber"), (&service["id"], "Service")]
    {
        let found = app.data(node, json!({ "id": id })).await;
        assert_eq!(found["node"]["__typename"], typename);
        assert_eq!(&found["node"]["id"], id);
    }
});
