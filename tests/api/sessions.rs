//! Sessions that end: short access tokens, rotating refresh tokens whose
//! reuse ends the session, logout, logout everywhere and password changes,
//! seen at once by every replica; sign-in limits a stranger cannot turn
//! against the owner; passwords that are not the first ones guessed.

use serde_json::{Value, json};

use crate::{
    api_test,
    helpers::{TestApp, TestAppBuilder, first_error},
    protection::post,
};

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token expiresAt refreshToken refreshExpiresAt } }";
const LOGIN: &str = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token refreshToken } }";
const REFRESH: &str =
    "mutation($token: String!) { refreshToken(refreshToken: $token) { token refreshToken } }";
const VIEWER: &str = "{ viewer { email } }";
const PASSWORD: &str = "correct horse battery";

/// A session's tokens.
#[derive(Clone, Debug)]
struct Tokens {
    access: String,
    refresh: String,
}

fn tokens(payload: &Value) -> Tokens {
    Tokens {
        access: payload["token"].as_str().unwrap().to_owned(),
        refresh: payload["refreshToken"].as_str().unwrap().to_owned(),
    }
}

async fn sign_up(app: &TestApp, email: &str) -> Tokens {
    let input = json!({ "input": { "email": email, "password": PASSWORD, "name": "Sam" } });
    let data = app.data(REGISTER, input).await;
    let payload = &data["register"];
    let expires: chrono::DateTime<chrono::Utc> =
        payload["expiresAt"].as_str().unwrap().parse().unwrap();
    let minutes = (expires - chrono::Utc::now()).num_minutes();
    assert!((14..=15).contains(&minutes), "access tokens live 15 minutes, not {minutes}");
    let refresh: chrono::DateTime<chrono::Utc> =
        payload["refreshExpiresAt"].as_str().unwrap().parse().unwrap();
    assert!((refresh - chrono::Utc::now()).num_days() >= 29);
    tokens(payload)
}

async fn log_in(app: &TestApp, email: &str) -> Tokens {
    tokens(&app.data(LOGIN, json!({ "email": email, "password": PASSWORD })).await["login"])
}

/// The status and first error code of `query` with `access`.
async fn as_token(app: &TestApp, access: &str, query: &str) -> (u16, Value) {
    app.gql_with_header(&format!("Bearer {access}"), query, json!({})).await
}

async fn works(app: &TestApp, access: &str) -> bool {
    let (status, body) = as_token(app, access, VIEWER).await;
    match status {
        200 => body["data"]["viewer"]["email"].is_string(),
        401 => {
            assert_eq!(first_error(&body).0, "UNAUTHENTICATED");
            false
        }
        other => panic!("unexpected status {other}: {body:#}"),
    }
}

api_test!(refresh_tokens_rotate_and_a_reused_one_ends_the_session, [sqlite, postgres], |app| {
    let first = sign_up(&app, "rotate@example.com").await;
    let second =
        tokens(&app.data(REFRESH, json!({ "token": first.refresh })).await["refreshToken"]);
    assert_ne!(second.refresh, first.refresh);
    assert!(works(&app, &second.access).await);
    let third =
        tokens(&app.data(REFRESH, json!({ "token": second.refresh })).await["refreshToken"]);
    assert!(works(&app, &third.access).await);

    // Someone replays a token that was already traded: the whole session
    // ends, for them and for whoever holds the newest tokens.
    let replay = app.gql(REFRESH, json!({ "token": first.refresh })).await;
    let (code, message) = first_error(&replay);
    assert_eq!(code, "UNAUTHENTICATED");
    assert!(message.contains("already used"), "{message}");
    let (code, _) = first_error(&app.gql(REFRESH, json!({ "token": third.refresh })).await);
    assert_eq!(code, "UNAUTHENTICATED");
    assert!(!works(&app, &third.access).await, "the session's access token ended with it");
    let (_, body) = as_token(&app, &third.access, VIEWER).await;
    assert!(first_error(&body).1.contains("session"), "{body:#}");
    // Another session of the same account is untouched.
    let other = log_in(&app, "rotate@example.com").await;
    assert!(works(&app, &other.access).await);
    // Garbage is refused without ending anything.
    for junk in ["", "nonsense", "a.b.c", &format!("{}x", other.refresh)] {
        let (code, _) = first_error(&app.gql(REFRESH, json!({ "token": junk })).await);
        assert_eq!(code, "UNAUTHENTICATED", "{junk}");
    }
    assert!(works(&app, &other.access).await);
});

// Replicas share what they know of tokens through Redis: without it, run one.
api_test!(logout_ends_a_session_at_once_on_every_replica, [sqlite_redis, postgres_redis], |app| {
    let replica = app.replica().await;
    let phone = sign_up(&app, "leave@example.com").await;
    let laptop = log_in(&app, "leave@example.com").await;
    assert!(works(&replica, &phone.access).await);
    let (status, body) = as_token(&app, &phone.access, "mutation { logout }").await;
    assert_eq!((status, &body["data"]["logout"]), (200, &json!(true)), "{body:#}");
    // The other replica refuses it on the very next request.
    assert!(!works(&replica, &phone.access).await);
    assert!(!works(&app, &phone.access).await);
    let (code, _) = first_error(&replica.gql(REFRESH, json!({ "token": phone.refresh })).await);
    assert_eq!(code, "UNAUTHENTICATED");
    assert!(works(&replica, &laptop.access).await, "another session goes on");

    let tablet = log_in(&app, "leave@example.com").await;
    let (_, body) = as_token(&replica, &tablet.access, "mutation { logoutEverywhere }").await;
    assert_eq!(body["data"]["logoutEverywhere"], true, "{body:#}");
    for session in [&laptop, &tablet] {
        assert!(!works(&app, &session.access).await);
        assert!(!works(&replica, &session.access).await);
    }
});

