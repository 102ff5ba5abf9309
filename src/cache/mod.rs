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
//! callers get [`Unavailable`] and answer from the
//! database, the cache reports itself degraded, and a circuit breaker stops
//! calling Redis until it answers again.

mod breaker;
mod redis;

pub use redis::{Checked, POOL_SIZE as REDIS_POOL_SIZE, Unavailable};

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

/// A value to store, for [`Cache::write_many`].
#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// How long it is kept: the cache's TTL unless set.
    pub ttl: Option<Duration>,
    /// Whether a copy is kept in process too (with Redis). Entries read
    /// rarely are better left in Redis alone: a copy costs memory and
    /// time on the write.
    pub near: bool,
}

impl Entry {
    /// `value` under `key`, for the cache's TTL, with a copy in process.
    pub fn new(key: String, value: Vec<u8>) -> Self {
        Self { key, value, ttl: None, near: true }
    }

    /// Kept for `ttl` instead of the cache's TTL.
    pub fn for_ttl(self, ttl: Duration) -> Self {
        Self { ttl: Some(ttl), ..self }
    }

    /// Kept in Redis only.
    pub fn far_only(self) -> Self {
        Self { near: false, ..self }
    }
}

/// An entry read when a cascade's first entries are not all there, and
/// the versioned entries (as [`Cache::read_versioned`] names them) to
/// rebuild it from when it is missing too.
#[derive(Clone, Debug)]
pub struct Fallback {
    /// `None`: the fields are read whatever is there.
    pub key: Option<String>,
    pub fields: Vec<String>,
}

/// A version and the value stored under it.
pub type Versioned = (u64, Option<Vec<u8>>);

/// A fallback's value and, when that is missing, its fields'.
pub type FallbackRead = (Option<Vec<u8>>, Vec<Versioned>);

/// What [`Cache::read_cascade`] found.
#[derive(Debug)]
pub struct Cascade {
    /// The first values, in order; `None` when missing or expired.
    pub first: Vec<Option<Vec<u8>>>,
    /// `None` when every first value was there; else, for each fallback,
    /// its value and, when that was missing, each of its fields' version
    /// and value. Entries expire from Redis with their envelopes, so an
    /// expired entry reads as missing; should a clock disagree, a value can
    /// read as `None` with its fields not read (empty): read them then.
    pub fallbacks: Option<Vec<FallbackRead>>,
}

/// How long a shared computation's result is kept after it lands: longer
/// than a read of the cache and the computation's own write take.
const FLIGHT_KEPT: Duration = Duration::from_secs(5);

