//! The Redis store: a deadpool-redis pool, short timeouts, a circuit
//! breaker, and versions of scopes that replicas share.
//!
//! Commands share one multiplexed connection taken from the pool, and a new
//! one is taken after an error. Checking a connection out of the pool for
//! each command would cost a round trip of its own: deadpool-redis checks a
//! recycled connection with `UNWATCH` and `PING` before handing it out.

use std::{
    collections::HashMap,
    sync::{
        LazyLock, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use deadpool_redis::{
    Config, Connection, Pool, PoolConfig, Runtime, Timeouts,
    redis::{
        AsyncCommands, ErrorKind, RedisError, Script, ServerErrorKind, aio::MultiplexedConnection,
    },
};

use super::{Cascade, Fallback, Versioned, breaker::Breaker};

/// Connections the Redis pool may open at once: commands share one, and
/// more are opened only while it is replaced.
pub const POOL_SIZE: usize = 32;

pub struct RedisStore {
    pool: Pool,
    /// The connection commands share (a clone shares its socket), until an
    /// error.
    shared: Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
    prefix: String,
    breaker: Breaker,
    /// Counts recoveries: Redis may have lost its data (and so reset its
    /// versions) while it was away, so copies kept from before are void.
    generation: AtomicU64,
    /// Round trips made (commands or pipelines sent), for tests.
    round_trips: AtomicU64,
    /// Scopes whose version could not be bumped while Redis was away;
    /// bumped before Redis is trusted again, so no stale entry survives an
    /// outage.
    /// Each with a token of the failure that left it, so that a replay
    /// removes only what it made.
    pending_bumps: Mutex<HashMap<String, u64>>,
}

#[derive(Debug)]
pub struct Unavailable;

impl RedisStore {
    /// A pool for `url`; connections are made on first use, so a Redis that
    /// is down at start-up only degrades the cache.
    /// `timeout` is the longest wait for one command; past it the database
    /// answers.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let mut config = Config::from_url(url);
        config.pool = Some(PoolConfig {
            max_size: POOL_SIZE,
            timeouts: Timeouts {
                wait: Some(timeout),
                create: Some(timeout * 2),
                recycle: Some(timeout),
            },
            ..PoolConfig::default()
        });
        let pool = config.create_pool(Some(Runtime::Tokio1))?;
        Ok(Self {
            pool,
            shared: Mutex::new(None),
            timeout,
            prefix: prefix.to_owned(),
            breaker: Breaker::default(),
            generation: AtomicU64::new(0),
            round_trips: AtomicU64::new(0),
            pending_bumps: Mutex::new(HashMap::new()),
        })
    }

    fn version_key(&self, scope: &str) -> String {
        format!("{}:{scope}", self.prefix)
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shared connection, or a new one from the pool.
    async fn connection(&self) -> Result<MultiplexedConnection, String> {
        if let Some(connection) = self.shared().clone() {
            return Ok(connection);
        }
        let connection = Connection::take(self.pool.get().await.map_err(|e| e.to_string())?);
        *self.shared() = Some(connection.clone());
        Ok(connection)
    }

    /// Runs one command with a timeout, through the breaker.
    async fn run<T, F, Fut>(&self, command: F) -> Result<T, Unavailable>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        if !self.breaker.allows() {
            return Err(Unavailable);
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let attempt = async {
            let connection = self.connection().await?;
            command(connection).await.map_err(|e| e.to_string())
        };
        let failed = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => {
                self.recovered_if(self.breaker.succeeded());
                return Ok(value);
            }
            Ok(Err(error)) => error,
            Err(_) => "timed out".to_owned(),
        };
        self.failed(&failed);
        Err(Unavailable)
    }

    /// A command failed: the connection may be broken, so the next one
    /// takes a new one, and the breaker counts it.
    fn failed(&self, error: &str) {
        *self.shared() = None;
        self.breaker.failed(error);
    }

    fn recovered_if(&self, recovered: bool) {
        if recovered {
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Changes whenever Redis comes back after failing.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Replays bumps that failed while Redis was away.
    async fn flush_pending(&self) -> Result<(), Unavailable> {
        let pending: Vec<(String, u64)> = self
            .pending_bumps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(scope, token)| (scope.clone(), *token))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        self.set_fresh(pending.iter().map(|(scope, _)| scope)).await?;
        // A bump that failed again meanwhile has a new token, and stays.
        let mut left = self.pending_bumps.lock().unwrap_or_else(|e| e.into_inner());
        for (scope, token) in pending {
            if left.get(&scope) == Some(&token) {
                left.remove(&scope);
            }
        }
        Ok(())
    }

    /// The scope's current version. A scope without one (new, or Redis
    /// lost its data) gets a random one, so versions never repeat and no
    /// copy kept from before can match.
    pub async fn version(&self, scope: &str) -> Result<u64, Unavailable> {
        self.flush_pending().await?;
        let key = self.version_key(scope);
        let fresh = new_version();
        let version: Option<u64> = self
            .run(|mut c| async move {
                // Usually one round trip; the first time, two more.
                if let Some(version) = c.get(&key).await? {
                    return Ok(Some(version));
                }
                let _: bool = c.set_nx(&key, fresh).await?;
                c.get(&key).await
            })
            .await?;
        Ok(version.unwrap_or(fresh))
    }

    /// The versions of `scopes`, in one `MGET`: one instant for all.
    pub async fn versions(&self, scopes: &[String]) -> Result<Vec<Option<u64>>, Unavailable> {
        self.flush_pending().await?;
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = scopes.iter().map(|scope| self.version_key(scope)).collect();
        // `MGET` by name: the client's `mget` sends `GET` for one key.
        self.run(|mut c| async move {
            deadpool_redis::redis::cmd("MGET").arg(&keys).query_async(&mut c).await
        })
        .await
    }

    /// Gives each of `scopes` a new, random version, in one `MSET`.
    async fn set_fresh<'a>(
        &self,
        scopes: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), Unavailable> {
        let fresh: Vec<(String, u64)> =
            scopes.into_iter().map(|scope| (self.version_key(scope), new_version())).collect();
        self.run(|mut c| async move { c.mset::<_, _, ()>(&fresh).await }).await
    }

    /// Moves every one of `scopes` to a new, random version at one instant
    /// (one `MSET`): every entry of the old ones is dead. Those Redis did
    /// not take are made before it is read again.
    pub async fn bump(&self, scopes: &[String]) {
        if scopes.is_empty() {
            return;
        }
        if self.set_fresh(scopes).await.is_err() {
            let mut pending = self.pending_bumps.lock().unwrap_or_else(|e| e.into_inner());
            for scope in scopes {
                pending.insert(scope.clone(), rand::random());
            }
        }
    }

    /// The versions held in `fields` of the hash `scope`, in one `HMGET`:
    /// one instant for all.
    pub async fn fields(
        &self,
        scope: &str,
        fields: &[String],
    ) -> Result<Vec<Option<u64>>, Unavailable> {
        self.flush_pending().await?;
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.version_key(scope);
        let fields = fields.to_vec();
        self.run(|mut c| async move {
            deadpool_redis::redis::cmd("HMGET").arg(&key).arg(&fields).query_async(&mut c).await
        })
        .await
    }

    /// The version in `field` of the hash `scope`; a field without one
    /// gets a random one, as [`RedisStore::version`] does.
    pub async fn field_version(&self, scope: &str, field: &str) -> Result<u64, Unavailable> {
        self.flush_pending().await?;
        let (key, field) = (self.version_key(scope), field.to_owned());
        let fresh = new_version();
        let version: Option<u64> = self
            .run(|mut c| async move {
                let _: bool = c.hset_nx(&key, &field, fresh).await?;
                c.hget(&key, &field).await
            })
            .await?;
        Ok(version.unwrap_or(fresh))
    }

    /// Moves each of `fields` of the hash `scope` to a new, random version,
    /// in one `HSET`; `false` when Redis did not take it (callers record
    /// that elsewhere: it is not replayed).
    pub async fn bump_fields(&self, scope: &str, fields: &[String]) -> bool {
        if fields.is_empty() {
            return true;
        }
        let key = self.version_key(scope);
        let pairs: Vec<(String, u64)> = fields.iter().map(|f| (f.clone(), new_version())).collect();
        self.run(|mut c| async move { c.hset_multiple::<_, _, _, ()>(key, &pairs).await })
            .await
            .is_ok()
    }

    /// For each of `fields` of the hash `scope`: its version (0 when it
    /// has none) and the value of the key `{key_prefix}{field}:v{version}`;
    /// one script, so one round trip where reading the versions and then
    /// the values would take two.
    pub async fn get_versioned(
        &self,
        scope: &str,
        fields: &[String],
        key_prefix: &str,
    ) -> Result<Vec<Versioned>, Unavailable> {
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let all = Fallback { key: None, fields: fields.to_vec() };
        let read = self.get_cascade(&[], scope, key_prefix, std::slice::from_ref(&all)).await?;
        Ok(read
            .fallbacks
            .into_iter()
            .flatten()
            .next()
            .map(|(_, fields)| fields)
            .unwrap_or_default())
    }

    /// The values of `first`; when one of them is missing, also each
    /// fallback's value and, when that is missing too (or the fallback has
    /// no key), the version and value of each of its fields as
    /// `{key_prefix}{field}:v{version}`. With no first keys, the fallbacks
    /// are read. One script, so one round trip and one instant for all;
    /// the values as stored (sealed).
    pub async fn get_cascade(
        &self,
        first: &[String],
        scope: &str,
        key_prefix: &str,
        fallbacks: &[Fallback],
    ) -> Result<Cascade, Unavailable> {
        self.flush_pending().await?;
        let mut eval = CASCADE_SCRIPT.key(self.version_key(scope));
        eval.arg(key_prefix).arg(first.len());
        eval.arg(first);
        for fallback in fallbacks {
            eval.arg(fallback.key.as_deref().unwrap_or("")).arg(fallback.fields.len());
            eval.arg(&fallback.fields);
        }
        let flat: Vec<Option<Vec<u8>>> =
            self.run(|mut c| async move { eval.invoke_async(&mut c).await }).await?;
        Ok(parse_cascade(flat, first.len(), fallbacks))
    }

    /// The values of `keys`, in order, and the versions of `scopes` (as
    /// [`versions`](Self::versions) reads them): one `MGET` each, in one
    /// round trip (none when there is nothing to read).
    pub async fn get_many_and_versions(
        &self,
        keys: &[&str],
        scopes: &[String],
    ) -> Result<(Vec<Option<Vec<u8>>>, Vec<Option<u64>>), Unavailable> {
        if !scopes.is_empty() {
            self.flush_pending().await?;
        }
        let keys: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
        let versions: Vec<String> = scopes.iter().map(|scope| self.version_key(scope)).collect();
        match (keys.is_empty(), versions.is_empty()) {
            (true, true) => Ok((Vec::new(), Vec::new())),
            // `MGET` by name: the client's `mget` sends `GET` for one key.
            (false, true) => {
                self.run(|mut c| async move {
                    let mut mget = deadpool_redis::redis::cmd("MGET");
                    mget.arg(&keys);
                    Ok((mget.query_async(&mut c).await?, Vec::new()))
                })
                .await
            }
            (true, false) => {
                self.run(|mut c| async move {
                    let mut mget = deadpool_redis::redis::cmd("MGET");
                    mget.arg(&versions);
                    Ok((Vec::new(), mget.query_async(&mut c).await?))
                })
                .await
            }
            (false, false) => {
                self.run(|mut c| async move {
                    let mut pipe = deadpool_redis::redis::pipe();
                    pipe.cmd("MGET").arg(&keys).cmd("MGET").arg(&versions);
                    pipe.query_async(&mut c).await
                })
                .await
            }
        }
    }

    /// Sets every `(key, value, expires, _)` to expire at `expires` (Unix
    /// milliseconds), in one pipeline.
    pub async fn set_many(
        &self,
        entries: &[(String, Vec<u8>, i64, bool)],
    ) -> Result<(), Unavailable> {
        let mut pipe = deadpool_redis::redis::pipe();
        for (key, value, expires, _) in entries {
            // Gone from Redis when its envelope expires, not up to a
            // second later: a cascade takes an entry Redis holds as there.
            pipe.cmd("SET").arg(key).arg(value).arg("PXAT").arg(*expires).ignore();
        }
        self.run(|mut c| async move { pipe.query_async::<()>(&mut c).await }).await
    }

    /// Adds `amount` to the counter `key`, which expires `ttl` after it was
    /// made; the new total.
    pub async fn add(&self, key: &str, amount: u64, ttl: Duration) -> Result<u64, Unavailable> {
        let key = key.to_owned();
        let ttl = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        self.run(|mut c| async move {
            let (total, _): (u64, i64) = deadpool_redis::redis::pipe()
                .atomic()
                .incr(&key, amount)
                .expire(&key, ttl)
                .query_async(&mut c)
                .await?;
            Ok(total)
        })
        .await
    }

    /// One check of a GCRA budget (see [`GCRA`]): charges `cost` points to
    /// `key` unless it cannot pay them now; and the versions of `scopes`
    /// (as [`versions`](Self::versions) reads them), in the same round
    /// trip: a request pays for itself in the read it makes first. The
    /// versions may fail apart from the check (a check made is never
    /// thrown away, so the client never pays twice for it).
    pub async fn gcra_reading(
        &self,
        key: &str,
        cost: u32,
        interval_us: u64,
        burst: u32,
        scopes: &[String],
    ) -> Result<(Checked, Result<Vec<Option<u64>>, Unavailable>), Unavailable> {
        // Bumps that could not be made while Redis was away are made
        // before any version is trusted; the check does not wait on them.
        let flushed = scopes.is_empty() || self.flush_pending().await.is_ok();
        let mut invocation = GCRA_SCRIPT.key(self.version_key(key));
        invocation.arg(cost).arg(interval_us).arg(burst);
        let keys: Vec<String> = match flushed {
            true => scopes.iter().map(|scope| self.version_key(scope)).collect(),
            false => Vec::new(),
        };
        type Gcra = (i64, i64, i64, i64);
        type Each = (Result<Gcra, RedisError>, Result<Vec<Option<u64>>, RedisError>);
        let ((allowed, remaining, wait, full), versions) = self
            .run(|mut c| async move {
                if keys.is_empty() {
                    let checked: Gcra = invocation.invoke_async(&mut c).await?;
                    return Ok((checked, Ok(Vec::new())));
                }
                // `MGET` by name: the client's `mget` sends `GET` for one key.
                let mut pipe = deadpool_redis::redis::pipe();
                pipe.ignore_errors().invoke_script(&invocation).cmd("MGET").arg(&keys);
                let (mut checked, mut versions): Each = pipe.query_async(&mut c).await?;
                if let Err(error) = &checked
                    && error.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
                {
                    // Redis lost its scripts (restarted, flushed): the
                    // script did not run; it is loaded, and the pipeline
                    // sent again.
                    invocation.load_async(&mut c).await?;
                    (checked, versions) = pipe.query_async(&mut c).await?;
                }
                Ok((checked?, versions))
            })
            .await?;
        let versions = match versions {
            Ok(read) if flushed => Ok(read),
            Ok(_) => Err(Unavailable),
            Err(error) => {
                tracing::warn!(%error, "reading versions with a rate-limit check failed");
                Err(Unavailable)
            }
        };
        let clamp = |n: i64| u64::try_from(n).unwrap_or(0);
        let checked =
            (allowed == 1, u32::try_from(remaining).unwrap_or(0), clamp(wait), clamp(full));
        Ok((checked, versions))
    }

    /// Publishes each payload on `channel`, in one pipeline.
    pub async fn publish(&self, channel: &str, payloads: &[Vec<u8>]) -> Result<(), Unavailable> {
        let mut pipe = deadpool_redis::redis::pipe();
        for payload in payloads {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        self.run(|mut c| async move { pipe.query_async::<()>(&mut c).await }).await
    }

    /// Asks Redis directly, whatever the breaker says; a success closes it.
    pub async fn ping(&self) -> Result<(), String> {
        let attempt = async {
            let mut connection = self.connection().await?;
            deadpool_redis::redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(self.timeout * 5, attempt).await {
            Ok(Ok(_)) => {
                self.recovered_if(self.breaker.succeeded());
                Ok(())
            }
            Ok(Err(error)) => {
                self.failed(&error);
                Err(error)
            }
            Err(_) => {
                self.failed("timed out");
                Err("timed out".to_owned())
            }
        }
    }

    /// Round trips made so far.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// `None` when healthy, else what went wrong last.
    pub fn problem(&self) -> Option<String> {
        self.breaker.problem()
    }
}

/// A GCRA check: `(allowed, remaining points, microseconds until it could
/// pay, microseconds until the budget is full)`.
pub type Checked = (bool, u32, u64, u64);

/// [`GCRA`], sent by its digest (`EVALSHA`), and loaded when Redis does
/// not know it: the script's bytes are not sent, nor hashed by Redis, on
/// every request.
static GCRA_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(GCRA));

/// [`CASCADE`], likewise.
static CASCADE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CASCADE));

