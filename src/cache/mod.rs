//! The two-tier byte cache: one interface, two backends.
//!
//! With `REDIS_URL` the entries live in Redis, shared by every replica, with
//! copies kept in process; without it, in an in-process moka cache. This
//! module knows bytes, keys and versions, not what is stored: the analytics
//! dashboard (`domain::dashboard`) and the persisted queries
//! (`graphql::persisted`) keep their values here under keys of their own.
//!
//! A key's value never changes once written: a key names its content (a
//! hash) or holds the version of its scope, and a write that changes what a
//! scope's entries show bumps that version. So a copy kept near at hand is
//! never stale, and a TTL bounds everything else.
//!
//! Concurrent misses of one key compute once. When Redis fails or is slow,
//! callers get [`Unavailable`] (or [`Lookup::Fallback`]) and answer from the
//! database, the cache reports itself degraded, and a circuit breaker stops
//! calling Redis until it answers again.

mod breaker;
mod redis;

pub use redis::{POOL_SIZE as REDIS_POOL_SIZE, Unavailable};

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::Duration,
};

use crate::error::{AppError, AppResult};

/// How [`Cache::get_or_compute`] found a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Read from the cache (or from another caller's computation).
    Hit,
    /// Computed and stored.
    Miss,
    /// Computed, but the cache could not store it.
    MissUnstored,
    /// Computed because the cache could not be read; nothing was stored.
    Fallback,
}

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

/// The cache's health, as `/ready` reports it.
#[derive(Clone, Debug)]
pub struct Health {
    pub backend: &'static str,
    /// `None` when healthy, else why it is degraded.
    pub problem: Option<String>,
}

enum Store {
    Local {
        entries: moka::future::Cache<String, Arc<Vec<u8>>>,
        versions: Mutex<HashMap<String, u64>>,
    },
    Redis(redis::RedisStore),
}

struct Inner {
    store: Store,
    prefix: String,
    ttl: Duration,
    /// Entries read from or written to Redis, kept near at hand. A key's
    /// value never changes, so a copy here is never stale; it only saves
    /// the round trip and the bytes.
    near: moka::future::Cache<String, Arc<Vec<u8>>>,
    /// Computations in flight, so that concurrent misses share one.
    flights: moka::future::Cache<String, Arc<Vec<u8>>>,
    /// Bytes spent per budget name in the current window (in-process
    /// store only; Redis keeps its own counters).
    windows: Mutex<HashMap<String, (u64, u64)>>,
}

/// The byte cache; cheap to clone.
#[derive(Clone)]
pub struct Cache(Arc<Inner>);

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("backend", &self.health().backend).finish_non_exhaustive()
    }
}

/// The in-process store's scope for `field` of the hash of versions `scope`.
fn field_scope(scope: &str, field: &str) -> String {
    format!("{scope}#{field}")
}

/// Drops each sealed entry kept in process when its envelope expires, so
/// entries of different TTLs share one cache.
struct EnvelopeExpiry;

impl moka::Expiry<String, Arc<Vec<u8>>> for EnvelopeExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Vec<u8>>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let (expires, _) = value.split_first_chunk::<8>()?;
        let left = i64::from_be_bytes(*expires) - chrono::Utc::now().timestamp_millis();
        Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }
}

fn weighed_cache(capacity: u64) -> moka::future::Cache<String, Arc<Vec<u8>>> {
    moka::future::Cache::builder()
        .max_capacity(capacity)
        .weigher(|key: &String, value: &Arc<Vec<u8>>| {
            u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
        })
        .expire_after(EnvelopeExpiry)
        .build()
}

