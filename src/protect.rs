//! Protection: who the client is, and how much it may spend.
//!
//! Every GraphQL request is charged against a budget keyed by the
//! signed-in user, or by the client's IP for anonymous requests: in Redis,
//! shared by every replica, or in a governor limiter in process. A request
//! costs its complexity (see `graphql::limits`) in points; a stricter
//! limiter guards `login` and `register`, keyed by IP and by email.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use ipnet::IpNet;

use crate::{
    cache::{Cache, Checked, Unavailable},
    config::Config,
    error::AppError,
};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// Whose budget a request spends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    User(i64),
    Ip(IpAddr),
}

/// A client's budget after a charge.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most points a client may hold (the burst).
    pub limit: u32,
    /// Points the client may spend at once now.
    pub remaining: u32,
    /// When the budget is full again.
    pub reset_at: DateTime<Utc>,
}

impl Budget {
    /// Whole seconds until the budget is full again (0 when it is).
    pub fn reset_secs(&self) -> i64 {
        let millis = (self.reset_at - Utc::now()).num_milliseconds();
        if millis <= 0 { 0 } else { (millis + 999) / 1000 }
    }
}

/// A charge the budget could not pay.
#[derive(Clone, Copy, Debug)]
pub struct Overdrawn {
    /// The cost exceeds the burst: it can never be paid.
    pub impossible: bool,
    /// When the charge would be accepted.
    pub retry_after: Duration,
    pub budget: Budget,
}

impl Overdrawn {
    /// Whole seconds to wait, as `Retry-After` says them.
    pub fn retry_secs(&self) -> u64 {
        self.retry_after.as_secs() + 1
    }

    /// The `RATE_LIMITED` error: `what`, and when to try again.
    pub fn error(&self, what: &str) -> AppError {
        let seconds = self.retry_secs();
        AppError::RateLimited {
            message: format!("{what}; try again in {seconds} s"),
            retry_after: seconds,
        }
    }
}

/// The limiters: each client's budget of cost points and the sign-in
/// budgets, in Redis when `REDIS_URL` is set (one budget shared by every
/// replica, checked with one script per charge), else, or while Redis is
/// away, in process, where each replica allows its share
/// (`RATE_LIMIT_REPLICAS`) of each budget. It never fails closed, and goes
/// back to Redis by itself once Redis answers.
pub struct Limits {
    /// In process: this replica's share of every client's budget.
    requests: Keyed<ClientKey>,
    sign_ins: Keyed<String>,
    per_minute: u32,
    burst: u32,
    logins: u32,
    local_per_minute: u32,
    local_burst: u32,
    /// Redis, where the budgets are one for every replica.
    shared: Option<Cache>,
    /// Whether the last check was made in Redis.
    in_redis: AtomicBool,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("per_minute", &self.per_minute)
            .field("burst", &self.burst)
            .field("store", &self.store())
            .finish()
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

/// A client's budget's name in Redis.
fn shared_key(key: &ClientKey) -> String {
    match key {
        ClientKey::User(id) => format!("rl:u:{id}"),
        ClientKey::Ip(ip) => format!("rl:ip:{ip}"),
    }
}

impl Limits {
    /// The limiters of `config`, shared through `shared` (Redis) when given.
    pub fn new(config: &Config, shared: Option<Cache>) -> Self {
        let per_minute = config.rate_limit_per_minute.max(1);
        let burst = config.rate_limit_burst.max(1);
        let logins = config.login_rate_limit_per_minute.max(1);
        // Without Redis this process's budgets are the budgets; with it,
        // they stand in for Redis while it is away, each replica its share.
        let replicas = if shared.is_some() { config.rate_limit_replicas.max(1) } else { 1 };
        let (local_per_minute, local_burst) =
            ((per_minute / replicas).max(1), (burst / replicas).max(1));
        let local_logins = (logins / replicas).max(1);
        let requests = RateLimiter::keyed(
            Quota::per_minute(nonzero(local_per_minute)).allow_burst(nonzero(local_burst)),
        )
        .with_middleware::<StateInformationMiddleware>();
        let sign_ins = RateLimiter::keyed(
            Quota::per_minute(nonzero(local_logins)).allow_burst(nonzero(local_logins)),
        )
        .with_middleware::<StateInformationMiddleware>();
        Self {
            requests,
            sign_ins,
            per_minute,
            burst,
            logins,
            local_per_minute,
            local_burst,
            in_redis: AtomicBool::new(shared.is_some()),
            shared,
            clock: DefaultClock::default(),
        }
    }

    /// A budget of `limit` points, `per_minute` back a minute, with
    /// `remaining` left.
    fn budget(limit: u32, per_minute: u32, remaining: u32) -> Budget {
        // Each point comes back after 60 s / per_minute.
        let per_point = Duration::from_secs(60) / per_minute.max(1);
        let missing = limit.saturating_sub(remaining);
        let full_in = chrono::Duration::from_std(per_point * missing).unwrap_or_default();
        Budget { limit, remaining, reset_at: Utc::now() + full_in }
    }

