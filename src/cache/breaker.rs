//! A circuit breaker: after a few failures in a row, stop calling a
//! dependency for a while, so a dead Redis costs nothing per request.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

/// Consecutive failures that open the circuit.
const FAILURES_TO_OPEN: u32 = 3;
/// How long an open circuit skips the dependency before trying it again.
const OPEN_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Breaker {
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
}

impl Breaker {
    /// Whether a call may be made now (closed, or half-open after the wait).
    pub fn allows(&self) -> bool {
        match *self.open_until.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(until) => Instant::now() >= until,
            None => true,
        }
    }

    /// Records a success; `true` when it ends a run of failures.
    pub fn succeeded(&self) -> bool {
        let recovered = self.failures.swap(0, Ordering::Relaxed) > 0;
        if recovered {
            tracing::info!("cache backend answers again");
        }
        *self.open_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        recovered
    }

    pub fn failed(&self, error: &str) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_owned());
        if failures >= FAILURES_TO_OPEN {
            let mut open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
            if open.is_none_or(|until| Instant::now() >= until) {
                tracing::warn!(
                    error,
                    failures,
                    "cache backend failing; answering from the database"
                );
                *open = Some(Instant::now() + OPEN_FOR);
            }
        }
    }

    /// `None` when healthy, else the last error.
    pub fn problem(&self) -> Option<String> {
        if self.failures.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_repeated_failures_and_closes_on_success() {
        let breaker = Breaker::default();
        breaker.failed("boom");
        breaker.failed("boom");
        assert!(breaker.allows());
        breaker.failed("boom");
        assert!(!breaker.allows());
        assert_eq!(breaker.problem().as_deref(), Some("boom"));
        breaker.succeeded();
        assert!(breaker.allows());
        assert_eq!(breaker.problem(), None);
    }
}
