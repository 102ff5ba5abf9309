//! `/graphql` over HTTP: GraphiQL on a plain GET, queries on POST and on GET
//! with a `query` parameter. Every request is authenticated first.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use async_graphql::ErrorExtensions;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse, rejection::GraphQLRejection};
use axum::{
    Json,
    extract::{ConnectInfo, FromRequest, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{
    limits::{OperationInfo, ViaGet},
    persisted::{self, Asked},
};
use crate::{
    app::AppState,
    auth::{
        Identity,
        identity::{Loaded, load_viewer},
        token::TokenError,
    },
    error::{AppError, ErrorKind},
    protect::{self, Budget, ClientIp, ClientKey, Refusal, RequestBudget},
    telemetry,
};

/// Who sent the request: anonymous without an `Authorization` header, the
/// token's user with a valid one. A malformed, expired or foreign token, or
/// the token of a deleted account, is refused, never taken as anonymous.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Identity, AppError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Identity::Anonymous);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::Unauthenticated(
                "the Authorization header must be `Bearer <token>`, with a token from `login`"
                    .to_owned(),
            )
        })?;
    let verified = state.tokens.verify(token).map_err(|err| {
        AppError::Unauthenticated(match err {
            TokenError::Expired => {
                "your token has expired; get a new one with `refreshToken`, or sign in again with `login`"
                    .to_owned()
            }
            TokenError::Invalid => "your token is not valid; sign in again with `login`".to_owned(),
        })
    })?;
    let viewer = match load_viewer(&state.db, verified.user_id, Some(&verified.session)).await? {
        Loaded::Viewer(viewer) => viewer,
        Loaded::NoAccount => {
            return Err(AppError::Unauthenticated(
                "the account of this token no longer exists; register or sign in again".to_owned(),
            ));
        }
        Loaded::SessionEnded => {
            return Err(AppError::Unauthenticated(
                "the session of this token has ended (signed out or password changed); sign in again with `login`"
                    .to_owned(),
            ));
        }
    };
    Ok(Identity::User(Arc::new(viewer)))
}

/// A GraphQL-shaped answer to a request refused before it ran: no data,
/// one error.
pub(crate) fn error_response(
    status: StatusCode,
    message: impl serde::Serialize,
    extensions: impl serde::Serialize,
) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": message, "extensions": extensions }],
    });
    (status, Json(body)).into_response()
}

/// A body that is not a GraphQL request: 400 with a JSON error.
fn unreadable(rejection: GraphQLRejection) -> Response {
    let message = format!(
        "the request is not a GraphQL request ({}); send JSON like {{\"query\": \"{{ shops {{ totalCount }} }}\"}}",
        rejection.0
    );
    error_response(
        StatusCode::BAD_REQUEST,
        message,
        serde_json::json!({ "code": "BAD_USER_INPUT" }),
    )
}

/// 503 with `Retry-After` and a `SERVICE_UNAVAILABLE` error: the database
/// is away, and nothing of the request was done.
fn unavailable() -> Response {
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "the database is unavailable; nothing was done; try again in a few seconds",
        serde_json::json!({ "code": "SERVICE_UNAVAILABLE", "retryAfter": 2 }),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(2));
    response
}

/// The response to a request whose sender could not be authenticated.
fn refused(error: AppError) -> Response {
    // Authentication fails either on the credentials (401) or on the
    // database it needs to look the account up (503).
    let status = match error {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::ServiceUnavailable(_) => return unavailable(),
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let error = error.extend();
    let mut response = error_response(status, error.message, error.extensions);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    response
}

/// Whether a POST body is declared as JSON. Only JSON runs: a browser sends
/// `text/plain`, `multipart/form-data` and form encodings cross-site without
/// asking, and JSON it does not (the GraphQL-over-HTTP spec's CSRF advice).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .is_some_and(|essence| {
            essence == "application/json" || essence == "application/graphql-response+json"
        })
}

/// Runs one GraphQL request (POST, JSON) as its sender.
pub async fn execute(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    if !is_json(&headers) {
        let response = error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send GraphQL requests as `Content-Type: application/json`; other types are refused, so that no web page can make a browser run an operation",
            serde_json::json!({ "code": "BAD_USER_INPUT" }),
        );
        let ip = protect::client_ip(peer.ip(), &headers, &state.config.trust_proxy);
        return refused_early(&state, ip, response);
    }
    let request =
        GraphQLRequest::from_request(request, &state).await.map(GraphQLRequest::into_inner);
    run(state, peer, headers, request).await
}

/// GET `/graphql`: the GraphiQL playground, or a query when one is given.
pub async fn get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    // A query, or a persisted query's hash alone (Apollo's GET form).
    let asks = request.uri().query().is_some_and(|q| {
        q.split('&').any(|pair| pair.starts_with("query=") || pair.starts_with("extensions="))
    });
    if !asks {
        return super::playground::page().await.into_response();
    }
    let headers = request.headers().clone();
    let request = GraphQLRequest::from_request(request, &state)
        .await
        .map(|request| request.into_inner().data(ViaGet));
    run(state, peer, headers, request).await
}

