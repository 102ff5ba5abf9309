//! The analytics cache: one interface, two backends.
//!
//! With `REDIS_URL` the entries live in Redis, shared by every replica;
//! without it, in an in-process moka cache. Either way an entry's key holds
//! its shop's version, and every write that changes a shop's numbers bumps
//! that version, so an entry is never read after the data under it changed;
//! a TTL bounds everything else. Values are JSON.
//!
//! Concurrent misses of one key compute once. When Redis fails or is slow,
//! the answer comes from the database, the cache reports itself degraded,
//! and a circuit breaker stops calling Redis until it answers again.

mod breaker;
mod redis;

pub use redis::POOL_SIZE as REDIS_POOL_SIZE;

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{AppError, AppResult};

/// What happened to one cache lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Served from the cache.
    Hit,
    /// Computed and stored.
    Miss,
    /// A cache operation failed.
    Error,
    /// Answered from the database because the cache was unavailable.
    Fallback,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Error => "error",
            Outcome::Fallback => "fallback",
        }
    }
}

/// Bumped when the layout of cached values changes, so that replicas of
/// two releases sharing one Redis never read each other's entries.
const FORMAT: u32 = 1;

/// Largest value kept.
const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// `value` with its expiry in front, so that no copy of it (in Redis or in
/// memory) is ever read after the TTL.
fn seal(value: &[u8], ttl: Duration) -> Vec<u8> {
    let expires = chrono::Utc::now().timestamp_millis()
        + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let mut sealed = Vec::with_capacity(8 + value.len());
    sealed.extend_from_slice(&expires.to_be_bytes());
    sealed.extend_from_slice(value);
    sealed
}

/// The value of a sealed entry that has not expired.
fn open_envelope(sealed: &[u8]) -> Option<Vec<u8>> {
    let (expires, value) = sealed.split_first_chunk::<8>()?;
    (i64::from_be_bytes(*expires) > chrono::Utc::now().timestamp_millis()).then(|| value.to_vec())
}

/// A shop and its cache version as read at the start of a request (`None`
/// when the cache could not be reached).
#[derive(Clone, Copy, Debug)]
pub struct ShopVersion {
    shop_id: i64,
    version: Option<u64>,
}

/// The cache's health, as `/ready` reports it.
#[derive(Clone, Debug)]
pub struct Health {
    pub backend: &'static str,
    /// `None` when healthy, else why it is degraded.
    pub problem: Option<String>,
}

enum Store {
    Local { entries: moka::future::Cache<String, Arc<Vec<u8>>>, versions: Mutex<HashMap<i64, u64>> },
    Redis(redis::RedisStore),
}

struct Inner {
    store: Store,
    prefix: String,
    ttl: Duration,
    /// Entries read from or written to Redis, kept near at hand. Keys hold
    /// the shop's version (read from Redis each request), so a copy here is
    /// never stale; it only saves the round trip and the bytes.
    near: moka::future::Cache<String, Arc<Vec<u8>>>,
    /// Computations in flight, so that concurrent misses share one.
    flights: moka::future::Cache<String, Arc<Vec<u8>>>,
    /// Bytes spent per budget name in the current window (in-process
    /// store only; Redis keeps its own counters).
    windows: Mutex<HashMap<String, (u64, u64)>>,
    /// Counts by (section, outcome), for tests and `/metrics`.
    stats: Mutex<HashMap<(&'static str, Outcome), u64>>,
}

/// The analytics cache; cheap to clone.
#[derive(Clone)]
pub struct Cache(Arc<Inner>);

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("backend", &self.health().backend).finish_non_exhaustive()
    }
}

