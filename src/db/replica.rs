//! Reads that may go to a PostgreSQL read replica (`DATABASE_READ_URL`):
//! the analytics and the staff's bookings lists, the heavy reads a shop's
//! dashboard makes.
//!
//! A read goes to the replica only when all of these hold, else to the
//! primary:
//!
//! - the replica answers and lags by at most `MAX_REPLICA_LAG_SECS`, as a
//!   prober on its pool measures twice a second (`/ready` reports it);
//! - the user asking has not written within `READ_AFTER_WRITE_SECS`, so
//!   nobody misses their own change. The mark lives in the shared cache
//!   (Redis with `REDIS_URL`), so it holds on every API replica; when it
//!   cannot be read, the read goes to the primary;
//! - for a result the cache will keep (an analytics partial stored under
//!   the versions read before it), the replica has replayed the primary's
//!   WAL as far as it was flushed when the read began. A write commits,
//!   then bumps the versions, then the versions are read; so a partial
//!   stored under them holds the write. Without this a partial computed on
//!   a lagging replica would be kept under the new versions and stay stale
//!   until the next write.
//!
//! A statement the replica fails to answer (it stopped) is sent again to
//! the primary, and the replica is not used until the prober sees it back.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio::sync::OnceCell;

use super::{Failure, StatementCounter, classify};
use crate::{
    cache::{Cache, Entry},
    config::Config,
};

/// Time between two measurements of the replica's lag.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// Longest a measurement may take before the replica counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How long a cached read waits for the replica to replay the primary's
/// WAL before it goes to the primary instead.
const CATCH_UP_WAIT: Duration = Duration::from_millis(100);

/// The replica's lag: 0 when it has replayed all it received, else the age
/// of the last transaction it replayed (what `pg_last_xact_replay_timestamp`
/// measures; an idle primary does not make a caught-up replica look late).
/// `NULL` while it has replayed nothing it received.
const LAG_SQL: &str = "SELECT CASE \
     WHEN NOT pg_is_in_recovery() THEN 0::float8 \
     WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
     ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag";

/// What the prober last saw of the replica.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplicaState {
    /// Not measured yet.
    Unknown,
    /// Answering, `lag` seconds behind the primary.
    Lagging { lag: f64 },
    /// It did not answer.
    Down,
}

struct Replica {
    db: DatabaseConnection,
    statements: StatementCounter,
    state: Mutex<ReplicaState>,
    /// Whether reads may go to it now.
    usable: AtomicBool,
}