    /// Points a client may spend at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Where the budgets are kept now: `redis`, or `in-process` (without
    /// Redis, or while it is away).
    pub fn store(&self) -> &'static str {
        if self.shared.is_some() && self.in_redis.load(Ordering::Relaxed) {
            "redis"
        } else {
            "in-process"
        }
    }

    /// One check in Redis, with the versions of `scopes` read in the same
    /// round trip; `None` when there is no Redis or it did not answer (the
    /// caller checks in process).
    async fn check_shared(
        &self,
        key: &str,
        cost: u32,
        per_minute: u32,
        burst: u32,
        scopes: &[String],
    ) -> Option<(Checked, Result<Vec<Option<u64>>, Unavailable>)> {
        let cache = self.shared.as_ref()?;
        let interval_us = 60_000_000 / u64::from(per_minute.max(1));
        let checked = match cache.gcra_reading(key, cost, interval_us, burst, scopes).await {
            Some(Ok(checked)) => Some(checked),
            _ => None,
        };
        // (A check that timed out may still have run in Redis: the client
        // then pays twice, never less than it owes.)
        let in_redis = checked.is_some();
        if self.in_redis.swap(in_redis, Ordering::Relaxed) != in_redis {
            if in_redis {
                tracing::info!("rate limits are shared in Redis again");
            } else {
                tracing::warn!(
                    "Redis does not answer: rate limits are this replica's share, in process"
                );
            }
        }
        if in_redis {
            metrics::counter!("bookedbarber_rate_limit_checks_total", "store" => "redis")
                .increment(1);
        }
        checked
    }

    /// Charges `cost` points to `key`'s budget, or says when it could pay.
    pub async fn charge(&self, key: &ClientKey, cost: u32) -> Result<Budget, Overdrawn> {
        self.charge_reading(key, cost, None, &[]).await.0
    }

    /// Charges `cost` points to `key`'s budget, and reads the versions of
    /// `scopes` in `cache`: with Redis in the same round trip, so that the
    /// charge costs the request no round trip of its own. The versions are
    /// `Err` when they could not be read.
    pub async fn charge_reading(
        &self,
        key: &ClientKey,
        cost: u32,
        cache: Option<&Cache>,
        scopes: &[String],
    ) -> (Result<Budget, Overdrawn>, Result<Vec<Option<u64>>, Unavailable>) {
        let read_apart = || async {
            match cache {
                Some(cache) if !scopes.is_empty() => cache.versions(scopes).await,
                _ => Ok(vec![None; scopes.len()]),
            }
        };
        if cost > self.burst {
            // More than the burst: never possible (and refused without
            // reading anything).
            let impossible = Overdrawn {
                impossible: true,
                retry_after: Duration::from_secs(60),
                budget: Self::budget(self.burst, self.per_minute, 0),
            };
            return (Err(impossible), Err(Unavailable));
        }
        let name = shared_key(key);
        let shared = self.check_shared(&name, cost, self.per_minute, self.burst, scopes);
        if let Some(((allowed, remaining, wait_us, _), versions)) = shared.await {
            let budget = Self::budget(self.burst, self.per_minute, remaining);
            let charged = match allowed {
                true => Ok(budget),
                false => Err(Overdrawn {
                    impossible: false,
                    retry_after: Duration::from_micros(wait_us),
                    budget,
                }),
            };
            return (charged, versions);
        }
        let charged = self.charge_in_process(key, cost);
        // Without Redis the versions are in process; while Redis is away
        // they cannot be read either.
        let versions = match self.shared {
            Some(_) if !scopes.is_empty() => Err(Unavailable),
            _ => read_apart().await,
        };
        (charged, versions)
    }

    /// Charges `cost` points to this replica's share of `key`'s budget.
    fn charge_in_process(&self, key: &ClientKey, cost: u32) -> Result<Budget, Overdrawn> {
        metrics::counter!("bookedbarber_rate_limit_checks_total", "store" => "in_process")
            .increment(1);
        let local = |remaining| Self::budget(self.local_burst, self.local_per_minute, remaining);
        match self.requests.check_key_n(key, nonzero(cost)) {
            Ok(Ok(snapshot)) => Ok(local(snapshot.remaining_burst_capacity())),
            Ok(Err(not_until)) => Err(Overdrawn {
                impossible: false,
                retry_after: not_until.wait_time_from(self.clock.now()),
                budget: local(0),
            }),
            // More than this replica's share of the budget, while Redis is
            // away (without Redis the share is the whole): until it is back.
            Err(_) => Err(Overdrawn {
                impossible: false,
                retry_after: Duration::from_secs(5),
                budget: local(0),
            }),
        }
    }

    /// Charges one sign-in attempt (`login`, `register`, `changePassword`)
    /// to the client's address, keyed as the request budget is (IPv6 by its
    /// /64); refused when the address has tried too often.
    pub async fn sign_in_from(&self, ip: IpAddr) -> Result<(), Duration> {
        self.charge_sign_in(format!("ip:{}", client_network(ip))).await
    }

