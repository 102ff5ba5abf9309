//! The command line: what to load, how hard, for how long, and where the
//! report goes.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

/// Load-tests a running BookedBarber API with realistic user journeys and
/// writes a Markdown report (plus goose's HTML report) to `--report-dir`.
///
/// Every virtual user sends its requests from an address of its own in
/// `X-Forwarded-For`; start the server with `TRUST_PROXY=127.0.0.1` (as it
/// would run behind a load balancer) so that per-client rate limits apply per
/// virtual user. Without it, all users share one budget, and even preparing
/// the shops' accounts crawls at the sign-up limit.
#[derive(Debug, Clone, Parser)]
#[command(name = "bookedbarber-loadtest", version)]
pub struct Options {
    /// Base URL of the server under test; give it several times (or
    /// comma-separated) for replicas: users are spread over them in turn,
    /// and the first prepares the shops and checks the bookings.
    #[arg(
        long,
        env = "LOADTEST_TARGET",
        default_value = "http://127.0.0.1:8080",
        value_delimiter = ','
    )]
    pub target: Vec<String>,
    /// Which users to simulate.
    #[arg(long, value_enum, default_value_t = Scenario::Mixed)]
    pub scenario: Scenario,
    /// Concurrent virtual users at full load.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// How long to hold full load after the ramp-up (`60s`, `5m`).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Time over which users are started, evenly.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub ramp_up: Duration,
    /// Shortest pause of a user between two steps.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub think_min: Duration,
    /// Longest pause of a user between two steps.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub think_max: Duration,
    /// Shops to prepare through the API; by default one per owner watching
    /// a dashboard, and enough for the barbers at work (2 to 500).
    #[arg(long)]
    pub shops: Option<usize>,
    /// Where `report.md`, `goose.html` and `goose.json` are written.
    #[arg(long, default_value = "loadtest-report")]
    pub report_dir: PathBuf,
    /// Give up on a request after this long (it then counts as an error).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Leave the prepared shops' dashboards uncached. By default each
    /// owner opens the dashboard once while preparing, over the last year
    /// and over the coming two weeks (every range the owners use), as a
    /// real shop's owner has before: the server keeps a day's or month's
    /// analytics for a day. So the hit ratio under load shows what the
    /// writes leave of the cache, not the first visits of brand-new shops.
    #[arg(long)]
    pub cold_dashboards: bool,
    /// Leave out the abusive scraper of the `mixed` scenario.
    #[arg(long)]
    pub no_abuser: bool,
    /// Show goose's progress log (each user starting and stopping).
    #[arg(long, short)]
    pub verbose: bool,
    /// Print goose's running metrics every this many seconds.
    #[arg(long)]
    pub running_metrics: Option<usize>,
    /// A fault to inject while the load runs (see `--fault-proxy`).
    #[arg(long, value_enum)]
    pub fault: Option<Fault>,
    /// For `--fault db-outage`: `LISTEN=UPSTREAM`, a TCP proxy this suite
    /// runs from the database (`UPSTREAM`, e.g. `127.0.0.1:5432`) to where
    /// the server connects (`LISTEN`, e.g. `127.0.0.1:6432`). The suite
    /// starts it first and waits up to two minutes for the server.
    #[arg(long, value_parser = crate::fault::parse_proxy)]
    pub fault_proxy: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    /// When the fault starts, after the load has started.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub fault_at: Duration,
    /// How long the fault lasts.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub fault_for: Duration,
}

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    /// The database goes away (every connection cut, new ones refused) and
    /// comes back, as in a restart or a network failure.
    #[value(alias = "db-restart")]
    DbOutage,
}

/// A kind of user, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Anonymous visitors: shops, a shop's barbers and services, free slots.
    Browse,
    /// Clients who register or sign in, book, look at and change their
    /// bookings; barbers who take payments and close bookings.
    Book,
    /// Owners opening their shop's analytics for varied ranges.
    Dashboard,
    /// A scraper that ignores think time; expects 429s.
    Abuse,
    /// All of them: mostly browsing.
    Mixed,
}

impl Scenario {
    /// The name on the command line.
    pub fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
    }

    /// Whether clients book, so the no-loss check has something to check.
    pub fn books(self) -> bool {
        matches!(self, Scenario::Book | Scenario::Mixed)
    }
}

impl Options {
    /// Options for a run against `target`, with every other default.
    pub fn new(target: impl Into<String>) -> Self {
        let mut options = Options::parse_from(["bookedbarber-loadtest"]);
        options.target = vec![target.into()];
        options
    }

    /// The server that prepares the run and checks it: the first target.
    pub fn primary(&self) -> &str {
        self.target.first().map_or("http://127.0.0.1:8080", String::as_str)
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.users > 0, "--users must be at least 1");
        anyhow::ensure!(
            self.think_min <= self.think_max,
            "--think-min must not exceed --think-max"
        );
        anyhow::ensure!(!self.duration.is_zero(), "--duration must be positive");
        anyhow::ensure!(!self.target.is_empty(), "--target names no server");
        for target in &self.target {
            url::Url::parse(target)
                .map_err(|e| anyhow::anyhow!("--target {target:?} is not a URL: {e}"))?;
        }
        anyhow::ensure!(
            self.fault.is_none() || self.fault_proxy.is_some(),
            "--fault db-outage needs --fault-proxy LISTEN=UPSTREAM"
        );
        Ok(())
    }
}
