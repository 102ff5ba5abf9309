//! Reads that may go to a PostgreSQL read replica (`DATABASE_READ_URL`):
//! the analytics and the staff's bookings lists, the heavy reads a shop's
//! dashboard makes. One hot standby: the checks below ask the server that
//! answers, which must be the one the reads go to.
//!
//! A read goes to the replica only when all of these hold, else to the
//! primary:
//!
//! - the replica answers, is a standby, and lags by less than both
//!   `MAX_REPLICA_LAG_SECS` and `READ_AFTER_WRITE_SECS`, as a prober on
//!   connections of its own measures twice a second (`/ready` reports it).
//!   The lag is 0 when the replica has replayed the primary's WAL as far as
//!   it had been written when the probe began, else the age of the last
//!   transaction it replayed (`pg_last_xact_replay_timestamp()`); so a
//!   replica that stopped receiving WAL shows its lag growing. The age of
//!   the measurement counts too;
//! - the user asking has not written within `READ_AFTER_WRITE_SECS`, so
//!   nobody misses their own change: a write older than that is on the
//!   replica, which lags less. The mark lives in the shared cache (Redis
//!   with `REDIS_URL`), so it holds on every API replica, and in process;
//!   when it cannot be read, the read goes to the primary;
//! - for a result kept for later under versions read before it (an
//!   analytics partial, or a signed-in answer kept by `public`), the
//!   replica has replayed the primary's WAL as far as it was written when
//!   the read began. A write commits, then bumps the versions, then the
//!   versions are read; so a result kept under them holds the write.
//!   Without this a result computed on a lagging replica would be kept
//!   under the new versions and stay stale until the next write.
//!
//! A statement the replica fails to answer in time (it stopped) is sent
//! again to the primary, and the replica is not used until the prober sees
//! it back; one it cancelled for a conflict with recovery is sent again to
//! the primary too.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio::sync::OnceCell;

use super::{Failure, StatementCounter, classify, recovery_conflict};
use crate::{
    cache::{Cache, Entry},
    config::Config,
};

/// Time between two measurements of the replica's lag.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// Longest a measurement may take before the replica counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How long a kept read waits for the replica to replay the primary's WAL
/// before it goes to the primary instead.
const CATCH_UP_WAIT: Duration = Duration::from_millis(100);
/// Longest the whole catch-up check may take (its statements included).
const CATCH_UP_TIMEOUT: Duration = Duration::from_millis(500);

/// How far the primary has written its WAL: every commit that returned
/// is at or before it, whatever `synchronous_commit` says.
const WRITTEN_SQL: &str = "SELECT pg_current_wal_insert_lsn()::text AS lsn";

/// Whether the replica is a standby, whether it has replayed up to `$1`
/// (the primary's WAL position), and the age of the last transaction it
/// replayed.
const REPLICA_SQL: &str = "SELECT pg_is_in_recovery() AS standby, \
     COALESCE(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) AS replayed, \
     EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 AS age";

/// What the prober last saw of the replica.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplicaState {
    /// Not measured yet.
    Unknown,
    /// A standby, `lag` seconds behind the primary (infinite while it has
    /// replayed nothing of what the primary wrote).
    Lagging { lag: f64 },
    /// It answers, but is not a standby (promoted, or not a replica).
    NotStandby,
    /// It did not answer.
    Down,
}

/// A measurement, and when it began.
struct Measured {
    state: ReplicaState,
    at: Instant,
}

struct Replica {
    db: DatabaseConnection,
    statements: StatementCounter,
    measured: Mutex<Measured>,
    /// Reads sent again to the primary after the replica failed them.
    fallbacks: AtomicU64,
}

struct Inner {
    primary: DatabaseConnection,
    replica: Option<Replica>,
    /// Holds the users who wrote lately, for every API replica.
    marks: Cache,
    /// The same, in this process, for when the shared mark was not stored.
    recent: moka::sync::Cache<i64, ()>,
    read_after_write: Duration,
    /// The lag past which reads go to the primary: `MAX_REPLICA_LAG_SECS`,
    /// and less than `READ_AFTER_WRITE_SECS`, so that a write out of its
    /// window is on the replica.
    max_lag: Duration,
    /// Longest a read waits for the replica before it goes to the primary.
    read_timeout: Duration,
}

/// Where reads go: the primary, or the read replica when one is set and
/// fit; cheap to clone.
#[derive(Clone)]
pub struct Reads(Arc<Inner>);

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reads").field("replica", &self.replica_state()).finish()
    }
}

/// The key marking that `user_id` wrote lately.
fn wrote_key(user_id: i64) -> String {
    format!("wrote:{user_id}")
}

