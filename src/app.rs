//! The application: its shared state and the server that owns its listener.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{
    auth::{known::KnownTokens, token::TokenKeys},
    cache::Cache,
    config::Config,
    db::{self, StatementCounter},
    domain::{change::Effects, dashboard::AnalyticsCache},
    events::EventBus,
    graphql::{self, Schemas, persisted::PersistedQueries, public::PublicReads},
    protect::{Admission, Limits},
    router, seed,
    server::{ConnectionLimits, fitting_connection_cap},
};

/// State shared by every request; cloning it (axum does, per request) is
/// one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// The database pool.
    pub db: DatabaseConnection,
    /// Where reads that may use the read replica go.
    pub reads: db::replica::Reads,
    /// The GraphQL schemas, built once.
    pub schemas: Schemas,
    /// Rate limiters, per client and for sign-ins.
    pub limits: Arc<Limits>,
    /// Turns for running GraphQL requests.
    pub admission: Admission,
    /// When the process started serving.
    pub started: std::time::Instant,
    /// The byte cache (Redis or in-process), for its health.
    pub cache: Cache,
    /// The analytics kept in the cache.
    pub analytics: AnalyticsCache,
    /// The persisted queries kept in the cache.
    pub persisted: PersistedQueries,
    /// What documents cost, paid on arrival.
    pub known_costs: graphql::limits::KnownCosts,
    /// Signs and checks access tokens.
    pub tokens: TokenKeys,
    /// The identities of tokens already checked.
    pub known: KnownTokens,
    /// Anonymous answers kept in the cache.
    pub public: PublicReads,
    /// Committed events on their way to subscribers.
    pub events: EventBus,
    /// Open subscription connections, per client.
    pub sockets: crate::graphql::ws::Sockets,
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// Statements sent to the database so far (tests read it).
    pub statements: StatementCounter,
    /// Set once readiness saw no pending migration.
    pub migrations_applied: Arc<AtomicBool>,
    /// Whether the database takes requests (a breaker fed by a prober).
    pub db_health: db::health::DbHealth,
    /// Operation names with a metrics label of their own.
    pub operation_names: Arc<crate::telemetry::OperationNames>,
}

/// A built application, bound to its port but not yet serving.
pub struct App {
    listener: TcpListener,
    /// `/metrics` apart from the API, when `METRICS_BIND_ADDR` is set.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    /// Whether `build` seeded the demo data set.
    pub seeded_demo: bool,
}

