//! Configuration: one typed struct filled by clap from flags and the
//! environment. The defaults make a fresh checkout work with nothing installed.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The `bookedbarber` command line.
#[derive(Debug, Parser)]
#[command(name = "bookedbarber", version, about = "The BookedBarber GraphQL API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

/// What the binary does; `serve` when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve the API (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Fill the database with a deterministic data set.
    Seed(SeedArgs),
    /// Print the GraphQL schema (SDL).
    Schema,
}

/// Size of a seeded data set.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Number of shops.
    #[arg(long, default_value_t = 3)]
    pub shops: u32,
    /// Number of barbers in total, spread over the shops.
    #[arg(long, default_value_t = 12)]
    pub barbers: u32,
    /// Number of client accounts.
    #[arg(long, default_value_t = 50)]
    pub clients: u32,
    /// Number of bookings in total, past and future.
    #[arg(long, default_value_t = 2_000)]
    pub bookings: u32,
    /// Seed of the random generator; the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    pub random_seed: u64,
    /// Day the data set is laid out around (past before, future after);
    /// default: today. The same seed and day give the same data.
    #[arg(long)]
    pub anchor_date: Option<chrono::NaiveDate>,
}

impl SeedArgs {
    /// The demo data set `serve` puts into an empty embedded database.
    pub fn demo() -> Self {
        Self {
            shops: 3,
            barbers: 12,
            clients: 50,
            bookings: 2_000,
            random_seed: 42,
            anchor_date: None,
        }
    }
}

/// Format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The level of the one line logged per answered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessLog {
    /// No access log; failures (5xx) are still logged as errors.
    Off,
    Debug,
    Info,
    Warn,
}

