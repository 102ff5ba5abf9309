//! Spawning an app per test and talking GraphQL to it.

use std::{net::SocketAddr, sync::Once};

use bookedbarber::{
    app::{App, AppState},
    config::{Config, SeedArgs},
};
use serde_json::{Value, json};

/// Which database a test app runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server with its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    /// Where `/metrics` is served apart, with `METRICS_BIND_ADDR`.
    pub metrics_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub state: AppState,
    pub backend: Backend,
    _database: TestDatabase,
}

enum TestDatabase {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // The test's runtime is going away; drop the database from a
            // runtime of our own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime
                    .block_on(async {
                        use sea_orm::ConnectionTrait;
                        let admin = sea_orm::Database::connect(admin_url.as_str()).await?;
                        admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await?;
                        admin.close().await
                    })
                    .map_err(std::io::Error::other)
            })
            .join();
        }
    }
}

/// Says that a variant cannot run here for want of `variable`: a clear
/// line locally, a failure in CI, which sets `TEST_REQUIRE_BACKENDS` so that
/// a green run means every PostgreSQL and Redis variant ran.
pub fn skip_or_fail(variable: &str, what: &str) {
    assert!(
        std::env::var_os("TEST_REQUIRE_BACKENDS").is_none(),
        "TEST_REQUIRE_BACKENDS is set but {variable} is not: the {what} variants would not run"
    );
    let once = match variable {
        "TEST_DATABASE_URL" => &SKIPPED_POSTGRES,
        "TEST_READ_DATABASE_URL" => &SKIPPED_REPLICA,
        _ => &SKIPPED_REDIS,
    };
    once.call_once(|| {
        eprintln!(
            "SKIPPED: {variable} is not set, so the {what} variants of the API tests do not run \
             (they pass without testing anything); set it, e.g. \
             TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
             TEST_REDIS_URL=redis://127.0.0.1:6379 \
             TEST_READ_DATABASE_URL=postgres://postgres@127.0.0.1:5433/test \
             (`.ci/start-replica` starts that replica)"
        )
    });
}

static SKIPPED_POSTGRES: Once = Once::new();
static SKIPPED_REDIS: Once = Once::new();
static SKIPPED_REPLICA: Once = Once::new();

/// How a test server is to be started: its database, its cache and its
/// configuration. Made by [`TestApp::sqlite`] or [`TestApp::postgres`].
#[derive(Clone)]
pub struct TestAppBuilder {
    backend: Backend,
    redis: bool,
    config: Config,
    /// Where to reach the database instead of its own address (a proxy).
    via: Option<SocketAddr>,
    /// Reads may go to the streaming replica of `TEST_READ_DATABASE_URL`,
    /// reached through a proxy when one is given.
    read_replica: Option<Option<SocketAddr>>,
}

impl TestApp {
    /// A server on a fresh SQLite database, with the in-process cache.
    pub fn sqlite() -> TestAppBuilder {
        TestAppBuilder {
            backend: Backend::Sqlite,
            redis: false,
            config: test_config(String::new()),
            via: None,
            read_replica: None,
        }
    }

    /// A server on a fresh PostgreSQL database of `TEST_DATABASE_URL`.
    pub fn postgres() -> TestAppBuilder {
        TestAppBuilder { backend: Backend::Postgres, ..Self::sqlite() }
    }
}

impl TestAppBuilder {
    /// The builder of a test variant by name: `sqlite`, `postgres`,
    /// `sqlite_redis` or `postgres_redis`.
    pub fn variant(name: &str) -> Self {
        match name {
            "sqlite" => TestApp::sqlite(),
            "postgres" => TestApp::postgres(),
            "sqlite_redis" => TestApp::sqlite().with_redis(),
            "postgres_redis" => TestApp::postgres().with_redis(),
            other => panic!("no test variant is called {other:?}"),
        }
    }

