//! Fault scenarios: the load runs while a dependency fails and comes back.
//!
//! `db-outage` puts a TCP proxy of the suite's own between the server and
//! its database (`--fault-proxy LISTEN=UPSTREAM`: start the server with its
//! `DATABASE_URL` pointing at `LISTEN`). `--fault-at` after the load starts,
//! the proxy cuts every connection and refuses new ones, as a database that
//! restarts or a network that fails does; `--fault-for` later it lets them
//! through again. The report shows the outage window, what users got in it,
//! how long the server took to serve again, and the bookings check.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::{net::TcpListener, task::AbortHandle};

/// A proxy that can be severed and restored.
#[derive(Debug)]
pub struct Proxy {
    severed: Arc<AtomicBool>,
    pipes: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    /// Listens on `listen` and forwards every connection to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        let severed = Arc::new(AtomicBool::new(false));
        let pipes: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (open, tracked) = (Arc::clone(&severed), Arc::clone(&pipes));
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                if open.load(Ordering::Acquire) {
                    drop(client);
                    continue;
                }
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut pipes = tracked.lock().unwrap_or_else(|e| e.into_inner());
                pipes.retain(|p| !p.is_finished());
                pipes.push(pipe.abort_handle());
            }
        });
        Ok(Self { severed, pipes })
    }

    /// Cuts every open connection and refuses new ones.
    pub fn sever(&self) {
        self.severed.store(true, Ordering::Release);
        for pipe in self.pipes.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            pipe.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.severed.store(false, Ordering::Release);
    }
}

/// When the outage happened, in time since the load started.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub from: Duration,
    pub to: Duration,
}

/// Runs the outage: severs the proxy `at` after now, restores it `length`
/// later; the window it really had.
pub async fn outage(proxy: Arc<Proxy>, at: Duration, length: Duration, epoch: Instant) -> Window {
    tokio::time::sleep_until(tokio::time::Instant::from_std(epoch + at)).await;
    proxy.sever();
    let from = epoch.elapsed();
    eprintln!("fault: the database is cut off ({:.1} s into the load)", from.as_secs_f64());
    tokio::time::sleep(length).await;
    proxy.restore();
    let to = epoch.elapsed();
    eprintln!("fault: the database is back ({:.1} s into the load)", to.as_secs_f64());
    Window { from, to }
}

/// Every request's outcome by tenth of a second since the load started:
/// successes, and failures by code.
#[derive(Debug)]
pub struct Timeline {
    epoch: Instant,
    buckets: Mutex<BTreeMap<u64, Bucket>>,
}

/// What happened in one tenth of a second.
#[derive(Debug, Default, Clone)]
pub struct Bucket {
    pub ok: u64,
    pub failed: BTreeMap<String, u64>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self { epoch: Instant::now(), buckets: Mutex::default() }
    }
}

impl Timeline {
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Records one answer (`None` for a success) received now.
    pub fn record(&self, failure: Option<&str>) {
        let tenth = u64::try_from(self.epoch.elapsed().as_millis() / 100).unwrap_or(u64::MAX);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(tenth).or_default();
        match failure {
            None => bucket.ok += 1,
            Some(code) => *bucket.failed.entry(code.to_owned()).or_default() += 1,
        }
    }

    /// What users got before, during and after `window`, and how long after
    /// it ended the first success came.
    pub fn around(&self, window: Window) -> Effect {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let tenth = |d: Duration| u64::try_from(d.as_millis() / 100).unwrap_or(u64::MAX);
        let (from, to) = (tenth(window.from), tenth(window.to));
        let mut effect = Effect { window, ..Effect::default() };
        for (at, bucket) in buckets.iter() {
            let part = if *at < from {
                &mut effect.before
            } else if *at <= to {
                &mut effect.during
            } else {
                &mut effect.after
            };
            part.ok += bucket.ok;
            for (code, n) in &bucket.failed {
                *part.failed.entry(code.clone()).or_default() += n;
            }
            // The first tenth of a second after the window with successes
            // and no failure of the outage's kind is when it served again.
            if *at > to
                && effect.recovered_after.is_none()
                && bucket.ok > 0
                && !bucket.failed.keys().any(|code| is_outage_code(code))
            {
                effect.recovered_after = Some(Duration::from_millis((at - to) * 100));
            }
        }
        effect
    }
}

/// What an outage did.
#[derive(Debug, Default, Clone)]
pub struct Effect {
    pub window: Window,
    pub before: Bucket,
    pub during: Bucket,
    pub after: Bucket,
    /// From the end of the window to the first tenth of a second that had
    /// successes and no failures.
    pub recovered_after: Option<Duration>,
}

/// Whether a failure is the kind an outage causes (rather than a refusal
/// such as a lost race).
pub fn is_outage_code(code: &str) -> bool {
    matches!(
        code,
        "SERVICE_UNAVAILABLE" | "INTERNAL_SERVER_ERROR" | "TIMEOUT" | "TRANSPORT" | "OVERLOADED"
    ) || code.starts_with("HTTP_5")
}

/// Parses `LISTEN=UPSTREAM` (two `host:port` addresses).
pub fn parse_proxy(raw: &str) -> Result<(SocketAddr, SocketAddr), String> {
    let (listen, upstream) =
        raw.split_once('=').ok_or_else(|| format!("{raw:?} is not LISTEN=UPSTREAM"))?;
    let parse = |text: &str| {
        std::net::ToSocketAddrs::to_socket_addrs(text.trim())
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| format!("{text:?} is not a host:port address"))
    };
    Ok((parse(listen)?, parse(upstream)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_splits_around_the_window_and_finds_the_recovery() {
        let timeline = Timeline::default();
        {
            let mut buckets = timeline.buckets.lock().unwrap();
            buckets.insert(5, Bucket { ok: 10, ..Bucket::default() });
            let down =
                Bucket { ok: 0, failed: BTreeMap::from([("SERVICE_UNAVAILABLE".into(), 7)]) };
            buckets.insert(12, down.clone());
            buckets.insert(31, down);
            buckets.insert(33, Bucket { ok: 4, ..Bucket::default() });
        }
        let window = Window { from: Duration::from_secs(1), to: Duration::from_secs(3) };
        let effect = timeline.around(window);
        assert_eq!(effect.before.ok, 10);
        assert_eq!(effect.during.failed["SERVICE_UNAVAILABLE"], 7);
        assert_eq!(effect.after.failed["SERVICE_UNAVAILABLE"], 7);
        assert_eq!(effect.recovered_after, Some(Duration::from_millis(300)));
        assert_eq!(
            parse_proxy("127.0.0.1:6432=127.0.0.1:5432").unwrap().1,
            "127.0.0.1:5432".parse().unwrap()
        );
    }
}