impl Cache {
    /// Redis when `redis_url` is given, else in-process; entries live at
    /// most `ttl`; every key is put under `prefix`.
    pub fn new(
        redis_url: Option<&str>,
        prefix: &str,
        ttl: Duration,
        redis_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let store = match redis_url {
            Some(url) => Store::Redis(redis::RedisStore::new(url, prefix, redis_timeout)?),
            None => Store::Local {
                entries: weighed_cache(256 * 1024 * 1024),
                versions: Mutex::new(HashMap::new()),
            },
        };
        Ok(Self(Arc::new(Inner {
            store,
            prefix: prefix.to_owned(),
            ttl,
            near: weighed_cache(64 * 1024 * 1024),
            flights: moka::future::Cache::builder().time_to_live(Duration::from_secs(60)).build(),
            windows: Mutex::new(HashMap::new()),
        })))
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}:{key}", self.0.prefix)
    }

    /// The current version of `scope` (a name like `analytics:version:12`),
    /// for the keys of the scope's entries to hold.
    pub async fn version(&self, scope: &str) -> Result<u64, Unavailable> {
        match &self.0.store {
            Store::Local { versions, .. } => Ok(versions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(scope)
                .copied()
                .unwrap_or(0)),
            Store::Redis(redis) => redis.version(scope).await,
        }
    }

    /// The current versions of `scopes`, read at one instant (one lock, or
    /// one `MGET`); `None` for a scope that has none yet.
    pub async fn versions(&self, scopes: &[String]) -> Result<Vec<Option<u64>>, Unavailable> {
        match &self.0.store {
            Store::Local { versions, .. } => {
                let versions = versions.lock().unwrap_or_else(|e| e.into_inner());
                Ok(scopes
                    .iter()
                    .map(|scope| Some(versions.get(scope).copied().unwrap_or(0)))
                    .collect())
            }
            Store::Redis(redis) => redis.versions(scopes).await,
        }
    }

    /// Makes every entry of `scope` stale at once. A bump Redis could not
    /// take is made before Redis is read again.
    pub async fn bump(&self, scope: &str) {
        match &self.0.store {
            Store::Local { versions, .. } => {
                *versions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(scope.to_owned())
                    .or_default() += 1;
            }
            Store::Redis(redis) => redis.bump(scope).await,
        }
    }

    /// The versions in `fields` of the hash of versions `scope`, read at
    /// one instant (one lock, or one `HMGET`); `None` for a field that has
    /// none yet.
    pub async fn fields(
        &self,
        scope: &str,
        fields: &[String],
    ) -> Result<Vec<Option<u64>>, Unavailable> {
        match &self.0.store {
            Store::Local { versions, .. } => {
                let versions = versions.lock().unwrap_or_else(|e| e.into_inner());
                Ok(fields
                    .iter()
                    .map(|field| versions.get(&field_scope(scope, field)).copied())
                    .collect())
            }
            Store::Redis(redis) => redis.fields(scope, fields).await,
        }
    }

    /// The version in `field` of the hash `scope`, made when it has none.
    pub async fn field_version(&self, scope: &str, field: &str) -> Result<u64, Unavailable> {
        match &self.0.store {
            Store::Local { versions, .. } => Ok(*versions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(field_scope(scope, field))
                .or_default()),
            Store::Redis(redis) => redis.field_version(scope, field).await,
        }
    }

    /// Makes every entry keyed by any of `fields` of `scope` stale at once;
    /// `false` when the store could not take the bump. Unlike
    /// [`Cache::bump`], it is not replayed: callers record it elsewhere.
    pub async fn bump_fields(&self, scope: &str, fields: &[String]) -> bool {
        match &self.0.store {
            Store::Local { versions, .. } => {
                let mut versions = versions.lock().unwrap_or_else(|e| e.into_inner());
                for field in fields {
                    *versions.entry(field_scope(scope, field)).or_default() += 1;
                }
                true
            }
            Store::Redis(redis) => redis.bump_fields(scope, fields).await,
        }
    }

    /// The value stored under `key`, unless it has expired.
    pub async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        Ok(self.read_many(&[key.to_owned()]).await?.pop().flatten())
    }

    /// Stores `value` under `key` until the TTL has passed; values over a
    /// megabyte are not kept.
    pub async fn write(&self, key: &str, value: &[u8]) -> Result<(), Unavailable> {
        self.write_many(&[(key.to_owned(), value.to_vec())], None).await
    }

    /// The values stored under `keys`, in order, unless expired: the
    /// copies kept in process, and the rest in one round trip.
    pub async fn read_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Unavailable> {
        let keys: Vec<String> = keys.iter().map(|key| self.full_key(key)).collect();
        let mut envelopes: Vec<Option<Arc<Vec<u8>>>> = Vec::with_capacity(keys.len());
        match &self.0.store {
            Store::Local { entries, .. } => {
                for key in &keys {
                    envelopes.push(entries.get(key).await);
                }
            }
            Store::Redis(redis) => {
                let generation = redis.generation();
                let near_keys: Vec<String> =
                    keys.iter().map(|key| format!("{generation}/{key}")).collect();
                let mut far = Vec::new();
                for (i, near_key) in near_keys.iter().enumerate() {
                    let near = self.0.near.get(near_key).await;
                    if near.is_none() {
                        far.push(i);
                    }
                    envelopes.push(near);
                }
                if !far.is_empty() {
                    let far_keys: Vec<&str> = far.iter().map(|i| keys[*i].as_str()).collect();
                    for (i, bytes) in far.iter().zip(redis.get_many(&far_keys).await?) {
                        if let Some(bytes) = bytes {
                            let bytes = Arc::new(bytes);
                            self.0.near.insert(near_keys[*i].clone(), Arc::clone(&bytes)).await;
                            envelopes[*i] = Some(bytes);
                        }
                    }
                }
            }
        }
        Ok(envelopes.into_iter().map(|e| e.and_then(|bytes| open_envelope(&bytes))).collect())
    }

    /// Stores each value under its key for `ttl` (the cache's own TTL when
    /// `None`), in one round trip; values over a megabyte are not kept.
    pub async fn write_many(
        &self,
        entries: &[(String, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> Result<(), Unavailable> {
        let ttl = ttl.unwrap_or(self.0.ttl);
        let sealed: Vec<(String, Vec<u8>)> = entries
            .iter()
            .filter(|(_, value)| value.len() <= MAX_VALUE_BYTES)
            .map(|(key, value)| (self.full_key(key), seal(value, ttl)))
            .collect();
        if sealed.is_empty() {
            return Ok(());
        }
        match &self.0.store {
            Store::Local { entries, .. } => {
                for (key, value) in sealed {
                    entries.insert(key, Arc::new(value)).await;
                }
            }
            Store::Redis(redis) => {
                redis.set_many(&sealed, ttl).await?;
                let generation = redis.generation();
                for (key, value) in sealed {
                    self.0.near.insert(format!("{generation}/{key}"), Arc::new(value)).await;
                }
            }
        }
        Ok(())
    }

    /// The value under `key`, read with `decode`, or the one whose bytes
    /// `compute` makes, stored under it; concurrent callers of one key share
    /// one computation. Bytes `decode` cannot read (an entry of an older
    /// layout) are computed anew.
    pub async fn get_or_compute<T, F>(
        &self,
        key: &str,
        decode: impl Fn(&[u8]) -> Option<T>,
        compute: F,
    ) -> AppResult<(T, Lookup)>
    where
        F: Future<Output = AppResult<Vec<u8>>>,
    {
        let unreadable =
            || AppError::Internal(anyhow::anyhow!("cannot read what was computed for {key}"));
        match self.read(key).await {
            Ok(Some(bytes)) => {
                if let Some(value) = decode(&bytes) {
                    return Ok((value, Lookup::Hit));
                }
            }
            Ok(None) => {}
            Err(Unavailable) => {
                let value = decode(&compute.await?).ok_or_else(unreadable)?;
                return Ok((value, Lookup::Fallback));
            }
        }
        let computed = AtomicBool::new(false);
        let unstored = AtomicBool::new(false);
        let flight = self
            .0
            .flights
            .try_get_with(key.to_owned(), async {
                // A flight that finished between our read and now stored it.
                if let Ok(Some(bytes)) = self.read(key).await
                    && decode(&bytes).is_some()
                {
                    return Ok(Arc::new(bytes));
                }
                computed.store(true, Relaxed);
                let bytes = compute.await?;
                if self.write(key, &bytes).await.is_err() {
                    unstored.store(true, Relaxed);
                }
                Ok::<_, AppError>(Arc::new(bytes))
            })
            .await;
        self.0.flights.invalidate(key).await;
        let bytes = flight.map_err(|shared| shared.duplicate())?;
        let lookup = match (computed.load(Relaxed), unstored.load(Relaxed)) {
            (false, _) => Lookup::Hit,
            (true, false) => Lookup::Miss,
            (true, true) => Lookup::MissUnstored,
        };
        Ok((decode(&bytes).ok_or_else(unreadable)?, lookup))
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
                let key = self.full_key(&format!("{name}:window:{window}"));
                redis.add(&key, bytes, self.0.ttl * 2).await.ok()
            }
        };
        spent.is_some_and(|spent| spent <= budget)
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