impl Cache {
    /// Redis when `redis_url` is given, else in-process; entries live at
    /// most `ttl`.
    pub fn new(
        redis_url: Option<&str>,
        prefix: &str,
        ttl: Duration,
        redis_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let store = match redis_url {
            Some(url) => Store::Redis(redis::RedisStore::new(url, prefix, redis_timeout)?),
            None => Store::Local {
                entries: moka::future::Cache::builder()
                    .max_capacity(256 * 1024 * 1024)
                    .weigher(|key: &String, value: &Arc<Vec<u8>>| {
                        u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
                    })
                    .time_to_live(ttl)
                    .build(),
                versions: Mutex::new(HashMap::new()),
            },
        };
        let flights = moka::future::Cache::builder().time_to_live(Duration::from_secs(60)).build();
        let near = moka::future::Cache::builder()
            .max_capacity(64 * 1024 * 1024)
            .weigher(|key: &String, value: &Arc<Vec<u8>>| {
                u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
            })
            .time_to_live(ttl)
            .build();
        Ok(Self(Arc::new(Inner {
            store,
            prefix: prefix.to_owned(),
            ttl,
            near,
            flights,
            windows: Mutex::new(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
        })))
    }

    fn count(&self, section: &'static str, outcome: Outcome) {
        metrics::counter!("bookedbarber_analytics_cache_total", "section" => section, "outcome" => outcome.as_str())
            .increment(1);
        *self
            .0
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((section, outcome))
            .or_default() += 1;
    }

    /// How often `section` had `outcome` in this process.
    pub fn stat(&self, section: &'static str, outcome: Outcome) -> u64 {
        self.0
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(section, outcome))
            .copied()
            .unwrap_or(0)
    }

    /// The shop's current version, read once per request and passed to
    /// [`get_or_compute`](Self::get_or_compute) for each section.
    pub async fn shop_version(&self, shop_id: i64) -> ShopVersion {
        ShopVersion { shop_id, version: self.version(shop_id).await.ok() }
    }

