//! A few seconds of the `mixed` scenario against a server started here:
//! the report is written, no request fails, and every booking checks out.

use std::time::Duration;

use bookedbarber::{app::App, config::Config};
use loadtest::{Options, cli::Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_mixed_run_reports_and_loses_no_booking() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::from_defaults();
    config.database_url = format!("sqlite://{}?mode=rwc", dir.path().join("bb.db").display());
    config.bind_addr = "127.0.0.1:0".parse().unwrap();
    config.demo_seed = false;
    config.jwt_secret = Some("loadtest-smoke".to_owned());
    // A load-test deployment: the suite's virtual users arrive through a
    // proxy on this host, each with an address of its own. Limits stay on.
    config.trust_proxy = vec!["127.0.0.1/32".parse().unwrap()];
    let app = App::build(config).await.unwrap();
    let addr = app.local_addr().unwrap();
    tokio::spawn(app.run_until(std::future::pending()));

    let mut options = Options::new(format!("http://{addr}"));
    options.scenario = Scenario::Mixed;
    options.users = 40;
    options.ramp_up = Duration::from_secs(1);
    options.duration = Duration::from_secs(4);
    options.think_min = Duration::from_millis(200);
    options.think_max = Duration::from_millis(500);
    options.report_dir = dir.path().join("report");
    let outcome = loadtest::run(options).await.unwrap();

    let report = std::fs::read_to_string(&outcome.report).unwrap();
    println!("{report}");
    for section in
        ["## KPIs", "## Operations", "## The server's view", "## Correctness after the run"]
    {
        assert!(report.contains(section), "the report lacks {section}");
    }
    for op in ["browse shops", "book createBooking", "dashboard analytics", "staff schedule"] {
        let (scenario, operation) = op.split_once(' ').unwrap();
        assert!(
            report.contains(&format!("| {scenario} | `{operation}` |")),
            "no {op} in the report"
        );
    }
    assert!(outcome.bookings > 0, "nobody booked");
    assert!(outcome.check_passed, "the bookings check failed:\n{report}");
    assert!(outcome.requests > 100, "only {} requests", outcome.requests);
    assert_eq!(outcome.errors, 0, "requests failed:\n{report}");
    assert!(dir.path().join("report/goose.html").exists());
}
