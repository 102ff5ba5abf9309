//! Redis dying and coming back: answers keep coming from the database,
//! `/ready` says the cache is degraded, and hits resume by themselves.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bookedbarber::domain::dashboard::{Outcome, Section};
use serde_json::{Value, json};

use crate::{
    analytics::dataset,
    helpers::{TestApp, unkept},
};

/// A `redis-server` of this test's own, killed when dropped.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--enable-debug-command", "yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Self { port, child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn ready(app: &crate::helpers::TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dying_does_not_fail_a_request() {
    let port = free_port();
    let Some(mut redis) = OwnRedis::start(port) else {
        eprintln!("redis-server is not installed: the Redis fault test is skipped");
        return;
    };
    let app = TestApp::sqlite()
        .with_config(|config| {
            config.redis_url = Some(format!("redis://127.0.0.1:{}", redis.port));
        })
        .start()
        .await;
    let data = dataset(&app).await;
    let query = "query($shop: ID!) { analytics(shopId: $shop, from: \"2026-06-01\", to: \"2026-06-07\") { revenueCents bookingsCount } }";
    let vars = json!({ "shop": data.shop.shop_id });
    let ask = || async {
        app.data_as(&data.shop.owner, &unkept(query), vars.clone()).await["analytics"].clone()
    };
    let expected = json!({ "revenueCents": 9100, "bookingsCount": 6 });

    // Warm: a miss, then a hit.
    assert_eq!(ask().await, expected);
    assert_eq!(ask().await, expected);
    assert_eq!(app.state.analytics.stat(Section::Summary, Outcome::Hit), 1);
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body["checks"]["cache"], json!({ "status": "ok", "backend": "redis" }));

    // Redis is slow (busy for two seconds): answers come from the database
    // after a short timeout instead of waiting for it.
    let sleeper = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "DEBUG", "SLEEP", "2"])
        .stdout(Stdio::null())
        .spawn();
    if let Ok(mut sleeper) = sleeper {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        assert_eq!(ask().await, expected);
        let took = started.elapsed();
        eprintln!("answer while Redis sleeps in {} ms", took.as_millis());
        assert!(took < Duration::from_secs(2), "did not wait for Redis");
        let _ = sleeper.wait();
    }

    // Redis dies: the answers still come, from the database.
    redis.kill();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(ask().await, expected);
        eprintln!("answer without Redis in {} ms", started.elapsed().as_millis());
    }
    assert!(app.state.analytics.stat(Section::Summary, Outcome::Fallback) >= 5);
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "the database is the hard dependency");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["cache"]["status"], "degraded");
    assert_eq!(body["checks"]["cache"]["backend"], "redis");

    // Redis returns (empty): the cache is used again by itself.
    let _redis = OwnRedis::start(port).expect("redis-server restarts");
    let (_, body) = ready(&app).await;
    assert_eq!(body["checks"]["cache"]["status"], "ok");
    let hits = app.state.analytics.stat(Section::Summary, Outcome::Hit);
    assert_eq!(ask().await, expected);
    assert_eq!(ask().await, expected);
    assert_eq!(app.state.analytics.stat(Section::Summary, Outcome::Hit), hits + 1, "hits resume");
}
