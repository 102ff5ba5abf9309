//! The `bookedbarber` binary: parses the command line and runs it.

use clap::Parser;

/// mimalloc rather than glibc's malloc: a request allocates and frees many
/// small objects across the runtime's threads, and `perf` put about a
/// quarter of the CPU of a 50-booking page in glibc's allocator (README,
/// "Fixed operations").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = bookedbarber::config::Cli::parse();
    let _logs = bookedbarber::telemetry::init(cli.config.log_format);
    bookedbarber::run(cli).await
}
