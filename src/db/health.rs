//! The database's health, watched from the side: a circuit breaker fed by a
//! prober on a connection of its own.
//!
//! Without it, every request during an outage waited the pool's acquire
//! timeout (5 s) while holding its admission turn, and answered with a
//! status that depended on the path. The prober pings the database twice a
//! second on a one-connection pool of its own (its pings are not the
//! application's statements). Two failures in a row open the breaker: from
//! then on every GraphQL request is refused at once with 503 and
//! `SERVICE_UNAVAILABLE`, before it takes a turn or touches the pool. The
//! first ping that succeeds closes it again, so the API recovers by itself
//! within half a second of the database's return.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::DatabaseConnection;

/// Time between two probes.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
/// Longest a probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Failed probes in a row that open the breaker.
const FAILURES_TO_OPEN: u32 = 2;

#[derive(Default)]
struct State {
    open: AtomicBool,
    failures: AtomicU32,
    /// When the breaker opened, for the log line when it closes.
    opened_at: Mutex<Option<Instant>>,
}

/// Whether the database is taking requests; cheap to clone.
#[derive(Clone, Default)]
pub struct DbHealth(Arc<State>);

impl std::fmt::Debug for DbHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbHealth").field("open", &self.is_open()).finish()
    }
}

impl DbHealth {
    /// Whether requests are being refused because the database is away.
    pub fn is_open(&self) -> bool {
        self.0.open.load(Ordering::Acquire)
    }

    fn probed(&self, ok: bool) {
        if ok {
            self.0.failures.store(0, Ordering::Relaxed);
            if self.0.open.swap(false, Ordering::AcqRel) {
                let down = self.0.opened_at.lock().unwrap_or_else(|e| e.into_inner()).take();
                tracing::warn!(
                    down_ms = down.map(|at| at.elapsed().as_millis() as u64),
                    "the database answers again; taking requests"
                );
            }
            metrics::gauge!("bookedbarber_db_unavailable").set(0.0);
            return;
        }
        let failures = self.0.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= FAILURES_TO_OPEN && !self.0.open.swap(true, Ordering::AcqRel) {
            *self.0.opened_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            tracing::error!(failures, "the database does not answer; refusing requests at once");
            metrics::gauge!("bookedbarber_db_unavailable").set(1.0);
        }
    }

    /// Probes `probe` (a pool of its own) for as long as this health lives.
    pub fn spawn_prober(&self, probe: DatabaseConnection) {
        let health = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PROBE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(state) = health.upgrade() else { break };
                let ok = matches!(
                    tokio::time::timeout(PROBE_TIMEOUT, super::ping(&probe)).await,
                    Ok(Ok(()))
                );
                DbHealth(state).probed(ok);
            }
            let _ = probe.close().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failed_probes_in_a_row_and_closes_on_the_first_success() {
        let health = DbHealth::default();
        health.probed(false);
        assert!(!health.is_open(), "one failure is not an outage");
        health.probed(true);
        health.probed(false);
        assert!(!health.is_open(), "a success in between resets the count");
        health.probed(false);
        assert!(health.is_open());
        health.probed(true);
        assert!(!health.is_open());
    }
}