/// The lag past which reads go to the primary (see [`Inner::max_lag`]).
fn lag_limit(config: &Config) -> Duration {
    let max_lag = Duration::from_secs(config.max_replica_lag_secs);
    match config.read_after_write_secs {
        0 => max_lag,
        secs => max_lag.min(Duration::from_secs(secs)),
    }
}

impl Reads {
    /// Reads from `primary` alone.
    pub fn primary_only(primary: DatabaseConnection, marks: Cache) -> Self {
        Self(Arc::new(Inner {
            primary,
            replica: None,
            marks,
            recent: moka::sync::Cache::new(1),
            read_after_write: Duration::ZERO,
            max_lag: Duration::ZERO,
            read_timeout: Duration::ZERO,
        }))
    }

    /// Opens the replica's pool when `DATABASE_READ_URL` is set, measures
    /// it once (so a server starts using a healthy replica at once), and
    /// keeps measuring it for as long as these reads live.
    pub async fn connect(
        config: &Config,
        primary: DatabaseConnection,
        marks: Cache,
    ) -> anyhow::Result<Self> {
        let Some(url) = config.database_read_url.as_deref() else {
            return Ok(Self::primary_only(primary, marks));
        };
        if config.is_embedded_database() || !url.starts_with("postgres") {
            anyhow::bail!(
                "DATABASE_READ_URL is a PostgreSQL replica of a PostgreSQL DATABASE_URL; \
                 unset it for the embedded database"
            );
        }
        let mut options = (*config).clone();
        options.database_url = url.to_owned();
        options.database_min_connections = 0;
        // A replica that stopped is found by the prober; meanwhile a read
        // that waits for one of its connections goes to the primary soon.
        options.database_acquire_timeout_secs = options.database_acquire_timeout_secs.min(2);
        let (db, statements) = super::connect_lazy(&options).await?;
        let read_after_write = Duration::from_secs(config.read_after_write_secs);
        let reads = Self(Arc::new(Inner {
            primary,
            replica: Some(Replica {
                db,
                statements,
                measured: Mutex::new(Measured { state: ReplicaState::Unknown, at: Instant::now() }),
                fallbacks: AtomicU64::new(0),
            }),
            marks,
            recent: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(read_after_write.max(Duration::from_millis(1)))
                .build(),
            read_after_write,
            max_lag: lag_limit(config),
            // Past the statement timeout, the replica is not answering.
            read_timeout: config.statement_timeout().unwrap_or(Duration::from_secs(10))
                + Duration::from_secs(1),
        }));
        // Connections of its own: probes neither wait behind reads nor
        // count as the application's statements.
        let probes =
            (super::probe_pool(&config.database_url).await?, super::probe_pool(url).await?);
        reads.probe(&probes.0, &probes.1).await;
        reads.spawn_prober(probes);
        Ok(reads)
    }

    /// Whether a read replica is configured.
    pub fn has_replica(&self) -> bool {
        self.0.replica.is_some()
    }

    /// What the prober last saw; `None` without a replica.
    pub fn replica_state(&self) -> Option<ReplicaState> {
        let replica = self.0.replica.as_ref()?;
        Some(replica.measured.lock().unwrap_or_else(|e| e.into_inner()).state.clone())
    }

    /// The lag past which reads go to the primary.
    pub fn max_lag(&self) -> Duration {
        self.0.max_lag
    }

    /// Whether reads may go to the replica now: it answered the last probe
    /// as a standby whose lag, plus the time since it was measured, is
    /// below the limit.
    pub fn replica_usable(&self) -> bool {
        let Some(replica) = &self.0.replica else { return false };
        let measured = replica.measured.lock().unwrap_or_else(|e| e.into_inner());
        match measured.state {
            ReplicaState::Lagging { lag } => {
                lag + measured.at.elapsed().as_secs_f64() < self.0.max_lag.as_secs_f64()
            }
            _ => false,
        }
    }

    /// Statements sent to the replica so far (tests read it).
    pub fn replica_statements(&self) -> u64 {
        self.0.replica.as_ref().map_or(0, |r| r.statements.get())
    }

    /// Reads the replica failed that the primary answered instead.
    pub fn replica_fallbacks(&self) -> u64 {
        self.0.replica.as_ref().map_or(0, |r| r.fallbacks.load(Ordering::Relaxed))
    }

    /// The reads of one request by `user_id` (`None`: anonymous); `kept`
    /// when its answer may be kept under versions read before it ran.
    pub fn route(&self, user_id: Option<i64>, kept: bool) -> ReadRoute {
        ReadRoute {
            reads: self.clone(),
            user_id,
            kept,
            wrote: AtomicBool::new(false),
            picked: OnceCell::new(),
            caught_up: OnceCell::new(),
        }
    }

    /// Reads that all go to the primary (a subscription's: it follows
    /// events as they are committed).
    pub fn primary_route(&self) -> ReadRoute {
        let route = self.route(None, false);
        route.wrote.store(true, Ordering::Release);
        route
    }