/// Settings of the server, each a flag and an environment variable.
#[derive(Clone, Args)]
pub struct Config {
    /// SQLite (embedded) or `postgres://…` URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://bookedbarber.db?mode=rwc",
        hide_env_values = true,
        global = true
    )]
    pub database_url: String,
    /// Largest number of pooled database connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20, global = true)]
    pub database_max_connections: u32,
    /// Connections the pool keeps open when idle.
    #[arg(long, env = "DATABASE_MIN_CONNECTIONS", default_value_t = 1, global = true)]
    pub database_min_connections: u32,
    /// Longest wait for a free pooled connection, in seconds.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_SECS", default_value_t = 5, global = true)]
    pub database_acquire_timeout_secs: u64,
    /// An idle pooled connection is closed after this many seconds.
    #[arg(long, env = "DATABASE_IDLE_TIMEOUT_SECS", default_value_t = 300, global = true)]
    pub database_idle_timeout_secs: u64,
    /// A pooled connection idle this many milliseconds is pinged before it
    /// is used, and replaced when it does not answer; 0 pings it every time.
    #[arg(long, env = "DATABASE_PING_IDLE_MS", default_value_t = 1_000, global = true)]
    pub database_ping_idle_ms: u64,
    /// Prepared statements each pooled connection keeps (the least used
    /// is closed to make room for a new one).
    #[arg(long, env = "DATABASE_STATEMENT_CACHE", default_value_t = 100, global = true)]
    pub database_statement_cache: usize,
    /// Longest a single statement may run while serving, in milliseconds
    /// (PostgreSQL `statement_timeout`; SQLite's lock wait); kept below the
    /// request timeout. 0 turns it off. `migrate` and `seed` run without it.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = 5_000, global = true)]
    pub database_statement_timeout_ms: u64,
    /// A PostgreSQL read replica (`postgres://…`) for the analytics and
    /// the staff's bookings lists; unset: every read uses `DATABASE_URL`.
    #[arg(long, env = "DATABASE_READ_URL", hide_env_values = true, global = true)]
    pub database_read_url: Option<String>,
    /// A user's reads go to the primary this many seconds after their own
    /// write, so nobody misses their change on a lagging replica.
    #[arg(long, env = "READ_AFTER_WRITE_SECS", default_value_t = 5, global = true)]
    pub read_after_write_secs: u64,
    /// Past this replication lag (or when the replica does not answer),
    /// reads go to the primary.
    #[arg(long, env = "MAX_REPLICA_LAG_SECS", default_value_t = 10, global = true)]
    pub max_replica_lag_secs: u64,
    /// `redis://…` turns on the Redis cache; unset: in-process cache.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<String>,
    /// Longest wait for one Redis command, in milliseconds; past it the
    /// request is answered from the database.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 100, global = true)]
    pub redis_timeout_ms: u64,
    /// Prefix of every Redis key, so deployments can share one Redis.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "bb", global = true)]
    pub redis_key_prefix: String,
    /// Where to listen.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub bind_addr: SocketAddr,
    /// HS256 secret for tokens; unset: a random one per process.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,
    /// How long an access token stays valid, in seconds; `refreshToken`
    /// gets a new one.
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value_t = 900, global = true)]
    pub access_token_ttl_secs: u64,
    /// How long a refresh token stays valid after it was issued, in days.
    #[arg(long, env = "REFRESH_TOKEN_TTL_DAYS", default_value_t = 30, global = true)]
    pub refresh_token_ttl_days: u64,
    /// Cost points per client per minute (a plain request costs 1).
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", default_value_t = 600, global = true)]
    pub rate_limit_per_minute: u32,
    /// Points a client may spend at once.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 100, global = true)]
    pub rate_limit_burst: u32,
    /// Replicas that share the budgets: while Redis (which holds them) is
    /// away, each replica allows this share of them in process.
    #[arg(long, env = "RATE_LIMIT_REPLICAS", default_value_t = 1, global = true)]
    pub rate_limit_replicas: u32,
    /// `login`/`register` attempts per IP and per email per minute.
    #[arg(long, env = "LOGIN_RATE_LIMIT_PER_MINUTE", default_value_t = 10, global = true)]
    pub login_rate_limit_per_minute: u32,
    /// GraphQL requests run at once; more wait for a turn (admission
    /// control, so an overloaded server refuses fast instead of timing out
    /// halfway through).
    #[arg(long, env = "MAX_IN_FLIGHT_REQUESTS", default_value_t = 128, global = true)]
    pub max_in_flight_requests: u32,
    /// How long a request waits for a turn before it is refused with 503
    /// and `OVERLOADED`, in milliseconds.
    #[arg(long, env = "ADMISSION_TIMEOUT_MS", default_value_t = 1000, global = true)]
    pub admission_timeout_ms: u64,
    /// Proxies whose `X-Forwarded-For` is believed: comma-separated IPs or
    /// CIDRs. Unset: the client is the socket peer.
    #[arg(long, env = "TRUST_PROXY", value_delimiter = ',', value_parser = parse_net, global = true)]
    pub trust_proxy: Vec<ipnet::IpNet>,
    /// Deepest selection an operation may have (introspection excepted).
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = 12, global = true)]
    pub max_query_depth: usize,
    /// Highest complexity an operation may have: one per field, a
    /// connection's child counted `first` (or `last`, default 20) times.
    #[arg(long, env = "MAX_QUERY_COMPLEXITY", default_value_t = 10_000, global = true)]
    pub max_query_complexity: usize,
    /// Fields an operation may execute once every fragment spread is
    /// expanded, `__typename` included.
    #[arg(long, env = "MAX_QUERY_FIELDS", default_value_t = 5_000, global = true)]
    pub max_query_fields: usize,
    /// Requests slower than this are logged with their operation name.
    #[arg(long, env = "SLOW_REQUEST_MS", default_value_t = 500, global = true)]
    pub slow_request_ms: u64,
    /// On SIGTERM or Ctrl-C, how long in-flight requests may still take.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 30, global = true)]
    pub shutdown_timeout_secs: u64,
    /// Upper bound on an analytics cache entry's age, in seconds.
    #[arg(long, env = "ANALYTICS_CACHE_TTL_SECS", default_value_t = 300, global = true)]
    pub analytics_cache_ttl_secs: u64,
    /// How long the analytics partials of single days and whole months are
    /// kept, in seconds. Their keys hold their days' versions, so they are
    /// never stale; this bounds only the memory they take.
    #[arg(long, env = "ANALYTICS_PARTIAL_TTL_SECS", default_value_t = 86_400, global = true)]
    pub analytics_partial_ttl_secs: u64,
    /// `pretty` for people, `json` for machine-read logs.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    /// The level of the access log line of each request (`off`, `debug`,
    /// `info`, `warn`); a line costs a few microseconds of formatting.
    #[arg(long, env = "ACCESS_LOG", value_enum, default_value_t = AccessLog::Info, global = true)]
    pub access_log: AccessLog,
    /// Keep anonymous answers (shops, barbers, services, free slots) in the
    /// cache, fresh by the versions of what they show.
    #[arg(long, env = "PUBLIC_CACHE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub public_cache: bool,
    /// Keep each signed-in user's answers in the cache, fresh by the
    /// versions of their roles, their bookings and their shops.
    #[arg(long, env = "PERSONAL_CACHE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub personal_cache: bool,
    /// Open HTTP connections at most; lowered to what the process's file
    /// limit leaves room for.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000, global = true)]
    pub max_connections: usize,
    /// A connection that has not sent a request's headers this many seconds
    /// after connecting, or after its last response, is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10, global = true)]
    pub header_read_timeout_secs: u64,
    /// Longest time one HTTP request may take, in seconds.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30, global = true)]
    pub request_timeout_secs: u64,
    /// Origins (like `https://app.example.com`) whose pages may call the API
    /// from a browser, comma-separated. Unset: none (GraphiQL, served from
    /// here, needs none).
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',', global = true)]
    pub cors_allowed_origins: Vec<String>,
    /// Serve `/metrics` on this address, apart from the API (and not on the
    /// API's listener). Unset: `/metrics` is on the API's listener.
    #[arg(long, env = "METRICS_BIND_ADDR", global = true)]
    pub metrics_bind_addr: Option<SocketAddr>,
    /// Operation names that get a metrics label of their own, besides
    /// persisted queries' (comma-separated); any other name is `other`.
    #[arg(long, env = "METRICS_OPERATIONS", value_delimiter = ',', global = true)]
    pub metrics_operations: Vec<String>,
    /// Allow `http://` webhooks to loopback and private addresses (tests,
    /// local development). Off: webhooks must be `https://` to public
    /// addresses, against server-side request forgery.
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub webhook_allow_private_addresses: bool,
    /// How long one webhook delivery attempt may take, in seconds.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECS", default_value_t = 10, global = true)]
    pub webhook_timeout_secs: u64,
    /// The wait before a failed delivery's first retry, in milliseconds;
    /// it doubles with each attempt, up to an hour, for 24 hours.
    #[arg(long, env = "WEBHOOK_RETRY_BASE_MS", default_value_t = 10_000, global = true)]
    pub webhook_retry_base_ms: u64,
    /// Run this replica's webhook delivery worker.
    #[arg(long, env = "WEBHOOK_WORKER", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub webhook_worker: bool,
    /// Seed the demo data set into an empty embedded database on `serve`.
    #[arg(long, env = "DEMO_SEED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub demo_seed: bool,
}

