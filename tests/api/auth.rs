//! Registering, signing in, and what happens to bad tokens.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use serde_json::json;

use crate::{
    api_test,
    helpers::{TEST_JWT_SECRET, TestApp, first_error, row_id},
};

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token expiresAt user { id name email } } }";
const LOGIN: &str = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token user { email memberships { role shop { slug } } } } }";
const VIEWER: &str = "{ viewer { name email } }";

#[derive(FromQueryResult)]
struct Stored {
    email: String,
    password_hash: String,
}

async fn stored_users(app: &TestApp) -> Vec<Stored> {
    let backend = app.state.db.get_database_backend();
    Stored::find_by_statement(Statement::from_string(
        backend,
        "SELECT email, password_hash FROM users ORDER BY id",
    ))
    .all(&app.state.db)
    .await
    .unwrap()
}

api_test!(register_then_login_then_viewer, [sqlite, postgres], |app| {
    let input = json!({ "input": { "email": "  Ann@Example.COM ", "password": "correct horse", "name": " Ann " } });
    let data = app.data(REGISTER, input).await;
    let payload = &data["register"];
    assert_eq!(payload["user"]["email"], "ann@example.com");
    assert_eq!(payload["user"]["name"], "Ann");
    let expires: DateTime<Utc> = payload["expiresAt"].as_str().unwrap().parse().unwrap();
    let minutes = (expires - Utc::now()).num_seconds() as f64 / 60.0;
    assert!((14.5..=15.0).contains(&minutes), "the access token expires in {minutes} min");

    // The password is stored as an argon2id hash, never as itself.
    let stored = stored_users(&app).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].email, "ann@example.com");
    assert!(stored[0].password_hash.starts_with("$argon2id$"));
    assert!(!stored[0].password_hash.contains("correct horse"));

    // Signing in ignores the email's case and spaces.
    let data =
        app.data(LOGIN, json!({ "email": "ANN@example.com ", "password": "correct horse" })).await;
    let token = data["login"]["token"].as_str().unwrap().to_owned();
    let (status, body) = app.gql_with_header(&format!("Bearer {token}"), VIEWER, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["viewer"], json!({ "name": "Ann", "email": "ann@example.com" }));
    // The scheme's case does not matter (RFC 7235).
    let (status, body) = app.gql_with_header(&format!("BEARER {token}"), VIEWER, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["viewer"]["name"], "Ann");

    // Anonymous: no viewer, and no error.
    let body = app.gql(VIEWER, json!({})).await;
    assert!(body["data"]["viewer"].is_null());
    assert!(body.get("errors").is_none());
});

api_test!(a_taken_email_is_a_conflict_and_changes_nothing, [sqlite, postgres], |app| {
    app.register("bob@example.com", "password one", "Bob").await;
    let again = json!({ "input": { "email": "BOB@example.com", "password": "password two", "name": "Bobby" } });
    let response = app.gql(REGISTER, again).await;
    let (code, message) = first_error(&response);
    assert_eq!(code, "CONFLICT");
    assert!(message.contains("login"), "{message}");
    let stored = stored_users(&app).await;
    assert_eq!(stored.len(), 1);
    // The first password still works; the second does not.
    app.login("bob@example.com", "password one").await;
    let response =
        app.gql(LOGIN, json!({ "email": "bob@example.com", "password": "password two" })).await;
    assert_eq!(first_error(&response).0, "UNAUTHENTICATED");
});

api_test!(bad_registrations_name_the_field, [sqlite, postgres], |app| {
    for (input, field) in [
        (json!({ "email": "not-an-email", "password": "long enough", "name": "X" }), "email"),
        (json!({ "email": "x@example.com", "password": "short", "name": "X" }), "password"),
        (json!({ "email": "x@example.com", "password": "long enough", "name": "   " }), "name"),
    ] {
        let response = app.gql(REGISTER, json!({ "input": input })).await;
        let (code, message) = first_error(&response);
        assert_eq!(code, "BAD_USER_INPUT", "{message}");
        assert!(message.contains(field), "{field}: {message}");
    }
    assert!(stored_users(&app).await.is_empty(), "nothing written");
});

api_test!(wrong_email_and_wrong_password_look_the_same, [sqlite, postgres], |app| {
    app.register("carol@example.com", "the right one", "Carol").await;
    let wrong_password =
        app.gql(LOGIN, json!({ "email": "carol@example.com", "password": "the wrong one" })).await;
    let unknown_email =
        app.gql(LOGIN, json!({ "email": "nobody@example.com", "password": "the right one" })).await;
    let (code_a, message_a) = first_error(&wrong_password);
    let (code_b, message_b) = first_error(&unknown_email);
    assert_eq!(code_a, "UNAUTHENTICATED");
    assert_eq!((code_a, message_a), (code_b, message_b));
    assert!(wrong_password["data"].is_null());
});

api_test!(the_login_payload_shows_the_new_sessions_roles, [sqlite, postgres], |app| {
    app.seed(1, 1, 1, 0).await;
    let data =
        app.data(LOGIN, json!({ "email": "owner@demo.test", "password": "bookedbarber" })).await;
    let memberships = &data["login"]["user"]["memberships"];
    assert_eq!(memberships, &json!([{ "role": "OWNER", "shop": { "slug": "sharp-co-london" } }]));
});