/// Authenticates, charges and runs a request, then reports its cost.
async fn run(
    state: AppState,
    peer: SocketAddr,
    headers: HeaderMap,
    request: Result<async_graphql::Request, GraphQLRejection>,
) -> Response {
    let started = Instant::now();
    let ip = protect::client_ip(peer.ip(), &headers, &state.config.trust_proxy);
    let refused_early = |response: Response| refused_early(&state, ip, response);
    let request = match request {
        Ok(request) => request,
        Err(rejection) => return refused_early(unreadable(rejection)),
    };
    if state.db_health.is_open() {
        // The database is away: refuse at once, every path alike, rather
        // than queue for a connection that will not come.
        telemetry::db_unavailable_refused();
        return refused_early(unavailable());
    }
    // Held to the end of the request: signing in and running both use the
    // database.
    let Some(_turn) = state.admission.enter().await else {
        telemetry::overloaded();
        return overloaded();
    };
    let identity = match authenticate(&state, &headers).await {
        Ok(identity) => identity,
        Err(error) => return refused_early(refused(error)),
    };
    let personal = identity.viewer().is_some();
    let key = match identity.viewer() {
        Some(viewer) => ClientKey::User(viewer.id()),
        None => protect::ip_key(ip),
    };
    let budget = match state.limits.charge(&key, 1) {
        Ok(budget) => RequestBudget(Arc::new(std::sync::Mutex::new(budget))),
        Err(refusal) => {
            telemetry::rate_limit_refused("requests");
            return too_many(&refusal);
        }
    };
    let mut request = request;
    let registration = match persisted::resolve(&state.cache, &mut request).await {
        Ok(Asked::Register { hash }) => {
            match state.limits.charge(&key, persisted::REGISTRATION_COST) {
                Ok(after) => budget.set(after),
                Err(refusal) => {
                    telemetry::rate_limit_refused("requests");
                    return too_many(&refusal);
                }
            }
            Some((hash, request.query.clone()))
        }
        Ok(Asked::Nothing | Asked::Known) => None,
        Err(error) => {
            let error = error.extend();
            let response = error_response(StatusCode::OK, error.message, error.extensions);
            return with_budget(response, &budget.get());
        }
    };
    let info = OperationInfo::default();
    let requested_name = request.operation_name.clone();
    let request = request.data(key).data(budget.clone()).data(info.clone()).data(ClientIp(ip));
    let mut response = super::loader::execute(&state.schema, request, &state.db, identity).await;
    super::ensure_error_codes(&mut response);
    // Kept once it parsed and validated (a field's error has a path; an
    // error of the whole request has none).
    let request_refused = response.data == async_graphql::Value::Null
        && response.errors.iter().any(|e| e.path.is_empty());
    let ran = info.name(requested_name.as_deref());
    if let Some((hash, query)) = registration
        && !request_refused
        && persisted::register(&state.cache, &hash, &query).await
        && let Some(name) = &ran
    {
        state.operation_names.learn(name);
    }

    let spent = budget.get();
    let cost = serde_json::json!({
        "requested": info.cost(),
        "remaining": spent.remaining,
        "limit": spent.limit,
        "resetAt": spent.reset_at.to_rfc3339(),
    });
    response
        .extensions
        .insert("cost".to_owned(), async_graphql::Value::from_json(cost).unwrap_or_default());
    let rate_limited = async_graphql::Value::from("RATE_LIMITED");
    let retry_after = response
        .errors
        .iter()
        .filter(|e| e.extensions.as_ref().and_then(|x| x.get("code")) == Some(&rate_limited))
        .map(|e| match e.extensions.as_ref().and_then(|x| x.get("retryAfter")) {
            Some(async_graphql::Value::Number(n)) => n.as_u64().unwrap_or(1),
            _ => 1,
        })
        .max();
    let operation = state.operation_names.label(ran.as_deref());
    let wrong_method = response
        .errors
        .iter()
        .any(|e| e.extensions.as_ref().and_then(|x| x.get("allowedMethods")).is_some());
    // A refusal of the whole request is a 429; a field refused inside a
    // mutation that otherwise ran is not (retrying it could repeat the rest).
    let retry_after = retry_after.filter(|_| response.data == async_graphql::Value::Null);
    telemetry::graphql_request(
        &operation,
        &response,
        started.elapsed(),
        state.config.slow_request_ms,
    );
    // A request that failed as a whole because the database is away is a
    // 503 on every path, as the breaker's refusals are.
    let database_away = response.data == async_graphql::Value::Null
        && response.errors.iter().any(|e| e.source::<ErrorKind>() == Some(&ErrorKind::Unavailable));
    let mut http = GraphQLResponse::from(response).into_response();
    if database_away {
        *http.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        http.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(2));
    }
    if wrong_method {
        *http.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        http.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    if let Some(seconds) = retry_after {
        telemetry::rate_limit_refused("cost_or_sign_in");
        *http.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        http.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if personal {
        // An answer for one person: no cache on the way may keep it.
        http.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    with_budget(http, &spent)
}

/// `response` to a request refused before it ran, which still costs its
/// sender's address a point (or is a 429 when none is left).
fn refused_early(state: &AppState, ip: std::net::IpAddr, response: Response) -> Response {
    match state.limits.charge(&protect::ip_key(ip), 1) {
        Ok(budget) => with_budget(response, &budget),
        Err(refusal) => {
            telemetry::rate_limit_refused("requests");
            too_many(&refusal)
        }
    }
}

/// Adds the `RateLimit-*` headers of `budget`.
fn with_budget(mut response: Response, budget: &Budget) -> Response {
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(budget.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(budget.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(budget.reset_secs()));
    response
}

/// 503 with `Retry-After` and an `OVERLOADED` error: no turn came free, and
/// nothing of the request was done.
fn overloaded() -> Response {
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is at capacity; nothing was done; try again in 1 s",
        serde_json::json!({ "code": "OVERLOADED", "retryAfter": 1 }),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
    response
}

/// 429 with `Retry-After` and a `RATE_LIMITED` error.
fn too_many(refusal: &Refusal) -> Response {
    let seconds = refusal.retry_after.as_secs() + 1;
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many requests: your budget is spent; try again in {seconds} s"),
        serde_json::json!({ "code": "RATE_LIMITED", "retryAfter": seconds }),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    with_budget(response, &refusal.budget)
}