struct Inner {
    primary: DatabaseConnection,
    replica: Option<Replica>,
    /// Holds the users who wrote lately.
    marks: Cache,
    read_after_write: Duration,
    max_lag: f64,
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

impl Reads {
    /// Reads from `primary` alone.
    pub fn primary_only(primary: DatabaseConnection, marks: Cache) -> Self {
        Self(Arc::new(Inner {
            primary,
            replica: None,
            marks,
            read_after_write: Duration::ZERO,
            max_lag: 0.0,
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
        let reads = Self(Arc::new(Inner {
            primary,
            replica: Some(Replica {
                db,
                statements,
                state: Mutex::new(ReplicaState::Unknown),
                usable: AtomicBool::new(false),
            }),
            marks,
            read_after_write: Duration::from_secs(config.read_after_write_secs),
            max_lag: config.max_replica_lag_secs as f64,
        }));
        reads.probe().await;
        reads.spawn_prober();
        Ok(reads)
    }

    /// The primary's pool.
    pub fn primary(&self) -> &DatabaseConnection {
        &self.0.primary
    }

    /// Whether a read replica is configured.
    pub fn has_replica(&self) -> bool {
        self.0.replica.is_some()
    }

    /// What the prober last saw; `None` without a replica.
    pub fn replica_state(&self) -> Option<ReplicaState> {
        let replica = self.0.replica.as_ref()?;
        Some(replica.state.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Whether reads may go to the replica now.
    pub fn replica_usable(&self) -> bool {
        self.0.replica.as_ref().is_some_and(|r| r.usable.load(Ordering::Acquire))
    }

    /// Statements sent to the replica so far (tests read it).
    pub fn replica_statements(&self) -> u64 {
        self.0.replica.as_ref().map_or(0, |r| r.statements.get())
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
        let mark = Entry::new(wrote_key(user_id), vec![1]).for_ttl(self.0.read_after_write);
        // When the cache is away, reading the mark fails as well, which
        // sends the user's reads to the primary.
        let _ = self.0.marks.write_many(vec![mark]).await;
    }

    /// Measures the replica once.
    async fn probe(&self) {
        let Some(replica) = &self.0.replica else { return };
        let measured = tokio::time::timeout(PROBE_TIMEOUT, lag(&replica.db)).await;
        let state = match measured {
            Ok(Ok(Some(lag))) => ReplicaState::Lagging { lag },
            Ok(Ok(None)) => ReplicaState::Lagging { lag: f64::INFINITY },
            Ok(Err(_)) | Err(_) => ReplicaState::Down,
        };
        let usable = matches!(state, ReplicaState::Lagging { lag } if lag <= self.0.max_lag);
        let was = replica.usable.swap(usable, Ordering::AcqRel);
        if was != usable {
            match &state {
                ReplicaState::Lagging { lag } if usable => {
                    tracing::info!(lag_secs = lag, "reading from the read replica");
                }
                ReplicaState::Lagging { lag } => {
                    tracing::warn!(
                        lag_secs = lag,
                        "the read replica lags too far; reading from the primary"
                    );
                }
                _ => tracing::warn!("the read replica does not answer; reading from the primary"),
            }
        }
        metrics::gauge!("bookedbarber_read_replica_usable").set(if usable { 1.0 } else { 0.0 });
        if let ReplicaState::Lagging { lag } = state {
            metrics::gauge!("bookedbarber_read_replica_lag_seconds").set(lag);
        }
        *replica.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    fn spawn_prober(&self) {
        let reads = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PROBE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(inner) = reads.upgrade() else { break };
                Reads(inner).probe().await;
            }
        });
    }

    /// Whether `user_id` wrote lately, as far as anyone can tell: `true`
    /// when the mark cannot be read.
    async fn wrote_lately(&self, user_id: i64) -> bool {
        !matches!(self.0.marks.read(&wrote_key(user_id)).await, Ok(None))
    }

    /// Whether the replica has replayed the primary's WAL as far as it
    /// was flushed now, waiting a moment for it.
    async fn caught_up(&self, replica: &DatabaseConnection) -> bool {
        let flushed = Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_current_wal_flush_lsn()::text AS lsn",
        );
        let Ok(Some(row)) = self.0.primary.query_one_raw(flushed).await else { return false };
        let Ok(lsn) = row.try_get::<String>("", "lsn") else { return false };
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        loop {
            let replayed = Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT COALESCE(pg_last_wal_replay_lsn() >= $1::pg_lsn, true) AS replayed",
                [lsn.clone().into()],
            );
            match replica.query_one_raw(replayed).await {
                Ok(Some(row)) if row.try_get::<bool>("", "replayed").unwrap_or(false) => {
                    return true;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops reading from the replica after it failed a statement, until
    /// the prober sees it answer again.
    fn replica_failed(&self) {
        if let Some(replica) = &self.0.replica {
            if replica.usable.swap(false, Ordering::AcqRel) {
                tracing::warn!("the read replica failed a statement; reading from the primary");
            }
            *replica.state.lock().unwrap_or_else(|e| e.into_inner()) = ReplicaState::Down;
        }
    }
}

/// The lag [`LAG_SQL`] measures.
async fn lag(db: &DatabaseConnection) -> Result<Option<f64>, DbErr> {
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, LAG_SQL)).await?;
    let Some(row) = row else { return Ok(None) };
    row.try_get::<Option<f64>>("", "lag")
}

/// A read: how fresh it must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Shown and forgotten: the replica's lag is bounded.
    Shown,
    /// Kept in the cache under versions read before it: the replica must
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

    /// Runs `read` on the replica when it may serve it, else (or when the
    /// replica fails to answer) on the primary.
    pub async fn run<T>(
        &self,
        freshness: Freshness,
        read: impl Fn(DatabaseConnection) -> BoxFuture<'static, Result<T, DbErr>>,
    ) -> Result<T, DbErr> {
        let replica = match &self.reads.0.replica {
            Some(replica) if self.replica().await => &replica.db,
            _ => return self.on(Target::Primary, read(self.reads.0.primary.clone())).await,
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
            return self.on(Target::Primary, read(self.reads.0.primary.clone())).await;
        }
        match self.on(Target::Replica, read(replica.clone())).await {
            Err(err) if matches!(classify(&err), Failure::Unavailable) => {
                self.reads.replica_failed();
                self.on(Target::Primary, read(self.reads.0.primary.clone())).await
            }
            done => done,
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