    async fn version(&self, shop_id: i64) -> Result<u64, redis::Unavailable> {
        match &self.0.store {
            Store::Local { versions, .. } => Ok(versions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&shop_id)
                .copied()
                .unwrap_or(0)),
            Store::Redis(redis) => redis.version(shop_id).await,
        }
    }

    /// The value stored under `key`, unless it has expired.
    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, redis::Unavailable> {
        Ok(self.read_envelope(key).await?.and_then(|bytes| open_envelope(&bytes)))
    }

    /// Stores `value` under `key` until the TTL has passed.
    async fn write(&self, key: &str, value: &[u8]) -> Result<(), redis::Unavailable> {
        self.write_envelope(key, &seal(value, self.0.ttl)).await
    }

    async fn read_envelope(&self, key: &str) -> Result<Option<Vec<u8>>, redis::Unavailable> {
        match &self.0.store {
            Store::Local { entries, .. } => Ok(entries.get(key).await.map(|v| v.as_ref().clone())),
            Store::Redis(redis) => {
                // Entries never change under a key (the key holds the
                // version), so a copy in memory is as good as Redis's.
                let near_key = format!("{}/{key}", redis.generation());
                if let Some(bytes) = self.0.near.get(&near_key).await {
                    return Ok(Some(bytes.as_ref().clone()));
                }
                let bytes = redis.get(key).await?;
                if let Some(bytes) = &bytes {
                    self.0.near.insert(near_key, Arc::new(bytes.clone())).await;
                }
                Ok(bytes)
            }
        }
    }

    async fn write_envelope(&self, key: &str, value: &[u8]) -> Result<(), redis::Unavailable> {
        match &self.0.store {
            Store::Local { entries, .. } => {
                entries.insert(key.to_owned(), Arc::new(value.to_vec())).await;
                Ok(())
            }
            Store::Redis(redis) => {
                redis.set(key, value, self.0.ttl).await?;
                let near_key = format!("{}/{key}", redis.generation());
                self.0.near.insert(near_key, Arc::new(value.to_vec())).await;
                Ok(())
            }
        }
    }

    /// The value of `section` for `shop_id` and `range`, from the cache or
    /// from `compute` (once, however many ask at the same moment).
    pub async fn get_or_compute<T, F>(
        &self,
        shop: ShopVersion,
        range: &str,
        section: &'static str,
        compute: F,
    ) -> AppResult<T>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = AppResult<T>>,
    {
        let ShopVersion { shop_id, version } = shop;
        let Some(version) = version else {
            self.count(section, Outcome::Error);
            self.count(section, Outcome::Fallback);
            return compute.await;
        };
        let key =
            format!("{}:analytics:f{FORMAT}:{shop_id}:v{version}:{range}:{section}", self.0.prefix);
        match self.read(&key).await {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(value) => {
                    self.count(section, Outcome::Hit);
                    return Ok(value);
                }
                // An entry of an older format: compute it anew.
                Err(err) => tracing::warn!(error = %err, key, "unreadable cache entry"),
            },
            Ok(None) => {}
            Err(redis::Unavailable) => {
                self.count(section, Outcome::Error);
                self.count(section, Outcome::Fallback);
                return compute.await;
            }
        }
        let computed = std::sync::atomic::AtomicBool::new(false);
        let flight = self
            .0
            .flights
            .try_get_with(key.clone(), async {
                // A flight that finished between our read and now stored it.
                if let Ok(Some(bytes)) = self.read(&key).await
                    && serde_json::from_slice::<T>(&bytes).is_ok()
                {
                    return Ok(Arc::new(bytes));
                }
                computed.store(true, std::sync::atomic::Ordering::Relaxed);
                let value = compute.await?;
                let bytes = serde_json::to_vec(&value).map_err(|e| {
                    AppError::Internal(anyhow::anyhow!("serialising {section}: {e}"))
                })?;
                if self.write(&key, &bytes).await.is_err() {
                    self.count(section, Outcome::Error);
                }
                Ok::<_, AppError>(Arc::new(bytes))
            })
            .await;
        self.0.flights.invalidate(&key).await;
        let bytes = flight.map_err(|shared| shared.to_shared())?;
        let outcome = if computed.load(std::sync::atomic::Ordering::Relaxed) {
            Outcome::Miss
        } else {
            Outcome::Hit
        };
        self.count(section, outcome);
        serde_json::from_slice(&bytes)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("reading {section}: {e}")))
    }

    /// A value stored under `name` by [`put`](Self::put), if still there.
    /// Errors read as absent: the caller falls back as for a miss.
    pub async fn fetch(&self, name: &str) -> Option<Vec<u8>> {
        self.read(&format!("{}:{name}", self.0.prefix)).await.ok().flatten()
    }

    /// Stores `value` under `name`, best effort, for at most the TTL; values
    /// over a megabyte are not kept.
    pub async fn put(&self, name: &str, value: &[u8]) {
        if value.len() <= MAX_VALUE_BYTES {
            let _ = self.write(&format!("{}:{name}", self.0.prefix), value).await;
        }
    }

    /// Spends `bytes` of `budget` for `name` in the current TTL-long window
    /// (shared by every replica with Redis); `false` when the window's
    /// budget is spent or the cache cannot tell.
    pub async fn spend_window_bytes(&self, name: &str, bytes: u64, budget: u64) -> bool {
        let window_secs = self.0.ttl.as_secs().max(1);
        let window = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0) / window_secs;
        let spent = match &self.0.store {
            Store::Local { .. } => {
                let mut windows = self.0.windows.lock().unwrap_or_else(|e| e.into_inner());
                let entry = windows.entry(name.to_owned()).or_insert((window, 0));
                if entry.0 != window {
                    *entry = (window, 0);
                }
                entry.1 = entry.1.saturating_add(bytes);
                Some(entry.1)
            }
            Store::Redis(redis) => {
                let key = format!("{}:{name}:window:{window}", self.0.prefix);
                redis.add(&key, bytes, self.0.ttl * 2).await.ok()
            }
        };
        spent.is_some_and(|spent| spent <= budget)
    }

    /// Makes every entry of `shop_id` stale at once.
    pub async fn invalidate_shop(&self, shop_id: i64) {
        match &self.0.store {
            Store::Local { versions, .. } => {
                *versions.lock().unwrap_or_else(|e| e.into_inner()).entry(shop_id).or_default() +=
                    1;
            }
            Store::Redis(redis) => redis.bump(shop_id).await,
        }
    }

    /// The backend and, when degraded, why; asks Redis directly.
    pub async fn check(&self) -> Health {
        match &self.0.store {
            Store::Local { .. } => Health { backend: "in-process", problem: None },
            Store::Redis(redis) => Health { backend: "redis", problem: redis.ping().await.err() },
        }
    }

    /// The backend and its last known state, without asking it.
    pub fn health(&self) -> Health {
        match &self.0.store {
            Store::Local { .. } => Health { backend: "in-process", problem: None },
            Store::Redis(redis) => Health { backend: "redis", problem: redis.problem() },
        }
    }
}