/// The session id (`sid`) a token of ours carries.
fn session_of(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

fn forge(sub: &str, sid: &str, exp: i64) -> String {
    let claims = json!({
        "sub": sub, "sid": sid, "jti": "forged", "iat": exp - 60, "exp": exp, "iss": "bookedbarber",
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// Every kind of bad credential is refused with 401 and `UNAUTHENTICATED`,
/// even for a public query: never silently treated as anonymous.
async fn assert_refused(app: &TestApp, authorization: &str) {
    let (status, body) =
        app.gql_with_header(authorization, "{ shops { totalCount } }", json!({})).await;
    assert_eq!(status, 401, "{authorization}: {body:#}");
    assert_eq!(first_error(&body).0, "UNAUTHENTICATED");
    assert!(body["data"].is_null());
}

api_test!(bad_tokens_are_refused, [sqlite, postgres], |app| {
    let dave = app.register("dave@example.com", "correct horse battery", "Dave").await;
    let id = row_id(&dave.id).to_string();
    let sid = session_of(&dave.token);
    // A token we signed ourselves works.
    let (status, _) = app
        .gql_with_header(
            &format!("Bearer {}", forge(&id, &sid, Utc::now().timestamp() + 600)),
            VIEWER,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);

    // Expired.
    let expired = forge(&id, &sid, Utc::now().timestamp() - 10);
    let (_, body) = app.gql_with_header(&format!("Bearer {expired}"), VIEWER, json!({})).await;
    assert!(first_error(&body).1.contains("expired"));
    assert_refused(&app, &format!("Bearer {expired}")).await;

    // Tampered: someone else's id in the payload, signature unchanged.
    let mut parts: Vec<String> = dave.token.split('.').map(str::to_owned).collect();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(engine.decode(&parts[1]).unwrap()).unwrap();
    parts[1] = engine.encode(payload.replace(&format!("\"sub\":\"{id}\""), "\"sub\":\"999\""));
    assert_refused(&app, &format!("Bearer {}", parts.join("."))).await;

    // Signed with another secret.
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": id, "sid": sid, "jti": "x", "iat": 0, "exp": Utc::now().timestamp() + 600, "iss": "bookedbarber" }),
        &jsonwebtoken::EncodingKey::from_secret(b"some other secret"),
    )
    .unwrap();
    assert_refused(&app, &format!("Bearer {foreign}")).await;

    // Not a bearer token at all.
    assert_refused(&app, "Basic ZGF2ZTpwYXNzd29yZA==").await;
    assert_refused(&app, "Bearer ").await;
    assert_refused(&app, "Bearer not-a-jwt").await;

    // The account was deleted after the token was issued.
    app.state
        .db
        .execute_unprepared("DELETE FROM users WHERE email = 'dave@example.com'")
        .await
        .unwrap();
    assert_refused(&app, &format!("Bearer {}", dave.token)).await;
});

api_test!(mutations_are_refused_over_get, [sqlite, postgres], |app| {
    let mutation = r#"mutation { register(input: { email: "get@example.com", password: "correct horse battery", name: "G" }) { token } }"#;
    let response =
        app.client.get(app.url("/graphql")).query(&[("query", mutation)]).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(first_error(&body).0, "BAD_USER_INPUT");
    assert!(stored_users(&app).await.is_empty(), "nothing written");
    // A document whose cost is known from a POST runs without the limits'
    // extension: refused over GET all the same.
    let mutation = "mutation($i: RegisterInput!) { register(input: $i) { token } }";
    let input = |email: &str| json!({ "i": { "email": email, "password": "correct horse battery", "name": "G" } });
    app.data(mutation, input("post@example.com")).await;
    let variables = input("get@example.com").to_string();
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", mutation), ("variables", variables.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let emails: Vec<String> = stored_users(&app).await.into_iter().map(|u| u.email).collect();
    assert_eq!(emails, ["post@example.com"], "nothing written over GET");
});

api_test!(a_persisted_mutation_does_not_run_over_get, [sqlite, postgres], |app| {
    use sha2::Digest;
    let owner = app.register("apq@example.com", "correct horse battery", "Apq").await;
    let mutation = r#"mutation { createShop(input: { name: "Via Get", slug: "via-get", timezone: "UTC", address: "1 St" }) { id } }"#;
    let persisted = json!({ "persistedQuery": { "version": 1,
        "sha256Hash": format!("{:x}", sha2::Sha256::digest(mutation.as_bytes())) } });
    // Anonymous, so it is refused, but its hash is learned.
    let response = app.gql(mutation, json!({})).await;
    assert_eq!(first_error(&response).0, "UNAUTHENTICATED");
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": mutation, "extensions": persisted }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .get(app.url("/graphql"))
        .header("authorization", format!("Bearer {}", owner.token))
        .query(&[("extensions", persisted.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(first_error(&body).0, "BAD_USER_INPUT");
    let shops = app.data("{ shops { totalCount } }", json!({})).await;
    assert_eq!(shops["shops"]["totalCount"], 0, "nothing was created over GET");
});
