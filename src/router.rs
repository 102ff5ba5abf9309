//! The route table and the HTTP middleware around it.

use axum::{
    Router,
    http::{HeaderName, HeaderValue, Method, Request, header},
    response::IntoResponse,
    routing::get,
};
use std::time::Duration;

use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use tracing::Span;

use crate::{app::AppState, config::AccessLog, error::AppError, graphql, health, telemetry};

/// The access log line of an answered request, at the configured level
/// (inside the request's span, which holds its method, path and id).
fn access_log(level: AccessLog, status: axum::http::StatusCode, latency: Duration) {
    let status = status.as_u16();
    let latency_ms = latency.as_secs_f64() * 1000.0;
    match level {
        AccessLog::Off => {}
        AccessLog::Debug => tracing::debug!(status, latency_ms, "finished processing request"),
        AccessLog::Info => tracing::info!(status, latency_ms, "finished processing request"),
        AccessLog::Warn => tracing::warn!(status, latency_ms, "finished processing request"),
    }
}

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
        Err(_) => AppError::Timeout(format!(
            "the request took longer than {} s and was cut off; try again, or ask for less",
            timeout.as_secs()
        ))
        .into_response(),
    }
}

/// Checks the configured CORS origins once, at start.
pub fn check_cors_origins(origins: &[String]) -> anyhow::Result<()> {
    for origin in origins {
        let parsed = url::Url::parse(origin.trim()).map_err(|e| {
            anyhow::anyhow!("CORS_ALLOWED_ORIGINS: {origin:?} is not an origin: {e}")
        })?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https")
                && parsed.path() == "/"
                && !origin.ends_with('/'),
            "CORS_ALLOWED_ORIGINS: {origin:?} must be an origin like https://app.example.com"
        );
    }
    Ok(())
}

/// CORS for the configured origins: GET and POST with the headers a
/// GraphQL client sends, and the rate-limit headers readable.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> =
        origins.iter().filter_map(|o| HeaderValue::from_str(o.trim()).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, REQUEST_ID])
            .expose_headers([
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
                header::RETRY_AFTER,
                REQUEST_ID,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// `/metrics` alone, for `METRICS_BIND_ADDR`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(telemetry::render_metrics)).with_state(state)
}

/// A body over [`MAX_BODY_BYTES`] is refused with 413 by the limit layer in
/// plain text; clients get the same JSON error shape as for everything else.
async fn json_when_too_large(response: axum::response::Response) -> axum::response::Response {
    if response.status() != axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    AppError::PayloadTooLarge(format!(
        "the request body is larger than {} KiB; send less in one request",
        MAX_BODY_BYTES / 1024
    ))
    .into_response()
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    let timeout = state.config.request_timeout();
    let access = state.config.access_log;
    let cors = cors(&state.config.cors_allowed_origins);
    let mut routes = Router::new()
        .route("/graphql", get(graphql::http::get).post(graphql::http::post))
        .route("/graphql/ws", get(graphql::ws::handler))
        .route(
            &format!("{}/{{name}}", graphql::playground::ASSET_PREFIX),
            get(graphql::playground::asset).layer(CompressionLayer::new()),
        )
        .route("/health", get(health::health))
        .route("/ready", get(health::ready));
    if state.config.metrics_bind_addr.is_none() {
        routes = routes.route("/metrics", get(telemetry::render_metrics));
    }
    let routes = routes
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(json_when_too_large))
        .layer(axum::middleware::from_fn(move |request, next| timed(timeout, request, next)))
        .layer(CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .on_response(
                    move |response: &axum::response::Response, latency: Duration, _: &Span| {
                        access_log(access, response.status(), latency);
                    },
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
        // Browsers must not guess a type other than the one sent, or send
        // the API's address along to other sites.
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ));
    match cors {
        Some(cors) => routes.layer(cors),
        None => routes,
    }
}
