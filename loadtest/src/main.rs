//! `bookedbarber-loadtest`: see `--help`.

use clap::Parser;
use loadtest::Options;

/// As the server's: by `perf`, glibc's malloc was about a quarter of the load
/// generator's CPU at 1,500 users (`_int_malloc`, `malloc_consolidate` and
/// their kin), CPU the server under test competes for on one machine.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = Options::parse();
    match loadtest::run(options).await {
        Ok(outcome) => {
            println!("report: {}", outcome.report.display());
            println!(
                "KPIs: {}; bookings check: {}",
                if outcome.kpis_passed { "PASS" } else { "FAIL" },
                if outcome.check_passed { "PASS" } else { "FAIL" }
            );
            // A failed check means lost or doubled bookings: that is a bug,
            // not a capacity figure.
            if outcome.check_passed {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(2)
            }
        }
        Err(error) => {
            eprintln!("bookedbarber-loadtest: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
