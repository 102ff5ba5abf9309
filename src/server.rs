//! The HTTP server: accepts connections and serves them with hyper, with the
//! limits `axum::serve` does not have.
//!
//! - A connection must send its request headers within the header-read
//!   timeout. hyper starts that timer whenever a connection waits for a
//!   request, so it also closes keep-alive connections left idle.
//! - At most `max_connections` are open, and never more than the process's
//!   file limit leaves room for. When full, a new connection takes the place
//!   of the oldest one that has no request in flight (half-open or idle
//!   keep-alive), as nginx reuses its waiting connections; only when every
//!   connection is running a request is the new one turned away.
//! - On shutdown, no new connections are accepted, in-flight requests get
//!   the grace period, and whatever still runs after it is dropped.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tower::ServiceExt;

/// Descriptors kept for the database and Redis pools, log files and the
/// like, beyond the connection cap.
const RESERVED_FILES: u64 = 64;

/// How connections are limited.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Open connections at most (lowered to fit the file limit).
    pub max_connections: usize,
    /// A connection must send a request's headers within this, from the
    /// moment it waits for one (connect, or the end of the last response).
    pub header_read_timeout: Duration,
}

/// The connection cap that fits the process's file limit: `wanted`, or the
/// file limit less what the pools and the rest of the process need. The
/// soft limit is raised to the hard one first, as servers usually do.
pub fn fitting_connection_cap(wanted: usize, pooled: u64) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(0),
    };
    if limit == 0 || limit == rlimit::INFINITY {
        return wanted.max(1);
    }
    let room = limit.saturating_sub(pooled + RESERVED_FILES).max(1);
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX)).max(1)
}

/// One open connection, as the cap sees it.
#[derive(Default)]
struct Slot {
    /// Requests in flight, or -1 once the slot is being evicted (no request
    /// may start after that).
    busy: AtomicI64,
    evicted: tokio::sync::Notify,
}

impl Slot {
    /// Starts a request; `None` when the connection is being evicted.
    fn start(self: &Arc<Self>) -> Option<Busy> {
        self.busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n >= 0).then_some(n + 1))
            .ok()
            .map(|_| Busy(Arc::clone(self)))
    }

    /// Claims the slot for eviction if no request runs on it.
    fn try_evict(&self) -> bool {
        self.busy.compare_exchange(0, -1, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// A request in flight on a slot, until its response body is gone.
struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Slots {
    open: Mutex<BTreeMap<u64, Arc<Slot>>>,
    next: AtomicU64,
}

impl Slots {
    /// A slot for a new connection, making room by evicting the oldest idle
    /// one when `cap` are open; `None` when all of them are busy.
    fn admit(&self, cap: usize) -> Option<(u64, Arc<Slot>)> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= cap {
            let oldest_idle = open.iter().find(|(_, slot)| slot.try_evict()).map(|(id, _)| *id);
            let slot = open.remove(&oldest_idle?)?;
            slot.evicted.notify_one();
            metrics::counter!("bookedbarber_http_connections_shed_total", "reason" => "idle_evicted")
                .increment(1);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::default());
        open.insert(id, Arc::clone(&slot));
        metrics::gauge!("bookedbarber_http_connections").set(open.len() as f64);
        Some((id, slot))
    }

    fn remove(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&id);
        metrics::gauge!("bookedbarber_http_connections").set(open.len() as f64);
    }
}

/// Whether an accept error concerns only the one connection (the next
/// accept may well succeed) rather than the listener or the process.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, lets in-flight requests finish for up to `grace`, and drops
/// what is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let slots = Arc::new(Slots::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    // Out of file descriptors, most likely: wait for some to
                    // close rather than spin.
                    tracing::error!(error = %error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some((id, slot)) = slots.admit(limits.max_connections) else {
            // Every connection is running a request: turn this one away now
            // rather than let it wait unseen.
            metrics::counter!("bookedbarber_http_connections_shed_total", "reason" => "full")
                .increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = {
            let slot = Arc::clone(&slot);
            let router = router.clone();
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                let busy = slot.start();
                request.extensions_mut().insert(ConnectInfo(peer));
                let router = router.clone();
                async move {
                    let Some(busy) = busy else {
                        // Evicted between reading the headers and now: the
                        // connection is closing, and nothing was run.
                        return Ok::<_, Infallible>(
                            axum::http::Response::builder()
                                .status(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                                .body(axum::body::Body::empty())
                                .unwrap_or_default(),
                        );
                    };
                    let response = router.oneshot(request).await?;
                    // The request counts as in flight until its body is sent.
                    Ok(response.map(|body| {
                        axum::body::Body::new(body.map_frame(move |frame| {
                            let _ = &busy;
                            frame
                        }))
                    }))
                }
            })
        };
        let connection = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let slots = Arc::clone(&slots);
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let stopping = async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = slot.evicted.notified() => {}
                () = stopping => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            slots.remove(id);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} })
            .await;
    if drained.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs_f64(),
            still_open = connections.len(),
            "requests still running after the grace period; dropping them"
        );
        connections.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_evicts_the_oldest_idle_connection_never_a_busy_one() {
        let slots = Slots::default();
        let (first, a) = slots.admit(2).unwrap();
        let (_, b) = slots.admit(2).unwrap();
        let running = a.start().unwrap();
        // `a` runs a request, so the idle `b` makes room.
        let (_, c) = slots.admit(2).unwrap();
        assert!(b.start().is_none(), "an evicted connection starts nothing");
        assert!(slots.open.lock().unwrap().contains_key(&first));
        // Both busy: no room.
        let _also_running = c.start().unwrap();
        assert!(slots.admit(2).is_none());
        drop(running);
        assert!(slots.admit(2).is_some(), "`a` is idle again");
    }
}