    /// With the cache in the Redis of `TEST_REDIS_URL`, under a key prefix
    /// of its own.
    pub fn with_redis(mut self) -> Self {
        self.redis = true;
        self.config.redis_url = std::env::var("TEST_REDIS_URL").ok();
        self.config.redis_key_prefix = format!("bbtest-{}", uuid::Uuid::new_v4().simple());
        // These tests count hits and misses exactly; on a loaded machine a
        // 100 ms timeout would turn some into fallbacks. The fault tests
        // set their own.
        self.config.redis_timeout_ms = 2_000;
        self
    }

    /// With the configuration adjusted by `adjust`.
    pub fn with_config(mut self, adjust: impl FnOnce(&mut Config)) -> Self {
        adjust(&mut self.config);
        self
    }

    /// With the server reaching its (PostgreSQL) database through `addr`,
    /// a proxy that forwards to it.
    pub fn via(mut self, addr: SocketAddr) -> Self {
        self.via = Some(addr);
        self
    }

    /// With `DATABASE_READ_URL` the test database on the streaming replica
    /// of `TEST_READ_DATABASE_URL`, reached through `via` when given.
    pub fn with_read_replica(mut self, via: Option<SocketAddr>) -> Self {
        self.read_replica = Some(via);
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether this variant can run here. When its database or Redis is not
    /// configured it cannot: that is a clear line locally and a failure in
    /// CI (see [`skip_or_fail`]).
    pub fn runs_here(&self) -> bool {
        let mut runs = true;
        if self.backend == Backend::Postgres && std::env::var_os("TEST_DATABASE_URL").is_none() {
            skip_or_fail("TEST_DATABASE_URL", "PostgreSQL");
            runs = false;
        }
        if self.redis && self.config.redis_url.is_none() {
            skip_or_fail("TEST_REDIS_URL", "Redis");
            runs = false;
        }
        if self.read_replica.is_some() && std::env::var_os("TEST_READ_DATABASE_URL").is_none() {
            skip_or_fail("TEST_READ_DATABASE_URL", "read replica");
            runs = false;
        }
        runs
    }

    /// Starts the server on a fresh database; the variant must run here.
    pub async fn start(self) -> TestApp {
        assert!(self.runs_here(), "a {:?} variant was started where it cannot run", self.backend);
        let (url, database) = fresh_database(self.backend).await;
        let mut config = self.config;
        if let Some(via) = self.read_replica {
            // The same database on the replica, once it has replayed its
            // creation.
            let replica = std::env::var("TEST_READ_DATABASE_URL").unwrap();
            let mut read_url = url::Url::parse(&replica).unwrap();
            read_url.set_path(url::Url::parse(&url).unwrap().path());
            if let Some(proxy) = via {
                read_url.set_host(Some(&proxy.ip().to_string())).unwrap();
                read_url.set_port(Some(proxy.port())).unwrap();
            }
            config.database_read_url = Some(read_url.to_string());
        }
        config.database_url = match self.via {
            Some(proxy) => {
                let mut url = url::Url::parse(&url).unwrap();
                url.set_host(Some(&proxy.ip().to_string())).unwrap();
                url.set_port(Some(proxy.port())).unwrap();
                url.to_string()
            }
            None => url,
        };
        let app = App::build(config).await.expect("the app builds");
        let addr = app.local_addr().unwrap();
        let metrics_addr = app.metrics_addr();
        let state = app.state().clone();
        tokio::spawn(app.run_until(std::future::pending()));
        TestApp {
            addr,
            metrics_addr,
            client: reqwest::Client::new(),
            state,
            backend: self.backend,
            _database: database,
        }
    }
}

/// A config for a test server on `database_url`, listening on a free port.
pub fn test_config(database_url: String) -> Config {
    let mut config = Config::from_defaults();
    config.database_url = database_url;
    config.bind_addr = "127.0.0.1:0".parse().unwrap();
    config.database_max_connections = 8;
    // Under a fully loaded CI machine, 50 racing requests can queue for a
    // connection longer than production's 5 s; the tests are about
    // correctness, not about that bound. Below the 30 s request timeout, so
    // that a wait for the pool shows as such, not as a request cut off.
    config.database_acquire_timeout_secs = 25;
    config.demo_seed = false;
    config.jwt_secret = Some(TEST_JWT_SECRET.to_owned());
    // Tests that are not about limits should never meet them.
    config.rate_limit_per_minute = 1_000_000;
    config.rate_limit_burst = 100_000;
    config.login_rate_limit_per_minute = 10_000;
    config
}

/// The token secret of test servers, so tests can forge tokens.
pub const TEST_JWT_SECRET: &str = "test-secret-of-the-api-tests";

/// A signed-in user of a test server.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub token: String,
    pub id: String,
    pub email: String,
}