    /// Charges a failed sign-in to `email`. Only failures count, so that a
    /// stranger's wrong guesses cannot keep the owner out: the owner's
    /// correct password is let through even while this budget is spent.
    /// `Err` when it is spent: the failure is then answered as a rate limit.
    pub async fn sign_in_failed(&self, email: &str) -> Result<(), Duration> {
        // Hashed: a shared Redis holds no address in its key names.
        use sha2::Digest;
        let digest = sha2::Sha256::digest(email.trim().to_lowercase().as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        self.charge_sign_in(format!("email:{hex}")).await
    }

    /// One attempt against `key`'s sign-in budget; how long to wait if spent.
    async fn charge_sign_in(&self, key: String) -> Result<(), Duration> {
        if let Some(((allowed, _, wait_us, _), _)) =
            self.check_shared(&format!("si:{key}"), 1, self.logins, self.logins, &[]).await
        {
            return if allowed { Ok(()) } else { Err(Duration::from_micros(wait_us)) };
        }
        self.sign_ins
            .check_key(&key)
            .map(|_| ())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets clients whose budgets are full again, so memory stays bounded
    /// however many distinct clients come by.
    pub fn prune(&self) {
        self.requests.retain_recent();
        self.requests.shrink_to_fit();
        self.sign_ins.retain_recent();
        self.sign_ins.shrink_to_fit();
    }

    /// How many clients the limiters remember.
    pub fn tracked(&self) -> usize {
        self.requests.len() + self.sign_ins.len()
    }
}

/// Admission control: at most a set number of GraphQL requests run at once,
/// and one that cannot get a turn within the wait is refused before it does
/// any work. Past its capacity the server then answers a fast 503 rather
/// than queueing every request into database pool timeouts, where a write
/// can commit and still answer an error. The turns should stay within what
/// the pool serves inside its acquire timeout (128 turns over 20
/// connections is about 6 queued a connection, each held for milliseconds).
#[derive(Clone, Debug)]
pub struct Admission {
    turns: Arc<tokio::sync::Semaphore>,
    capacity: usize,
    wait: Duration,
}

impl Admission {
    pub fn new(config: &Config) -> Self {
        let capacity = usize::try_from(config.max_in_flight_requests.max(1)).unwrap_or(1);
        Self {
            turns: Arc::new(tokio::sync::Semaphore::new(capacity)),
            capacity,
            wait: Duration::from_millis(config.admission_timeout_ms),
        }
    }

    /// A turn, held until dropped; `None` when none came free in time.
    pub async fn enter(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        tokio::time::timeout(self.wait, Arc::clone(&self.turns).acquire_owned()).await.ok()?.ok()
    }

    /// Requests running now.
    pub fn in_flight(&self) -> usize {
        self.capacity.saturating_sub(self.turns.available_permits())
    }
}

/// Prunes `limits` every minute for as long as they live.
pub fn spawn_pruning(limits: &Arc<Limits>) {
    let limits = Arc::downgrade(limits);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            match limits.upgrade() {
                Some(limits) => limits.prune(),
                None => break,
            }
        }
    });
}

/// The client's IP: the socket peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` entry that is not a trusted
/// proxy (a client cannot pick its own bucket by sending the header).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    // Walk from the nearest hop outwards; an entry that is not an address
    // ends the walk at the last hop we could read (never further out, where
    // the client writes what it likes).
    for entry in entries.into_iter().rev() {
        let entry = entry.trim();
        let Some(ip) = entry
            .parse::<IpAddr>()
            .ok()
            .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(&client) {
            break;
        }
    }
    client
}

/// The rate-limit key of an address: IPv6 clients get a /64 each, as one
/// subscriber usually holds a whole /64.
pub fn ip_key(ip: IpAddr) -> ClientKey {
    ClientKey::Ip(client_network(ip))
}

/// The address that stands for one client: itself for IPv4, its /64 for
/// IPv6.
fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
    }
}

/// The client's IP address, as request data for the sign-in limiter.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

/// The request's budget as charged so far, for headers and `rateLimit`.
#[derive(Clone, Debug)]
pub struct RequestBudget(pub Arc<Mutex<Budget>>);

impl RequestBudget {
    pub fn get(&self) -> Budget {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, budget: Budget) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = budget;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2".parse().unwrap());
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // Behind trusted proxies: the right-most untrusted entry.
        assert_eq!(client_ip(proxy, &headers, &trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
        // Without TRUST_PROXY: the peer, whatever the header says.
        assert_eq!(client_ip(proxy, &headers, &[]), proxy);
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
        // A proxy that writes ip:port, and one that is IPv4-mapped.
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7:5555".parse().unwrap());
        assert_eq!(client_ip(proxy, &headers, &trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_ip(mapped, &headers, &trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
        // Garbage stops the walk at the last readable hop.
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, garbage, 10.0.0.3".parse().unwrap());
        assert_eq!(client_ip(proxy, &headers, &trusted), "10.0.0.3".parse::<IpAddr>().unwrap());
    }
}