/// Every setting, with the secrets left out: the token secret, and the
/// passwords in the database and Redis URLs.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &crate::db::redacted(&self.database_url))
            .field("database_max_connections", &self.database_max_connections)
            .field("database_min_connections", &self.database_min_connections)
            .field("database_acquire_timeout_secs", &self.database_acquire_timeout_secs)
            .field("database_idle_timeout_secs", &self.database_idle_timeout_secs)
            .field("database_ping_idle_ms", &self.database_ping_idle_ms)
            .field("database_statement_cache", &self.database_statement_cache)
            .field("database_statement_timeout_ms", &self.database_statement_timeout_ms)
            .field("database_read_url", &self.database_read_url.as_deref().map(crate::db::redacted))
            .field("read_after_write_secs", &self.read_after_write_secs)
            .field("max_replica_lag_secs", &self.max_replica_lag_secs)
            .field("redis_url", &self.redis_url.as_deref().map(crate::db::redacted))
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("bind_addr", &self.bind_addr)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<redacted>"))
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_days", &self.refresh_token_ttl_days)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("rate_limit_replicas", &self.rate_limit_replicas)
            .field("login_rate_limit_per_minute", &self.login_rate_limit_per_minute)
            .field("max_in_flight_requests", &self.max_in_flight_requests)
            .field("admission_timeout_ms", &self.admission_timeout_ms)
            .field("trust_proxy", &self.trust_proxy)
            .field("max_query_depth", &self.max_query_depth)
            .field("max_query_complexity", &self.max_query_complexity)
            .field("max_query_fields", &self.max_query_fields)
            .field("slow_request_ms", &self.slow_request_ms)
            .field("shutdown_timeout_secs", &self.shutdown_timeout_secs)
            .field("analytics_cache_ttl_secs", &self.analytics_cache_ttl_secs)
            .field("analytics_partial_ttl_secs", &self.analytics_partial_ttl_secs)
            .field("log_format", &self.log_format)
            .field("access_log", &self.access_log)
            .field("public_cache", &self.public_cache)
            .field("personal_cache", &self.personal_cache)
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .field("metrics_bind_addr", &self.metrics_bind_addr)
            .field("metrics_operations", &self.metrics_operations)
            .field("webhook_allow_private_addresses", &self.webhook_allow_private_addresses)
            .field("webhook_timeout_secs", &self.webhook_timeout_secs)
            .field("webhook_retry_base_ms", &self.webhook_retry_base_ms)
            .field("webhook_worker", &self.webhook_worker)
            .field("demo_seed", &self.demo_seed)
            .finish()
    }
}