/// A fresh, empty database for `backend` (PostgreSQL's is made in the
/// server of `TEST_DATABASE_URL`).
async fn fresh_database(backend: Backend) -> (String, TestDatabase) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
            (url, TestDatabase::Sqlite(dir))
        }
        Backend::Postgres => {
            let admin_url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL is set");
            let name = format!("bb_test_{}", uuid::Uuid::new_v4().simple());
            use sea_orm::ConnectionTrait;
            let admin = sea_orm::Database::connect(admin_url.as_str()).await.unwrap();
            admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
            admin.close().await.unwrap();
            let mut url = url::Url::parse(&admin_url).unwrap();
            url.set_path(&name);
            (url.to_string(), TestDatabase::Postgres { admin_url, name })
        }
    }
}

impl TestApp {
    /// A client of a server started elsewhere, on a database the test does
    /// not own (benchmarks).
    pub fn attach(addr: SocketAddr, state: AppState) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            addr,
            metrics_addr: None,
            client: reqwest::Client::new(),
            state,
            backend: Backend::Postgres,
            _database: TestDatabase::Sqlite(dir),
        }
    }

    /// A second server on the same database and secret, as another replica
    /// behind a load balancer would be (its state is its own).
    pub async fn replica(&self) -> TestApp {
        self.replica_with((*self.state.config).clone()).await
    }

    /// Like [`replica`](Self::replica), with `config`.
    pub async fn replica_with(&self, mut config: Config) -> TestApp {
        config.bind_addr = "127.0.0.1:0".parse().unwrap();
        let app = App::build(config).await.expect("the replica builds");
        let addr = app.local_addr().unwrap();
        let state = app.state().clone();
        tokio::spawn(app.run_until(std::future::pending()));
        let mut replica = TestApp::attach(addr, state);
        replica.backend = self.backend;
        replica
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a GraphQL operation, with `Authorization: <authorization>`
    /// when given; the response as it came, headers and all.
    pub async fn post_graphql(
        &self,
        authorization: Option<&str>,
        query: &str,
        variables: Value,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url("/graphql"));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        request.json(&json!({ "query": query, "variables": variables })).send().await.unwrap()
    }

    /// POSTs a GraphQL operation and returns the whole JSON response.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let response = self.post_graphql(None, query, variables).await;
        assert_eq!(response.status(), 200, "GraphQL answers 200");
        response.json().await.unwrap()
    }

    /// POSTs a GraphQL operation with `Authorization: <authorization>` and
    /// returns the HTTP status and the JSON body.
    pub async fn gql_with_header(
        &self,
        authorization: &str,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let response = self.post_graphql(Some(authorization), query, variables).await;
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Like [`gql`](Self::gql), signed in as `user`.
    pub async fn gql_as(&self, user: &TestUser, query: &str, variables: Value) -> Value {
        let (status, body) =
            self.gql_with_header(&format!("Bearer {}", user.token), query, variables).await;
        assert_eq!(status, 200, "{body:#}");
        body
    }

    /// Like [`data`](Self::data), signed in as `user`.
    pub async fn data_as(&self, user: &TestUser, query: &str, variables: Value) -> Value {
        let response = self.gql_as(user, query, variables).await;
        assert!(response.get("errors").is_none(), "unexpected errors: {response:#}");
        response["data"].clone()
    }

    /// Opens an account through the API.
    pub async fn register(&self, email: &str, password: &str, name: &str) -> TestUser {
        let data = self
            .data(
                "mutation($input: RegisterInput!) { register(input: $input) { token user { id email } } }",
                json!({ "input": { "email": email, "password": password, "name": name } }),
            )
            .await;
        let payload = &data["register"];
        TestUser {
            token: payload["token"].as_str().unwrap().to_owned(),
            id: payload["user"]["id"].as_str().unwrap().to_owned(),
            email: payload["user"]["email"].as_str().unwrap().to_owned(),
        }
    }

    /// Signs in through the API (seeded accounts use `bookedbarber`).
    pub async fn login(&self, email: &str, password: &str) -> TestUser {
        let data = self
            .data(
                "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token user { id email } } }",
                json!({ "email": email, "password": password }),
            )
            .await;
        let payload = &data["login"];
        TestUser {
            token: payload["token"].as_str().unwrap().to_owned(),
            id: payload["user"]["id"].as_str().unwrap().to_owned(),
            email: payload["user"]["email"].as_str().unwrap().to_owned(),
        }
    }

    /// Signs in to a seeded account.
    pub async fn login_seeded(&self, email: &str) -> TestUser {
        self.login(email, bookedbarber::seed::DEMO_PASSWORD).await
    }

    /// Like [`gql`](Self::gql), asserting there are no errors; returns `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.gql(query, variables).await;
        assert!(response.get("errors").is_none(), "unexpected errors: {response:#}");
        response["data"].clone()
    }

    /// Seeds a data set through the same code as `bookedbarber seed`.
    pub async fn seed(&self, shops: u32, barbers: u32, clients: u32, bookings: u32) {
        let args =
            SeedArgs { shops, barbers, clients, bookings, random_seed: 7, anchor_date: None };
        bookedbarber::seed::seed(&self.state.db, &args).await.unwrap();
    }

    /// Statements the server has sent to its database so far.
    pub fn statements(&self) -> u64 {
        self.state.statements.get()
    }
}

