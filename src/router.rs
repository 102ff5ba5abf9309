//! The route table and the HTTP middleware around it.

use axum::{
    Router,
    http::{HeaderName, Request},
    response::IntoResponse,
    routing::get,
};
use tower_http::{
    LatencyUnit,
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};

use crate::{app::AppState, graphql, health, telemetry};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Cuts a request off after `timeout` with 408 and a GraphQL-shaped
/// `TIMEOUT` error, on every route. Statements have a shorter timeout of
/// their own, so a request normally fails on that first, with its work
/// undone and its connection free.
async fn timed(
    timeout: std::time::Duration,
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let body = serde_json::json!({
                "data": null,
                "errors": [{
                    "message": format!(
                        "the request took longer than {} s and was cut off; try again, or ask for less",
                        timeout.as_secs()
                    ),
                    "extensions": { "code": "TIMEOUT" },
                }],
            });
            (axum::http::StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response()
        }
    }
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    let timeout = state.config.request_timeout();
    Router::new()
        .route("/graphql", get(graphql::http::get).post(graphql::http::execute))
        .route(
            &format!("{}/{{name}}", graphql::playground::ASSET_PREFIX),
            get(graphql::playground::asset).layer(CompressionLayer::new()),
        )
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(telemetry::render_metrics))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(move |request, next| timed(timeout, request, next)))
        .layer(CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(LatencyUnit::Millis),
                )
                .make_span_with(|request: &Request<_>| {
                    let request_id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "request",
                        http.method = %request.method(),
                        http.path = request.uri().path(),
                        request.id = request_id,
                    )
                }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
