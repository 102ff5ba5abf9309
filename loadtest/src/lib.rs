//! BookedBarber's performance testing suite.
//!
//! [`run`] prepares shops and accounts through the API of a running server,
//! lets goose's virtual users walk the journeys of [`scenario`] against it,
//! checks afterwards that no booking was lost, doubled or double-booked, and
//! writes `report.md` (with goose's own `goose.html` and `goose.json`).

pub mod api;
pub mod cli;
pub mod fault;
pub mod fixture;
pub mod gql;
pub mod ledger;
pub mod mix;
pub mod report;
pub mod scenario;
pub mod server;

use std::{path::PathBuf, sync::Arc, time::Instant};

use anyhow::Context;
use goose::{config::GooseConfiguration, metrics::GooseMetrics, prelude::*};
use rand::Rng;

pub use cli::Options;

use crate::{api::Api, gql::Tally, ledger::Ledger, scenario::Run};

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Where `report.md` was written.
    pub report: PathBuf,
    /// p95 and error rate within the targets.
    pub kpis_passed: bool,
    /// Nothing lost, doubled or overlapping (true when nothing was booked).
    pub check_passed: bool,
    /// Bookings the users were told were made.
    pub bookings: usize,
    /// Requests of the well-behaved users, and how many of them failed.
    pub requests: usize,
    pub errors: u64,
}

/// Prepares, loads, checks and reports.
pub async fn run(options: Options) -> anyhow::Result<Outcome> {
    options.validate()?;
    std::fs::create_dir_all(&options.report_dir)
        .with_context(|| format!("creating {}", options.report_dir.display()))?;
    let api = Api::new(options.primary(), options.request_timeout)?;
    // The fault's proxy first: the server connects to its database through it.
    let proxy = match options.fault_proxy {
        Some((listen, upstream)) => {
            let proxy = fault::Proxy::start(listen, upstream).await?;
            eprintln!("fault proxy: {listen} -> {upstream}; waiting for the server");
            Some(Arc::new(proxy))
        }
        None => None,
    };
    let patience = if proxy.is_some() { 120 } else { 0 };
    let mut waited = 0;
    while let Err(error) = api.get_text("/health").await {
        if waited >= patience {
            return Err(error)
                .with_context(|| format!("{} does not answer /health", options.primary()));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        waited += 1;
    }
    let ready = api.get_text("/ready").await.ok();

    let run_id = format!("{:06x}", rand::rng().random_range(0..0x100_0000));
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let mix = mix::Mix::of(&options);
    let shop_count = mix.shops(&options);
    eprintln!("preparing {shop_count} shops through the API (run {run_id}) for {mix:?}");
    let accounts = mix.barber_accounts_per_shop(shop_count);
    let warm = mix.owners > 0 && !options.cold_dashboards;
    let fixture = fixture::prepare(&api, &run_id, shop_count, accounts, warm).await?;
    let prepare_secs = clock.elapsed().as_secs_f64();
    let (shops, barbers) = (fixture.shops.len(), fixture.barbers_with_accounts().count());
    let run = Arc::new(Run {
        fixture,
        ledger: Ledger::default(),
        tally: Tally::default(),
        seats: scenario::Seats::default(),
    });

    let before = api.get_text("/metrics").await.ok();
    let outage = proxy.map(|proxy| {
        let epoch = run.tally.1.epoch();
        tokio::spawn(fault::outage(proxy, options.fault_at, options.fault_for, epoch))
    });
    eprintln!("load: starting {} users", options.users);
    let metrics = attack(&options, &mix, &run).await?;
    eprintln!("load: finished");
    let fault = match outage {
        Some(outage) => Some(run.tally.1.around(outage.await?)),
        None => None,
    };
    let after = api.get_text("/metrics").await.ok();

    let verdict = if options.scenario.books() {
        eprintln!("checking {} bookings against the server", run.ledger.len());
        let buffer = chrono::Duration::minutes(fixture::BUFFER_MINUTES);
        Some(ledger::check(&api, &run.fixture, &run.ledger, buffer).await?)
    } else {
        None
    };
    let server = before.zip(after).and_then(|(b, a)| server::ServerView::between(&b, &a));
    let failures = run.tally.snapshot();
    let rows = report::rows(&metrics, &failures);
    let facts = report::Facts {
        options: &options,
        started,
        prepare_secs,
        shops,
        barbers,
        metrics: &metrics,
        failures,
        rows,
        server,
        ready,
        verdict,
        fault,
    };
    let text = report::render(&facts);
    let path = options.report_dir.join("report.md");
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    let (kpis_passed, check_passed) = report::passed(&facts.rows, facts.verdict.as_ref());
    let all = report::overall(&facts.rows);
    Ok(Outcome {
        report: path,
        kpis_passed,
        check_passed,
        bookings: run.ledger.len(),
        requests: all.requests,
        errors: all.errors,
    })
}

/// Runs the goose attack and returns its metrics.
async fn attack(options: &Options, mix: &mix::Mix, run: &Arc<Run>) -> anyhow::Result<GooseMetrics> {
    let mut configuration = GooseConfiguration::default();
    // Goose logs every user's start and stop at INFO: at 10,000 users that
    // drowns the summary it prints at the end.
    configuration.quiet = u8::from(!options.verbose);
    configuration.report_file = vec![
        options.report_dir.join("goose.html").display().to_string(),
        options.report_dir.join("goose.json").display().to_string(),
    ];
    let ramp_up = usize::try_from(options.ramp_up.as_secs()).unwrap_or(usize::MAX);
    let hold = usize::try_from(options.duration.as_secs().max(1)).unwrap_or(usize::MAX);
    let mut attack = GooseAttack::initialize_with_config(configuration)?
        .set_default(GooseDefault::Host, options.primary())?
        .set_default(GooseDefault::Users, options.users)?
        .set_default(GooseDefault::RunTime, hold)?
        .set_default(
            GooseDefault::Timeout,
            options.request_timeout.as_secs().max(1).to_string().as_str(),
        )?
        // The ramp-up is part of the measurement: sign-ups happen there.
        .set_default(GooseDefault::NoResetMetrics, true)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoWebSocket, true)?;
    attack = if ramp_up == 0 {
        attack.set_default(GooseDefault::HatchRate, options.users.to_string().as_str())?
    } else {
        attack.set_default(GooseDefault::StartupTime, ramp_up)?
    };
    if let Some(every) = options.running_metrics {
        attack = attack.set_default(GooseDefault::RunningMetrics, every)?;
    }
    let mut attack = *attack;
    for scenario in scenario::scenarios(mix, options, run)? {
        attack = attack.register_scenario(scenario);
    }
    Ok(attack.execute().await?)
}
