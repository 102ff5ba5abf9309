//! Liveness and readiness probes.

use std::sync::atomic::Ordering;

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::{app::AppState, db};

/// `GET /health`: 200 while the process runs.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Longest `/ready` waits for any one dependency.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

/// `GET /ready`: 200 when the database answers and every migration is
/// applied, 503 otherwise; the body names each dependency's state. It
/// answers within a second, and its reasons are for the public: causes go
/// to the log.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = async {
        if state.db_health.is_open() {
            return Err("unavailable: the database does not answer".to_owned());
        }
        match tokio::time::timeout(READY_TIMEOUT, db::ping(&state.db)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                tracing::warn!(error = format!("{err:#}"), "readiness: the database failed");
                Err("unavailable: the database does not answer".to_owned())
            }
            Err(_) => Err(format!(
                "unavailable: the database did not answer within {} ms",
                READY_TIMEOUT.as_millis()
            )),
        }
    };
    let cache = tokio::time::timeout(READY_TIMEOUT, state.cache.check());
    let (database, cache) = tokio::join!(database, cache);
    let migrations = if database.is_err() {
        Err("unknown: the database does not answer".to_owned())
    } else if state.migrations_applied.load(Ordering::Relaxed) {
        Ok(())
    } else {
        match tokio::time::timeout(READY_TIMEOUT, db::pending_migrations(&state.db)).await {
            Ok(Ok(0)) => {
                // Applied migrations stay applied: no need to ask again.
                state.migrations_applied.store(true, Ordering::Relaxed);
                Ok(())
            }
            Ok(Ok(n)) => Err(format!("{n} pending; run `bookedbarber migrate`")),
            Ok(Err(err)) => {
                tracing::warn!(error = format!("{err:#}"), "readiness: reading migrations failed");
                Err("unknown: the applied migrations could not be read".to_owned())
            }
            Err(_) => Err("unknown: the applied migrations could not be read in time".to_owned()),
        }
    };
    let cache = match cache {
        Ok(health) => {
            if let Some(problem) = &health.problem {
                tracing::warn!(error = problem, "readiness: the cache is degraded");
            }
            (health.backend, health.problem.is_some())
        }
        Err(_) => (state.cache.health().backend, true),
    };
    // The database is the hard dependency: a degraded cache leaves the API
    // answering (from the database), so it does not make us unready.
    let ready = database.is_ok() && migrations.is_ok();
    let state_of = |check: &Result<(), String>| match check {
        Ok(()) => json!({ "status": "ok" }),
        Err(reason) => json!({ "status": "error", "reason": reason }),
    };
    // Where the rate limits are kept: Redis, shared by every replica, or
    // this replica's share in process while Redis is away.
    // As the last charge was made, and not in Redis while it does not answer.
    let limits = match cache.1 {
        true => "in-process",
        false => state.limits.store(),
    };
    let rate_limits = match (state.config.redis_url.is_some(), limits) {
        (true, "in-process") => json!({
            "status": "degraded",
            "store": limits,
            "reason": "Redis does not answer; each replica allows its share of every budget",
        }),
        _ => json!({ "status": "ok", "store": limits }),
    };
    let read_replica = read_replica(&state);
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": {
            "database": state_of(&database),
            "migrations": state_of(&migrations),
            "cache": match cache {
                (backend, false) => json!({ "status": "ok", "backend": backend }),
                (backend, true) => json!({
                    "status": "degraded",
                    "backend": backend,
                    "reason": "the cache does not answer; answers come from the database",
                }),
            },
            "rateLimits": rate_limits,
            "readReplica": read_replica,
        },
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

/// Where the reads that may use the replica go, and why: like a degraded
/// cache, a replica away leaves the API answering (from the primary).
fn read_replica(state: &AppState) -> Value {
    use crate::db::replica::ReplicaState;
    let max_lag = state.reads.max_lag().as_secs_f64();
    let degraded =
        |reason: String| json!({ "status": "degraded", "reads": "primary", "reason": reason });
    match state.reads.replica_state() {
        None => json!({ "status": "ok", "reads": "primary" }),
        Some(ReplicaState::Lagging { lag }) if state.reads.replica_usable() => {
            json!({ "status": "ok", "reads": "replica", "lagSeconds": lag })
        }
        Some(ReplicaState::Lagging { lag }) if lag.is_finite() => {
            let mut body = degraded(format!(
                "the read replica lags more than {max_lag} s; reads go to the primary"
            ));
            body["lagSeconds"] = json!(lag);
            body
        }
        Some(ReplicaState::Lagging { .. }) => degraded(
            "the read replica has replayed nothing of late; reads go to the primary".to_owned(),
        ),
        Some(ReplicaState::NotStandby) => degraded(
            "DATABASE_READ_URL is not a standby (promoted?); reads go to the primary".to_owned(),
        ),
        Some(ReplicaState::Down | ReplicaState::Unknown) => {
            degraded("the read replica does not answer; reads go to the primary".to_owned())
        }
    }
}
