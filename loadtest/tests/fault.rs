//! The `db-outage` fault against a server on PostgreSQL: the database is cut
//! off in the middle of a short mixed run and comes back; the report shows
//! the window, the refusals in it and the recovery, and no booking is lost
//! or doubled. Skipped without `TEST_DATABASE_URL`.

#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use bookedbarber::{app::App, config::Config};
use loadtest::{
    Options,
    cli::{Fault, Scenario},
};
use sea_orm::ConnectionTrait;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_run_loses_no_booking_and_is_reported() {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("TEST_REQUIRE_BACKENDS").is_none(),
            "TEST_REQUIRE_BACKENDS is set but TEST_DATABASE_URL is not"
        );
        eprintln!("TEST_DATABASE_URL is not set: the fault run is skipped");
        return;
    };
    let admin = url::Url::parse(&admin_url).unwrap();
    let upstream: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&(
        admin.host_str().unwrap(),
        admin.port().unwrap_or(5432),
    ))
    .unwrap()
    .next()
    .unwrap();
    let name = format!("bb_test_fault_{}", std::process::id());
    let admin_db = sea_orm::Database::connect(admin_url.as_str()).await.unwrap();
    admin_db.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\"")).await.unwrap();
    admin_db.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();

    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::new(format!("http://{server}"));
    options.scenario = Scenario::Mixed;
    options.users = 30;
    options.ramp_up = Duration::from_secs(1);
    options.duration = Duration::from_secs(9);
    options.think_min = Duration::from_millis(200);
    options.think_max = Duration::from_millis(500);
    options.report_dir = dir.path().join("report");
    options.fault = Some(Fault::DbOutage);
    options.fault_proxy = Some((listen, upstream));
    options.fault_at = Duration::from_secs(4);
    options.fault_for = Duration::from_secs(2);
    let run = tokio::spawn(loadtest::run(options));

    // The server connects through the suite's proxy, once it listens.
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut through_proxy = admin.clone();
    through_proxy.set_host(Some("127.0.0.1")).unwrap();
    through_proxy.set_port(Some(listen.port())).unwrap();
    through_proxy.set_path(&name);
    let mut config = Config::from_defaults();
    config.database_url = through_proxy.to_string();
    config.bind_addr = server;
    config.demo_seed = false;
    config.jwt_secret = Some("loadtest-fault".to_owned());
    config.trust_proxy = vec!["127.0.0.1/32".parse().unwrap()];
    let app = App::build(config).await.unwrap();
    tokio::spawn(app.run_until(std::future::pending()));

    let outcome = run.await.unwrap().unwrap();
    let report = std::fs::read_to_string(&outcome.report).unwrap();
    println!("{report}");
    assert!(report.contains("## Fault: the database cut off"), "{report}");
    let during = report.lines().find(|l| l.starts_with("| While cut off |")).unwrap();
    assert!(during.contains("`SERVICE_UNAVAILABLE`"), "{during}");
    assert!(report.contains("s after the database came back."), "never recovered:\n{report}");
    assert!(outcome.bookings > 0, "nobody booked");
    assert!(outcome.check_passed, "the bookings check failed:\n{report}");
    let _ = admin_db
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
}
