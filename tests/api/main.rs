//! Black-box tests of the BookedBarber API over real HTTP.
//!
//! Every test runs against its own server on port 0 with its own database:
//! always on SQLite, and on PostgreSQL too when `TEST_DATABASE_URL` is set.
//! One binary for all of them: one link step.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The server's allocator (`src/main.rs`), so that what the benchmarks time
/// inside the server is what the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod helpers;

mod analytics;
mod auth;
mod bench;
mod booking;
mod browse;
mod browser;
mod cache_faults;
mod errors;
mod events;
mod freshness;
mod fuzz;
mod graphiql;
mod hardening;
mod health;
mod input;
mod lifecycle;
mod manage;
mod outage;
mod overload;
mod process;
mod protection;
mod proxy;
mod read_replica;
mod replicas;
mod roles;
mod schema;
mod seed;
mod sessions;
mod shop_fixture;
mod statements;
mod warm_analytics;
mod webhooks;
mod ws;