    /// Notes that `user_id` just wrote: their reads go to the primary for
    /// `READ_AFTER_WRITE_SECS`, on every API replica.
    pub async fn wrote(&self, user_id: i64) {
        if self.0.replica.is_none() || self.0.read_after_write.is_zero() {
            return;
        }
        self.0.recent.insert(user_id, ());
        let mark = Entry::new(wrote_key(user_id), vec![1]).for_ttl(self.0.read_after_write);
        // When the cache is away, reading the mark fails as well, which
        // sends the user's reads to the primary; on this API replica the
        // mark in process does, even once the cache is back.
        let _ = self.0.marks.write_many(vec![mark]).await;
    }

    /// Measures the replica once: the primary's WAL position, then
    /// whether the replica has replayed it.
    async fn probe(&self, primary: &DatabaseConnection, replica_probe: &DatabaseConnection) {
        let Some(replica) = &self.0.replica else { return };
        let at = Instant::now();
        let measure = async {
            let written = written(primary).await?;
            let row = replica_probe
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    REPLICA_SQL,
                    [written.into()],
                ))
                .await?
                .ok_or_else(|| DbErr::RecordNotFound("the replica's state".to_owned()))?;
            if !row.try_get::<bool>("", "standby")? {
                return Ok(ReplicaState::NotStandby);
            }
            if row.try_get::<bool>("", "replayed")? {
                return Ok(ReplicaState::Lagging { lag: 0.0 });
            }
            let age = row.try_get::<Option<f64>>("", "age")?;
            Ok::<_, DbErr>(ReplicaState::Lagging { lag: age.unwrap_or(f64::INFINITY).max(0.0) })
        };
        let state = match tokio::time::timeout(PROBE_TIMEOUT, measure).await {
            Ok(Ok(state)) => state,
            Ok(Err(_)) | Err(_) => ReplicaState::Down,
        };
        let was = self.replica_usable();
        if let ReplicaState::Lagging { lag } = state {
            metrics::gauge!("bookedbarber_read_replica_lag_seconds").set(lag);
        }
        *replica.measured.lock().unwrap_or_else(|e| e.into_inner()) =
            Measured { state: state.clone(), at };
        let usable = self.replica_usable();
        metrics::gauge!("bookedbarber_read_replica_usable").set(if usable { 1.0 } else { 0.0 });
        if was != usable {
            match &state {
                ReplicaState::Lagging { lag } if usable => {
                    tracing::info!(lag_secs = lag, "reading from the read replica");
                }
                ReplicaState::Lagging { lag } => tracing::warn!(
                    lag_secs = lag,
                    "the read replica lags too far; reading from the primary"
                ),
                ReplicaState::NotStandby => {
                    tracing::error!("DATABASE_READ_URL is not a standby; reading from the primary")
                }
                _ => tracing::warn!("the read replica does not answer; reading from the primary"),
            }
        }
    }

    fn spawn_prober(&self, probes: (DatabaseConnection, DatabaseConnection)) {
        let reads = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PROBE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(inner) = reads.upgrade() else { break };
                Reads(inner).probe(&probes.0, &probes.1).await;
            }
            let _ = probes.0.close().await;
            let _ = probes.1.close().await;
        });
    }

    /// Whether `user_id` wrote lately, as far as anyone can tell: `true`
    /// when the mark cannot be read.
    async fn wrote_lately(&self, user_id: i64) -> bool {
        self.0.recent.contains_key(&user_id)
            || !matches!(self.0.marks.read(&wrote_key(user_id)).await, Ok(None))
    }

    /// Whether the replica has replayed the primary's WAL as far as it
    /// was written now, waiting a moment for it.
    async fn caught_up(&self, replica: &DatabaseConnection) -> bool {
        let check = async {
            let Ok(lsn) = written(&self.0.primary).await else { return false };
            let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
            loop {
                let replayed = Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    REPLICA_SQL,
                    [lsn.clone().into()],
                );
                match replica.query_one_raw(replayed).await {
                    Ok(Some(row)) => {
                        if row.try_get::<bool>("", "standby").unwrap_or(false)
                            && row.try_get::<bool>("", "replayed").unwrap_or(false)
                        {
                            return true;
                        }
                    }
                    Ok(None) | Err(_) => return false,
                }
                if tokio::time::Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(CATCH_UP_TIMEOUT, check).await.unwrap_or(false)
    }

    /// Stops reading from the replica after it failed a statement, until
    /// the prober sees it answer again.
    fn replica_failed(&self) {
        if let Some(replica) = &self.0.replica {
            replica.fallbacks.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("bookedbarber_read_replica_failures_total").increment(1);
            let mut measured = replica.measured.lock().unwrap_or_else(|e| e.into_inner());
            if measured.state != ReplicaState::Down {
                tracing::warn!("the read replica failed a read; reading from the primary");
            }
            *measured = Measured { state: ReplicaState::Down, at: Instant::now() };
        }
    }
}

