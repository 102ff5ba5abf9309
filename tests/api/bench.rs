//! The analytics benchmark: one shop's full-year dashboard on the large
//! seed, cold (every day computed), with only today's day invalidated, and
//! warm (cached), median of many runs.
//!
//! Ignored in the normal suite; run it against a seeded database:
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/bb_bench ./target/release/bookedbarber seed \
//!   --shops 100 --barbers 500 --clients 20000 --bookings 500000
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bb_bench BENCH_REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo test --release --test api -- --ignored analytics_benchmark --nocapture
//! ```
//!
//! `ANALYTICS_BENCH_RUNS` (default 30) sets the cold runs (ten times as many
//! warm), `ANALYTICS_BENCH_TODAY_RUNS` (default three times as many) the runs
//! with today invalidated; many of these and few of the rest make a profile
//! of that path alone:
//!
//! ```sh
//! ANALYTICS_BENCH_RUNS=3 ANALYTICS_BENCH_TODAY_RUNS=3000 perf record -g target/release/deps/api-HASH \
//!   --ignored analytics_benchmark --nocapture
//! ```

use std::time::{Duration, Instant};

use bookedbarber::{
    app::App,
    domain::analytics::Range,
    domain::dashboard::{AnalyticsCache, Dashboard},
};
use serde_json::json;

use crate::{
    analytics::DASHBOARD,
    helpers::{TestApp, test_config},
};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs BENCH_DATABASE_URL with the large seed; run with --release"]
async fn analytics_benchmark() {
    let Ok(url) = std::env::var("BENCH_DATABASE_URL") else {
        eprintln!("BENCH_DATABASE_URL is not set");
        return;
    };
    let mut config = test_config(url);
    config.database_max_connections = 10;
    config.redis_url = std::env::var("BENCH_REDIS_URL").ok();
    config.redis_key_prefix = format!("bbbench-{}", uuid::Uuid::new_v4().simple());
    let app = App::build(config).await.unwrap();
    let addr = app.local_addr().unwrap();
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let app = TestApp::attach(addr, state);
    let owner = app.login_seeded("owner@demo.test").await;
    let shop =
        app.data_as(&owner, "{ viewer { memberships { shop { id name } } } }", json!({})).await;
    let shop_id = shop["viewer"]["memberships"][0]["shop"]["id"].as_str().unwrap().to_owned();
    let shop_row = crate::helpers::row_id(&shop_id);
    let bookings = crate::helpers::scalar(
        &app,
        &format!("SELECT COUNT(*) AS n FROM bookings WHERE shop_id = {shop_row}"),
    )
    .await;
    let all = crate::helpers::scalar(&app, "SELECT COUNT(*) AS n FROM bookings").await;
    let vars = json!({ "shop": shop_id, "from": "2026-01-01", "to": "2026-12-31" });
    let run = || async {
        let started = Instant::now();
        let data = app.data_as(&owner, DASHBOARD, vars.clone()).await;
        assert!(data["analytics"]["bookingsCount"].as_i64().unwrap() > 0);
        started.elapsed()
    };
    let count = |name: &str| std::env::var(name).ok().and_then(|n| n.parse::<usize>().ok());
    let runs = count("ANALYTICS_BENCH_RUNS").unwrap_or(30);
    let today_runs = count("ANALYTICS_BENCH_TODAY_RUNS").unwrap_or(runs * 3);
    // Warm the connection pool and the database's buffers.
    for _ in 0..3 {
        app.state.analytics.invalidate_shop(shop_row).await;
        run().await;
    }
    let mut cold = Vec::new();
    for _ in 0..runs {
        app.state.analytics.invalidate_shop(shop_row).await;
        cold.push(run().await);
    }
    run().await;
    let mut warm = Vec::new();
    for _ in 0..runs * 10 {
        warm.push(run().await);
    }
    let (cold, warm) = (median(cold), median(warm));

    // Inside the server: the five sections through the cache, as the
    // resolvers read them, without HTTP, sign-in and JSON.
    let shop = bookedbarber::domain::shop::by_ids(&app.state.db, &[shop_row]).await.unwrap();
    let range = Range::new(&shop[&shop_row], date(2026, 1, 1), date(2026, 12, 31)).unwrap();
    let mut inner_cold = Vec::new();
    for _ in 0..runs {
        app.state.analytics.invalidate_shop(shop_row).await;
        inner_cold
            .push(sections(&app.state.analytics, &app.state.reads, &shop[&shop_row], range).await);
    }
    // Every day but today cached: a booking today was just written.
    let now = chrono::Utc::now();
    let mut inner_today = Vec::new();
    for _ in 0..today_runs {
        app.state.analytics.invalidate_spans(shop_row, &[(now, now)]).await;
        inner_today
            .push(sections(&app.state.analytics, &app.state.reads, &shop[&shop_row], range).await);
    }
    let mut inner_warm = Vec::new();
    for _ in 0..runs * 10 {
        inner_warm
            .push(sections(&app.state.analytics, &app.state.reads, &shop[&shop_row], range).await);
    }
    // The reference: the five sections from their definitions over the
    // bookings, with no cache at all (what every dashboard cost before
    // analytics were kept per day).
    let mut scratch = Vec::new();
    for _ in 0..runs {
        scratch.push(from_scratch(&app.state.db, shop_row, &range).await);
    }
    let (inner_cold, inner_today, inner_warm, scratch) =
        (median(inner_cold), median(inner_today), median(inner_warm), median(scratch));

    println!(
        "analytics benchmark: {} cache, shop with {bookings} of {all} bookings, full year, \
         {runs} cold / {} warm runs",
        app.state.cache.health().backend,
        runs * 10
    );
    println!(
        "  inside the server (all five sections): cold {:.2} ms, today invalidated {:.2} ms, \
         warm {:.3} ms, warm {:.0}x faster than cold",
        ms(inner_cold),
        ms(inner_today),
        ms(inner_warm),
        inner_cold.as_secs_f64() / inner_warm.as_secs_f64()
    );
    println!(
        "  from scratch (the five definitions over the bookings, no cache): {:.2} ms",
        ms(scratch)
    );
    println!(
        "  whole dashboard over HTTP on loopback (sign-in, GraphQL, JSON): cold {:.2} ms, warm {:.3} ms",
        ms(cold),
        ms(warm)
    );
}