/// The generic cell rate algorithm, as governor runs it in process, on a
/// key every replica shares: `KEYS[1]` holds the theoretical arrival time
/// (microseconds, Redis's clock); `ARGV` the cost, the emission interval
/// (microseconds a point takes to come back) and the burst. One script:
/// one round trip, and no two replicas spend the same point.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = interval * tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tat + cost * interval
if after - tolerance > now then
  return {0, math.floor((now + tolerance - tat) / interval), after - tolerance - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', after), 'PX', math.ceil((after - now) / 1000) + 1)
return {1, math.floor((now + tolerance - after) / interval), 0, after - now}
"#;

/// [`RedisStore::get_cascade`]'s script: `KEYS[1]` the hash of versions,
/// `ARGV[1]` the prefix of versioned entries' keys, `ARGV[2]` the number of
/// first keys, then those keys, then each fallback as its key (empty for
/// none), its number of fields and its fields. A flat array: the first
/// values; if one is missing (false), each fallback's value, followed when
/// that is missing by a version and value for each of its fields. With no
/// first keys, the fallbacks are read. It names keys it was not given, which a
/// standalone Redis allows and Redis Cluster does not.
const CASCADE: &str = "
    local read = {}
    local n = tonumber(ARGV[2])
    local complete = n > 0
    for i = 3, 2 + n do
        local value = redis.call('GET', ARGV[i])
        read[#read + 1] = value
        if not value then complete = false end
    end
    if complete then return read end
    local i = 3 + n
    while i <= #ARGV do
        local key, count = ARGV[i], tonumber(ARGV[i + 1])
        local value = false
        if key ~= '' then value = redis.call('GET', key) end
        read[#read + 1] = value
        if not value then
            for f = i + 2, i + 1 + count do
                local version = redis.call('HGET', KEYS[1], ARGV[f]) or '0'
                read[#read + 1] = version
                read[#read + 1] = redis.call('GET', ARGV[1] .. ARGV[f] .. ':v' .. version)
            end
        end
        i = i + 2 + count
    end
    return read
";

/// [`CASCADE`]'s flat reply, read back in the order it was written; the
/// values as stored (sealed).
fn parse_cascade(flat: Vec<Option<Vec<u8>>>, first: usize, fallbacks: &[Fallback]) -> Cascade {
    let mut flat = flat.into_iter();
    let mut next = || flat.next().flatten();
    let first: Vec<Option<Vec<u8>>> = (0..first).map(|_| next()).collect();
    if !first.is_empty() && first.iter().all(Option::is_some) {
        return Cascade { first, fallbacks: None };
    }
    let mut read = Vec::with_capacity(fallbacks.len());
    for fallback in fallbacks {
        let value = next();
        let mut fields = Vec::new();
        if value.is_none() {
            for _ in &fallback.fields {
                let version = next().as_deref().and_then(parse_version).unwrap_or(0);
                fields.push((version, next()));
            }
        }
        read.push((value, fields));
    }
    Cascade { first, fallbacks: Some(read) }
}

/// A version as Redis returns it: decimal text.
fn parse_version(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// A version no scope has had: random, so it cannot collide with one from
/// before a Redis restart.
fn new_version() -> u64 {
    rand::random::<u64>() >> 1
}