/// Largest value kept.
const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// When an entry written now for `ttl` expires, in Unix milliseconds.
fn expiry(ttl: Duration) -> i64 {
    chrono::Utc::now().timestamp_millis() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

/// `value` with its expiry in front, so that no copy of it (in Redis or in
/// memory) is ever read after `expires` (Unix milliseconds).
fn seal(value: &[u8], expires: i64) -> Vec<u8> {
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
    /// Computations in flight, so that concurrent misses share one, kept
    /// [`FLIGHT_KEPT`] after they land.
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

/// What an entry kept in process weighs: its key and its bytes.
#[allow(clippy::ptr_arg, reason = "moka's weigher is given the key as stored")]
fn weigh(key: &String, value: &Arc<Vec<u8>>) -> u32 {
    u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
}

fn weighed_cache(capacity: u64) -> moka::future::Cache<String, Arc<Vec<u8>>> {
    moka::future::Cache::builder()
        .max_capacity(capacity)
        .weigher(weigh)
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
            flights: moka::future::Cache::builder()
                .max_capacity(16 * 1024 * 1024)
                .weigher(weigh)
                .time_to_live(FLIGHT_KEPT)
                .build(),
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

    /// Makes every entry of each of `scopes` stale, all at one instant. A
    /// bump Redis could not take is made before Redis is read again.
    pub async fn bump(&self, scopes: &[String]) {
        match &self.0.store {
            Store::Local { versions, .. } => {
                let mut versions = versions.lock().unwrap_or_else(|e| e.into_inner());
                for scope in scopes {
                    *versions.entry(scope.clone()).or_default() += 1;
                }
            }
            Store::Redis(redis) => redis.bump(scopes).await,
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

    /// Round trips made to Redis so far (0 without it): tests read it.
    pub fn round_trips(&self) -> u64 {
        match &self.0.store {
            Store::Local { .. } => 0,
            Store::Redis(redis) => redis.round_trips(),
        }
    }

    /// Charges `cost` points to the budget `key` that every replica shares,
    /// and reads the versions of `scopes` in the same round trip (see
    /// `RedisStore::gcra_reading`): `None` without Redis.
    pub async fn gcra_reading(
        &self,
        key: &str,
        cost: u32,
        interval_us: u64,
        burst: u32,
        scopes: &[String],
    ) -> Option<Result<(Checked, Result<Vec<Option<u64>>, Unavailable>), Unavailable>> {
        match &self.0.store {
            Store::Local { .. } => None,
            Store::Redis(redis) => {
                Some(redis.gcra_reading(key, cost, interval_us, burst, scopes).await)
            }
        }
    }

    /// Publishes `payloads` on the channel `channel` (under the prefix) to
    /// every replica: `Ok(false)` without Redis, where this process is all.
    pub async fn publish(&self, channel: &str, payloads: &[Vec<u8>]) -> Result<bool, Unavailable> {
        match &self.0.store {
            Store::Local { .. } => Ok(false),
            Store::Redis(redis) => {
                redis.publish(&self.full_key(channel), payloads).await?;
                Ok(true)
            }
        }
    }

    /// The full name of `channel`, as [`Cache::publish`] publishes on it.
    pub fn channel(&self, channel: &str) -> String {
        self.full_key(channel)
    }

    /// The value stored under `key`, unless it has expired.
    pub async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        Ok(self.read_many(&[key.to_owned()]).await?.pop().flatten())
    }

    /// Stores `value` under `key` until the TTL has passed; values over a
    /// megabyte are not kept.
    pub async fn write(&self, key: &str, value: &[u8]) -> Result<(), Unavailable> {
        self.write_many(vec![Entry::new(key.to_owned(), value.to_vec())]).await
    }

    /// The values stored under `keys`, in order, unless expired: the
    /// copies kept in process, and the rest in one round trip.
    pub async fn read_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Unavailable> {
        Ok(self.read_and_versions(keys, &[]).await?.0)
    }

    /// The values stored under `keys`, in order, unless expired (the copies
    /// kept in process, and the rest from the store, as
    /// [`read`](Self::read) reads them), and the versions of `scopes` (as
    /// [`versions`](Self::versions) reads them): one round trip for all.
    pub async fn read_and_versions(
        &self,
        keys: &[String],
        scopes: &[String],
    ) -> Result<(Vec<Option<Vec<u8>>>, Vec<Option<u64>>), Unavailable> {
        let keys: Vec<String> = keys.iter().map(|key| self.full_key(key)).collect();
        let mut envelopes = self.near_envelopes(&keys).await;
        let versions = match &self.0.store {
            Store::Local { .. } => self.versions(scopes).await?,
            Store::Redis(redis) => {
                let far: Vec<usize> = (0..keys.len()).filter(|i| envelopes[*i].is_none()).collect();
                let far_keys: Vec<&str> = far.iter().map(|i| keys[*i].as_str()).collect();
                let generation = redis.generation();
                let (values, versions) = redis.get_many_and_versions(&far_keys, scopes).await?;
                for (i, bytes) in far.iter().zip(values) {
                    if let Some(bytes) = bytes {
                        let bytes = Arc::new(bytes);
                        let near_key = format!("{generation}/{}", keys[*i]);
                        self.0.near.insert(near_key, Arc::clone(&bytes)).await;
                        envelopes[*i] = Some(bytes);
                    }
                }
                versions
            }
        };
        let values =
            envelopes.into_iter().map(|e| e.and_then(|bytes| open_envelope(&bytes))).collect();
        Ok((values, versions))
    }

    /// For each of `fields` of the hash of versions `scope`: its version
    /// (0 when it has none) and the value stored under
    /// `{key_prefix}{field}:v{version}`, unless expired; in one round trip
    /// (versions and values at one instant). Such entries are read from
    /// the store, never from copies in process.
    pub async fn read_versioned(
        &self,
        scope: &str,
        fields: &[String],
        key_prefix: &str,
    ) -> Result<Vec<Versioned>, Unavailable> {
        let read = match &self.0.store {
            Store::Local { entries, versions } => {
                let versions: Vec<u64> = {
                    let versions = versions.lock().unwrap_or_else(|e| e.into_inner());
                    fields
                        .iter()
                        .map(|field| versions.get(&field_scope(scope, field)).copied().unwrap_or(0))
                        .collect()
                };
                let mut read = Vec::with_capacity(fields.len());
                for (field, version) in fields.iter().zip(versions) {
                    let key = self.full_key(&format!("{key_prefix}{field}:v{version}"));
                    read.push((version, entries.get(&key).await.map(|e| e.to_vec())));
                }
                read
            }
            Store::Redis(redis) => {
                let key_prefix = self.full_key(key_prefix);
                redis.get_versioned(scope, fields, &key_prefix).await?
            }
        };
        Ok(read
            .into_iter()
            .map(|(version, sealed)| (version, sealed.and_then(|bytes| open_envelope(&bytes))))
            .collect())
    }

    /// The values stored under `first`, unless expired; when one of them
    /// is not there, also each of `fallbacks`' value and, when that is not
    /// there either (or the fallback has no key), its fields read as
    /// [`Cache::read_versioned`] reads them with `scope` and `key_prefix`;
    /// with no first keys, the fallbacks.
    /// In one round trip and at one instant: a dashboard's sections, else
    /// its months, else the days of the months not kept.
    pub async fn read_cascade(
        &self,
        first: &[String],
        scope: &str,
        key_prefix: &str,
        fallbacks: &[Fallback],
    ) -> Result<Cascade, Unavailable> {
        let Store::Redis(redis) = &self.0.store else {
            // In process: the same reads, with no round trip to save.
            let first = self.read_many(first).await?;
            if !first.is_empty() && first.iter().all(Option::is_some) {
                return Ok(Cascade { first, fallbacks: None });
            }
            let mut read = Vec::with_capacity(fallbacks.len());
            for fallback in fallbacks {
                let value = match &fallback.key {
                    Some(key) => self.read(key).await?,
                    None => None,
                };
                let fields = match value {
                    Some(_) => Vec::new(),
                    None => self.read_versioned(scope, &fallback.fields, key_prefix).await?,
                };
                read.push((value, fields));
            }
            return Ok(Cascade { first, fallbacks: Some(read) });
        };
        let full = |key: &String| self.full_key(key);
        let first_keys: Vec<String> = first.iter().map(full).collect();
        let far: Vec<Fallback> = fallbacks
            .iter()
            .map(|f| Fallback { key: f.key.as_ref().map(full), fields: f.fields.clone() })
            .collect();
        let generation = redis.generation();
        let raw = redis.get_cascade(&first_keys, scope, &self.full_key(key_prefix), &far).await?;
        // Kept near as `read_many` keeps what it reads (the sections and the
        // months); versioned entries are read from the store only.
        let keep = |key: &String, sealed: Option<Vec<u8>>| {
            let sealed = sealed.map(Arc::new);
            let near = sealed.clone().map(|bytes| (format!("{generation}/{key}"), bytes));
            (sealed.and_then(|bytes| open_envelope(&bytes)), near)
        };
        let mut near = Vec::new();
        let mut first = Vec::with_capacity(first_keys.len());
        for (key, sealed) in first_keys.iter().zip(raw.first) {
            let (value, copy) = keep(key, sealed);
            first.push(value);
            near.extend(copy);
        }
        let fallbacks = raw.fallbacks.map(|read| {
            let mut opened = Vec::with_capacity(read.len());
            for (fallback, (sealed, fields)) in far.iter().zip(read) {
                let (value, copy) = match &fallback.key {
                    Some(key) => keep(key, sealed),
                    None => (None, None),
                };
                near.extend(copy);
                let fields = fields
                    .into_iter()
                    .map(|(version, sealed)| (version, sealed.and_then(|b| open_envelope(&b))))
                    .collect();
                opened.push((value, fields));
            }
            opened
        });
        for (key, bytes) in near {
            self.0.near.insert(key, bytes).await;
        }
        Ok(Cascade { first, fallbacks })
    }

    /// The values stored under `keys` that are kept in process, in order,
    /// unless expired: no round trip.
    pub async fn read_near(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        let keys: Vec<String> = keys.iter().map(|key| self.full_key(key)).collect();
        let envelopes = self.near_envelopes(&keys).await;
        envelopes.into_iter().map(|e| e.and_then(|bytes| open_envelope(&bytes))).collect()
    }

    /// The sealed entries of the full `keys` kept in process, in order.
    async fn near_envelopes(&self, keys: &[String]) -> Vec<Option<Arc<Vec<u8>>>> {
        let mut envelopes = Vec::with_capacity(keys.len());
        match &self.0.store {
            Store::Local { entries, .. } => {
                for key in keys {
                    envelopes.push(entries.get(key).await);
                }
            }
            Store::Redis(redis) => {
                let generation = redis.generation();
                for key in keys {
                    envelopes.push(self.0.near.get(&format!("{generation}/{key}")).await);
                }
            }
        }
        envelopes
    }

    /// Stores `entries` in one round trip; values over a megabyte are not
    /// kept.
    pub async fn write_many(&self, entries: Vec<Entry>) -> Result<(), Unavailable> {
        let sealed: Vec<(String, Vec<u8>, i64, bool)> = entries
            .into_iter()
            .filter(|entry| entry.value.len() <= MAX_VALUE_BYTES)
            .map(|entry| {
                let expires = expiry(entry.ttl.unwrap_or(self.0.ttl));
                (self.full_key(&entry.key), seal(&entry.value, expires), expires, entry.near)
            })
            .collect();
        if sealed.is_empty() {
            return Ok(());
        }
        match &self.0.store {
            Store::Local { entries, .. } => {
                for (key, value, _, _) in sealed {
                    entries.insert(key, Arc::new(value)).await;
                }
            }
            Store::Redis(redis) => {
                redis.set_many(&sealed).await?;
                let generation = redis.generation();
                for (key, value, _, near) in sealed {
                    if near {
                        self.0.near.insert(format!("{generation}/{key}"), Arc::new(value)).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// The bytes `compute` makes for `key`, made once for concurrent
    /// callers and kept a few seconds after, so that a caller who read the
    /// cache just before they were stored does not make them again; `true`
    /// when this call made them. `key` must name what `compute` makes (hold
    /// the versions it depends on), as every key of the cache does.
    pub async fn share<F>(&self, key: &str, compute: F) -> AppResult<(Arc<Vec<u8>>, bool)>
    where
        F: Future<Output = AppResult<Vec<u8>>>,
    {
        let computed = AtomicBool::new(false);
        let bytes = self
            .0
            .flights
            .try_get_with(key.to_owned(), async {
                computed.store(true, Relaxed);
                Ok::<_, AppError>(Arc::new(compute.await?))
            })
            .await
            .map_err(|shared| shared.duplicate())?;
        Ok((bytes, computed.load(Relaxed)))
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
