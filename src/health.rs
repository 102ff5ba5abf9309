//! Liveness and readiness probes.

use std::sync::atomic::Ordering;

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::{app::AppState, db};

/// `GET /health`: 200 while the process runs.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 when the database answers and every migration is
/// applied, 503 otherwise; the body names each dependency's state.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = match db::ping(&state.db).await {
        Ok(()) => Ok(()),
        Err(err) => Err(format!("{err:#}")),
    };
    let migrations = if database.is_err() {
        Err("unknown: the database does not answer".to_owned())
    } else if state.migrations_applied.load(Ordering::Relaxed) {
        Ok(())
    } else {
        match db::pending_migrations(&state.db).await {
            Ok(0) => {
                // Applied migrations stay applied: no need to ask again.
                state.migrations_applied.store(true, Ordering::Relaxed);
                Ok(())
            }
            Ok(n) => Err(format!("{n} pending; run `bookedbarber migrate`")),
            Err(err) => Err(format!("{err:#}")),
        }
    };
    let cache = state.cache.check().await;
    // The database is the hard dependency: a degraded cache leaves the API
    // answering (from the database), so it does not make us unready.
    let ready = database.is_ok() && migrations.is_ok();
    let state_of = |check: &Result<(), String>| match check {
        Ok(()) => json!({ "status": "ok" }),
        Err(reason) => json!({ "status": "error", "reason": reason }),
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": {
            "database": state_of(&database),
            "migrations": state_of(&migrations),
            "cache": match &cache.problem {
                None => json!({ "status": "ok", "backend": cache.backend }),
                Some(reason) => json!({ "status": "degraded", "backend": cache.backend, "reason": reason }),
            },
        },
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}
