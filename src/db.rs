//! The database: connecting with the configured pool, applying migrations,
//! counting the statements the application sends, and telling a database in
//! trouble (timeouts, outages) from other errors.

pub mod health;
pub mod replica;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

use crate::{config::Config, error::AppError};

/// Counts the SQL statements sent through a connection pool.
///
/// Fed by SeaORM's metric callback, so it counts real statements, not calls
/// into our code. Tests read it to prove that a nested page costs a constant
/// number of statements.
#[derive(Debug, Clone, Default)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    /// Statements sent since the pool was opened.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every column of `C` as `table.column AS {prefix}column`, to read a
/// model from a row that joins several (`Model::from_query_result(row,
/// prefix)`).
pub fn prefixed<C: sea_orm::Iterable + sea_orm::IdenStatic>(table: &str, prefix: &str) -> String {
    C::iter()
        .map(|column| format!("{table}.{name} AS {prefix}{name}", name = column.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens the pool described by `config`.
pub async fn connect(config: &Config) -> anyhow::Result<(DatabaseConnection, StatementCounter)> {
    open(config, false).await
}

/// Opens the pool described by `config` without connecting yet: a
/// database away at start is found on first use.
pub async fn connect_lazy(
    config: &Config,
) -> anyhow::Result<(DatabaseConnection, StatementCounter)> {
    open(config, true).await
}

async fn open(
    config: &Config,
    lazy: bool,
) -> anyhow::Result<(DatabaseConnection, StatementCounter)> {
    let mut options = ConnectOptions::new(config.database_url.clone());
    options
        .max_connections(config.database_max_connections)
        .min_connections(config.database_min_connections)
        .acquire_timeout(config.acquire_timeout())
        .idle_timeout(config.idle_timeout())
        // sqlx pings every connection it hands out by default: a round trip
        // before every statement, and a wake-up of PostgreSQL, on top of
        // the ping it makes when a connection comes back to the pool (which
        // cannot be turned off). One given back moments ago was just found
        // alive, so only one that sat idle long enough to have been dropped
        // meanwhile (a restarted or failed-over database, a proxy's idle
        // cut) is pinged, and replaced when it does not answer.
        .test_before_acquire_if_idle_for(config.ping_idle())
        .connect_lazy(lazy)
        .sqlx_logging(false);
    let statement_timeout = config.statement_timeout();
    let statements = config.database_statement_cache;
    // Per connection, set at connect time: no extra round trip. A statement
    // past the timeout is cancelled by PostgreSQL itself (freeing its locks
    // and the connection), and so is a transaction left idle.
    let timeouts = statement_timeout
        .map(|timeout| (timeout.as_millis().to_string(), (timeout * 2).as_millis().to_string()));
    options.map_sqlx_postgres_opts(move |opts| {
        let opts = opts.statement_cache_capacity(statements);
        match &timeouts {
            Some((millis, idle)) => opts.options([
                ("statement_timeout", millis.as_str()),
                ("idle_in_transaction_session_timeout", idle.as_str()),
            ]),
            None => opts,
        }
    });
    if config.is_embedded_database() {
        let busy = statement_timeout.unwrap_or(std::time::Duration::from_secs(10));
        // WAL lets readers go on while one writer writes; a writer waits for
        // the lock instead of failing at once.
        options.map_sqlx_sqlite_opts(move |opts| {
            opts.statement_cache_capacity(statements)
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(busy)
                .foreign_keys(true)
        });
    }
    let mut db = Database::connect(options).await.with_context(|| {
        format!("connecting to the database ({})", redacted(&config.database_url))
    })?;
    let counter = StatementCounter::default();
    let for_callback = counter.clone();
    db.set_metric_callback(move |_info| for_callback.increment());
    Ok((db, counter))
}

/// What a database error says about the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A statement ran past its timeout, or waited too long for a lock.
    Timeout,
    /// The database cannot be reached (or no connection came free).
    Unavailable,
    /// Anything else: a bug, a constraint, bad data.
    Other,
}

/// Tells timeouts and outages from other errors, on both databases.
pub fn classify(err: &sea_orm::DbErr) -> Failure {
    use sea_orm::{DbErr, RuntimeErr, sqlx::Error};
    let sqlx_error = match err {
        DbErr::ConnectionAcquire(_) => return Failure::Unavailable,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        DbErr::Conn(_) => return Failure::Unavailable,
        _ => return Failure::Other,
    };
    match sqlx_error.as_ref() {
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed => Failure::Unavailable,
        Error::Database(database) => match database.code().as_deref() {
            // PostgreSQL: statement_timeout (query_canceled), lock_timeout.
            Some("57014" | "55P03") => Failure::Timeout,
            // PostgreSQL: shutting down, starting up, too many connections,
            // and the connection exceptions (class 08).
            Some("57P01" | "57P02" | "57P03" | "53300") => Failure::Unavailable,
            Some(code) if code.starts_with("08") => Failure::Unavailable,
            // SQLite: SQLITE_BUSY and SQLITE_LOCKED, with their extended
            // codes: the busy timeout ran out.
            Some("5" | "6" | "261" | "262" | "517") => Failure::Timeout,
            _ => Failure::Other,
        },
        _ => Failure::Other,
    }
}

/// Whether a hot standby cancelled a statement because replaying the
/// primary's changes needed what it held ("conflict with recovery"): the
/// same statement succeeds on the primary.
pub fn recovery_conflict(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx::Error};
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    match e.as_ref() {
        Error::Database(database) => {
            matches!(database.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

/// A constraint the database refused a write on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A unique key or index: the value is taken.
    Unique,
    /// The overlap guard: a barber's bookings may not overlap
    /// (`bookings_no_overlap`, an exclusion constraint on PostgreSQL and a
    /// trigger on SQLite). PostgreSQL may also break the deadlock two such
    /// inserts checking each other run into; that is the same race lost.
    Overlap,
}

/// The constraint `err` violated, if it is a constraint violation, read
/// from the database's error codes (and, for SQLite's trigger, the text the
/// trigger raises).
pub fn violation(err: &sea_orm::DbErr) -> Option<Violation> {
    use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx::Error};
    if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
        return Some(Violation::Unique);
    }
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return None;
    };
    let Error::Database(database) = e.as_ref() else {
        return None;
    };
    let overlap = "bookings_no_overlap";
    match database.code().as_deref() {
        // PostgreSQL: exclusion_violation on the guard, deadlock_detected.
        Some("23P01") if database.constraint() == Some(overlap) => Some(Violation::Overlap),
        Some("40P01") => Some(Violation::Overlap),
        // SQLite: the guard's trigger raises its own name.
        _ if database.message() == overlap => Some(Violation::Overlap),
        _ => None,
    }
}

/// `Err(conflict)` when `result` failed on `violated`, else `result`.
pub fn conflict_on<T>(
    result: Result<T, sea_orm::DbErr>,
    violated: Violation,
    conflict: impl FnOnce() -> String,
) -> crate::error::AppResult<T> {
    match result {
        Ok(value) => Ok(value),
        Err(err) if violation(&err) == Some(violated) => Err(AppError::Conflict(conflict())),
        Err(err) => Err(err.into()),
    }
}

/// A pool of one connection, opened lazily, for the health prober: its
/// pings do not wait behind requests for a connection, and are not counted
/// as the application's statements.
pub async fn connect_probe(config: &Config) -> anyhow::Result<DatabaseConnection> {
    probe_pool(&config.database_url).await
}

/// A lazy pool of one connection to `url`, for a prober.
pub async fn probe_pool(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(health::PROBE_TIMEOUT)
        .connect_timeout(health::PROBE_TIMEOUT)
        .connect_lazy(true)
        .sqlx_logging(false);
    Ok(Database::connect(options).await?)
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await.context("applying migrations")
}

/// Whether migrations this binary knows are still to be applied.
pub async fn pending_migrations(db: &DatabaseConnection) -> anyhow::Result<usize> {
    Ok(Migrator::get_pending_migrations(db).await?.len())
}

/// Whether the database answers a trivial statement.
pub async fn ping(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.execute_unprepared("SELECT 1").await.context("pinging the database")?;
    Ok(())
}

/// The URL without its password, for messages.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Connections of the pool in use and idle.
pub fn pool_use(db: &DatabaseConnection) -> (u32, u32) {
    let (size, idle) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    (size.saturating_sub(idle), idle)
}