api_test!(changing_the_password_ends_the_other_sessions, [sqlite, postgres], |app| {
    let here = sign_up(&app, "change@example.com").await;
    let elsewhere = log_in(&app, "change@example.com").await;
    let change = |current: &str, new: &str| {
        format!("mutation {{ changePassword(current: {current:?}, new: {new:?}) }}")
    };
    let (_, body) = as_token(&app, &here.access, &change("not it", "a brand new phrase")).await;
    let (code, message) = first_error(&body);
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("current"), "{message}");
    let (_, body) = as_token(&app, &here.access, &change(PASSWORD, "iloveyou")).await;
    assert!(first_error(&body).1.contains("commonly used"), "{body:#}");
    assert!(works(&app, &elsewhere.access).await, "nothing changed yet");

    let (_, body) = as_token(&app, &here.access, &change(PASSWORD, "a brand new phrase")).await;
    assert_eq!(body["data"]["changePassword"], true, "{body:#}");
    assert!(works(&app, &here.access).await, "this session goes on");
    assert!(!works(&app, &elsewhere.access).await, "the others end");
    let (code, _) = first_error(&app.gql(REFRESH, json!({ "token": elsewhere.refresh })).await);
    assert_eq!(code, "UNAUTHENTICATED");
    let old = app.gql(LOGIN, json!({ "email": "change@example.com", "password": PASSWORD })).await;
    assert_eq!(first_error(&old).0, "UNAUTHENTICATED");
    let new = app
        .data(LOGIN, json!({ "email": "change@example.com", "password": "a brand new phrase" }))
        .await;
    assert!(new["login"]["token"].is_string());
});

api_test!(weak_passwords_are_refused_with_a_reason, [sqlite, postgres], |app| {
    for (email, password, says) in [
        ("weak1@example.com", "password1", "commonly used"),
        ("weak2@example.com", "Qwerty123", "commonly used"),
        ("weak3@example.com", "weak3@example.com", "email"),
        ("weakling@example.com", "WEAKLING", "email"),
        ("weak4@example.com", "zzzzzzzzzzzz", "repeated"),
        ("weak5@example.com", "short", "8 to 128"),
    ] {
        let input = json!({ "input": { "email": email, "password": password, "name": "W" } });
        let (code, message) = first_error(&app.gql(REGISTER, input).await);
        assert_eq!(code, "BAD_USER_INPUT", "{password}");
        assert!(message.contains(says), "{password}: {message}");
    }
});

async fn a_stranger_cannot_lock_the_owner_out(app: TestAppBuilder) {
    let app = app
        .with_config(|c| {
            c.login_rate_limit_per_minute = 3;
            c.trust_proxy = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .start()
        .await;
    let owner = "owner@lockout.test";
    sign_up(&app, owner).await;
    let attempt = |password: &str| json!({ "query": LOGIN, "variables": { "email": owner, "password": password } });
    // A stranger guesses from address after address, past the email's budget.
    for n in 1..=6 {
        let (status, _, body) =
            post(&app, attempt("guess number x"), Some(&format!("198.51.100.{n}"))).await;
        let code = first_error(&body).0;
        if n <= 3 {
            assert_eq!((status, code.as_str()), (200, "UNAUTHENTICATED"), "guess {n}");
        } else {
            assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"), "guess {n}");
        }
    }
    // The owner, from their own address, gets in at the first try.
    for attempt_no in 0..5 {
        let (status, _, body) = post(&app, attempt(PASSWORD), Some("203.0.113.9")).await;
        if attempt_no < 3 {
            assert_eq!(status, 200, "{body:#}");
            assert!(body["data"]["login"]["token"].is_string(), "{body:#}");
        } else {
            // Only their own address's budget can stop them.
            assert_eq!(status, 429, "{body:#}");
        }
    }
    // IPv6 addresses are one client per /64, as for the request budget.
    for n in 1..=3 {
        let ip = format!("2001:db8:1:2::{n}");
        let (status, _, _) = post(&app, attempt("another guess"), Some(&ip)).await;
        assert_ne!(status, 500, "{ip}");
    }
    let (status, _, body) = post(&app, attempt(PASSWORD), Some("2001:db8:1:2::ffff")).await;
    assert_eq!(status, 429, "the /64 spent its attempts: {body:#}");
    let (status, _, body) = post(&app, attempt(PASSWORD), Some("2001:db8:1:3::1")).await;
    assert_eq!(status, 200, "another /64 is another client: {body:#}");
}

api_test!(a_stranger_cannot_lock_the_owner_out, [sqlite, postgres]);