/// The first error's `extensions.code` and message.
pub fn first_error(response: &Value) -> (String, String) {
    let error = &response["errors"][0];
    assert!(!error.is_null(), "expected an error: {response:#}");
    (
        error["extensions"]["code"].as_str().unwrap_or("<no code>").to_owned(),
        error["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Declares a test that runs once per variant (`sqlite`, `postgres`,
/// `sqlite_redis`, `postgres_redis`), each in a module of its name:
///
/// - `api_test!(name, [sqlite, postgres], |app| { … })` runs the body with a
///   started [`TestApp`];
/// - `api_test!(name, [sqlite, postgres])` calls `async fn name(app:
///   TestAppBuilder)`, which adjusts the configuration and starts it.
///
/// A variant whose database or Redis is not configured does not run (see
/// [`TestAppBuilder::runs_here`]).
#[macro_export]
macro_rules! api_test {
    ($name:ident, [$($variant:ident),+ $(,)?], |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $variant() {
                    let builder = $crate::helpers::TestAppBuilder::variant(stringify!($variant));
                    if !builder.runs_here() {
                        return;
                    }
                    let $app = builder.start().await;
                    $body
                }
            )+
        }
    };
    ($name:ident, [$($variant:ident),+ $(,)?]) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $variant() {
                    let builder = $crate::helpers::TestAppBuilder::variant(stringify!($variant));
                    if !builder.runs_here() {
                        return;
                    }
                    super::$name(builder).await;
                }
            )+
        }
    };
}

/// `query` as a document never asked before (a comment of its own), so
/// that no kept answer serves it: for tests of the caches beneath answers.
pub fn unkept(query: &str) -> String {
    static ASKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = ASKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{query}\n# unkept {n}")
}

/// The row id behind a global id.
pub fn row_id(global: &str) -> i64 {
    use base64::Engine;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(global).unwrap();
    String::from_utf8(text).unwrap().split_once(':').unwrap().1.parse().unwrap()
}

/// The `n` column of the single row `sql` returns.
pub async fn scalar(app: &TestApp, sql: &str) -> i64 {
    use sea_orm::{FromQueryResult, Statement};
    #[derive(FromQueryResult)]
    struct Count {
        n: i64,
    }
    let backend = app.state.db.get_database_backend();
    Count::find_by_statement(Statement::from_string(backend, sql.to_owned()))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .n
}