impl Config {
    /// The configuration with every default, as a fresh checkout runs.
    pub fn from_defaults() -> Self {
        Cli::parse_from(["bookedbarber"]).config
    }

    /// Whether the database is the embedded SQLite one.
    pub fn is_embedded_database(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.database_acquire_timeout_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.database_idle_timeout_secs)
    }

    pub fn ping_idle(&self) -> Duration {
        Duration::from_millis(self.database_ping_idle_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// The statement timeout, kept at least a second below the request
    /// timeout, so a statement always ends before its request is cut off;
    /// `None` when off.
    pub fn statement_timeout(&self) -> Option<Duration> {
        if self.database_statement_timeout_ms == 0 {
            return None;
        }
        let below_request = self
            .request_timeout()
            .saturating_sub(Duration::from_secs(1))
            .max(Duration::from_millis(100));
        Some(Duration::from_millis(self.database_statement_timeout_ms).min(below_request))
    }
}

/// An IP network, or a single address (`10.0.0.1` is `10.0.0.1/32`).
fn parse_net(raw: &str) -> Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{raw:?} is not an IP address or CIDR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_keeps_the_secrets_out() {
        let mut config = Config::from_defaults();
        config.database_url = "postgres://app:hunter2@db.internal/bookedbarber".to_owned();
        config.redis_url = Some("redis://:swordfish@cache.internal:6379".to_owned());
        config.jwt_secret = Some("correct-horse-battery-staple".to_owned());
        let printed = format!("{config:?}");
        for secret in ["hunter2", "swordfish", "correct-horse-battery-staple"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("db.internal") && printed.contains("max_query_depth"));
    }
}
