//! Logging: tracing spans with the request id, pretty or JSON.

use std::{io::IsTerminal, sync::OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber; `RUST_LOG` overrides the default filter.
///
/// Lines are formatted where they happen and written to stdout by a thread
/// of their own, in batches: a write per line on the request's own thread
/// was a quarter of the CPU of a small request. The returned guard flushes
/// what is left when it is dropped; keep it for the life of the process.
pub fn init(format: LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm_migration=warn"));
    // Lines wait in memory until the writer thread finds the queue empty,
    // then go out together. Past the queue's 128k lines, requests wait for
    // it rather than lose lines.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::new(std::io::stdout()));
    let registry = tracing_subscriber::registry().with(filter);
    let ansi = std::io::stdout().is_terminal();
    let result = match format {
        LogFormat::Pretty => {
            registry.with(fmt::layer().with_ansi(ansi).with_writer(writer)).try_init()
        }
        LogFormat::Json => registry
            .with(
                fmt::layer().json().flatten_event(true).with_current_span(true).with_writer(writer),
            )
            .try_init(),
    };
    // A subscriber may already be set (tests); keep that one.
    let _ = result;
    guard
}

/// The process's Prometheus recorder, installed on first use.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0];
        let recorder = PrometheusBuilder::new()
            .set_buckets(&buckets)
            .map(|builder| builder.build_recorder())
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Another recorder may be installed already (a test harness); ours
        // then renders only what it saw, which is nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Drains histogram samples into their buckets every few seconds, so memory
/// stays flat between scrapes. Once per process.
pub fn spawn_metrics_upkeep() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        tokio::spawn(async {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics().run_upkeep();
            }
        });
    });
}

/// A statement failed for want of a database connection (none came free,
/// or the database refused or dropped it): what the alert on connection
/// errors counts.
pub fn db_connection_error() {
    metrics::counter!("bookedbarber_db_connection_errors_total").increment(1);
}

/// `GET /metrics`: Prometheus text format, with the gauges read now.
pub async fn render_metrics(
    axum::extract::State(state): axum::extract::State<crate::app::AppState>,
) -> impl axum::response::IntoResponse {
    let (in_use, idle) = crate::db::pool_use(&state.db);
    metrics::gauge!("bookedbarber_db_pool_connections", "state" => "in_use").set(f64::from(in_use));
    metrics::gauge!("bookedbarber_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("bookedbarber_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    metrics::gauge!("bookedbarber_rate_limit_tracked_clients").set(state.limits.tracked() as f64);
    metrics::gauge!("bookedbarber_graphql_in_flight").set(state.admission.in_flight() as f64);
    let degraded = state.cache.health().problem.is_some();
    metrics::gauge!("bookedbarber_cache_degraded").set(if degraded { 1.0 } else { 0.0 });
    // Present from the start, so an alert on its rise has a series.
    metrics::counter!("bookedbarber_db_connection_errors_total").increment(0);
    let in_redis = state.limits.store() == "redis";
    metrics::gauge!("bookedbarber_rate_limits_in_redis").set(if in_redis { 1.0 } else { 0.0 });
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics().render())
}

/// The operation names that get a metrics label of their own: those the
/// operator lists (`METRICS_OPERATIONS`), GraphiQL's introspection, and the
/// names of persisted queries as they are registered (at most
/// [`MAX_PERSISTED_NAMES`]). Any other name is `other`, so junk names, however
/// many, never crowd out the real ones or blow up the metrics.
#[derive(Debug, Default)]
pub struct OperationNames {
    known: std::collections::HashSet<String>,
    persisted: std::sync::RwLock<std::collections::HashSet<String>>,
}

/// Names of persisted queries that get a label of their own.
pub const MAX_PERSISTED_NAMES: usize = 256;

