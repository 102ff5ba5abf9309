//! BookedBarber: the GraphQL API of a booking platform for barbershops.
//!
//! `main.rs` parses the command line and calls [`run`]; tests build an
//! [`app::App`] on port 0 and drive it over HTTP.

pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod health;
pub mod protect;
pub mod router;
pub mod seed;
pub mod server;
pub mod telemetry;
pub mod webhooks;

use config::{Cli, Command};

/// Runs one command of the `bookedbarber` binary.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = cli.config;
    let command = cli.command.unwrap_or(Command::Serve);
    if !matches!(command, Command::Serve) {
        // Migrations and bulk seeding run long statements on purpose.
        config.database_statement_timeout_ms = 0;
    }
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let (db, _) = db::connect(&config).await?;
            db::migrate(&db).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Seed(args) => {
            let (db, _) = db::connect(&config).await?;
            db::migrate(&db).await?;
            let report = seed::seed(&db, &args).await?;
            print_out(&report.to_string());
            Ok(())
        }
        Command::Schema => {
            print_out(graphql::sdl().trim_end());
            Ok(())
        }
    }
}

async fn serve(config: config::Config) -> anyhow::Result<()> {
    if config.jwt_secret.is_none() {
        tracing::warn!("JWT_SECRET is not set: tokens are signed with a random per-process secret");
    }
    let app = app::App::build(config).await?;
    let addr = app.local_addr()?;
    if app.seeded_demo {
        tracing::info!("seeded the demo data set into the empty embedded database");
    }
    print_out(&banner(addr));
    app.run_until(app::shutdown_signal()).await
}

fn banner(addr: std::net::SocketAddr) -> String {
    format!(
        "\nBookedBarber is listening on http://{addr}\n\
         \x20 GraphiQL:  http://{addr}/graphql\n\
         \x20 Health:    http://{addr}/health   Ready: http://{addr}/ready\n\
         \x20 Demo accounts (password `{password}`): {owner} (shop owner), {barber} (barber), {client} (client)\n",
        password = seed::DEMO_PASSWORD,
        owner = seed::DEMO_OWNER_EMAIL,
        barber = seed::DEMO_BARBER_EMAIL,
        client = seed::DEMO_CLIENT_EMAIL,
    )
}

/// Writes a line to standard output; a closed pipe (`| head`) is not an error.
fn print_out(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
}
