//! The `bookedbarber` binary: parses the command line and runs it.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = bookedbarber::config::Cli::parse();
    bookedbarber::telemetry::init(cli.config.log_format);
    bookedbarber::run(cli).await
}