fn is_label_safe(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl OperationNames {
    pub fn new(configured: &[String]) -> Self {
        let known = configured
            .iter()
            .map(|name| name.trim().to_owned())
            .filter(|name| is_label_safe(name))
            .chain(std::iter::once("IntrospectionQuery".to_owned()))
            .collect();
        Self { known, persisted: Default::default() }
    }

    /// Gives a persisted query's operation name a label of its own, while
    /// there is room.
    pub fn learn(&self, name: &str) {
        if !is_label_safe(name) || self.known.contains(name) {
            return;
        }
        let mut persisted = self.persisted.write().unwrap_or_else(|e| e.into_inner());
        if persisted.len() < MAX_PERSISTED_NAMES {
            persisted.insert(name.to_owned());
        }
    }

    /// The label of an operation: its name when known, `anonymous` without
    /// one, `other` otherwise.
    pub fn label(&self, name: Option<&str>) -> String {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return "anonymous".to_owned();
        };
        let known = self.known.contains(name)
            || self.persisted.read().unwrap_or_else(|e| e.into_inner()).contains(name);
        if known { name.to_owned() } else { "other".to_owned() }
    }
}

/// Records one GraphQL request: count and latency by operation and outcome,
/// errors by code; logs it when slow.
pub fn graphql_request(
    operation: &str,
    response: &async_graphql::Response,
    elapsed: std::time::Duration,
    slow_ms: u64,
) {
    let outcome = if response.errors.is_empty() { "ok" } else { "error" };
    let labels = [("operation", operation.to_owned()), ("outcome", outcome.to_owned())];
    metrics::counter!("bookedbarber_graphql_requests_total", &labels).increment(1);
    metrics::histogram!("bookedbarber_graphql_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    for error in &response.errors {
        let code = match error.extensions.as_ref().and_then(|e| e.get("code")) {
            Some(async_graphql::Value::String(code)) => code.clone(),
            _ => "NONE".to_owned(),
        };
        metrics::counter!("bookedbarber_graphql_errors_total", "code" => code).increment(1);
    }
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    if duration_ms >= slow_ms {
        tracing::warn!(operation, duration_ms, outcome, "slow GraphQL operation");
    }
}

pin_project_lite::pin_project! {
    /// A future that adds up the time it spends being polled: what a
    /// request costs the worker threads, but for the work it hands to other
    /// tasks (the Redis connection's driver, password hashing on the
    /// blocking pool, which [`password_hashed`] counts). Wall time inside
    /// each poll, so a thread preempted mid-poll counts the wait too.
    pub struct Busy<F> {
        #[pin]
        inner: F,
        spent: std::time::Duration,
    }
}

impl<F> Busy<F> {
    pub fn new(inner: F) -> Self {
        Self { inner, spent: std::time::Duration::ZERO }
    }
}

impl<F: std::future::Future> std::future::Future for Busy<F> {
    type Output = (F::Output, std::time::Duration);

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let started = std::time::Instant::now();
        let polled = this.inner.poll(cx);
        *this.spent += started.elapsed();
        polled.map(|output| (output, *this.spent))
    }
}

/// How a GraphQL request was answered, for [`graphql_busy`]: its metrics
/// label, and whether a kept answer served it. Set on the response by the
/// handler that ran it.
#[derive(Clone, Debug)]
pub struct Answered {
    pub operation: String,
    pub kept: bool,
}

/// Records the time a GraphQL request kept a worker thread busy, by
/// operation and by whether it was computed or served kept: where the
/// server's CPU goes.
pub fn graphql_busy(answered: Option<Answered>, busy: std::time::Duration) {
    let (operation, answer) = match answered {
        Some(answered) => (answered.operation, if answered.kept { "kept" } else { "computed" }),
        None => ("refused".to_owned(), "refused"),
    };
    metrics::histogram!(
        "bookedbarber_graphql_busy_seconds",
        "operation" => operation,
        "answer" => answer
    )
    .record(busy.as_secs_f64());
}

/// Records the CPU time one password hash or check took on the blocking
/// pool.
pub fn password_hashed(spent: std::time::Duration) {
    metrics::counter!("bookedbarber_password_hashes_total").increment(1);
    metrics::counter!("bookedbarber_password_hashing_microseconds_total")
        .increment(u64::try_from(spent.as_micros()).unwrap_or(u64::MAX));
}

/// Counts a request refused because the server was at capacity.
pub fn overloaded() {
    metrics::counter!("bookedbarber_overload_refusals_total").increment(1);
}

/// Counts a request refused by a rate limiter.
pub fn rate_limit_refused(limiter: &'static str) {
    metrics::counter!("bookedbarber_rate_limit_refusals_total", "limiter" => limiter).increment(1);
}

/// Counts a request refused at once because the database is away.
pub fn db_unavailable_refused() {
    metrics::counter!("bookedbarber_db_unavailable_refusals_total").increment(1);
}