/// How far `primary` has written its WAL.
async fn written(primary: &DatabaseConnection) -> Result<String, DbErr> {
    let row = primary
        .query_one_raw(Statement::from_string(DbBackend::Postgres, WRITTEN_SQL))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the primary's WAL position".to_owned()))?;
    row.try_get::<String>("", "lsn")
}

/// A read: how fresh it must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Shown and forgotten: the replica's lag is bounded.
    Shown,
    /// Kept for later under versions read before it: the replica must
    /// hold every write committed before the read began.
    Kept,
}

/// The reads of one request: where they go is decided once, on the first
/// read that may use the replica.
pub struct ReadRoute {
    reads: Reads,
    user_id: Option<i64>,
    /// Whether the request's answer may be kept (`public`) under versions
    /// read before it ran: then every read it makes is [`Freshness::Kept`].
    kept: bool,
    /// Set when the request wrote: its later reads go to the primary.
    wrote: AtomicBool,
    /// Whether the replica was picked.
    picked: OnceCell<bool>,
    /// Whether the replica held every write when the request first read
    /// from it (for a kept answer; its versions were read before).
    caught_up: OnceCell<bool>,
}

impl ReadRoute {
    /// The primary's pool, for reads that must see every write.
    pub fn primary(&self) -> &DatabaseConnection {
        &self.reads.0.primary
    }

    /// Notes that the request's user wrote (see [`Reads::wrote`]).
    pub async fn wrote(&self) {
        self.wrote.store(true, Ordering::Release);
        if let Some(user_id) = self.user_id {
            self.reads.wrote(user_id).await;
        }
    }

    /// Whether this request reads from the replica.
    async fn replica(&self) -> bool {
        if !self.reads.replica_usable() || self.wrote.load(Ordering::Acquire) {
            return false;
        }
        *self
            .picked
            .get_or_init(|| async {
                match self.user_id {
                    Some(user_id) => !self.reads.wrote_lately(user_id).await,
                    None => true,
                }
            })
            .await
    }

    /// Runs a list's `read`: on the primary for a client's `own` data, else
    /// as [`run`](Self::run) shows it (the staff's lists may use the
    /// replica).
    pub async fn run_list<T>(
        &self,
        own: bool,
        read: impl Fn(DatabaseConnection) -> BoxFuture<'static, Result<T, DbErr>>,
    ) -> Result<T, DbErr> {
        match own {
            true => read(self.reads.0.primary.clone()).await,
            false => self.run(Freshness::Shown, read).await,
        }
    }

    /// Runs `read` on the replica when it may serve it, else (or when the
    /// replica fails to answer) on the primary.
    pub async fn run<T>(
        &self,
        freshness: Freshness,
        read: impl Fn(DatabaseConnection) -> BoxFuture<'static, Result<T, DbErr>>,
    ) -> Result<T, DbErr> {
        let primary = || self.on(Target::Primary, read(self.reads.0.primary.clone()));
        let replica = match &self.reads.0.replica {
            Some(replica) if self.replica().await => &replica.db,
            _ => return primary().await,
        };
        let caught_up = match freshness {
            // Versions were read just before this read: checked now.
            Freshness::Kept => self.reads.caught_up(replica).await,
            // The answer's versions were read before the request ran: one
            // check, at its first read, covers all of them.
            Freshness::Shown if self.kept => {
                *self.caught_up.get_or_init(|| self.reads.caught_up(replica)).await
            }
            Freshness::Shown => true,
        };
        if !caught_up {
            return primary().await;
        }
        let on_replica = self.on(Target::Replica, read(replica.clone()));
        match tokio::time::timeout(self.reads.0.read_timeout, on_replica).await {
            Ok(Err(err)) if recovery_conflict(&err) => primary().await,
            Ok(Err(err)) if !matches!(classify(&err), Failure::Unavailable) => Err(err),
            Ok(Ok(value)) => Ok(value),
            // It stopped, or does not answer.
            Ok(Err(_)) | Err(_) => {
                self.reads.replica_failed();
                primary().await
            }
        }
    }

    async fn on<T>(
        &self,
        target: Target,
        read: BoxFuture<'static, Result<T, DbErr>>,
    ) -> Result<T, DbErr> {
        metrics::counter!("bookedbarber_routed_reads_total", "target" => target.as_str())
            .increment(1);
        read.await
    }
}

#[derive(Clone, Copy)]
enum Target {
    Primary,
    Replica,
}

impl Target {
    fn as_str(self) -> &'static str {
        match self {
            Target::Primary => "primary",
            Target::Replica => "replica",
        }
    }
}