fn date(year: i32, month: u32, day: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

/// Reads every section through the cache, concurrently like the resolvers.
async fn sections(
    cache: &AnalyticsCache,
    reads: &bookedbarber::db::replica::Reads,
    shop: &entity::shop::Model,
    range: Range,
) -> Duration {
    let started = Instant::now();
    let dashboard =
        Dashboard::new(std::sync::Arc::new(reads.route(None, false)), cache.clone(), shop, range);
    let (summary, by_day, barbers, services, peaks) = tokio::join!(
        dashboard.summary(),
        dashboard.by_day(),
        dashboard.barbers(),
        dashboard.services(),
        dashboard.peak_hours(),
    );
    let elapsed = started.elapsed();
    assert!(summary.unwrap().tally.bookings > 0);
    assert_eq!(by_day.unwrap().len(), 365);
    assert!(!barbers.unwrap().is_empty());
    assert!(!services.unwrap().is_empty());
    assert!(!peaks.unwrap().is_empty());
    elapsed
}

/// Every section from its definition, concurrently, without the cache.
async fn from_scratch(db: &sea_orm::DatabaseConnection, shop_id: i64, range: &Range) -> Duration {
    use bookedbarber::domain::analytics::{Section, from_scratch};
    let started = Instant::now();
    let sections = futures_util::future::try_join_all(
        Section::ALL.map(|section| from_scratch(db, shop_id, section, range)),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(sections.unwrap().len(), 5);
    elapsed
}