impl App {
    /// Connects to the database, applies migrations, seeds the demo data set
    /// into an empty embedded database, and binds the listener (port 0 picks
    /// a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        crate::telemetry::metrics();
        crate::telemetry::spawn_metrics_upkeep();
        let (db, statements) = db::connect(&config).await?;
        db::migrate(&db).await?;
        let seeded_demo = if config.demo_seed && config.is_embedded_database() {
            seed::seed_demo_if_empty(&db).await?
        } else {
            false
        };
        let listener = TcpListener::bind(config.bind_addr)
            .await
            .with_context(|| format!("binding {}", config.bind_addr))?;
        let tokens = TokenKeys::new(
            config.jwt_secret.as_deref(),
            Duration::from_secs(config.access_token_ttl_secs.max(1)),
            Duration::from_secs(config.refresh_token_ttl_days.max(1) * 86_400),
        );
        let cache = Cache::new(
            config.redis_url.as_deref(),
            &config.redis_key_prefix,
            std::time::Duration::from_secs(config.analytics_cache_ttl_secs),
            std::time::Duration::from_millis(config.redis_timeout_ms),
        )?;
        let operation_names =
            Arc::new(crate::telemetry::OperationNames::new(&config.metrics_operations));
        let metrics_listener = match config.metrics_bind_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics listener {addr}"))?,
            ),
            None => None,
        };
        router::check_cors_origins(&config.cors_allowed_origins)?;
        let db_health = db::health::DbHealth::default();
        db_health.spawn_prober(db::connect_probe(&config).await?);
        let limits =
            Arc::new(Limits::new(&config, config.redis_url.as_ref().map(|_| cache.clone())));
        crate::protect::spawn_pruning(&limits);
        let analytics = AnalyticsCache::new(
            cache.clone(),
            db.clone(),
            Duration::from_secs(config.analytics_partial_ttl_secs.max(1)),
        );
        let known = KnownTokens::new(cache.clone());
        let public = PublicReads::new(cache.clone());
        let events = EventBus::new(config.redis_url.as_deref(), cache.clone())?;
        let reads = db::replica::Reads::connect(&config, db.clone(), cache.clone()).await?;
        let state = AppState(Arc::new(Shared {
            schemas: graphql::build_schemas(
                db.clone(),
                tokens.clone(),
                Effects::new(analytics.clone(), known.clone(), public.clone(), events.clone()),
                limits.clone(),
                &config,
            ),
            analytics,
            known,
            public,
            persisted: PersistedQueries::new(cache.clone()),
            known_costs: graphql::limits::KnownCosts::default(),
            events,
            sockets: crate::graphql::ws::Sockets::default(),
            limits,
            admission: Admission::new(&config),
            cache,
            tokens,
            db,
            reads,
            config: Arc::new(config),
            statements,
            migrations_applied: Arc::new(AtomicBool::new(false)),
            db_health,
            operation_names,
            started: std::time::Instant::now(),
        }));
        Ok(Self { listener, metrics_listener, state, seeded_demo })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Where `/metrics` is served apart from the API, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The shared state (tests use its database and statement counter).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then gives in-flight requests the
    /// configured grace and closes the pools: all of it within the grace.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let db = self.state.db.clone();
        let config = Arc::clone(&self.state.config);
        if config.webhook_worker {
            // A pool of its own: deliveries neither wait behind requests for
            // a connection nor count as the requests' statements.
            let mut background = (*config).clone();
            background.database_max_connections = 2;
            background.database_min_connections = 0;
            let (worker_db, _) = db::connect(&background).await?;
            let worker =
                crate::webhooks::Worker::new(worker_db, &config, self.state.events.deliveries())?;
            tokio::spawn(worker.run());
        }
        let grace = Duration::from_secs(config.shutdown_timeout_secs);
        // The database pool, the health probe's connection and Redis's pool.
        let pooled = u64::from(config.database_max_connections)
            + 1
            + u64::try_from(crate::cache::REDIS_POOL_SIZE).unwrap_or(u64::MAX);
        let limits = ConnectionLimits {
            max_connections: fitting_connection_cap(config.max_connections, pooled),
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs.max(1)),
        };
        if limits.max_connections < config.max_connections {
            tracing::warn!(
                max_connections = limits.max_connections,
                "MAX_CONNECTIONS lowered to what the process's file limit leaves room for"
            );
        }
        // The moment the signal came, for the hard limit below.
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel();
        let shutdown = async move {
            shutdown.await;
            let _ = signalled_tx.send(tokio::time::Instant::now());
        };
        if let Some(listener) = self.metrics_listener {
            // Internal, for the scraper only: no limits of its own needed
            // beyond the process's; it ends with the process.
            let metrics = router::metrics_router(self.state.clone());
            tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, metrics).await {
                    tracing::error!(error = %error, "the metrics listener failed");
                }
            });
        }
        let router = router::router(self.state);
        // Connections get the grace less a moment to close the pools in.
        let close_time = (grace / 4).min(Duration::from_secs(1));
        crate::server::serve(self.listener, router, limits, shutdown, grace - close_time).await;
        let deadline = signalled_rx.await.unwrap_or_else(|_| tokio::time::Instant::now()) + grace;
        // Closing waits for connections still checked out; past the
        // deadline, the process ends without waiting further.
        let close = db.close();
        match tokio::time::timeout_at(deadline.max(tokio::time::Instant::now()), close).await {
            Ok(closed) => closed.context("closing the database pool")?,
            Err(_) => tracing::warn!("the database pool did not close within the grace"),
        }
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
